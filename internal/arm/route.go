package arm

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
)

// Params are the named segments of a matched route ({sub}, {rg}, ...).
type Params map[string]string

// HandlerFunc serves one routed ARM request. An error it returns is written
// as ARM's error body, once, by the core.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, p Params) error

type route struct {
	method string
	// segs are the pattern's segments as written: literals in ARM's
	// canonical spelling (matched case-insensitively), or "{name}".
	segs     []string
	handler  HandlerFunc
	versions APIVersions
	// authorizeInHandler says the handler authorizes the call itself.
	authorizeInHandler bool
}

// RouteOption changes how a route is served.
type RouteOption func(*route)

// AuthorizeInHandler marks a route whose handler authorizes the call itself
// (operation status, authorized against the resource the operation acts on).
func AuthorizeInHandler(rt *route) { rt.authorizeInHandler = true }

// Handle registers a route. pattern is spelled as ARM spells it
// ("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}"):
// that spelling names the RBAC action and scope the route needs, whatever
// case a request uses.
func (s *Server) Handle(method, pattern string, versions APIVersions, h HandlerFunc, opts ...RouteOption) {
	rt := route{method: method, segs: s.learn(pattern), handler: h, versions: versions}
	for _, o := range opts {
		o(&rt)
	}
	s.routes = append(s.routes, rt)
}

// learn splits a pattern into segments and remembers how it spells its
// literals (see canon).
func (s *Server) learn(pattern string) []string {
	segs := strings.Split(pattern, "/")
	for _, seg := range segs {
		if !strings.HasPrefix(seg, "{") {
			s.canonical[strings.ToLower(seg)] = seg
		}
	}
	return segs
}

func (rt route) match(segs []string) (Params, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	p := Params{}
	for i, want := range rt.segs {
		if strings.HasPrefix(want, "{") {
			p[strings.Trim(want, "{}")] = segs[i]
		} else if !strings.EqualFold(want, segs[i]) {
			return nil, false
		}
	}
	return p, true
}

// canon spells a segment as the registered patterns do.
func (s *Server) canon(seg string) string {
	if c, ok := s.canonical[strings.ToLower(seg)]; ok {
		return c
	}
	return seg
}

// pathSegments splits a request path into ARM segments. A segment may not
// be empty or a dot segment (cleanPath already refused encoded
// separators).
func pathSegments(r *http.Request) ([]string, error) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return nil, BadRequest("InvalidRequestUri", "", "The request URI is invalid: it has an empty or dot path segment.")
		}
	}
	return segs, nil
}

// cleanPath collapses repeated slashes and drops a trailing one before
// routing: az asks for //metadata/endpoints, and http.ServeMux would answer
// a path like that with a redirect instead. The escaped form is kept so
// that pathSegments can refuse encoded separators.
//
// A path with an encoded '/' or '\' is refused: ARM refuses it, and
// decoding it would let %2F stand for a separator that a proxy in front of
// Slipway never saw.
func cleanPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw := strings.ToLower(r.URL.EscapedPath()); strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") {
			WriteError(w, r, BadRequest("InvalidRequestUri", "", "The request URI is invalid: a path segment contains an encoded '/' or '\\'."))
			return
		}
		r.URL.Path, r.URL.RawPath = collapse(r.URL.Path), ""
		next.ServeHTTP(w, r)
	})
}

func collapse(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// recoverPanics turns a handler's panic into a 500 and a log line at
// Error: net/http would otherwise drop the connection and log the panic
// where serve does not print it.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				slog.Error("Panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				WriteError(w, r, NewError(http.StatusInternalServerError, "InternalServerError", "", "The server encountered an internal error. Please retry the request."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

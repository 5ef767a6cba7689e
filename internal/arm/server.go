// Package arm is the shared core of Slipway's Azure Resource Manager front
// door: routing (case-insensitive segments, collapsed slashes), the
// api-version check, authentication, authorization derived from the route,
// ARM's error body and long-running operations. It knows no resource
// provider: each provider (internal/arm/providers/...) registers its routes,
// api-versions, models and validation with Handle and ResourceType, and only
// internal/app lists the providers. Nothing here runs anything: the
// controllers act on what the providers write.
package arm

import (
	"context"
	"net/http"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/readcache"
)

// Config configures the core.
type Config struct {
	// BaseURL is the server's external URL, without trailing slash.
	BaseURL        string
	SubscriptionID string
	TenantID       string
	// Location is the default (and only) location.
	Location string
	// Audience is the token audience ARM calls need.
	Audience string
	// Client reads and writes the management objects. A GET right after
	// a PUT must see it: reads come from the API server, or, under GET
	// requests, from a cache that has seen this client's writes
	// (readcache).
	Client     client.Client
	Signer     *identity.Signer
	Principals identity.Principals
	// Authorizer checks every call against the role assignments; nil
	// lets every authenticated caller do everything.
	Authorizer *authz.Authorizer
	// RetryAfter is what long-running operations tell clients to wait
	// between polls.
	RetryAfter time.Duration
	// TokenLimiter throttles failed client-credential attempts; nil
	// means identity's default.
	TokenLimiter *identity.FailureLimiter
}

// Server is the ARM core. Providers register with it before Handler is
// called; it is safe for concurrent use once serving.
type Server struct {
	cfg    Config
	routes []route
	// canonical spells each route literal as the patterns do, keyed by its
	// lower-case form: ARM action names and IDs use that spelling whatever
	// the request's.
	canonical map[string]string
	types     []registeredType
}

// New returns the core, with no provider registered.
func New(cfg Config) *Server {
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = time.Second
	}
	return &Server{cfg: cfg, canonical: map[string]string{}}
}

// Client is the management plane client providers read and write with.
func (s *Server) Client() client.Client { return s.cfg.Client }

// SubscriptionID is the one subscription Slipway serves.
func (s *Server) SubscriptionID() string { return s.cfg.SubscriptionID }

// TenantID is the tenant of the subscription.
func (s *Server) TenantID() string { return s.cfg.TenantID }

// BaseURL is the server's external URL, without trailing slash.
func (s *Server) BaseURL() string { return s.cfg.BaseURL }

// Location is the default location.
func (s *Server) Location() string { return s.cfg.Location }

// Handler returns the HTTP handler for everything Slipway serves on its
// ARM port: the token service, metadata and ARM.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	(&identity.Endpoints{BaseURL: s.cfg.BaseURL, TenantID: s.cfg.TenantID, Signer: s.cfg.Signer,
		Principals: s.cfg.Principals, Limiter: s.cfg.TokenLimiter}).Register(mux)
	mux.HandleFunc("GET /metadata/endpoints", s.metadataEndpoints)
	return recoverPanics(cleanPath(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ARM paths are case-insensitive, which ServeMux patterns are not.
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		// Tenant-level ARM (built-in policy definitions) is under
		// /providers.
		if strings.EqualFold(first, "subscriptions") || strings.EqualFold(first, "providers") {
			s.serveARM(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})))
}

// metadataEndpoints answers az cloud register, in the Azure Stack format.
func (s *Server) metadataEndpoints(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{
		"galleryEndpoint": s.cfg.BaseURL + "/gallery/",
		"graphEndpoint":   s.cfg.BaseURL + "/graph/",
		"portalEndpoint":  s.cfg.BaseURL + "/portal/",
		"authentication": map[string]any{
			"loginEndpoint": identity.ADFSIssuer(s.cfg.BaseURL),
			"audiences":     []string{s.cfg.Audience},
		},
	})
}

// serveARM authenticates, checks the api-version and dispatches.
func (s *Server) serveARM(w http.ResponseWriter, r *http.Request) {
	segs, err := pathSegments(r)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	var matched *route
	var p Params
	var allowed []string
	for i := range s.routes {
		if q, ok := s.routes[i].match(segs); ok {
			allowed = append(allowed, s.routes[i].method)
			if matched == nil && s.routes[i].method == r.Method {
				matched, p = &s.routes[i], q
			}
		}
	}
	claims, err := s.authenticate(r)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims))
	if matched == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			WriteError(w, r, NewError(http.StatusMethodNotAllowed, "MethodNotAllowed", "", "The requested method %s is not allowed for %s.", r.Method, r.URL.Path))
			return
		}
		WriteError(w, r, NewError(http.StatusNotFound, "InvalidResourceType", "", "The resource type could not be found in the namespace for path '%s'.", r.URL.Path))
		return
	}
	if err := matched.versions.check(APIVersion(r)); err != nil {
		WriteError(w, r, err)
		return
	}
	if sub, ok := p["sub"]; ok && !strings.EqualFold(sub, s.cfg.SubscriptionID) {
		WriteError(w, r, NewError(http.StatusNotFound, "SubscriptionNotFound", "", "The subscription '%s' could not be found.", sub))
		return
	}
	if err := s.authorizeRoute(r, matched, p); err != nil {
		WriteError(w, r, err)
		return
	}
	if r.Method == http.MethodGet {
		// A read may be served from the management plane's cache, which
		// still shows every write made through the front door.
		r = r.WithContext(readcache.AllowCache(r.Context()))
	}
	if err := matched.handler(w, r, p); err != nil {
		WriteError(w, r, err)
	}
}

type claimsKey struct{}

// Caller is the authenticated principal of a request, or nil.
func Caller(ctx context.Context) *identity.Claims {
	c, _ := ctx.Value(claimsKey{}).(*identity.Claims)
	return c
}

func (s *Server) authenticate(r *http.Request) (*identity.Claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, NewError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	// The scheme is case-insensitive (RFC 7235).
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, NewError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	c, err := s.cfg.Signer.Verify(strings.TrimSpace(tok))
	switch err {
	case nil:
		return c, nil
	case identity.ErrExpiredToken:
		return nil, NewError(http.StatusUnauthorized, "ExpiredAuthenticationToken", "", "The access token expiry UTC time is earlier than current UTC time.")
	case identity.ErrWrongAudience:
		return nil, NewError(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", "", "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences '%s'.", s.cfg.Audience)
	default:
		return nil, NewError(http.StatusUnauthorized, "InvalidAuthenticationToken", "", "The access token is invalid.")
	}
}

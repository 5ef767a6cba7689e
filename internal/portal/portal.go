// Package portal is Slipway's web portal at /portal/: the subscription's
// clusters, each cluster's overview, health, node pools and operations,
// and every Kubernetes resource in it, with the actions people take most
// (scale, add and delete pools, upgrade node images, stop and start,
// apply and edit YAML, delete).
//
// Pages are server-rendered Go templates, made live by htmx (one
// committed, embedded file; hack/portal-assets.sh fetches it): no
// Node.js toolchain in the build, no JSON API of its own to keep in step,
// and every page works without script except the automatic refresh. The
// portal is an ARM client (arm.go) and a Kubernetes client (kube.go) on
// the principal's behalf; it holds no authority of its own.
package portal

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/identity"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Principals checks a service principal's secret.
type Principals interface {
	Authenticate(ctx context.Context, appID, secret string) (objectID string, err error)
}

// Options are what the portal is built on.
type Options struct {
	// ARM is Slipway's ARM handler, which every page goes through.
	ARM http.Handler
	// BaseURL is Slipway's HTTPS address; Audience ARM's token audience.
	BaseURL, Audience        string
	TenantID, SubscriptionID string
	Tokens                   Tokens
	Principals               Principals
	// Limiter slows down guessing of secrets (shared with the token
	// endpoint: one budget per client ID).
	Limiter *identity.FailureLimiter
	// DataDir holds the one-time sign-in links.
	DataDir string
	// Store reads Slipway's operation records (progress ARM does not
	// list); nil leaves them out.
	Store client.Reader
	Log   *slog.Logger
}

// Portal serves the portal.
type Portal struct {
	o        Options
	sessions *sessions
	kubes    kubeCache
	pages    map[string]*template.Template
}

// New makes the portal.
func New(o Options) (*Portal, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	p := &Portal{o: o, sessions: newSessions(), kubes: kubeCache{all: map[string]*kubeAccess{}}, pages: map[string]*template.Template{}}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		p.pages[name] = t
	}
	return p, nil
}

// Handler serves /portal/.
func (p *Portal) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /portal/static/", http.StripPrefix("/portal/static/", cacheForever(http.FileServerFS(static))))
	mux.HandleFunc("GET /portal/signin", p.signinPage)
	mux.HandleFunc("POST /portal/signin", p.signin)
	mux.HandleFunc("GET /portal/signin/link", p.signinLink)
	mux.HandleFunc("POST /portal/signout", p.signed(p.signout))
	mux.HandleFunc("GET /portal/{$}", p.signed(p.home))
	c := "/portal/clusters/{group}/{name}"
	mux.HandleFunc("GET "+c, p.signed(p.cluster))
	mux.HandleFunc("POST "+c+"/{action}", p.signed(p.clusterAction))
	mux.HandleFunc("POST "+c+"/pools", p.signed(p.addPool))
	mux.HandleFunc("POST "+c+"/pools/{pool}/{action}", p.signed(p.poolAction))
	mux.HandleFunc("GET "+c+"/kubeconfig", p.signed(p.kubeconfig))
	mux.HandleFunc("GET "+c+"/apply", p.signed(p.applyPage))
	mux.HandleFunc("POST "+c+"/apply", p.signed(p.apply))
	mux.HandleFunc("GET "+c+"/k8s/{g}/{v}/{r}", p.signed(p.list))
	mux.HandleFunc("GET "+c+"/k8s/{g}/{v}/{r}/{ns}/{obj}", p.signed(p.detail))
	mux.HandleFunc("POST "+c+"/k8s/{g}/{v}/{r}/{ns}/{obj}/delete", p.signed(p.deleteObject))
	return secureHeaders(mux)
}

// secureHeaders: no script, style or frame from elsewhere, no referrer
// (a sign-in link's token is in its URL), no sniffing.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Assets carry their version in their names.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		h.ServeHTTP(w, r)
	})
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, ss *session)

// signed runs h for a signed-in principal. A page asked without a session
// goes to sign-in (and back after); a write without the session's CSRF
// token is refused.
func (p *Portal) signed(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := p.sessions.of(r)
		if ss == nil {
			if r.Method != http.MethodGet {
				http.Error(w, "Your session has ended: sign in again.", http.StatusUnauthorized)
				return
			}
			if r.Header.Get("HX-Request") != "" {
				// A refresh of part of a page: send the whole page to
				// sign-in, not a fragment.
				w.Header().Set("HX-Redirect", "/portal/signin")
				return
			}
			http.Redirect(w, r, "/portal/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && !ss.validCSRF(r) {
			http.Error(w, "This form has expired (its CSRF token does not match your session): reload the page and try again.", http.StatusForbidden)
			return
		}
		h(w, r, ss)
	}
}

// page is what every page's template gets.
type page struct {
	Title   string
	Session *session
	// Crumbs lead back up: subscription, cluster.
	Crumbs []crumb
	// Message and Error are the outcome of the last action.
	Message, Error string
	Data           any
}

type crumb struct{ Name, URL string }

// render writes a page, or only its named fragment when htmx refreshes
// one. A template that fails is logged (and returned, for tests).
func (p *Portal) render(w http.ResponseWriter, r *http.Request, name string, pg *page) error {
	t := p.pages[name]
	if pg.Message == "" {
		pg.Message = r.URL.Query().Get("msg")
	}
	if pg.Error == "" {
		pg.Error = r.URL.Query().Get("err")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var err error
	if frag := r.URL.Query().Get("fragment"); frag != "" && t.Lookup(frag) != nil {
		err = t.ExecuteTemplate(w, frag, pg)
	} else {
		err = t.ExecuteTemplate(w, "layout.html", pg)
	}
	if err != nil {
		p.o.Log.Error("portal page", "page", name, "err", err)
	}
	return err
}

// back redirects after an action to where it was taken, with its outcome.
func back(w http.ResponseWriter, r *http.Request, to, message string, err error) {
	q := url.Values{}
	if err != nil {
		q.Set("err", armMessage(err))
	} else if message != "" {
		q.Set("msg", message)
	}
	if len(q) > 0 {
		to += "?" + q.Encode()
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (p *Portal) signinPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, "signin", &page{Title: "Sign in", Data: map[string]string{"Next": safeNext(r.URL.Query().Get("next"))}})
}

// safeNext keeps a redirect after sign-in inside the portal.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/portal/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/portal/"
	}
	return next
}

// signin checks a service principal's client ID and secret, as the token
// endpoint does (and with its limiter).
func (p *Portal) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	appID, secret := strings.TrimSpace(r.PostFormValue("client_id")), r.PostFormValue("client_secret")
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		p.render(w, r, "signin", &page{Title: "Sign in", Error: msg, Data: map[string]string{"Next": next, "ClientID": appID}})
	}
	if appID == "" || secret == "" {
		fail(http.StatusBadRequest, "Enter a client ID and a client secret.")
		return
	}
	if p.o.Limiter != nil {
		if wait := p.o.Limiter.Wait(appID); wait > 0 {
			fail(http.StatusTooManyRequests, "Too many failed sign-ins for this client ID: try again in "+wait.Round(time.Second).String()+".")
			return
		}
	}
	objectID, err := p.o.Principals.Authenticate(r.Context(), appID, secret)
	if errors.Is(err, identity.ErrBadCredentials) {
		if p.o.Limiter != nil {
			p.o.Limiter.Failed(appID)
		}
		p.o.Log.Warn("Refusing a portal sign-in", "appId", appID, "remote", r.RemoteAddr)
		fail(http.StatusUnauthorized, "The client ID or secret is not right.")
		return
	}
	if err != nil {
		fail(http.StatusInternalServerError, "Signing in failed: "+err.Error())
		return
	}
	if p.o.Limiter != nil {
		p.o.Limiter.Succeeded(appID)
	}
	p.sessions.start(w, appID, objectID, appID)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signinLink signs in with a one-time link of `slipway portal`.
func (p *Portal) signinLink(w http.ResponseWriter, r *http.Request) {
	l, err := useLink(p.o.DataDir, r.URL.Query().Get("token"), time.Now())
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		p.render(w, r, "signin", &page{Title: "Sign in", Error: strings.ToUpper(err.Error()[:1]) + err.Error()[1:] + ".", Data: map[string]string{"Next": "/portal/"}})
		return
	}
	p.sessions.start(w, l.AppID, l.ObjectID, l.Name)
	http.Redirect(w, r, "/portal/", http.StatusSeeOther)
}

func (p *Portal) signout(w http.ResponseWriter, r *http.Request, ss *session) {
	p.sessions.end(w, ss)
	http.Redirect(w, r, "/portal/signin?msg="+url.QueryEscape("Signed out."), http.StatusSeeOther)
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"lower": strings.ToLower,
	"usd":   func(v float64) string { return fmt.Sprintf("$%.2f", v) },
	// deref prints what a pointer of the SDK's models points at.
	"deref": func(v any) string {
		rv := reflect.ValueOf(v)
		if !rv.IsValid() || rv.Kind() == reflect.Pointer && rv.IsNil() {
			return ""
		}
		return fmt.Sprint(reflect.Indirect(rv).Interface())
	},
}

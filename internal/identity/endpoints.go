package identity

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Principals checks client credentials.
type Principals interface {
	// Authenticate returns the object ID of the principal with appID if
	// secret is one of its secrets; ErrBadCredentials if not.
	Authenticate(ctx context.Context, appID, secret string) (objectID string, err error)
}

// ErrBadCredentials says an app ID or secret is wrong.
var ErrBadCredentials = errors.New("invalid client credentials")

// Endpoints serves the OIDC discovery documents, key sets and token
// endpoints.
type Endpoints struct {
	// BaseURL is Slipway's external URL without a trailing slash,
	// e.g. "https://127.0.0.1:8443".
	BaseURL    string
	TenantID   string
	Signer     *Signer
	Principals Principals
	// Limiter throttles clients whose secrets keep failing; nil means a
	// default one.
	Limiter *FailureLimiter
}

// maxTokenForm bounds a token request's body: a client-credentials form is
// a few hundred bytes, and the endpoint answers anyone.
const maxTokenForm = 64 << 10

// ADFSIssuer and TenantIssuer are the issuers of the two shapes.
func ADFSIssuer(base string) string { return base + "/adfs" }

// TenantIssuer is the v2.0 issuer of a tenant, as Entra ID spells it.
func TenantIssuer(base, tenant string) string { return base + "/" + tenant + "/v2.0" }

// Register adds the endpoints to mux.
func (e *Endpoints) Register(mux *http.ServeMux) {
	if e.Limiter == nil {
		e.Limiter = NewFailureLimiter(5, time.Second, time.Minute)
	}
	mux.HandleFunc("GET /adfs/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		e.discovery(w, ADFSIssuer(e.BaseURL), e.BaseURL+"/adfs/oauth2/token", e.BaseURL+"/adfs/oauth2/authorize", e.BaseURL+"/adfs/discovery/keys")
	})
	mux.HandleFunc("POST /adfs/oauth2/token", e.token)
	mux.HandleFunc("GET /adfs/discovery/keys", e.keys)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("tenant")
		if !e.knownTenant(t) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+t+"' not found.")
			return
		}
		base := e.BaseURL + "/" + t
		e.discovery(w, TenantIssuer(e.BaseURL, e.TenantID), base+"/oauth2/v2.0/token", base+"/oauth2/v2.0/authorize", base+"/discovery/v2.0/keys")
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		if !e.knownTenant(r.PathValue("tenant")) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+r.PathValue("tenant")+"' not found.")
			return
		}
		e.token(w, r)
	})
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", e.keys)
}

// knownTenant accepts the tenant's ID, and "organizations" and "common" as
// Entra ID does for single-tenant apps.
func (e *Endpoints) knownTenant(t string) bool {
	return strings.EqualFold(t, e.TenantID) || t == "organizations" || t == "common"
}

func (e *Endpoints) discovery(w http.ResponseWriter, issuer, tokenURL, authorizeURL, keysURL string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                issuer,
		"token_endpoint":                        tokenURL,
		"authorization_endpoint":                authorizeURL,
		"jwks_uri":                              keysURL,
		"response_types_supported":              []string{"code", "token"},
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"subject_types_supported":               []string{"pairwise"},
		"tenant_region_scope":                   "local",
	})
}

func (e *Endpoints) keys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: e.Signer.PublicKeys()})
}

// token is the client-credentials grant.
func (e *Endpoints) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must be form-encoded.")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The grant type '"+gt+"' is not supported; use client_credentials.")
		return
	}
	appID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if appID == "" || secret == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain client_id and client_secret.")
		return
	}
	limiter := e.Limiter
	if wait := limiter.Wait(appID); wait > 0 {
		// Entra answers a client that keeps failing with 429 and a
		// Retry-After; a correct secret waits too, or guessing could go on.
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable", "AADSTS50196: The server terminated an operation because it encountered a client request loop; too many failed attempts for app '"+appID+"'. Retry later.")
		return
	}
	objectID, err := e.Principals.Authenticate(r.Context(), appID, secret)
	if errors.Is(err, ErrBadCredentials) {
		limiter.Failed(appID)
		slog.Warn("Refusing client credentials", "appId", appID, "remote", r.RemoteAddr)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+appID+"'.")
		return
	}
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "AADSTS50000: There was an error issuing a token.")
		return
	}
	limiter.Succeeded(appID)
	audience := ""
	if scopes := strings.Fields(r.PostForm.Get("scope")); len(scopes) > 0 {
		audience = strings.TrimSuffix(scopes[0], "/.default")
	} else {
		audience = r.PostForm.Get("resource") // ADFS's v1 form
	}
	if !e.Signer.Issues(audience) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS500011: The resource principal named "+audience+" was not found in the tenant.")
		return
	}
	tok, exp, err := e.Signer.Issue(e.TenantID, appID, objectID, audience)
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "AADSTS50000: There was an error issuing a token.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"access_token":   tok,
		"expires_in":     int(exp.Sub(e.Signer.now()).Seconds()),
		"ext_expires_in": int(exp.Sub(e.Signer.now()).Seconds()),
	})
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

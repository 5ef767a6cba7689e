package identity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type onePrincipal struct{ appID, secret string }

func (p onePrincipal) Authenticate(_ context.Context, appID, secret string) (string, error) {
	if appID == p.appID && secret == p.secret {
		return "obj", nil
	}
	return "", ErrBadCredentials
}

func tokenServer(t *testing.T, limiter *FailureLimiter) *httptest.Server {
	t.Helper()
	now := time.Now()
	signer := newTestSigner(t, filepath.Join(t.TempDir(), "k.pem"), &now)
	mux := http.NewServeMux()
	(&Endpoints{BaseURL: "https://127.0.0.1:8443", TenantID: "tenant", Signer: signer,
		Principals: onePrincipal{"app", "right"}, Limiter: limiter}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func postToken(t *testing.T, srv *httptest.Server, path string, form url.Values) *http.Response {
	t.Helper()
	resp, err := http.PostForm(srv.URL+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v (the endpoint dropped the connection?)", path, err)
	}
	resp.Body.Close()
	return resp
}

// TestTokenForms: ADFS's v1 form names the audience with resource= and no
// scope; a blank scope falls back to it. Both answered a dropped
// connection (an index out of range) before.
func TestTokenForms(t *testing.T) {
	srv := tokenServer(t, nil)
	for name, form := range map[string]url.Values{
		"resource":    {"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"right"}, "resource": {"https://management.slipway.local/"}},
		"blank scope": {"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"right"}, "scope": {"   "}, "resource": {"https://management.slipway.local/"}},
		"scope":       {"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"right"}, "scope": {"https://management.slipway.local//.default"}},
	} {
		if resp := postToken(t, srv, "/adfs/oauth2/token", form); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", name, resp.Status)
		}
	}
	empty := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"right"}, "scope": {""}}
	if resp := postToken(t, srv, "/tenant/oauth2/v2.0/token", empty); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no audience at all: %s, want 400", resp.Status)
	}
	big := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {strings.Repeat("x", 1<<20)}}
	if resp := postToken(t, srv, "/adfs/oauth2/token", big); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a 1 MiB form: %s, want 400", resp.Status)
	}
}

// TestTokenThrottling: after a few wrong secrets an app ID gets 429 with
// Retry-After, even with the right secret, until the delay has passed.
func TestTokenThrottling(t *testing.T) {
	limiter := NewFailureLimiter(3, 200*time.Millisecond, time.Second)
	srv := tokenServer(t, limiter)
	form := func(secret string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {secret}, "resource": {"https://management.slipway.local/"}}
	}
	for i := range 4 {
		if resp := postToken(t, srv, "/adfs/oauth2/token", form("wrong")); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d: %s, want 401", i+1, resp.Status)
		}
	}
	resp := postToken(t, srv, "/adfs/oauth2/token", form("right"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right secret after 4 failures: %s, Retry-After %q; want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	time.Sleep(250 * time.Millisecond)
	if resp := postToken(t, srv, "/adfs/oauth2/token", form("right")); resp.StatusCode != http.StatusOK {
		t.Errorf("right secret after the delay: %s", resp.Status)
	}
	// Other apps are not slowed down by one app's failures.
	if limiter.Wait("other") != 0 {
		t.Error("an app with no failures must not wait")
	}
}

package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/identity"
)

// onePrincipal knows one client ID and secret.
type onePrincipal struct{ appID, secret string }

func (o onePrincipal) Authenticate(_ context.Context, appID, secret string) (string, error) {
	if appID == o.appID && secret == o.secret {
		return "object-" + appID, nil
	}
	return "", identity.ErrBadCredentials
}

func newTestPortal(t *testing.T) (*Portal, http.Handler) {
	t.Helper()
	p, err := New(Options{ARM: http.NotFoundHandler(), BaseURL: "https://slipway.test", Principals: onePrincipal{"app", "s3cret"},
		Limiter: identity.NewFailureLimiter(2, time.Minute, time.Hour), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Handler()
}

func post(h http.Handler, path string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "https://slipway.test"+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func get(h http.Handler, path string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "https://slipway.test"+path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func sessionCookie(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatalf("no session cookie: %d %v", rec.Code, rec.Header())
	return nil
}

func TestSignInSessionAndCSRF(t *testing.T) {
	p, h := newTestPortal(t)
	rec := post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}, "next": {"/portal/clusters/g/c"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/portal/clusters/g/c" {
		t.Fatalf("sign-in: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	c := sessionCookie(t, rec)
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/portal/" {
		t.Errorf("cookie %+v", c)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
		if rec.Header().Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	// A write without the session's token is refused, and signs nobody out.
	if rec := post(h, "/portal/signout", url.Values{}, c); rec.Code != http.StatusForbidden {
		t.Errorf("sign-out without CSRF token: %d", rec.Code)
	}
	if rec := post(h, "/portal/signout", url.Values{"_csrf": {"guess"}}, c); rec.Code != http.StatusForbidden {
		t.Errorf("sign-out with a wrong CSRF token: %d", rec.Code)
	}
	var csrf string
	for _, ss := range p.sessions.all {
		csrf = ss.csrf
	}
	if rec := post(h, "/portal/signout", url.Values{"_csrf": {csrf}}, c); rec.Code != http.StatusSeeOther {
		t.Errorf("sign-out: %d", rec.Code)
	}
	// Signed out: pages go to sign-in, and come back after.
	if rec := get(h, "/portal/clusters/g/c", c); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/portal/signin?next=%2Fportal%2Fclusters%2Fg%2Fc" {
		t.Errorf("a page after sign-out: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := post(h, "/portal/clusters/g/c/stop", url.Values{"_csrf": {csrf}}, c); rec.Code != http.StatusUnauthorized {
		t.Errorf("a write after sign-out: %d", rec.Code)
	}
}

func TestSignInRefusals(t *testing.T) {
	_, h := newTestPortal(t)
	rec := post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"wrong"}})
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "not right") || len(rec.Result().Cookies()) != 0 {
		t.Errorf("wrong secret: %d %s", rec.Code, rec.Body.String())
	}
	post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"wrong"}})
	post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"wrong"}})
	// The limiter's budget (two free failures here) is spent: even the right secret
	// waits, or guessing could go on.
	rec = post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}})
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("after failures: %d", rec.Code)
	}
	if rec := post(h, "/portal/signin", url.Values{"client_id": {"app"}}); rec.Code != http.StatusBadRequest {
		t.Errorf("no secret: %d", rec.Code)
	}
}

func TestSessionsExpire(t *testing.T) {
	p, h := newTestPortal(t)
	now := time.Now()
	p.sessions.now = func() time.Time { return now }
	c := sessionCookie(t, post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}}))
	if p.sessions.of(requestWith(c)) == nil {
		t.Fatal("no session")
	}
	now = now.Add(sessionIdle + time.Second)
	if p.sessions.of(requestWith(c)) != nil {
		t.Error("a session idle for over an hour is still live")
	}
	c = sessionCookie(t, post(h, "/portal/signin", url.Values{"client_id": {"app"}, "client_secret": {"s3cret"}}))
	// Used every 59 minutes: live for twelve hours, and no longer.
	for i := range 12 {
		now = now.Add(59 * time.Minute)
		if p.sessions.of(requestWith(c)) == nil {
			t.Fatalf("a session in use ended after %d checks", i+1)
		}
	}
	now = now.Add(59 * time.Minute)
	if p.sessions.of(requestWith(c)) != nil {
		t.Error("a session in use for over twelve hours is still live")
	}
}

func requestWith(c *http.Cookie) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "https://slipway.test/portal/", nil)
	req.AddCookie(c)
	return req
}

func TestLinksSignInOnce(t *testing.T) {
	p, h := newTestPortal(t)
	token, err := NewLink(p.o.DataDir, "boot", "object-boot", "slipway-bootstrap", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rec := get(h, "/portal/signin/link?token="+url.QueryEscape(token))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("link: %d %s", rec.Code, rec.Body.String())
	}
	sessionCookie(t, rec)
	if rec := get(h, "/portal/signin/link?token="+url.QueryEscape(token)); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "used already") {
		t.Errorf("the link again: %d", rec.Code)
	}
	expired, err := NewLink(p.o.DataDir, "boot", "object-boot", "slipway-bootstrap", -time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rec := get(h, "/portal/signin/link?token="+url.QueryEscape(expired)); rec.Code != http.StatusUnauthorized {
		t.Errorf("an expired link: %d", rec.Code)
	}
	if rec := get(h, "/portal/signin/link?token=made-up"); rec.Code != http.StatusUnauthorized {
		t.Errorf("a made-up link: %d", rec.Code)
	}
}

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/portal/clusters/g/c": "/portal/clusters/g/c", "//evil.example/portal/": "/portal/", "https://evil.example/": "/portal/",
		"/portal/\\evil": "/portal/", "": "/portal/", "/other": "/portal/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

// TestPagesRender executes every page with everything it can show: a
// template that breaks on some data breaks here, not half-way through a
// page in a browser.
func TestPagesRender(t *testing.T) {
	p, _ := newTestPortal(t)
	ss := &session{id: "s", csrf: "token", name: "someone"}
	now := metav1.Now()
	cluster := &clusterData{
		Group: "g", Name: "c", ID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c", Sections: sections,
		Cluster: &armcontainerservice.ManagedCluster{Location: to.Ptr("local"), Identity: &armcontainerservice.ManagedClusterIdentity{Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned)},
			Properties: &armcontainerservice.ManagedClusterProperties{CurrentKubernetesVersion: to.Ptr("1.36.3"), Fqdn: to.Ptr("c.example"), ProvisioningState: to.Ptr("Succeeded")}},
		Addons: []string{"azurepolicy"}, Power: "Stopped", Health: "Degraded", HealthSummary: "a node is not ready",
		Pools:      []poolRow{{Name: "system", Mode: "System", Count: 3, Ready: 2, ReadyKnown: true, Image: "a", LatestImage: "b", Cost: 0.44, Autoscale: true, Min: 1, Max: 5}},
		Operations: []operationRow{{Action: "Upgrading", Target: "system", Status: "InProgress", Percent: 40, Running: true, Progress: "1 of 3 nodes upgraded"}, {Action: "Creating", Status: "Failed", Error: "X: y"}},
		Windows:    []windowRow{{Name: "aksManagedNodeOSUpgradeSchedule", Schedule: "weekly"}},
		Runs: []slipwayv1.AutoUpgradeRun{{ID: "r", Channel: "NodeImage", Status: "Pending", Detected: now, NextWindow: &now,
			Pools: []slipwayv1.AutoUpgradePool{{Name: "system", From: "a", To: "b"}}}},
		KubeError: "no role",
	}
	for i := range 30 {
		cluster.Timeline = append(cluster.Timeline, healthDay{Day: fmt.Sprint(i), State: []string{"Available", "None", "Degraded"}[i%3]})
	}
	rows := []row{{Name: "web", Namespace: "default", URL: "/x", Cells: []string{"default", "web", "1/1"}}}
	pages := map[string]any{
		"signin":  map[string]string{"Next": "/portal/", "ClientID": "app"},
		"home":    []*groupRow{{Name: "g", Clusters: []clusterRow{{Group: "g", Name: "c", Health: "Available", Nodes: 3, Cost: 1.5}}}, {Name: "empty"}},
		"cluster": cluster,
		"list": &listData{clusterData: cluster, Kind: sections[1].Kinds[0], Namespaced: true, Columns: []string{"Namespace", "Name", "Ready"}, Rows: rows,
			Namespaces: []string{"default"}, Namespace: "default", Next: "/next", FragmentURL: "/frag"},
		"detail": &detailData{clusterData: cluster, Kind: sections[4].Kinds[1], Namespace: "default", Object: "s", YAML: "a: b", Hidden: true,
			Pods: &listData{Columns: []string{"Name"}, Rows: rows}, Related: "Pods", CRD: &kind{Title: "widgets", GVR: gvr("example.com", "v1", "widgets")}, DeleteURL: "/d", ApplyURL: "/a"},
		"apply": &detailData{clusterData: cluster, Namespace: "default", ApplyURL: "/a", YAML: "kind: ConfigMap"},
	}
	for name, data := range pages {
		for _, frag := range []string{"", "status", "pools", "operations", "rows", "groups"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "https://slipway.test/portal/?fragment="+frag, nil)
			err := p.render(rec, req, name, &page{Title: name, Session: ss, Data: data, Error: "an error", Message: "a message"})
			if body := rec.Body.String(); err != nil || !strings.Contains(body, "</") || strings.Contains(body, "ZgotmplZ") {
				t.Errorf("page %s, fragment %q: %v\n%s", name, frag, err, body)
			}
		}
	}
}

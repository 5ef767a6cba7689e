package keyvault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"
)

func TestSealer(t *testing.T) {
	s, err := OpenSealer(t.TempDir() + "/k/sealing.key")
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal("hunter2", "kv1/a/1")
	if strings.Contains(sealed, "hunter2") {
		t.Fatal("the sealed value holds the value")
	}
	if v, err := s.Open(sealed, "kv1/a/1"); err != nil || v != "hunter2" {
		t.Fatalf("open: %q %v", v, err)
	}
	if _, err := s.Open(sealed, "kv1/b/1"); err == nil {
		t.Error("a sealed value opened for another secret")
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{"kv1": true, "a-b-c": true, "kv": false, "1kv": false, "kv-": false, "k--v": false,
		"abcdefghijklmnopqrstuvwx": true, "abcdefghijklmnopqrstuvwxy": false, "kv_1": false} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
}

// allowAll grants every data action to "reader-writer" and none to others.
type allowAll struct{}

func (allowAll) AuthorizeData(_ context.Context, appID, objectID, action, scope string) error {
	if objectID == "reader-writer" {
		return nil
	}
	return &authz.Denied{AppID: appID, ObjectID: objectID, Action: action, Scope: scope}
}

// dataPlane is a vault kv1 (RBAC) served over a fake management plane;
// tokens are the object ID they stand for.
func dataPlane(t *testing.T) *httptest.Server {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := slipwayv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	sealer, err := NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := New(c, nil, sealer, "vault.slipway.test", ":8443")
	in := &armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr("local"), Properties: &armkeyvault.VaultProperties{
		TenantID: to.Ptr("t1"), SKU: &armkeyvault.SKU{Name: to.Ptr(armkeyvault.SKUNameStandard)}, EnableRbacAuthorization: to.Ptr(true)}}
	if _, _, err := svc.Put(context.Background(), "sub", "rg", "local", "kv1", in, nil); err != nil {
		t.Fatal(err)
	}
	dp := &DataPlane{Service: svc, RBAC: allowAll{}, Authority: "https://login.slipway.test:8443", TenantID: "t1",
		Verify: func(token string, audiences ...string) (*identity.Claims, error) {
			return &identity.Claims{ObjectID: token, AppID: "app-" + token, TenantID: "t1"}, nil
		}}
	return httptest.NewServer(dp)
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Host = "kv1.vault.slipway.test:8443"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestChallengeAndRBAC(t *testing.T) {
	srv := dataPlane(t)
	defer srv.Close()
	// The SDKs' first request carries no token: a 401 with the challenge,
	// a space after each comma, a tenant in the authorization URL.
	resp, body := call(t, srv, "PUT", "/secrets/s1?api-version=2026-04-01", "", "")
	if resp.StatusCode != http.StatusUnauthorized ||
		resp.Header.Get("WWW-Authenticate") != `Bearer authorization="https://login.slipway.test:8443/t1", resource="https://vault.slipway.test:8443"` {
		t.Fatalf("challenge: %d %q %v", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	resp, body = call(t, srv, "PUT", "/secrets/s1?api-version=2026-04-01", "stranger", `{"value":"v"}`)
	if e := body["error"].(map[string]any); resp.StatusCode != http.StatusForbidden || e["innererror"].(map[string]any)["code"] != "ForbiddenByRbac" ||
		!strings.Contains(e["message"].(string), "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'") {
		t.Fatalf("set without a role: %d %v", resp.StatusCode, body)
	}
	resp, body = call(t, srv, "PUT", "/secrets/s1?api-version=2026-04-01", "reader-writer", `{"value":"v1","attributes":{"nbf":1700000000}}`)
	if resp.StatusCode != http.StatusOK || body["value"] != "v1" || !strings.HasPrefix(body["id"].(string), "https://kv1.vault.slipway.test:8443/secrets/s1/") {
		t.Fatalf("set: %d %v", resp.StatusCode, body)
	}
	attrs := body["attributes"].(map[string]any)
	if attrs["recoveryLevel"] != "Recoverable+Purgeable" || attrs["nbf"] != float64(1700000000) || attrs["recoverableDays"] != float64(90) {
		t.Errorf("attributes %v", attrs)
	}
	// The current version, as the SDK asks for it: a trailing slash.
	if resp, body = call(t, srv, "GET", "/secrets/s1/?api-version=2026-04-01", "reader-writer", ""); resp.StatusCode != http.StatusOK || body["value"] != "v1" {
		t.Errorf("get current: %d %v", resp.StatusCode, body)
	}
	if resp, _ = call(t, srv, "GET", "/secrets/s1/", "reader-writer", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no api-version: %d", resp.StatusCode)
	}
	if resp, body = call(t, srv, "GET", "/secrets/nope?api-version=7.4", "reader-writer", ""); resp.StatusCode != http.StatusNotFound || body["error"].(map[string]any)["code"] != "SecretNotFound" {
		t.Errorf("missing secret: %d %v", resp.StatusCode, body)
	}
	if resp, _ = call(t, srv, "PUT", "/secrets/bad_name?api-version=7.4", "reader-writer", `{"value":"v"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad name: %d", resp.StatusCode)
	}
}

func TestListPages(t *testing.T) {
	srv := dataPlane(t)
	defer srv.Close()
	for i := range 27 {
		if resp, body := call(t, srv, "PUT", fmt.Sprintf("/secrets/s%02d?api-version=7.6", i), "reader-writer", `{"value":"v"}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("set %d: %v", i, body)
		}
	}
	_, page := call(t, srv, "GET", "/secrets?api-version=7.6", "reader-writer", "")
	next, _ := page["nextLink"].(string)
	if len(page["value"].([]any)) != 25 || !strings.Contains(next, "api-version=7.6") || !strings.HasPrefix(next, "https://kv1.vault.slipway.test:8443/secrets?") {
		t.Fatalf("first page: %d items, next %q", len(page["value"].([]any)), next)
	}
	_, page = call(t, srv, "GET", next[strings.Index(next, "/secrets"):], "reader-writer", "")
	if len(page["value"].([]any)) != 2 || page["nextLink"] != nil {
		t.Errorf("second page %v", page)
	}
	if item := page["value"].([]any)[0].(map[string]any); item["value"] != nil || strings.Count(item["id"].(string), "/") != 4 {
		t.Errorf("a list item %v: no value, and its base ID", item)
	}
}

// TestStoreSeesItsOwnWrites: a cache that has not caught up does not hide
// this process's writes, and one that has overtakes them.
func TestStoreSeesItsOwnWrites(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := slipwayv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	api := fake.NewClientBuilder().WithScheme(scheme).Build()
	stale := fake.NewClientBuilder().WithScheme(scheme).Build() // a cache that never catches up
	s := newStore(api, stale)
	ctx := context.Background()
	sec := &slipwayv1.VaultSecret{}
	sec.Namespace, sec.Name, sec.Spec.Name = slipwayv1.Namespace, "kvs-a", "a"
	if err := s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	got := &slipwayv1.VaultSecret{}
	if err := s.Get(ctx, client.ObjectKeyFromObject(sec), got); err != nil || got.Spec.Name != "a" {
		t.Fatalf("read after create through a stale cache: %v %+v", err, got.Spec)
	}
	if err := s.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	// The stale cache now holds the old object: still deleted for us.
	old := sec.DeepCopy()
	old.ResourceVersion = ""
	if err := stale.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Get(ctx, client.ObjectKeyFromObject(sec), &slipwayv1.VaultSecret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("read after delete: %v, want not found", err)
	}
	// Past the memory of the write, the cache is believed.
	s.now = func() time.Time { return time.Now().Add(writtenFor + time.Second) }
	if err := s.Get(ctx, client.ObjectKeyFromObject(sec), &slipwayv1.VaultSecret{}); err != nil {
		t.Fatalf("after the write is forgotten: %v", err)
	}
}

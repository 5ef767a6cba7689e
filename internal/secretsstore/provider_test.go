package secretsstore

import (
	"context"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"

	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/keyvault"
)

// vaultStub answers for one vault; only appID "reader" may read.
type vaultStub map[string]string

func (v vaultStub) SecretFor(_ context.Context, caller *identity.Claims, vault, name, version string) (*keyvault.Bundle, error) {
	if vault != "kv1" {
		return nil, &keyvault.Error{Status: http.StatusNotFound, Code: "VaultNotFound", Message: "Azure Key Vault 'x' was not found."}
	}
	if caller.ObjectID != "reader-oid" {
		return nil, &keyvault.Error{Status: http.StatusForbidden, Code: "Forbidden", Message: "Caller is not authorized"}
	}
	value, ok := v[name]
	if !ok {
		return nil, &keyvault.Error{Status: http.StatusNotFound, Code: "SecretNotFound", Message: "A secret with (name/id) " + name + " was not found"}
	}
	return &keyvault.Bundle{Value: &value, ID: "https://kv1.vault.slipway.test/secrets/" + name + "/" + cmpOr(version, "v1")}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type principalsStub struct{}

func (principalsStub) Authenticate(_ context.Context, appID, secret string) (string, error) {
	if appID == "sp" && secret == "right" {
		return "reader-oid", nil
	}
	return "", identity.ErrBadCredentials
}

const objects = `array:
  - |
    objectName: db-password
    objectType: secret
  - |
    objectName: blob
    objectType: secret
    objectAlias: BLOB
    objectEncoding: base64
`

func TestFetch(t *testing.T) {
	p := &provider{vaults: vaultStub{"db-password": "hunter2", "blob": "aGVsbG8="}, principals: principalsStub{}, tenantID: "tenant"}
	node := []addons.Identity{{ClientID: "addon-client", ObjectID: "reader-oid"}, {ClientID: "kubelet-client", ObjectID: "kubelet-oid"}}
	params := func(kv ...string) map[string]string {
		m := map[string]string{"keyvaultName": "kv1", "tenantID": "tenant", "objects": objects}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	ctx := context.Background()

	m, err := p.fetch(ctx, params("useVMManagedIdentity", "true", "userAssignedIdentityID", "ADDON-CLIENT"), node, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.files["db-password"]); got != "hunter2" {
		t.Errorf("db-password file = %q", got)
	}
	if got := string(m.files["BLOB"]); got != "hello" {
		t.Errorf("BLOB file (base64 decoded) = %q", got)
	}
	if len(m.objects) != 2 || m.objects[0].ID != "secret/db-password" || m.objects[0].Version != "v1" {
		t.Errorf("objects = %+v", m.objects)
	}
	if _, err := p.fetch(ctx, params(), node, map[string][]byte{"ClientID": []byte("sp"), "clientsecret": []byte("right")}); err != nil {
		t.Errorf("service principal from nodePublishSecretRef: %v", err)
	}

	for _, tc := range []struct {
		name    string
		params  map[string]string
		creds   map[string][]byte
		wantErr string
	}{
		{"no tenant", map[string]string{"keyvaultName": "kv1", "objects": objects, "useVMManagedIdentity": "true"}, nil, "tenantId is not provided"},
		{"another tenant", params("tenantID", "other", "useVMManagedIdentity", "true", "userAssignedIdentityID", "addon-client"), nil, "AADSTS90002"},
		{"identity not on the node", params("useVMManagedIdentity", "true", "userAssignedIdentityID", "someone"), nil, "Identity not found"},
		{"identity without read access", params("useVMManagedIdentity", "true", "userAssignedIdentityID", "kubelet-client"), nil,
			"failed to get objectType:secret, objectName:db-password, objectVersion:: RESPONSE 403: Forbidden"},
		{"workload identity", params("clientID", "abc"), nil, "workload identity (clientID) is not served"},
		{"two modes", params("useVMManagedIdentity", "true", "usePodIdentity", "true"), nil, "only one identity mode"},
		{"no credentials", params(), nil, "nodePublishSecretRef secret is not set"},
		{"wrong client secret", params(), map[string][]byte{"clientid": []byte("sp"), "clientsecret": []byte("wrong")}, "AADSTS7000215"},
		{"missing secret", params("useVMManagedIdentity", "true", "userAssignedIdentityID", "addon-client", "objects", "array:\n  - |\n    objectName: nope\n    objectType: secret\n"), nil,
			"objectName:nope, objectVersion:: RESPONSE 404: SecretNotFound"},
		{"a key", params("useVMManagedIdentity", "true", "userAssignedIdentityID", "addon-client", "objects", "array:\n  - |\n    objectName: k\n    objectType: key\n"), nil,
			"Slipway's vaults hold secrets only"},
		{"no vault", params("keyvaultName", ""), nil, "keyvaultName is not set"},
		{"bad objects", params("objects", "array: [{objectName: x}]"), nil, "failed to unmarshal objects"},
		{"empty objects", params("objects", "array: []"), nil, "objects array is empty"},
		{"bad type", params("objects", "array:\n  - |\n    objectName: x\n    objectType: blob\n"), nil, `invalid objectType "blob"`},
		{"escaping alias", params("objects", "array:\n  - |\n    objectName: x\n    objectType: secret\n    objectAlias: ../x\n"), nil, "relative name"},
	} {
		_, err := p.fetch(ctx, tc.params, node, tc.creds)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestSecretData(t *testing.T) {
	files := map[string][]byte{"user": []byte("admin"), "pass": []byte("s3cret")}
	data, err := secretData(nil, corev1.SecretTypeOpaque, files)
	if err != nil || len(data) != 0 {
		t.Fatalf("no items: %v %v", data, err)
	}
	if _, err := secretData(items("missing", "k"), corev1.SecretTypeOpaque, files); err == nil || !strings.Contains(err.Error(), "file matching objectName missing not found in the pod") {
		t.Errorf("missing file: %v", err)
	}
	data, err = secretData(items("user", "username", "pass", "password"), corev1.SecretTypeBasicAuth, files)
	if err != nil || string(data["username"]) != "admin" || string(data["password"]) != "s3cret" {
		t.Errorf("basic auth: %v %v", data, err)
	}
	if _, err := secretData(items("user", "tls.key"), corev1.SecretTypeTLS, files); err == nil {
		t.Error("a TLS Secret from a file that is not PEM was made")
	}
}

// items are secretObjects data entries, objectName and key in pairs.
func items(kv ...string) []*secretsstorev1.SecretObjectData {
	var out []*secretsstorev1.SecretObjectData
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &secretsstorev1.SecretObjectData{ObjectName: kv[i], Key: kv[i+1]})
	}
	return out
}

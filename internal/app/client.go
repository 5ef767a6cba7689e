package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/slipway-dev/slipway/internal/arm/providers/slipwayidentity"
)

// HTTPClient returns an HTTP client that trusts the server's CA (and only
// it: Slipway's endpoints are all it talks to), and that reaches the key
// vaults' names (https://{vault}.{KeyVaultDNSSuffix}:{port}/), which no DNS
// resolves, at Slipway's address: the Key Vault SDKs work through it with
// their default options, challenge verification included.
func (c *Connection) HTTPClient() (*http.Client, error) {
	pem, err := os.ReadFile(c.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("reading Slipway's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", c.CACertFile)
	}
	arm, err := url.Parse(c.ARMEndpoint)
	if err != nil {
		return nil, fmt.Errorf("ARM endpoint %q: %w", c.ARMEndpoint, err)
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	suffix := "." + strings.ToLower(c.KeyVaultDNSSuffix)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && c.KeyVaultDNSSuffix != "" && strings.HasSuffix(strings.ToLower(host), suffix) && port == arm.Port() {
			addr = arm.Host
		}
		return dialer.DialContext(ctx, network, addr)
	}
	// HTTP/1.1 with keep-alive. net/http keeps two idle connections per
	// host unless told otherwise, so a third caller at once opened a new
	// connection and paid a TLS handshake on every request: 29% of
	// serve's CPU under 16 concurrent GETs went to handshakes. The SDK's
	// own default transport keeps 10, client-go 25.
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: dial,
		MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// Cloud is the azcore cloud configuration of this Slipway.
func (c *Connection) Cloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: c.AuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: c.ARMEndpoint, Audience: c.Audience},
		},
	}
}

// Credential logs in as the connection's principal.
func (c *Connection) Credential(hc *http.Client) (azcore.TokenCredential, error) {
	return azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            policy.ClientOptions{Cloud: c.Cloud(), Transport: hc},
		DisableInstanceDiscovery: true,
	})
}

// call makes an ARM call to the Slipway serving dataDir as its bootstrap
// principal and decodes the answer into out.
func call(ctx context.Context, dataDir, method, path string, in, out any) error {
	conn, err := ReadConnection(filepath.Join(dataDir, "connection.json"))
	if err != nil {
		return fmt.Errorf("finding the server over %s (is slipway serve running there?): %w", dataDir, err)
	}
	hc, err := conn.HTTPClient()
	if err != nil {
		return err
	}
	cred, err := conn.Credential(hc)
	if err != nil {
		return err
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{conn.Audience + ".default"}})
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", conn.ARMEndpoint, err)
	}
	body, _ := json.Marshal(in)
	path = strings.NewReplacer("{sub}", conn.SubscriptionID, "{loc}", conn.Location).Replace(path)
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(conn.ARMEndpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

// PublishNodeImage tells the Slipway serving dataDir that a newer node image
// of osSKU came out (version, or else the next weekly release), and returns
// its full name.
func PublishNodeImage(ctx context.Context, dataDir, osSKU, version string) (string, error) {
	var out struct {
		FullName string `json:"fullName"`
	}
	err := call(ctx, dataDir, http.MethodPost, "/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{loc}/nodeImageVersions/publish?api-version=2025-02-01",
		map[string]string{"osSku": osSKU, "version": version}, &out)
	if err != nil {
		return "", fmt.Errorf("publishing the node image: %w", err)
	}
	return out.FullName, nil
}

// ServicePrincipal is a service principal as the API returns it.
type ServicePrincipal = slipwayidentity.ServicePrincipal

func principalsPath(rest string) string {
	return "/subscriptions/{sub}/providers/Slipway.Identity/servicePrincipals" + rest + "?api-version=2025-02-01"
}

// CreateServicePrincipal makes a service principal with a first secret,
// valid until end (zero: two years, Entra's default).
func CreateServicePrincipal(ctx context.Context, dataDir, name string, end time.Time) (*ServicePrincipal, error) {
	var out ServicePrincipal
	body := map[string]string{"displayName": name}
	if !end.IsZero() {
		body["endDateTime"] = end.UTC().Format(time.RFC3339)
	}
	if err := call(ctx, dataDir, http.MethodPost, principalsPath(""), body, &out); err != nil {
		return nil, fmt.Errorf("creating service principal %q: %w", name, err)
	}
	return &out, nil
}

// AddServicePrincipalSecret gives a principal one more secret, valid until
// end (zero: two years).
func AddServicePrincipalSecret(ctx context.Context, dataDir, appID string, end time.Time) (*ServicePrincipal, error) {
	var out ServicePrincipal
	body := map[string]string{}
	if !end.IsZero() {
		body["endDateTime"] = end.UTC().Format(time.RFC3339)
	}
	if err := call(ctx, dataDir, http.MethodPost, principalsPath("/"+url.PathEscape(appID)+"/addPassword"), body, &out); err != nil {
		return nil, fmt.Errorf("adding a secret to %s: %w", appID, err)
	}
	return &out, nil
}

// RemoveServicePrincipalSecret revokes one secret of a principal.
func RemoveServicePrincipalSecret(ctx context.Context, dataDir, appID, keyID string) (*ServicePrincipal, error) {
	var out ServicePrincipal
	if err := call(ctx, dataDir, http.MethodPost, principalsPath("/"+url.PathEscape(appID)+"/removePassword"), map[string]string{"keyId": keyID}, &out); err != nil {
		return nil, fmt.Errorf("removing secret %s of %s: %w", keyID, appID, err)
	}
	return &out, nil
}

// DeleteServicePrincipal deletes a principal, its secrets and its role
// assignments.
func DeleteServicePrincipal(ctx context.Context, dataDir, appID string) error {
	if err := call(ctx, dataDir, http.MethodDelete, principalsPath("/"+url.PathEscape(appID)), nil, nil); err != nil {
		return fmt.Errorf("deleting service principal %s: %w", appID, err)
	}
	return nil
}

// RotateSigningKey makes the Slipway serving dataDir sign tokens with a new
// key; tokens already issued stay valid until they expire.
func RotateSigningKey(ctx context.Context, dataDir string) (string, error) {
	var out struct {
		KeyID string `json:"keyId"`
	}
	if err := call(ctx, dataDir, http.MethodPost, "/subscriptions/{sub}/providers/Slipway.Identity/rotateSigningKey?api-version=2025-02-01", struct{}{}, &out); err != nil {
		return "", fmt.Errorf("rotating the signing key: %w", err)
	}
	return out.KeyID, nil
}

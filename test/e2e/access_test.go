package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// principal is a service principal made through slipway sp create.
type principal struct{ AppID, ObjectID, Password, Tenant string }

func (s *server) newPrincipal(t testing.TB, name string) principal {
	t.Helper()
	out, err := exec.Command(s.bin, "sp", "create", "--name", name, "--data-dir", s.dataDir).Output()
	if err != nil {
		t.Fatalf("slipway sp create: %v", err)
	}
	var p principal
	if err := json.Unmarshal(out, &p); err != nil || p.Password == "" || p.ObjectID == "" {
		t.Fatalf("slipway sp create printed %s (%v)", out, err)
	}
	return p
}

// tokenFor logs a principal in with azidentity.
func (s *server) tokenFor(t testing.TB, p principal) string {
	t.Helper()
	conn := *s.conn
	conn.ClientID, conn.ClientSecret = p.AppID, p.Password
	cred, err := conn.Credential(s.httpClient())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{s.conn.Audience + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// assign grants a built-in role (by GUID) to a principal at scope.
func (s *server) assign(t testing.TB, roleID, principalID, scope string) {
	t.Helper()
	body := map[string]any{"properties": map[string]any{
		"roleDefinitionId": "/subscriptions/" + s.conn.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + roleID,
		"principalId":      principalID, "principalType": "ServicePrincipal",
	}}
	status, e := s.do(t, "PUT", strings.TrimPrefix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments/"+newGUID()+"?api-version=2022-04-01", s.token(t), body)
	if status != http.StatusCreated {
		t.Fatalf("assigning %s at %s: %d %+v", roleID, scope, status, e)
	}
}

// TestAccessControl: roles inherit down the scope tree, the AKS credential
// roles grant exactly their credential, a refusal is ARM's
// AuthorizationFailed, only an Owner assigns roles, signing-key rotation
// keeps issued tokens valid, and secrets stay out of responses and logs.
func TestAccessControl(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "access-rg", "access-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	sub := "/subscriptions/" + s.conn.SubscriptionID
	clusterPath := strings.TrimPrefix(*mc.ID, "/")
	const api = "?api-version=2025-02-01"
	const (
		reader      = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
		contributor = "b24988ac-6180-42a0-ab88-20f7382dd24c"
		clusterUser = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
	)

	t.Run("a principal with no role may do nothing", func(t *testing.T) {
		nobody := s.newPrincipal(t, "nobody")
		tok := s.tokenFor(t, nobody)
		var subs struct{ Value []any }
		s.getJSONAs(t, tok, "subscriptions?api-version=2022-12-01", &subs)
		if len(subs.Value) != 0 {
			t.Errorf("a principal with no role sees subscriptions %v", subs.Value)
		}
		status, e := s.do(t, "GET", clusterPath+api, tok, nil)
		want := fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read' over scope '%s' or the scope is invalid.", nobody.AppID, nobody.ObjectID, *mc.ID)
		if status != http.StatusForbidden || e.Code != "AuthorizationFailed" || !strings.HasPrefix(strings.ToLower(e.Message), strings.ToLower(want)) {
			t.Errorf("GET without a role: %d %+v", status, e)
		}
	})

	t.Run("a role at the subscription reaches the cluster", func(t *testing.T) {
		r := s.newPrincipal(t, "sub-reader")
		s.assign(t, reader, r.ObjectID, sub)
		tok := s.tokenFor(t, r)
		for _, path := range []string{clusterPath, clusterPath + "/agentPools/system", "subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group} {
			if status, e := s.do(t, "GET", path+api, tok, nil); status != http.StatusOK {
				t.Errorf("subscription Reader GET %s: %d %+v", path, status, e)
			}
		}
		if status, e := s.do(t, "POST", clusterPath+"/stop"+api, tok, nil); status != http.StatusForbidden || e.Code != "AuthorizationFailed" {
			t.Errorf("Reader stop: %d %+v", status, e)
		}
	})

	t.Run("the Cluster User Role gets the user credential and no more", func(t *testing.T) {
		u := s.newPrincipal(t, "cluster-user")
		s.assign(t, clusterUser, u.ObjectID, *mc.ID)
		tok := s.tokenFor(t, u)
		if status, e := s.do(t, "POST", clusterPath+"/listClusterUserCredential"+api, tok, nil); status != http.StatusOK {
			t.Errorf("user credential: %d %+v", status, e)
		}
		if status, e := s.do(t, "POST", clusterPath+"/listClusterAdminCredential"+api, tok, nil); status != http.StatusForbidden || !strings.Contains(e.Message, "listClusterAdminCredential/action") {
			t.Errorf("admin credential: %d %+v", status, e)
		}
		if status, _ := s.do(t, "GET", "subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group+api, tok, nil); status != http.StatusForbidden {
			t.Errorf("a cluster-scoped role reached the group: %d", status)
		}
	})

	t.Run("a Contributor cannot grant roles", func(t *testing.T) {
		contrib := s.newPrincipal(t, "contributor")
		s.assign(t, contributor, contrib.ObjectID, sub+"/resourceGroups/"+group)
		tok := s.tokenFor(t, contrib)
		other := s.newPrincipal(t, "other")
		body := map[string]any{"properties": map[string]any{"roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + reader, "principalId": other.ObjectID}}
		status, e := s.do(t, "PUT", "subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group+"/providers/Microsoft.Authorization/roleAssignments/"+newGUID()+"?api-version=2022-04-01", tok, body)
		if status != http.StatusForbidden || !strings.Contains(e.Message, "Microsoft.Authorization/roleAssignments/write") {
			t.Errorf("Contributor assigning a role: %d %+v", status, e)
		}
		if status, e := s.do(t, "POST", clusterPath+"/listClusterAdminCredential"+api, tok, nil); status != http.StatusOK {
			t.Errorf("Contributor admin credential: %d %+v", status, e)
		}
	})

	t.Run("tokens: audience, tampering, rotation", func(t *testing.T) {
		tok := s.token(t)
		// Re-signing with another key, or changing a claim, is refused.
		parts := strings.Split(tok, ".")
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(claims), s.conn.Audience, "https://other.example/", 1)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
		if status, e := s.do(t, "GET", clusterPath+api, tampered, nil); status != http.StatusUnauthorized {
			t.Errorf("tampered token: %d %+v", status, e)
		}
		out, err := exec.Command(s.bin, "sp", "rotate-signing-key", "--data-dir", s.dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("rotate-signing-key: %v %s", err, out)
		}
		if status, e := s.do(t, "GET", clusterPath+api, tok, nil); status != http.StatusOK {
			t.Errorf("a token issued before the rotation: %d %+v", status, e)
		}
		fresh := s.token(t)
		if fresh == tok || strings.Split(fresh, ".")[0] == parts[0] {
			t.Error("tokens after the rotation carry the old key ID")
		}
		if status, e := s.do(t, "GET", clusterPath+api, fresh, nil); status != http.StatusOK {
			t.Errorf("a token issued after the rotation: %d %+v", status, e)
		}
		info, err := os.Stat(filepath.Join(s.dataDir, "identity", "signing-key.pem"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("signing key: %v %v", info.Mode(), err)
		}
	})

	t.Run("TLS 1.2 or later only", func(t *testing.T) {
		host := strings.TrimSuffix(strings.TrimPrefix(s.conn.ARMEndpoint, "https://"), "/")
		// MinVersion must be set too: a Go client whose MaxVersion is
		// below its default minimum offers nothing and never connects,
		// which would pass whatever the server accepts.
		conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS 1.1 refused with %q, want the server's protocol version alert", err)
		}
		conn, err = tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("a TLS 1.2 handshake failed: %v", err)
		}
		conn.Close()
	})

	t.Run("no secret in responses or logs", func(t *testing.T) {
		sp := s.newPrincipal(t, "secretive")
		req, _ := http.NewRequest("GET", s.conn.ARMEndpoint+"subscriptions/"+s.conn.SubscriptionID+"/providers/Slipway.Identity/servicePrincipals"+api, nil)
		req.Header.Set("Authorization", "Bearer "+s.token(t))
		resp, err := s.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		list, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(list), sp.AppID) {
			t.Fatalf("listing service principals: %d, the new principal listed: %v", resp.StatusCode, strings.Contains(string(list), sp.AppID))
		}
		status, _ := s.do(t, "GET", clusterPath+api, s.token(t), nil)
		got, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil || status != http.StatusOK {
			t.Fatal(err)
		}
		body, _ := json.Marshal(got)
		logs, _ := os.ReadFile(filepath.Join(s.dataDir, "serve.log"))
		for what, text := range map[string]string{"principal list": string(list), "cluster": string(body), "serve log": string(logs)} {
			for _, secret := range []string{sp.Password, s.conn.ClientSecret} {
				if strings.Contains(text, secret) {
					t.Errorf("a client secret appears in the %s", what)
				}
			}
			if strings.Contains(text, "PRIVATE KEY") {
				t.Errorf("a private key appears in the %s", what)
			}
		}
	})
}

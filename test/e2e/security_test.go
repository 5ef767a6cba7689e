package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/slipway-dev/slipway/internal/authz"
)

// spOutput is what slipway sp create and add-secret print.
type spOutput struct {
	AppID, ObjectID, Password, KeyID string
	PasswordCredentials              []struct{ KeyID, EndDateTime string }
}

func (s *server) sp(t testing.TB, args ...string) spOutput {
	t.Helper()
	out, err := exec.Command(s.bin, append([]string{"sp"}, append(args, "--data-dir", s.dataDir)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("slipway sp %v: %v: %s", args, err, out)
	}
	var sp spOutput
	if strings.HasPrefix(strings.TrimSpace(string(out)), "{") {
		if err := json.Unmarshal(out, &sp); err != nil {
			t.Fatalf("slipway sp %v printed %s: %v", args, out, err)
		}
	}
	return sp
}

// tokenError tries to log in with a secret and returns the error.
func (s *server) tokenError(appID, secret string) error {
	conn := *s.conn
	conn.ClientID, conn.ClientSecret = appID, secret
	cred, err := conn.Credential(s.httpClient())
	if err != nil {
		return err
	}
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{s.conn.Audience + ".default"}})
	return err
}

// TestRevocation: every credential can be revoked. A removed secret and a
// deleted principal get no token within seconds; a secret past its
// endDateTime gets none; role assignments go with the principal and with
// the scope they were made at, so a resource made later under the same
// name does not inherit them.
func TestRevocation(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()

	t.Run("secrets: remove, expire", func(t *testing.T) {
		first := s.sp(t, "create", "--name", "revocable")
		if first.KeyID == "" || len(first.PasswordCredentials) != 1 || first.PasswordCredentials[0].EndDateTime == "" {
			t.Fatalf("sp create printed no keyId or no expiry: %+v", first)
		}
		second := s.sp(t, "add-secret", "--app-id", first.AppID)
		if second.KeyID == "" || second.KeyID == first.KeyID || second.Password == "" {
			t.Fatalf("add-secret: %+v", second)
		}
		for _, secret := range []string{first.Password, second.Password} {
			if err := s.tokenError(first.AppID, secret); err != nil {
				t.Fatalf("a valid secret: %v", err)
			}
		}
		s.sp(t, "remove-secret", "--app-id", first.AppID, "--key-id", first.KeyID)
		eventually(t, 10*time.Second, "the removed secret to be refused", func() (bool, string) {
			err := s.tokenError(first.AppID, first.Password)
			return err != nil && strings.Contains(err.Error(), "invalid_client"), "token request: " + errString(err)
		})
		if err := s.tokenError(first.AppID, second.Password); err != nil {
			t.Errorf("the other secret after a removal: %v", err)
		}
		soon := s.sp(t, "add-secret", "--app-id", first.AppID, "--end-date", time.Now().Add(3*time.Second).UTC().Format(time.RFC3339))
		if err := s.tokenError(first.AppID, soon.Password); err != nil {
			t.Fatalf("a secret before its end date: %v", err)
		}
		time.Sleep(4 * time.Second)
		if err := s.tokenError(first.AppID, soon.Password); err == nil {
			t.Error("a secret past its end date still gets tokens")
		}
		out, err := exec.Command(s.bin, "sp", "add-secret", "--app-id", first.AppID, "--end-date", "2001-01-01", "--data-dir", s.dataDir).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "InvalidParameter") {
			t.Errorf("a secret ending in the past: %v %s", err, out)
		}
	})

	t.Run("principal deleted with its role assignments", func(t *testing.T) {
		p := s.sp(t, "create", "--name", "doomed")
		scope := "/subscriptions/" + s.conn.SubscriptionID
		s.assign(t, authz.Reader.ID, p.ObjectID, scope)
		tok := s.tokenFor(t, principal{AppID: p.AppID, ObjectID: p.ObjectID, Password: p.Password})
		s.sp(t, "delete", "--app-id", p.AppID)
		eventually(t, 10*time.Second, "the deleted principal to be refused a token", func() (bool, string) {
			err := s.tokenError(p.AppID, p.Password)
			return err != nil, errString(err)
		})
		var list struct{ Value []any }
		s.getJSON(t, "subscriptions/"+s.conn.SubscriptionID+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId+eq+'"+p.ObjectID+"'", &list)
		if len(list.Value) != 0 {
			t.Errorf("%d role assignments of a deleted principal remain", len(list.Value))
		}
		// A token it got before keeps its lifetime (as Entra's), but its
		// roles are gone: it can read nothing.
		eventually(t, 10*time.Second, "the deleted principal's token to be refused", func() (bool, string) {
			status, e := s.do(t, "GET", "subscriptions/"+s.conn.SubscriptionID+"/resourcegroups?api-version=2021-04-01", tok, nil)
			return status == http.StatusForbidden, e.Code
		})
	})

	t.Run("role assignments go with their scope", func(t *testing.T) {
		const group = "revoke-rg"
		p := s.newPrincipal(t, "namesake")
		if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
			t.Fatal(err)
		}
		scope := "/subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group
		s.assign(t, authz.Owner.ID, p.ObjectID, scope)
		d, err := c.groups.BeginDelete(ctx, group, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		// A new group of the same name does not know the old grant.
		if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
			t.Fatal(err)
		}
		var list struct {
			Value []struct {
				Properties struct{ Scope, PrincipalID string }
			}
		}
		s.getJSON(t, strings.TrimPrefix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()", &list)
		for _, ra := range list.Value {
			// Those of the subscription apply here too; none may be the
			// deleted group's own.
			if strings.EqualFold(ra.Properties.Scope, scope) {
				t.Errorf("the re-created group has the deleted one's role assignment for %s", ra.Properties.PrincipalID)
			}
		}
		tok := s.tokenFor(t, p)
		if status, e := s.do(t, "GET", strings.TrimPrefix(scope, "/")+"?api-version=2021-04-01", tok, nil); status != http.StatusForbidden {
			t.Errorf("the old Owner reads the re-created group: %d %+v", status, e)
		}
	})

	t.Run("slow clients are cut off", func(t *testing.T) {
		// A body that never finishes, with and without a token: the
		// probe of c28914d held 200 such connections open for good.
		host := strings.TrimSuffix(strings.TrimPrefix(s.conn.ARMEndpoint, "https://"), "/")
		tok := s.token(t)
		var wg sync.WaitGroup
		for _, auth := range []string{"", "Authorization: Bearer " + tok + "\r\n"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				start := time.Now()
				fmt.Fprintf(conn, "PUT /subscriptions/%s/resourceGroups/slow?api-version=2021-04-01 HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"loc", s.conn.SubscriptionID, host, auth)
				conn.SetReadDeadline(time.Now().Add(60 * time.Second))
				io.Copy(io.Discard, conn) // until the server closes it
				if held := time.Since(start); held > 45*time.Second {
					t.Errorf("a slow body (auth %v) was held %s; the server's read timeout is 30 s", auth != "", held)
				} else {
					t.Logf("a slow body (auth %v) was cut off after %s", auth != "", held.Round(time.Second))
				}
			}()
		}
		wg.Wait()
		if _, err := c.groups.Get(ctx, "slow", nil); err == nil {
			t.Error("a group was created from half a body")
		}
	})

	t.Run("paths cannot smuggle scopes", func(t *testing.T) {
		// A principal that owns one group only.
		p := s.newPrincipal(t, "smuggler")
		const mine, theirs = "smuggle-mine", "smuggle-theirs"
		for _, g := range []string{mine, theirs} {
			if _, err := c.groups.CreateOrUpdate(ctx, g, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		sub := "subscriptions/" + s.conn.SubscriptionID
		s.assign(t, authz.Owner.ID, p.ObjectID, "/"+sub+"/resourceGroups/"+mine)
		tok := s.tokenFor(t, p)
		eventually(t, 10*time.Second, "the grant to take effect", func() (bool, string) {
			status, e := s.do(t, "GET", sub+"/resourceGroups/"+mine+"?api-version=2021-04-01", tok, nil)
			return status == http.StatusOK, e.Code
		})
		for _, tc := range []struct {
			path   string
			status int
		}{
			{sub + "/resourceGroups/" + mine + "%2F..%2F" + theirs + "?api-version=2021-04-01", http.StatusBadRequest},
			{sub + "/resourceGroups/" + mine + "/../" + theirs + "?api-version=2021-04-01", http.StatusBadRequest},
			{sub + "/resourceGroups/" + theirs + "?api-version=2021-04-01", http.StatusForbidden},
			// Case folding reaches the same scope, for lookup and
			// authorization alike (Kelvin sign K, long s).
			{"%C5%BFub%C5%BFcriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + theirs + "?api-version=2021-04-01", http.StatusForbidden},
			{sub + "/resourceGroups/" + theirs + "/extra/segments?api-version=2021-04-01", http.StatusNotFound},
		} {
			status, _, e := s.raw(t, "GET", tc.path, tok, "", nil)
			if status != tc.status {
				t.Errorf("GET %s: %d %s, want %d", tc.path, status, e.Code, tc.status)
			}
		}
		// A role assignment of another scope, named under mine, is not
		// found there and cannot be deleted through it.
		owner := s.token(t)
		id := newGUID()
		// (for someone else: the smuggler must still hold nothing there)
		body := map[string]any{"properties": map[string]any{
			"roleDefinitionId": "/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + authz.Reader.ID,
			"principalId":      newGUID(),
		}}
		if status, e := s.do(t, "PUT", sub+"/resourceGroups/"+theirs+"/providers/Microsoft.Authorization/roleAssignments/"+id+"?api-version=2022-04-01", owner, body); status != http.StatusCreated {
			t.Fatalf("assigning at %s: %d %+v", theirs, status, e)
		}
		if status, _, _ := s.raw(t, "GET", sub+"/resourceGroups/"+mine+"/providers/Microsoft.Authorization/roleAssignments/"+id+"?api-version=2022-04-01", tok, "", nil); status != http.StatusNotFound {
			t.Errorf("another scope's assignment read through mine: %d, want 404", status)
		}
		s.raw(t, "DELETE", sub+"/resourceGroups/"+mine+"/providers/Microsoft.Authorization/roleAssignments/"+id+"?api-version=2022-04-01", tok, "", nil)
		if status, _, _ := s.raw(t, "GET", sub+"/resourceGroups/"+theirs+"/providers/Microsoft.Authorization/roleAssignments/"+id+"?api-version=2022-04-01", owner, "", nil); status != http.StatusOK {
			t.Errorf("another scope's assignment after a delete through mine: %d, want it still there", status)
		}
		// The status of an operation on another scope is not the
		// caller's to read, whatever its ID.
		status, h, e := s.raw(t, "DELETE", sub+"/resourceGroups/"+theirs+"?api-version=2021-04-01", owner, "", nil)
		if status != http.StatusAccepted || h.Get("Location") == "" {
			t.Fatalf("deleting %s: %d %+v", theirs, status, e)
		}
		opPath := strings.TrimPrefix(h.Get("Location"), strings.TrimSuffix(s.conn.ARMEndpoint, "/")+"/")
		if status, _, e := s.raw(t, "GET", opPath, tok, "", nil); status != http.StatusForbidden {
			t.Errorf("another scope's operation result: %d %s, want 403", status, e.Code)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

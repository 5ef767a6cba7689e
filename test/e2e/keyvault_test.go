package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// secretsClient is azsecrets with its default options, but for the
// transport: the connection's HTTP client, which reaches the vault's name.
func secretsClient(t testing.TB, s *server, vaultURI string) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(vaultURI, s.credential(t, s.conn.ClientSecret), &azsecrets.ClientOptions{
		ClientOptions: policy.ClientOptions{Transport: s.httpClient()}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kvCode is a Key Vault error's code and inner code.
func kvCode(err error) (int, string, string) {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return 0, "", ""
	}
	inner := ""
	if i := strings.Index(err.Error(), `"innererror"`); i >= 0 {
		rest := err.Error()[i:]
		if j := strings.Index(rest, `"code": "`); j >= 0 {
			inner = strings.SplitN(rest[j+9:], `"`, 2)[0]
		}
	}
	return re.StatusCode, re.ErrorCode, inner
}

// TestKeyVault: a vault's life through armkeyvault, and its secrets
// through azsecrets, unmodified: challenge authentication, Azure RBAC and
// access policies, versions, soft delete, recovery, backup and restore.
func TestKeyVault(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group = "kv-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	vaults, err := armkeyvault.NewVaultsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	name := "kv-" + strings.ToLower(newGUID()[:8])
	params := func(rbac bool, policies ...*armkeyvault.AccessPolicyEntry) armkeyvault.VaultCreateOrUpdateParameters {
		return armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr(s.conn.Location), Properties: &armkeyvault.VaultProperties{
			TenantID: to.Ptr(s.conn.TenantID), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableRbacAuthorization: to.Ptr(rbac), AccessPolicies: policies,
		}}
	}
	poller, err := vaults.BeginCreateOrUpdate(ctx, group, name, params(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := poller.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	uri := *created.Properties.VaultURI
	if want := fmt.Sprintf("https://%s.%s:", name, s.conn.KeyVaultDNSSuffix); !strings.HasPrefix(uri, want) || !strings.HasSuffix(uri, "/") ||
		*created.Properties.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded || !*created.Properties.EnableSoftDelete || *created.Properties.SoftDeleteRetentionInDays != 90 {
		t.Fatalf("created vault %+v", created.Properties)
	}

	t.Run("ARM reads, lists and checks the vault's name", func(t *testing.T) {
		pager := vaults.NewListByResourceGroupPager(group, nil)
		found := false
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Value {
				found = found || *v.Name == name
			}
		}
		generic := vaults.NewListPager(nil)
		inGeneric := false
		for generic.More() {
			page, err := generic.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Value {
				inGeneric = inGeneric || *r.Name == name
			}
		}
		if !found || !inGeneric {
			t.Errorf("vault listed by group %v, by the generic list %v", found, inGeneric)
		}
		taken, err := vaults.CheckNameAvailability(ctx, armkeyvault.VaultCheckNameAvailabilityParameters{Name: to.Ptr(strings.ToUpper(name)), Type: to.Ptr("Microsoft.KeyVault/vaults")}, nil)
		if err != nil || *taken.NameAvailable || *taken.Reason != armkeyvault.ReasonAlreadyExists {
			t.Errorf("name check of a taken name: %+v (%v)", taken, err)
		}
		_, err = vaults.BeginCreateOrUpdate(ctx, group, "9-not-a-vault", params(true), nil)
		expectCode(t, err, http.StatusBadRequest, "VaultNameNotValid")
	})

	secrets := secretsClient(t, s, uri)
	t.Run("an RBAC vault refuses the subscription's Owner until a data role is assigned", func(t *testing.T) {
		_, err := secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("hunter2")}, nil)
		if status, code, inner := kvCode(err); status != http.StatusForbidden || code != "Forbidden" || inner != "ForbiddenByRbac" {
			t.Fatalf("set before any data role: %d %s/%s (%v)", status, code, inner, err)
		}
		s.assign(t, "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", s.conn.ObjectID, *created.ID) // Key Vault Secrets Officer
		// Assignments are read through a cache, as ARM's propagate: the
		// role holds a moment later.
		eventually(t, 10*time.Second, "the role assignment in force", func() (bool, string) {
			_, err := secrets.NewListSecretPropertiesPager(nil).NextPage(ctx)
			return err == nil, fmt.Sprint(err)
		})
	})

	t.Run("secrets: versions, properties, disabled, list", func(t *testing.T) {
		first, err := secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("hunter2"), ContentType: to.Ptr("text/plain"),
			Tags: map[string]*string{"app": to.Ptr("shop")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		second, err := secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("correct horse")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		latest, err := secrets.GetSecret(ctx, "db-password", "", nil)
		if err != nil || *latest.Value != "correct horse" || latest.ID.Version() != second.ID.Version() || len(latest.ID.Version()) != 32 {
			t.Fatalf("latest: %+v (%v)", latest, err)
		}
		old, err := secrets.GetSecret(ctx, "DB-PASSWORD", first.ID.Version(), nil)
		if err != nil || *old.Value != "hunter2" || *old.ContentType != "text/plain" || *old.Tags["app"] != "shop" {
			t.Fatalf("first version: %+v (%v)", old, err)
		}
		if _, err := secrets.UpdateSecretProperties(ctx, "db-password", first.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{
			SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = secrets.GetSecret(ctx, "db-password", first.ID.Version(), nil)
		if status, _, inner := kvCode(err); status != http.StatusForbidden || inner != "SecretDisabled" {
			t.Errorf("get of a disabled version: %d %s (%v)", status, inner, err)
		}
		versions := 0
		for pager := secrets.NewListSecretPropertiesVersionsPager("db-password", nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			versions += len(page.Value)
		}
		// 30 secrets: more than a page of 25.
		for i := range 29 {
			if _, err := secrets.SetSecret(ctx, fmt.Sprintf("s%02d", i), azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
				t.Fatal(err)
			}
		}
		listed := 0
		for pager := secrets.NewListSecretPropertiesPager(nil); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			listed += len(page.Value)
		}
		if versions != 2 || listed != 30 {
			t.Errorf("%d versions (want 2), %d secrets listed over pages (want 30)", versions, listed)
		}
	})

	t.Run("a role on one secret reaches that secret only; an ARM token is refused", func(t *testing.T) {
		if _, err := secrets.SetSecret(ctx, "other", azsecrets.SetSecretParameters{Value: to.Ptr("not yours")}, nil); err != nil {
			t.Fatal(err)
		}
		p := s.newPrincipal(t, "kv-one-secret")
		s.assign(t, "4633458b-17de-408a-b874-0445c86b69e6", p.ObjectID, *created.ID+"/secrets/db-password") // Key Vault Secrets User
		conn := *s.conn
		conn.ClientID, conn.ClientSecret = p.AppID, p.Password
		cred, err := conn.Credential(s.httpClient())
		if err != nil {
			t.Fatal(err)
		}
		one, err := azsecrets.NewClient(uri, cred, &azsecrets.ClientOptions{ClientOptions: policy.ClientOptions{Transport: s.httpClient()}})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the secret-scoped role in force", func() (bool, string) {
			_, err := one.GetSecret(ctx, "db-password", "", nil)
			return err == nil, fmt.Sprint(err)
		})
		_, err = one.GetSecret(ctx, "other", "", nil)
		if status, _, inner := kvCode(err); status != http.StatusForbidden || inner != "ForbiddenByRbac" {
			t.Errorf("another secret with a role on one: %d %s (%v)", status, inner, err)
		}

		req, _ := http.NewRequest(http.MethodGet, uri+"secrets/db-password?api-version=7.5", nil)
		req.Header.Set("Authorization", "Bearer "+s.token(t))
		resp, err := s.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource="https://vault.`) ||
			!strings.Contains(string(body), "AKV10022") {
			t.Errorf("an ARM token at the vault: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})

	t.Run("soft delete, recover, backup, purge, restore", func(t *testing.T) {
		if _, err := secrets.DeleteSecret(ctx, "db-password", nil); err != nil {
			t.Fatal(err)
		}
		_, err := secrets.GetSecret(ctx, "db-password", "", nil)
		if status, code, _ := kvCode(err); status != http.StatusNotFound || code != "SecretNotFound" {
			t.Fatalf("get of a deleted secret: %d %s", status, code)
		}
		_, err = secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
		if status, _, inner := kvCode(err); status != http.StatusConflict || inner != "ObjectIsDeletedButRecoverable" {
			t.Errorf("reuse of a deleted name: %d %s", status, inner)
		}
		deleted, err := secrets.GetDeletedSecret(ctx, "db-password", nil)
		if err != nil || deleted.RecoveryID == nil || deleted.ScheduledPurgeDate == nil {
			t.Fatalf("deleted secret %+v (%v)", deleted, err)
		}
		if _, err := secrets.RecoverDeletedSecret(ctx, "db-password", nil); err != nil {
			t.Fatal(err)
		}
		got, err := secrets.GetSecret(ctx, "db-password", "", nil)
		if err != nil || *got.Value != "correct horse" {
			t.Fatalf("recovered secret: %+v (%v)", got, err)
		}
		backup, err := secrets.BackupSecret(ctx, "db-password", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.DeleteSecret(ctx, "db-password", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.PurgeDeletedSecret(ctx, "db-password", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: backup.Value}, nil); err != nil {
			t.Fatal(err)
		}
		got, err = secrets.GetSecret(ctx, "db-password", "", nil)
		if err != nil || *got.Value != "correct horse" {
			t.Fatalf("restored secret: %+v (%v)", got, err)
		}
	})

	t.Run("an access policy vault grants what its policies say", func(t *testing.T) {
		name := "kvp-" + strings.ToLower(newGUID()[:8])
		entry := func(perms ...armkeyvault.SecretPermissions) *armkeyvault.AccessPolicyEntry {
			var ps []*armkeyvault.SecretPermissions
			for _, p := range perms {
				ps = append(ps, to.Ptr(p))
			}
			return &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(s.conn.TenantID), ObjectID: to.Ptr(s.conn.ObjectID), Permissions: &armkeyvault.Permissions{Secrets: ps}}
		}
		poller, err := vaults.BeginCreateOrUpdate(ctx, group, name, params(false, entry(armkeyvault.SecretPermissionsSet, armkeyvault.SecretPermissionsGet)), nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := poller.PollUntilDone(ctx, poll)
		if err != nil {
			t.Fatal(err)
		}
		sc := secretsClient(t, s, *v.Properties.VaultURI)
		if _, err := sc.SetSecret(ctx, "token", azsecrets.SetSecretParameters{Value: to.Ptr("t0k3n")}, nil); err != nil {
			t.Fatal(err)
		}
		for pager := sc.NewListSecretPropertiesPager(nil); pager.More(); {
			_, err := pager.NextPage(ctx)
			if status, _, inner := kvCode(err); status != http.StatusForbidden || inner != "AccessDenied" {
				t.Errorf("list without the list permission: %d %s (%v)", status, inner, err)
			}
			break
		}
		if _, err := vaults.UpdateAccessPolicy(ctx, group, name, armkeyvault.AccessPolicyUpdateKindRemove, armkeyvault.VaultAccessPolicyParameters{
			Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{entry(armkeyvault.SecretPermissionsSet)}}}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = sc.SetSecret(ctx, "token", azsecrets.SetSecretParameters{Value: to.Ptr("again")}, nil)
		if status, _, inner := kvCode(err); status != http.StatusForbidden || inner != "AccessDenied" {
			t.Errorf("set after the set permission was removed: %d %s (%v)", status, inner, err)
		}
		if got, err := sc.GetSecret(ctx, "token", "", nil); err != nil || *got.Value != "t0k3n" {
			t.Errorf("get still allowed: %+v (%v)", got, err)
		}
	})

	t.Run("a deleted vault is recoverable with its secrets, then purged", func(t *testing.T) {
		if _, err := vaults.Delete(ctx, group, name, nil); err != nil {
			t.Fatal(err)
		}
		_, err := secrets.GetSecret(ctx, "db-password", "", nil)
		if status, code, _ := kvCode(err); status != http.StatusNotFound || code != "VaultNotFound" {
			t.Errorf("data plane of a deleted vault: %d %s", status, code)
		}
		_, err = vaults.BeginCreateOrUpdate(ctx, group, name, params(true), nil)
		expectCode(t, err, http.StatusConflict, "ConflictError")
		deleted, err := vaults.GetDeleted(ctx, name, s.conn.Location, nil)
		if err != nil || !strings.EqualFold(*deleted.Properties.VaultID, *created.ID) {
			t.Fatalf("deleted vault %+v (%v)", deleted, err)
		}
		recover := params(true)
		recover.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
		poller, err := vaults.BeginCreateOrUpdate(ctx, group, name, recover, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := poller.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		if got, err := secrets.GetSecret(ctx, "db-password", "", nil); err != nil || *got.Value != "correct horse" {
			t.Fatalf("secret after the vault's recovery: %+v (%v)", got, err)
		}
		if _, err := vaults.Delete(ctx, group, name, nil); err != nil {
			t.Fatal(err)
		}
		purge, err := vaults.BeginPurgeDeleted(ctx, name, s.conn.Location, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := purge.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		free, err := vaults.CheckNameAvailability(ctx, armkeyvault.VaultCheckNameAvailabilityParameters{Name: to.Ptr(name), Type: to.Ptr("Microsoft.KeyVault/vaults")}, nil)
		if err != nil || !*free.NameAvailable {
			t.Errorf("name after purge: %+v (%v)", free, err)
		}
	})
}

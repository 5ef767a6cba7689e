package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// azCLI runs the real az CLI in a config directory and home of its own.
type azCLI struct {
	t      testing.TB
	env    []string
	home   string
	config string
}

// newAZ logs az in with `slipway az-login`, as a user would. Without az on
// the PATH the test is skipped, unless SLIPWAY_REQUIRE_AZ is set (CI sets
// it and installs az).
func newAZ(t testing.TB, s *server) *azCLI {
	t.Helper()
	if _, err := exec.LookPath("az"); err != nil {
		if os.Getenv("SLIPWAY_REQUIRE_AZ") != "" {
			t.Fatal("az is not installed; .ci/run installs it with apt-get install azure-cli")
		}
		t.Skip("az is not installed (apt-get install azure-cli)")
	}
	dir := t.TempDir()
	a := &azCLI{t: t, home: filepath.Join(dir, "home"), config: filepath.Join(dir, "azure")}
	a.env = append(os.Environ(), "HOME="+a.home, "AZURE_CONFIG_DIR="+a.config, "AZURE_CORE_COLLECT_TELEMETRY=false", "AZURE_CORE_NO_COLOR=true")
	cmd := exec.Command(s.bin, "az-login", "--data-dir", s.dataDir)
	cmd.Env = a.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slipway az-login: %v\n%s", err, stderr.String())
	}
	line := strings.TrimSpace(string(out))
	bundle, ok := strings.CutPrefix(line, "export REQUESTS_CA_BUNDLE=")
	if !ok {
		t.Fatalf("az-login printed %q, want an export line", line)
	}
	if !strings.Contains(stderr.String(), "logged in") {
		t.Errorf("az-login did not say what it did: %s", stderr.String())
	}
	a.env = append(a.env, "REQUESTS_CA_BUNDLE="+bundle)
	return a
}

// run runs az and returns its stdout; it fails the test if az fails.
func (a *azCLI) run(args ...string) string {
	a.t.Helper()
	out, errOut, err := a.try(args...)
	if err != nil {
		a.t.Fatalf("az %s: %v\n%s\n%s", strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// azTimeout bounds one az command: a command that hangs fails its test
// with what az said, rather than the whole run.
const azTimeout = 5 * time.Minute

// try runs az and returns its output and error.
func (a *azCLI) try(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), azTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "az", args...)
	cmd.Env = a.env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// json runs az with JSON output and decodes it.
func (a *azCLI) json(v any, args ...string) {
	a.t.Helper()
	out := a.run(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		a.t.Fatalf("az %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAZ drives a cluster's life with the real az CLI, as the AKS quick
// starts do.
func TestAZ(t *testing.T) {
	s := serve(t)
	az := newAZ(t, s)
	const group, name = "az-rg", "az-aks"

	var account struct {
		ID, TenantID string
	}
	az.json(&account, "account", "show")
	if account.ID != s.conn.SubscriptionID || account.TenantID != s.conn.TenantID {
		t.Errorf("az account show: %+v", account)
	}
	az.run("group", "create", "-n", group, "-l", s.conn.Location, "-o", "none")
	var groups []struct{ Name string }
	az.json(&groups, "group", "list")
	if !containsName(groups, group) {
		t.Errorf("az group list: %v", groups)
	}

	// A key vault through az's management commands. az 2.45's `keyvault
	// create` asks Microsoft Graph who is logged in, which Slipway does
	// not serve: the vault is made with az rest. (Its data-plane commands
	// need the vault's name to resolve: a hosts-file line.)
	var vault struct {
		Name       string
		Properties struct {
			VaultURI                string `json:"vaultUri"`
			EnableRbacAuthorization bool
		}
	}
	kv := "azkv-" + strings.ToLower(newGUID()[:8])
	az.json(&vault, "rest", "--method", "put", "--url", s.conn.ARMEndpoint+"subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group+
		"/providers/Microsoft.KeyVault/vaults/"+kv+"?api-version=2022-07-01", "--body",
		`{"location":"`+s.conn.Location+`","properties":{"tenantId":"`+s.conn.TenantID+`","sku":{"family":"A","name":"standard"},"enableRbacAuthorization":true}}`)
	az.json(&vault, "keyvault", "show", "-g", group, "-n", kv)
	if !strings.HasPrefix(vault.Properties.VaultURI, "https://"+kv+"."+s.conn.KeyVaultDNSSuffix+":") || !vault.Properties.EnableRbacAuthorization {
		t.Errorf("az keyvault show: %+v", vault)
	}
	var listed []struct{ Name string }
	az.json(&listed, "keyvault", "list", "-g", group)
	if !containsName(listed, kv) {
		t.Errorf("az keyvault list: %v", listed)
	}
	az.run("keyvault", "delete", "-g", group, "-n", kv)
	az.run("keyvault", "purge", "-n", kv, "-l", s.conn.Location)

	var mc struct {
		ProvisioningState string
		PowerState        struct{ Code string }
		AgentPoolProfiles []struct {
			Name, OsDiskType          string
			Count, MinCount, MaxCount int
			EnableAutoScaling         bool
		}
	}
	az.json(&mc, "aks", "create", "-g", group, "-n", name, "--node-count", "1", "--generate-ssh-keys",
		"--enable-cluster-autoscaler", "--min-count", "1", "--max-count", "3")
	if mc.ProvisioningState != "Succeeded" || len(mc.AgentPoolProfiles) != 1 {
		t.Fatalf("az aks create: %+v", mc)
	}
	if p := mc.AgentPoolProfiles[0]; !p.EnableAutoScaling || p.MinCount != 1 || p.MaxCount != 3 || p.Count != 1 {
		t.Errorf("az aks create --enable-cluster-autoscaler: pool %+v", p)
	}
	az.json(&mc, "aks", "show", "-g", group, "-n", name)
	var clusters []struct{ Name string }
	az.json(&clusters, "aks", "list", "-g", group)
	if !containsName(clusters, name) {
		t.Errorf("az aks list: %v", clusters)
	}
	az.run("aks", "get-versions", "-l", s.conn.Location, "-o", "none")
	az.run("aks", "get-upgrades", "-g", group, "-n", name, "-o", "none")
	var addons struct {
		AddonProfiles map[string]struct {
			Enabled  bool
			Config   map[string]string
			Identity *struct{ ClientID, ResourceID string }
		}
	}
	az.json(&addons, "aks", "enable-addons", "-g", group, "-n", name, "-a", "azure-keyvault-secrets-provider", "--enable-secret-rotation", "--rotation-poll-interval", "5m")
	if kv := addons.AddonProfiles["azureKeyvaultSecretsProvider"]; !kv.Enabled || kv.Config["enableSecretRotation"] != "true" || kv.Config["rotationPollInterval"] != "5m" ||
		kv.Identity == nil || kv.Identity.ClientID == "" || !strings.Contains(kv.Identity.ResourceID, "/azurekeyvaultsecretsprovider-") {
		t.Errorf("az aks enable-addons -a azure-keyvault-secrets-provider: %+v", addons.AddonProfiles)
	}
	az.json(&addons, "aks", "disable-addons", "-g", group, "-n", name, "-a", "azure-keyvault-secrets-provider")
	if kv := addons.AddonProfiles["azureKeyvaultSecretsProvider"]; kv.Enabled || kv.Identity != nil {
		t.Errorf("az aks disable-addons -a azure-keyvault-secrets-provider: %+v", addons.AddonProfiles)
	}
	// Azure Policy: the add-on, the built-in definition, an assignment
	// at the cluster.
	az.json(&addons, "aks", "enable-addons", "-g", group, "-n", name, "-a", "azure-policy")
	if p := addons.AddonProfiles["azurepolicy"]; !p.Enabled || p.Identity == nil {
		t.Errorf("az aks enable-addons -a azure-policy: %+v", addons.AddonProfiles)
	}
	var def struct{ DisplayName, PolicyType string }
	az.json(&def, "policy", "definition", "show", "--name", "e345eecc-fa47-480f-9e88-67dcc122b164")
	if def.PolicyType != "BuiltIn" || !strings.Contains(def.DisplayName, "CPU and memory resource limits") {
		t.Errorf("az policy definition show: %+v", def)
	}
	clusterID := "/subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters/" + name
	var assignment struct{ Name, Scope, EnforcementMode string }
	az.json(&assignment, "policy", "assignment", "create", "--name", "az-limits", "--scope", clusterID, "--policy", "e345eecc-fa47-480f-9e88-67dcc122b164",
		"--params", `{"cpuLimit": {"value": "2"}, "memoryLimit": {"value": "4Gi"}, "effect": {"value": "Audit"}}`)
	if assignment.Name != "az-limits" || !strings.EqualFold(assignment.Scope, clusterID) {
		t.Errorf("az policy assignment create: %+v", assignment)
	}
	var assigned []struct{ Name string }
	az.json(&assigned, "policy", "assignment", "list", "--scope", clusterID)
	if !containsName(assigned, "az-limits") {
		t.Errorf("az policy assignment list: %+v", assigned)
	}
	// Compliance through az's policyinsights module (api-version
	// 2019-10-01).
	eventually(t, 60*time.Second, "az policy state list", func() (bool, string) {
		var states []struct{ PolicyAssignmentName, ComplianceState string }
		az.json(&states, "policy", "state", "list", "--resource", clusterID, "--filter", "policyAssignmentName eq 'az-limits'")
		return len(states) == 1 && states[0].ComplianceState == "Compliant", fmt.Sprint(states)
	})
	// (Not az policy event list: az 2.45 passes its arguments to the
	// Debian package's azure-mgmt-policyinsights shifted by one, the
	// query options landing in the subscription ID or the resource ID;
	// it fails or hangs before sending anything, against Azure too.)
	az.run("policy", "assignment", "delete", "--name", "az-limits", "--scope", clusterID)
	az.json(&addons, "aks", "disable-addons", "-g", group, "-n", name, "-a", "azure-policy")
	if p := addons.AddonProfiles["azurepolicy"]; p.Enabled {
		t.Errorf("az aks disable-addons -a azure-policy: %+v", addons.AddonProfiles)
	}

	type agentPool struct {
		Name, OsDiskType, ScaleSetPriority, NodeImageVersion, ProvisioningState string
		Count                                                                   int
		NodeTaints                                                              []string
	}
	var eph, spot agentPool
	az.json(&eph, "aks", "nodepool", "add", "-g", group, "--cluster-name", name, "-n", "eph",
		"--node-count", "1", "--node-vm-size", "Standard_D8s_v3", "--node-osdisk-type", "Ephemeral")
	if eph.OsDiskType != "Ephemeral" {
		t.Errorf("ephemeral pool: %+v", eph)
	}
	az.json(&spot, "aks", "nodepool", "add", "-g", group, "--cluster-name", name, "-n", "spot",
		"--node-count", "1", "--priority", "Spot", "--eviction-policy", "Delete", "--spot-max-price", "-1")
	if spot.ScaleSetPriority != "Spot" || !contains(spot.NodeTaints, "kubernetes.azure.com/scalesetpriority=spot:NoSchedule") {
		t.Errorf("spot pool: %+v", spot)
	}
	az.json(&spot, "aks", "nodepool", "scale", "-g", group, "--cluster-name", name, "-n", "spot", "--node-count", "0")
	if spot.Count != 0 || spot.ProvisioningState != "Succeeded" {
		t.Errorf("spot pool scaled to 0: %+v", spot)
	}
	var zero agentPool
	az.json(&zero, "aks", "nodepool", "add", "-g", group, "--cluster-name", name, "-n", "zero", "--node-count", "0")
	if zero.Count != 0 || zero.ProvisioningState != "Succeeded" {
		t.Errorf("user pool added with 0 nodes: %+v", zero)
	}
	az.run("aks", "nodepool", "delete", "-g", group, "--cluster-name", name, "-n", "zero")
	var pools []agentPool
	az.json(&pools, "aks", "nodepool", "list", "-g", group, "--cluster-name", name)
	if len(pools) != 3 {
		t.Errorf("az aks nodepool list: %+v", pools)
	}
	az.run("aks", "nodepool", "get-upgrades", "-g", group, "--cluster-name", name, "-n", "eph", "-o", "none")
	// A newer image must exist, or the upgrade rolls nothing.
	published := s.publish(t, "Ubuntu")
	az.json(&eph, "aks", "nodepool", "upgrade", "-g", group, "--cluster-name", name, "-n", "eph", "--node-image-only")
	if eph.ProvisioningState != "Succeeded" || eph.NodeImageVersion != published {
		t.Errorf("az aks nodepool upgrade --node-image-only: %+v, want node image %s", eph, published)
	}
	az.run("aks", "upgrade", "-g", group, "-n", name, "--node-image-only", "--yes", "-o", "none")

	kubeconfig := filepath.Join(az.home, "kubeconfig")
	az.run("aks", "get-credentials", "-g", group, "-n", name, "--file", kubeconfig)
	kubectl := exec.Command("kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "-o", "name")
	out, err := kubectl.CombinedOutput()
	if err != nil || strings.Count(string(out), "node/") < 2 {
		// The node image upgrade az started without waiting may still be
		// surging; the system and eph nodes are there either way.
		t.Errorf("kubectl get nodes: %v\n%s", err, out)
	}

	waitIdle(t, az, group, name)
	t.Run("a Reader on the group", func(t *testing.T) {
		out, err := exec.Command(s.bin, "sp", "create", "--name", "reader", "--data-dir", s.dataDir).Output()
		if err != nil {
			t.Fatalf("slipway sp create: %v", err)
		}
		var sp struct{ AppID, ObjectID, Password, Tenant string }
		if err := json.Unmarshal(out, &sp); err != nil || sp.Password == "" {
			t.Fatalf("slipway sp create printed %s (%v)", out, err)
		}
		owner := *az
		owner.t = t
		scope := "/subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group
		// az 2.45's Debian package cannot run any az role command ("'Role
		// AssignmentsOperations' object has no attribute 'config'", before
		// any request is sent), so the role calls go through az rest.
		var readerRole struct{ ID string }
		owner.json(&readerRole, "rest", "--method", "get", "--url", s.conn.ARMEndpoint+strings.TrimPrefix(scope, "/")+
			"/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=roleName eq 'Reader'", "--query", "value[0]")
		body := fmt.Sprintf(`{"properties":{"roleDefinitionId":%q,"principalId":%q,"principalType":"ServicePrincipal"}}`, readerRole.ID, sp.ObjectID)
		owner.run("rest", "--method", "put", "--url", s.conn.ARMEndpoint+strings.TrimPrefix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments/"+newGUID()+"?api-version=2022-04-01",
			"--body", body, "-o", "none")
		var assignments struct {
			Value []struct {
				Properties struct{ PrincipalID, Scope string }
			}
		}
		owner.json(&assignments, "rest", "--method", "get", "--url", s.conn.ARMEndpoint+strings.TrimPrefix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01")
		found := false
		for _, a := range assignments.Value {
			found = found || a.Properties.PrincipalID == sp.ObjectID && strings.EqualFold(a.Properties.Scope, scope)
		}
		if !found {
			t.Errorf("role assignments at %s: %+v", scope, assignments)
		}

		// The reader logs in with a config of its own.
		reader := &azCLI{t: t, home: az.home, config: filepath.Join(t.TempDir(), "reader")}
		for _, e := range az.env {
			if !strings.HasPrefix(e, "AZURE_CONFIG_DIR=") {
				reader.env = append(reader.env, e)
			}
		}
		reader.env = append(reader.env, "AZURE_CONFIG_DIR="+reader.config)
		reader.run("cloud", "register", "-n", "Slipway", "--endpoint-resource-manager", s.conn.ARMEndpoint)
		reader.run("cloud", "set", "-n", "Slipway")
		reader.run("login", "--service-principal", "--username", sp.AppID, "--password="+sp.Password, "--tenant", sp.Tenant, "-o", "none")
		var listed []struct{ Name string }
		reader.json(&listed, "aks", "list", "-g", group)
		if !containsName(listed, name) {
			t.Errorf("the reader's az aks list -g %s: %v", group, listed)
		}
		for _, args := range [][]string{
			{"aks", "create", "-g", group, "-n", "not-allowed", "--node-count", "1", "--generate-ssh-keys"},
			{"aks", "get-credentials", "-g", group, "-n", name, "--file", filepath.Join(t.TempDir(), "kc")},
			{"aks", "list"}, // the subscription is beyond its scope
		} {
			_, errOut, err := reader.try(args...)
			if err == nil || !strings.Contains(errOut, "AuthorizationFailed") || !strings.Contains(errOut, sp.ObjectID) {
				t.Errorf("reader: az %s: %v %s", strings.Join(args, " "), err, errOut)
			}
		}
	})
	az.run("aks", "stop", "-g", group, "-n", name)
	az.json(&mc, "aks", "show", "-g", group, "-n", name)
	if mc.PowerState.Code != "Stopped" {
		t.Errorf("after az aks stop: %+v", mc.PowerState)
	}
	az.run("aks", "start", "-g", group, "-n", name)
	az.json(&mc, "aks", "show", "-g", group, "-n", name)
	if mc.PowerState.Code != "Running" {
		t.Errorf("after az aks start: %+v", mc.PowerState)
	}
	az.run("aks", "nodepool", "delete", "-g", group, "--cluster-name", name, "-n", "spot")
	az.run("aks", "delete", "-g", group, "-n", name, "--yes")
	if _, errOut, err := az.try("aks", "show", "-g", group, "-n", name); err == nil || !strings.Contains(errOut, "ResourceNotFound") {
		t.Errorf("az aks show after delete: %v %s", err, errOut)
	}
	az.run("group", "delete", "-n", group, "--yes")
}

// waitIdle waits until az shows the cluster with no operation running.
func waitIdle(t testing.TB, az *azCLI, group, name string) {
	t.Helper()
	eventually(t, 2*time.Minute, "the cluster to be idle", func() (bool, string) {
		var mc struct{ ProvisioningState string }
		az.json(&mc, "aks", "show", "-g", group, "-n", name)
		return mc.ProvisioningState == "Succeeded", mc.ProvisioningState
	})
}

func containsName(list []struct{ Name string }, name string) bool {
	for _, v := range list {
		if v.Name == name {
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/slipway-dev/slipway/internal/arm/providers/containerservice/apischema"
	"github.com/slipway-dev/slipway/internal/arm/schema"
)

// newerThanSDK is a cluster body of api-version 2025-10-01 whose fields the
// SDK's models (2025-02-01) do not have, shaped after the AKS spec's own
// examples (ManagedClustersCreate_LocalDNS, _AzureServiceMesh): a pool's
// local DNS profile and maxUnavailable, Istio revisions and egress gateway
// names, the static egress gateway, node provisioning, the AI toolchain
// operator. Node OS auto-upgrades are off: tests running beside this one
// publish node images, and an upgrade would hold the pool this test PUTs.
const newerThanSDK = `{
  "location": %q,
  "identity": {"type": "SystemAssigned"},
  "properties": {
    "dnsPrefix": "apiversions",
    "agentPoolProfiles": [{
      "name": "system", "mode": "System", "count": 1, "vmSize": "Standard_DS2_v2", "osType": "Linux",
      "upgradeSettings": {"maxSurge": "33%%", "maxUnavailable": "0"},
      "localDNSProfile": {
        "mode": "Preferred",
        "kubeDNSOverrides": {".": {"queryLogging": "Error", "protocol": "PreferUDP", "forwardDestination": "ClusterCoreDNS",
          "forwardPolicy": "Sequential", "maxConcurrent": 1000, "cacheDurationInSeconds": 3600,
          "serveStaleDurationInSeconds": 3600, "serveStale": "Verify"}},
        "vnetDNSOverrides": {"cluster.local": {"queryLogging": "Log", "protocol": "ForceTCP", "forwardDestination": "VnetDNS",
          "forwardPolicy": "RoundRobin", "maxConcurrent": 100, "cacheDurationInSeconds": 60,
          "serveStaleDurationInSeconds": 60, "serveStale": "Immediate"}}
      }
    }],
    "serviceMeshProfile": {"mode": "Istio", "istio": {
      "revisions": ["asm-1-25"],
      "components": {"egressGateways": [{"enabled": true, "name": "egress1", "namespace": "egress-ns", "gatewayConfigurationName": "egress-config"}]}
    }},
    "networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay", "staticEgressGatewayProfile": {"enabled": true}},
    "nodeProvisioningProfile": {"mode": "Manual", "defaultNodePools": "Auto"},
    "aiToolchainOperatorProfile": {"enabled": true},
    "autoUpgradeProfile": {"nodeOSUpgradeChannel": "None"}
  }
}`

// TestAPIVersions: a response carries only what the client's api-version
// can read, and nothing a request sends that an api-version defines is
// lost. A 2025-10-01 body with fields newer than the SDK's models
// round-trips whole; a 2022-11-01 client (az 2.45) gets only 2022-11-01's
// fields, parses them with az's own models, and writing them back loses
// nothing a newer client set; a pool PUT that leaves properties out keeps
// them; a field no version defines is ignored, as AKS ignores it.
func TestAPIVersions(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	tok := s.token(t)
	ctx := context.Background()
	const group, name = "e2e-apiversions", "apiversions"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s", s.conn.SubscriptionID, group, name)
	const newest, oldest = "2025-10-01", "2022-11-01"

	var sent map[string]any
	body := fmt.Sprintf(newerThanSDK, s.conn.Location)
	if err := json.Unmarshal([]byte(body), &sent); err != nil {
		t.Fatal(err)
	}
	if status, got := s.versioned(t, http.MethodPut, path, newest, tok, body); status != http.StatusCreated {
		t.Fatalf("PUT at %s: %d %v", newest, status, got)
	}
	s.waitSucceeded(t, path, newest, tok)

	// The newest version gets back all it sent.
	_, got := s.versioned(t, http.MethodGet, path, newest, tok, "")
	if lost := missing("", sent, got); len(lost) > 0 {
		t.Errorf("GET at %s lost what the PUT sent:\n%s", newest, strings.Join(lost, "\n"))
	}
	var model armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mustJSON(t, got), &model); err != nil {
		t.Errorf("the SDK's models cannot read the %s response: %v", newest, err)
	}

	// The oldest gets only what it defines, and az's own models read it.
	_, old := s.versioned(t, http.MethodGet, path, oldest, tok, "")
	if beyond := apischema.Set.Exact(oldest).Undefined(old, "ManagedCluster", schema.Beyond{Lists: true}); beyond != nil {
		t.Errorf("GET at %s carries what the version does not define: %s", oldest, mustJSON(t, beyond))
	}
	azDeserializes(t, "ManagedCluster", old)

	// az's round trip: GET, change, PUT back at the old version.
	old["tags"] = map[string]any{"round": "trip"}
	delete(old, "id")
	if status, got := s.versioned(t, http.MethodPut, path, oldest, tok, string(mustJSON(t, old))); status != http.StatusOK {
		t.Fatalf("PUT at %s: %d %v", oldest, status, got)
	}
	s.waitSucceeded(t, path, oldest, tok)
	_, got = s.versioned(t, http.MethodGet, path, newest, tok, "")
	sent["tags"] = map[string]any{"round": "trip"}
	if lost := missing("", sent, got); len(lost) > 0 {
		t.Errorf("a PUT at %s erased what %s set:\n%s", oldest, newest, strings.Join(lost, "\n"))
	}

	// A pool PUT of one property keeps the others, modeled or not.
	poolPath := path + "/agentPools/system"
	if status, got := s.versioned(t, http.MethodPut, poolPath, newest, tok, `{"properties": {"count": 2}}`); status != http.StatusOK {
		t.Fatalf("pool PUT at %s: %d %v", newest, status, got)
	}
	s.waitSucceeded(t, poolPath, newest, tok)
	_, pool := s.versioned(t, http.MethodGet, poolPath, newest, tok, "")
	wantPool := map[string]any{"properties": withCount(sent["properties"].(map[string]any)["agentPoolProfiles"].([]any)[0], 2)}
	if lost := missing("", wantPool, pool); len(lost) > 0 {
		t.Errorf("a pool PUT of its count lost:\n%s", strings.Join(lost, "\n"))
	}

	// A field no version defines is ignored, as AKS ignores it; one of a
	// later version than the request's is kept (Slipway is lenient there)
	// and returned to clients of the versions that define it only.
	userPath := path + "/agentPools/user1"
	if status, got := s.versioned(t, http.MethodPut, userPath, oldest, tok,
		`{"properties": {"count": 1, "vmSize": "Standard_DS2_v2", "mode": "User", "notAnAKSField": 1, "localDNSProfile": {"mode": "Required"}}}`); status != http.StatusCreated {
		t.Fatalf("pool PUT at %s: %d %v", oldest, status, got)
	}
	s.waitSucceeded(t, userPath, oldest, tok)
	_, user := s.versioned(t, http.MethodGet, userPath, newest, tok, "")
	if p, _ := user["properties"].(map[string]any); p == nil || p["notAnAKSField"] != nil || p["count"] != 1.0 || p["localDNSProfile"] == nil {
		t.Errorf("pool PUT at %s with an unknown and a later field: %s", oldest, mustJSON(t, user))
	}
	_, user = s.versioned(t, http.MethodGet, userPath, oldest, tok, "")
	if p, _ := user["properties"].(map[string]any); p == nil || p["localDNSProfile"] != nil {
		t.Errorf("GET at %s shows a later field: %s", oldest, mustJSON(t, user))
	}
}

// versioned sends an ARM request at an api-version and decodes the JSON
// answer.
func (s *server) versioned(t testing.TB, method, path, version, token, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.conn.ARMEndpoint+path+"?api-version="+version, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s at %s: %v: %s", method, path, version, err, data)
		}
	}
	return resp.StatusCode, out
}

// waitSucceeded polls a resource until its provisioningState is Succeeded.
func (s *server) waitSucceeded(t testing.TB, path, version, token string) {
	t.Helper()
	eventually(t, 2*time.Minute, path+" Succeeded", func() (bool, string) {
		_, got := s.versioned(t, http.MethodGet, path, version, token, "")
		p, _ := got["properties"].(map[string]any)
		state, _ := p["provisioningState"].(string)
		if state == "Failed" {
			t.Fatalf("%s failed: %s", path, mustJSON(t, got))
		}
		return state == "Succeeded", state
	})
}

// azDeserializes checks that az 2.45's own models (the Python SDK's
// 2022-11-01 package az uses) read a response without error.
func azDeserializes(t *testing.T, model string, doc map[string]any) {
	t.Helper()
	const py = `
import json, sys
from azure.mgmt.containerservice.v2022_11_01 import models
m = getattr(models, sys.argv[1]).deserialize(json.load(sys.stdin))
print(type(m).__name__, m.name)
`
	if _, err := os.Stat("/usr/bin/az"); err != nil {
		if os.Getenv("SLIPWAY_REQUIRE_AZ") != "" {
			t.Fatal("az is required (SLIPWAY_REQUIRE_AZ) but not installed")
		}
		t.Log("az not installed: its models' check skipped")
		return
	}
	cmd := exec.Command("/usr/bin/python3", "-W", "error", "-c", py, model)
	cmd.Stdin = bytes.NewReader(mustJSON(t, doc))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("az's %s model cannot read the response: %v: %s", model, err, out)
	}
}

// missing lists the values of want that got lacks or has otherwise.
func missing(at string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", at, got)}
		}
		var out []string
		for k, v := range w {
			out = append(out, missing(at+"."+k, v, g[k])...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %v", at, len(w), got)}
		}
		var out []string
		for i := range w {
			out = append(out, missing(fmt.Sprintf("%s[%d]", at, i), w[i], g[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: want %v, got %v", at, want, got)}
	}
	return nil
}

func withCount(profile any, n float64) map[string]any {
	p := map[string]any{}
	for k, v := range profile.(map[string]any) {
		if k != "name" {
			p[k] = v
		}
	}
	p["count"] = n
	return p
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

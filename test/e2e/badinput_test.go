package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// raw sends a request with a raw body and content type and returns the
// status, headers and ARM error.
func (s *server) raw(t testing.TB, method, path, token, contentType string, body []byte) (int, http.Header, armError) {
	t.Helper()
	req, err := http.NewRequest(method, s.conn.ARMEndpoint+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v (the server dropped the connection?)", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e struct {
		Error armError `json:"error"`
	}
	json.Unmarshal(data, &e)
	return resp.StatusCode, resp.Header, e.Error
}

// TestBadInput: for every ARM write route, malformed and out-of-range
// bodies get a 4xx with the code AKS (or ARM) uses, and change nothing: no
// request can make a later GET or list fail, for anyone. The probe of
// c28914d found pools stored with values no node image or rule allows,
// which then broke every list of the subscription.
func TestBadInput(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "badinput-rg", "badinput"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1))
	// Networks other than AKS's defaults: the cluster must run on them.
	spec.Properties.NetworkProfile = &armcontainerservice.NetworkProfile{ServiceCidr: to.Ptr("10.96.0.0/16"), PodCidr: to.Ptr("10.250.0.0/16")}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	tok := s.token(t)
	const api = "?api-version=2025-10-01"
	sub := "subscriptions/" + s.conn.SubscriptionID
	clusterPath := sub + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters/" + name
	newClusterPath := sub + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters/bad2"
	poolPath := clusterPath + "/agentPools/"
	validPool := func(extra string) string {
		return `{"properties":{"mode":"User","count":0` + extra + `}}`
	}
	cluster := func(extra, poolExtra string) string {
		return `{"location":"local"` + extra + `,"properties":{"dnsPrefix":"bad2","agentPoolProfiles":[{"name":"system","mode":"System","count":1` + poolExtra + `}]}}`
	}
	clusterProps := func(props string) string {
		return `{"location":"local","properties":{"dnsPrefix":"bad2",` + props + `"agentPoolProfiles":[{"name":"system","mode":"System","count":1}]}}`
	}
	for _, tc := range []struct {
		name, method, path, body, contentType string
		status                                int
		code, target                          string
	}{
		// The probe's F1: a pool with an OS SKU no node image has.
		{"osSKU Windows2022", "PUT", poolPath + "poison", validPool(`,"osSKU":"Windows2022"`), "", 400, "InvalidParameter", "agentPoolProfile.osSKU"},
		{"osSKU in a cluster PUT", "PUT", newClusterPath, cluster("", `,"osSKU":"../"`), "", 400, "InvalidParameter", "agentPoolProfile.osSKU"},
		{"scaleSetPriority", "PUT", poolPath + "prio", validPool(`,"scaleSetPriority":"bogus"`), "", 400, "InvalidParameter", "agentPoolProfile.scaleSetPriority"},
		{"availability zone 99", "PUT", poolPath + "zones", validPool(`,"availabilityZones":["99"]`), "", 400, "InvalidParameter", "agentPoolProfile.availabilityZones"},
		{"node label key", "PUT", poolPath + "labels", validPool(`,"nodeLabels":{"bad key!":"x"}`), "", 400, "InvalidParameter", "agentPoolProfile.nodeLabels"},
		{"reserved node label", "PUT", poolPath + "labels", validPool(`,"nodeLabels":{"kubernetes.io/hostname":"evil"}`), "", 400, "InvalidParameter", "agentPoolProfile.nodeLabels"},
		{"powerState code", "PUT", poolPath + "power", validPool(`,"powerState":{"code":"Bogus"}`), "", 400, "InvalidParameter", "agentPoolProfile.powerState.code"},
		{"AvailabilitySet", "PUT", poolPath + "avset", validPool(`,"type":"AvailabilitySet"`), "", 400, "InvalidParameter", "agentPoolProfile.type"},
		{"negative minCount", "PUT", poolPath + "mincount", validPool(`,"minCount":-5`), "", 400, "InvalidParameter", "agentPoolProfile.minCount"},
		{"negative drain timeout", "PUT", poolPath + "drain", validPool(`,"upgradeSettings":{"drainTimeoutInMinutes":-5}`), "", 400, "InvalidParameter", "agentPoolProfile.upgradeSettings.drainTimeoutInMinutes"},
		{"maxSurge in a cluster PUT", "PUT", newClusterPath, cluster("", `,"upgradeSettings":{"maxSurge":"abc"}`), "", 400, "InvalidParameter", "agentPoolProfile.upgradeSettings.maxSurge"},
		{"count as a string", "PUT", poolPath + "types", `{"properties":{"count":"3"}}`, "", 400, "InvalidRequestContent", ""},
		{"location mars", "PUT", newClusterPath, `{"location":"mars","properties":{"dnsPrefix":"bad2","agentPoolProfiles":[{"name":"system","mode":"System","count":1}]}}`, "", 400, "LocationNotAvailableForResourceType", "location"},
		{"dnsPrefix", "PUT", newClusterPath, `{"location":"local","properties":{"dnsPrefix":"../x","agentPoolProfiles":[{"name":"system","mode":"System","count":1}]}}`, "", 400, "InvalidParameter", "dnsPrefix"},
		{"nodeResourceGroup path", "PUT", newClusterPath, clusterProps(`"nodeResourceGroup":"../../rg1",`), "", 400, "InvalidParameter", "nodeResourceGroup"},
		{"nodeResourceGroup existing", "PUT", newClusterPath, clusterProps(`"nodeResourceGroup":"` + group + `",`), "", 400, "InvalidParameter", "nodeResourceGroup"},
		{"podCidr", "PUT", newClusterPath, clusterProps(`"networkProfile":{"podCidr":"not-a-cidr"},`), "", 400, "InvalidParameter", "networkProfile.podCidr"},
		{"overlapping CIDRs", "PUT", newClusterPath, clusterProps(`"networkProfile":{"podCidr":"10.0.0.0/8","serviceCidr":"10.0.0.0/16"},`), "", 400, "InvalidParameter", "networkProfile.serviceCidr"},
		{"dnsServiceIP", "PUT", newClusterPath, clusterProps(`"networkProfile":{"dnsServiceIP":"999.1.1.1"},`), "", 400, "InvalidParameter", "networkProfile.dnsServiceIP"},
		{"networkPlugin", "PUT", newClusterPath, clusterProps(`"networkProfile":{"networkPlugin":"bogus"},`), "", 400, "InvalidParameter", "networkProfile.networkPlugin"},
		{"sku tier", "PUT", newClusterPath, `{"location":"local","sku":{"name":"Base","tier":"Platinum"},"properties":{"dnsPrefix":"bad2","agentPoolProfiles":[{"name":"system","mode":"System","count":1}]}}`, "", 400, "InvalidParameter", "sku.tier"},
		{"identity type", "PUT", newClusterPath, `{"location":"local","identity":{"type":"Bogus"},"properties":{"dnsPrefix":"bad2","agentPoolProfiles":[{"name":"system","mode":"System","count":1}]}}`, "", 400, "InvalidParameter", "identity.type"},
		{"nodeOSUpgradeChannel", "PUT", newClusterPath, clusterProps(`"autoUpgradeProfile":{"nodeOSUpgradeChannel":"Bogus"},`), "", 400, "InvalidParameter", "autoUpgradeProfile.nodeOSUpgradeChannel"},
		// The probe's F5: a cluster PUT may not do what a pool PUT may not.
		{"vmSize changed through the cluster", "PUT", clusterPath, `{"location":"local","properties":{"dnsPrefix":"e2e","agentPoolProfiles":[{"name":"system","mode":"System","count":1,"vmSize":"Standard_D4s_v3"}]}}`, "", 400, "PropertyChangeNotAllowed", "agentPoolProfile.vmSize"},
		{"last System pool demoted through the cluster", "PUT", clusterPath, `{"location":"local","properties":{"dnsPrefix":"e2e","agentPoolProfiles":[{"name":"system","mode":"User","count":0}]}}`, "", 400, "MustDefineAtLeastOneSystemPool", ""},
		{"group location", "PUT", sub + "/resourceGroups/badloc", `{"location":"mars"}`, "", 400, "LocationNotAvailableForResourceGroup", "location"},
		{"role assignment GUID", "PUT", clusterPath + "/providers/Microsoft.Authorization/roleAssignments/not-a-guid?api-version=2022-04-01", `{}`, "", 400, "InvalidRoleAssignmentId", ""},
		{"deleteMachines empty", "POST", poolPath + "system/deleteMachines", `{"machineNames":[]}`, "", 400, "InvalidParameter", "machineNames"},
		{"maintenance window day", "PUT", clusterPath + "/maintenanceConfigurations/default", `{"properties":{"timeInWeek":[{"day":"Funday","hourSlots":[1]}]}}`, "", 400, "InvalidParameter", "properties.timeInWeek.day"},
		{"XML", "PUT", poolPath + "xml", validPool(""), "application/xml", 415, "UnsupportedMediaType", ""},
		{"a 2 MB tag set", "PUT", sub + "/resourceGroups/bigtags", bigTags(150000), "", 400, "RequestContentTooLarge", ""},
		{"encoded slash", "PUT", poolPath + "%2Fx", validPool(""), "", 400, "InvalidRequestUri", ""},
		{"dot segment", "GET", clusterPath + "/agentPools/%2E%2E", "", "", 400, "InvalidRequestUri", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if !strings.Contains(path, "api-version") {
				path += api
				if strings.Contains(tc.path, "/resourceGroups/") && !strings.Contains(tc.path, "/providers/") {
					path = tc.path + "?api-version=2021-04-01"
				}
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			status, _, e := s.raw(t, tc.method, path, tok, ct, []byte(tc.body))
			if status != tc.status || e.Code != tc.code || (tc.target != "" && e.Target != tc.target) {
				t.Errorf("%d %s (target %q): %s; want %d %s (target %q)", status, e.Code, e.Target, e.Message, tc.status, tc.code, tc.target)
			}
		})
	}

	t.Run("what AKS fills in on create: a System first pool, the AAD tenant, a private cluster's DNS", func(t *testing.T) {
		path := sub + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters/modeless" + api
		req := `{"location":"local","properties":{"dnsPrefix":"modeless","agentPoolProfiles":[{"name":"first","count":1}],
			"aadProfile":{"managed":true},"apiServerAccessProfile":{"enablePrivateCluster":true}}}`
		req2, _ := http.NewRequest("PUT", s.conn.ARMEndpoint+path, strings.NewReader(req))
		req2.Header.Set("Authorization", "Bearer "+tok)
		req2.Header.Set("Content-Type", "application/json")
		resp, err := s.httpClient().Do(req2)
		if err != nil {
			t.Fatal(err)
		}
		var got armcontainerservice.ManagedCluster
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || len(got.Properties.AgentPoolProfiles) != 1 || *got.Properties.AgentPoolProfiles[0].Mode != armcontainerservice.AgentPoolModeSystem {
			t.Errorf("PUT with a modeless first pool: %d, pools %+v", resp.StatusCode, got.Properties)
		}
		// What AKS fills in for Entra ID integration and private clusters.
		if got.Properties != nil {
			if aad := got.Properties.AADProfile; aad == nil || ptr.Deref(aad.TenantID, "") != s.conn.TenantID {
				t.Errorf("aadProfile: %s, want the tenant %s filled in", asJSON(aad), s.conn.TenantID)
			}
			if ap := got.Properties.APIServerAccessProfile; ap == nil || ptr.Deref(ap.PrivateDNSZone, "") != "system" || !strings.Contains(ptr.Deref(got.Properties.PrivateFQDN, ""), ".privatelink.") {
				t.Errorf("private cluster: access profile %s, privateFQDN %q", asJSON(ap), ptr.Deref(got.Properties.PrivateFQDN, ""))
			}
		}
		d, err := c.clusters.BeginDelete(ctx, group, "modeless", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a pool PUT of powerState alone keeps the rest", func(t *testing.T) {
		spot := `{"properties":{"mode":"User","count":1,"scaleSetPriority":"Spot","nodeLabels":{"team":"a"}}}`
		if status, _, e := s.raw(t, "PUT", poolPath+"keep"+api, tok, "application/json", []byte(spot)); status != http.StatusCreated {
			t.Fatalf("creating a Spot pool: %d %+v", status, e)
		}
		waitIdleSDK(t, c, group, name)
		for _, code := range []string{"Stopped", "Running"} {
			// As AKS's own examples do it: nothing but the power state.
			body := `{"properties":{"powerState":{"code":"` + code + `"}}}`
			if status, _, e := s.raw(t, "PUT", poolPath+"keep"+api, tok, "application/json", []byte(body)); status != http.StatusOK {
				t.Fatalf("PUT powerState %s: %d %+v", code, status, e)
			}
			waitIdleSDK(t, c, group, name)
			got, err := c.pools.Get(ctx, group, name, "keep", nil)
			if err != nil {
				t.Fatal(err)
			}
			p := got.Properties
			if *p.PowerState.Code != armcontainerservice.Code(code) || *p.ScaleSetPriority != armcontainerservice.ScaleSetPrioritySpot || *p.Count != 1 || p.NodeLabels["team"] == nil {
				t.Errorf("after PUT powerState %s: power %s, priority %s, count %d, labels %v", code, *p.PowerState.Code, *p.ScaleSetPriority, *p.Count, p.NodeLabels)
			}
		}
		d, err := c.pools.BeginDelete(ctx, group, name, "keep", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the networks it shows are the networks it runs", func(t *testing.T) {
		got, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if np := got.Properties.NetworkProfile; ptr.Deref(np.DNSServiceIP, "") != "10.96.0.10" {
			t.Errorf("dnsServiceIP %s, want the service CIDR's tenth address 10.96.0.10", ptr.Deref(np.DNSServiceIP, ""))
		}
		cs := adminClient(t, c, group, name)
		svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP != "10.96.0.1" {
			t.Errorf("the kubernetes Service is at %s, want 10.96.0.1 from the service CIDR", svc.Spec.ClusterIP)
		}
		if err := deploy(ctx, cs, "netcheck", "system", 1); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the pod to get an address from the pod CIDR", func() (bool, string) {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=netcheck"})
			if err != nil || len(pods.Items) == 0 {
				return false, fmt.Sprint(err)
			}
			ip := pods.Items[0].Status.PodIP
			return strings.HasPrefix(ip, "10.250."), "pod IP " + ip
		})
	})

	t.Run("what AKS fills in", func(t *testing.T) {
		got, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := got.Properties
		np := p.NetworkProfile
		if ptr.Deref(np.NetworkPolicy, "") != armcontainerservice.NetworkPolicyNone || ptr.Deref(np.LoadBalancerSKU, "") != armcontainerservice.LoadBalancerSKUStandard ||
			ptr.Deref(np.OutboundType, "") != armcontainerservice.OutboundTypeLoadBalancer || len(np.IPFamilies) != 1 ||
			len(np.PodCidrs) != 1 || *np.PodCidrs[0] != *np.PodCidr || len(np.ServiceCidrs) != 1 || *np.ServiceCidrs[0] != *np.ServiceCidr {
			t.Errorf("network profile defaults: %s", asJSON(np))
		}
		lb := np.LoadBalancerProfile
		if lb == nil || lb.ManagedOutboundIPs == nil || *lb.ManagedOutboundIPs.Count != 1 || len(lb.EffectiveOutboundIPs) != 1 ||
			!strings.Contains(strings.ToLower(*lb.EffectiveOutboundIPs[0].ID), strings.ToLower("/resourceGroups/"+*p.NodeResourceGroup+"/providers/Microsoft.Network/publicIPAddresses/")) ||
			*lb.IdleTimeoutInMinutes != 30 {
			t.Errorf("load balancer profile: %s", asJSON(lb))
		}
		if ptr.Deref(p.SupportPlan, "") != armcontainerservice.KubernetesSupportPlanKubernetesOfficial {
			t.Errorf("supportPlan %v", ptr.Deref(p.SupportPlan, ""))
		}
		if us := p.AgentPoolProfiles[0].UpgradeSettings; us == nil || ptr.Deref(us.MaxSurge, "") != "10%" {
			t.Errorf("the system pool's effective maxSurge: %s", asJSON(us))
		}
	})

	t.Run("405 says what is allowed", func(t *testing.T) {
		status, h, e := s.raw(t, "PATCH", poolPath+"system"+api, tok, "application/json", []byte(`{}`))
		if status != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "PUT") || !strings.Contains(h.Get("Allow"), "GET") {
			t.Errorf("PATCH of a pool: %d %s, Allow %q", status, e.Code, h.Get("Allow"))
		}
	})

	t.Run("nothing was stored and every read still answers", func(t *testing.T) {
		for _, path := range []string{
			clusterPath + api, clusterPath + "/agentPools" + api,
			sub + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters" + api,
			sub + "/providers/Microsoft.ContainerService/managedClusters" + api,
			sub + "/resourcegroups?api-version=2021-04-01",
		} {
			if status, _, e := s.raw(t, "GET", path, tok, "", nil); status != http.StatusOK {
				t.Errorf("GET %s: %d %+v", path, status, e)
			}
		}
		pools := c.pools.NewListPager(group, name, nil)
		var names []string
		for pools.More() {
			page, err := pools.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.Value {
				names = append(names, *p.Name)
			}
		}
		if len(names) != 1 || names[0] != "system" {
			t.Errorf("the cluster's pools are %v, want only system", names)
		}
		got, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ap := got.Properties.AgentPoolProfiles[0]; *ap.VMSize != "Standard_DS2_v2" || *ap.Mode != armcontainerservice.AgentPoolModeSystem {
			t.Errorf("the system pool changed: %s %s", *ap.VMSize, *ap.Mode)
		}
		for _, g := range []string{"badloc", "bigtags"} {
			if status, _, _ := s.raw(t, "GET", sub+"/resourceGroups/"+g+"?api-version=2021-04-01", tok, "", nil); status != http.StatusNotFound {
				t.Errorf("resource group %s: %d, want 404 (never created)", g, status)
			}
		}
		if status, _, _ := s.raw(t, "GET", newClusterPath+api, tok, "", nil); status != http.StatusNotFound {
			t.Errorf("cluster bad2: %d, want 404 (never created)", status)
		}
	})

	t.Run("concurrent writes on one cluster: one is accepted", func(t *testing.T) {
		// The probe's race: busy checks read one object and write another,
		// so writes on two pools, or on a pool and the cluster, were all
		// accepted. AKS accepts one and answers the others 409.
		const n = 6
		statuses := make([]int, n)
		codes := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i == n-1 {
					statuses[i], _, _ = s.raw(t, "POST", clusterPath+"/stop"+api, tok, "application/json", nil)
					return
				}
				// One node: a pool of none is made in milliseconds, and a
				// write judged after the first one ended is rightly accepted.
				var e armError
				statuses[i], _, e = s.raw(t, "PUT", poolPath+fmt.Sprintf("race%d", i)+api, tok, "application/json", []byte(`{"properties":{"mode":"User","count":1}}`))
				codes[i] = e.Code
			}()
		}
		wg.Wait()
		accepted := 0
		for i, st := range statuses {
			switch st {
			case http.StatusCreated, http.StatusAccepted:
				accepted++
			case http.StatusConflict:
			default:
				t.Errorf("request %d: %d %s", i, st, codes[i])
			}
		}
		if accepted != 1 {
			t.Errorf("%d of %d concurrent writes on one cluster were accepted (%v), want exactly 1", accepted, n, statuses)
		}
		waitIdleSDK(t, c, group, name)
	})

	t.Run("a cluster PUT in a group being deleted is refused", func(t *testing.T) {
		const g = "deleting-rg"
		if _, err := c.groups.CreateOrUpdate(ctx, g, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
			t.Fatal(err)
		}
		// A cluster keeps the group's delete running long enough to race.
		p, err := c.clusters.BeginCreateOrUpdate(ctx, g, "keeper", newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		del, err := c.groups.BeginDelete(ctx, g, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.clusters.BeginCreateOrUpdate(ctx, g, "latecomer", newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
		expectCode(t, err, http.StatusConflict, "ResourceGroupBeingDeleted")
		if _, err := del.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if status, _, _ := s.raw(t, "GET", sub+"/resourceGroups/"+g+"/providers/Microsoft.ContainerService/managedClusters/latecomer"+api, tok, "", nil); status != http.StatusNotFound {
			t.Errorf("the latecomer cluster: %d, want 404", status)
		}
	})
}

// bigTags is a resource group body with n tags: under the 4 MiB request
// limit, over what the management plane stores in one object.
func bigTags(n int) string {
	var b strings.Builder
	b.WriteString(`{"location":"local","tags":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%d":"v"`, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

// waitIdleSDK waits until neither the cluster nor any pool runs an
// operation.
func waitIdleSDK(t testing.TB, c clients, group, name string) {
	t.Helper()
	eventually(t, 2*time.Minute, "the cluster to be idle", func() (bool, string) {
		mc, err := c.clusters.Get(context.Background(), group, name, nil)
		if err != nil {
			return false, err.Error()
		}
		state := *mc.Properties.ProvisioningState
		for _, ap := range mc.Properties.AgentPoolProfiles {
			if s := *ap.ProvisioningState; s != "Succeeded" && s != "Failed" && s != "Canceled" {
				state = *ap.Name + " " + s
			}
		}
		return state == "Succeeded" || state == "Failed" || state == "Canceled", state
	})
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

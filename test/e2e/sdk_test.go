package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

var poll = &runtime.PollUntilDoneOptions{Frequency: time.Second}

type clients struct {
	groups   *armresources.ResourceGroupsClient
	clusters *armcontainerservice.ManagedClustersClient
	pools    *armcontainerservice.AgentPoolsClient
	machines *armcontainerservice.MachinesClient
}

func newClients(t testing.TB, s *server) clients {
	t.Helper()
	cred, opts := s.credential(t, s.conn.ClientSecret), s.clientOptions()
	groups, err := armresources.NewResourceGroupsClient(s.conn.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	clusters, err := armcontainerservice.NewManagedClustersClient(s.conn.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := armcontainerservice.NewAgentPoolsClient(s.conn.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	machines, err := armcontainerservice.NewMachinesClient(s.conn.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return clients{groups, clusters, pools, machines}
}

func pool(name string, mode armcontainerservice.AgentPoolMode, count int32) *armcontainerservice.ManagedClusterAgentPoolProfile {
	return &armcontainerservice.ManagedClusterAgentPoolProfile{
		Name: to.Ptr(name), Mode: to.Ptr(mode), Count: to.Ptr(count), VMSize: to.Ptr("Standard_DS2_v2"),
		OSType: to.Ptr(armcontainerservice.OSTypeLinux),
	}
}

func newCluster(location string, pools ...*armcontainerservice.ManagedClusterAgentPoolProfile) armcontainerservice.ManagedCluster {
	return armcontainerservice.ManagedCluster{
		Location: to.Ptr(location),
		Identity: &armcontainerservice.ManagedClusterIdentity{Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned)},
		Properties: &armcontainerservice.ManagedClusterProperties{
			DNSPrefix: to.Ptr("e2e"), KubernetesVersion: to.Ptr(""), AgentPoolProfiles: pools,
		},
	}
}

func errorCode(err error) (int, string) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, re.ErrorCode
	}
	return 0, ""
}

func expectCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	gotStatus, gotCode := errorCode(err)
	if gotStatus != status || gotCode != code {
		t.Fatalf("got %d %s (%v), want %d %s", gotStatus, gotCode, err, status, code)
	}
}

// TestSDKEndToEnd is the life of a cluster as the official SDK drives it.
func TestSDKEndToEnd(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "e2e-rg", "e2e-aks"

	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	poller, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location,
		pool("system", armcontainerservice.AgentPoolModeSystem, 1),
		pool("user", armcontainerservice.AgentPoolModeUser, 2)), nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := poller.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PUT to Succeeded: %s", time.Since(start).Round(time.Millisecond))
	if got := *created.Properties.ProvisioningState; got != "Succeeded" {
		t.Fatalf("provisioningState = %s", got)
	}

	got, err := c.clusters.Get(ctx, group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if *p.CurrentKubernetesVersion != "1.36.3" || *p.PowerState.Code != armcontainerservice.CodeRunning ||
		*p.ServicePrincipalProfile.ClientID != "msi" || p.Fqdn == nil || *p.NodeResourceGroup != "MC_e2e-rg_e2e-aks_"+s.conn.Location {
		t.Errorf("cluster properties: version %s power %s spp %s fqdn %v nodeRG %s", *p.CurrentKubernetesVersion, *p.PowerState.Code,
			*p.ServicePrincipalProfile.ClientID, p.Fqdn, *p.NodeResourceGroup)
	}
	if len(p.AgentPoolProfiles) != 2 {
		t.Errorf("cluster shows %d pools", len(p.AgentPoolProfiles))
	}
	if sd := got.SystemData; sd == nil || *sd.CreatedBy != s.conn.ClientID || *sd.CreatedByType != armcontainerservice.CreatedByTypeApplication ||
		sd.CreatedAt.Before(start.Add(-time.Second)) || sd.LastModifiedAt.Before(*sd.CreatedAt) {
		t.Errorf("systemData %+v, want made and last written by %s (Application) since %v", sd, s.conn.ClientID, start)
	}

	t.Run("list by group and subscription", func(t *testing.T) {
		for _, pager := range []*runtime.Pager[armcontainerservice.ManagedClustersClientListResponse]{c.clusters.NewListPager(nil)} {
			found := false
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, mc := range page.Value {
					found = found || *mc.Name == name
				}
			}
			if !found {
				t.Error("cluster missing from the subscription list")
			}
		}
		byGroup := c.clusters.NewListByResourceGroupPager(group, nil)
		page, err := byGroup.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Value) != 1 || *page.Value[0].Name != name {
			t.Errorf("group list = %v", page.Value)
		}
	})

	t.Run("admin credential reaches a real API server with the pools' nodes", func(t *testing.T) {
		creds, err := c.clusters.ListClusterAdminCredentials(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(creds.Kubeconfigs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		cs := kubernetes.NewForConfigOrDie(cfg)
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		perPool := map[string]int{}
		for _, n := range nodes.Items {
			perPool[n.Labels["kubernetes.azure.com/agentpool"]]++
			if n.Labels["kubernetes.azure.com/mode"] == "" {
				t.Errorf("node %s has no mode label", n.Name)
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready != 3 || perPool["system"] != 1 || perPool["user"] != 2 {
			t.Fatalf("nodes: %d Ready, per pool %v", ready, perPool)
		}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: to.Ptr[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
				},
			},
		}
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			got, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err == nil && got.Status.ReadyReplicas == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deployment not ready: %+v %v", got.Status, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("user credential", func(t *testing.T) {
		creds, err := c.clusters.ListClusterUserCredentials(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.Load(creds.Kubeconfigs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cfg.AuthInfos["clusterUser_"+group+"_"+name]; !ok || *creds.Kubeconfigs[0].Name != "clusterUser" {
			t.Errorf("user kubeconfig names: %v", cfg.AuthInfos)
		}
		rc, _ := clientcmd.RESTConfigFromKubeConfig(creds.Kubeconfigs[0].Value)
		if _, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("user credential cannot list namespaces: %v", err)
		}
	})

	t.Run("add and delete a pool", func(t *testing.T) {
		p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "extra", armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			Count: to.Ptr[int32](1), Mode: to.Ptr(armcontainerservice.AgentPoolModeUser), VMSize: to.Ptr("Standard_D4s_v3"),
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Another change while that runs is refused.
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "other", armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{Count: to.Ptr[int32](1)}}, nil)
		expectCode(t, err, http.StatusConflict, "OperationNotAllowed")

		ap, err := p.PollUntilDone(ctx, poll)
		if err != nil {
			t.Fatal(err)
		}
		if *ap.Properties.ProvisioningState != "Succeeded" || *ap.Properties.Count != 1 {
			t.Fatalf("pool after create: %s count %d", *ap.Properties.ProvisioningState, *ap.Properties.Count)
		}
		machines := c.machines.NewListPager(group, name, "extra", nil)
		page, err := machines.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Value) != 1 || !strings.HasPrefix(*page.Value[0].Name, "aks-extra-") {
			t.Fatalf("machines = %v", page.Value)
		}
		// The machine's resource ID is its scale-set VM's, in the node
		// resource group, as AKS gives it.
		if id := *page.Value[0].Properties.ResourceID; !strings.HasPrefix(id, "/subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/MC_") ||
			!strings.Contains(id, "/providers/Microsoft.Compute/virtualMachineScaleSets/aks-extra-") || !strings.HasSuffix(id, "/virtualMachines/0") {
			t.Errorf("machine resourceId = %s", id)
		}
		d, err := c.pools.BeginDelete(ctx, group, name, "extra", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		_, err = c.pools.Get(ctx, group, name, "extra", nil)
		expectCode(t, err, http.StatusNotFound, "NotFound")
	})

	t.Run("validation", func(t *testing.T) {
		cases := []struct {
			name   string
			mc     armcontainerservice.ManagedCluster
			status int
			code   string
		}{
			{"no system pool", newCluster(s.conn.Location, pool("user", armcontainerservice.AgentPoolModeUser, 1)), 400, "MustDefineAtLeastOneSystemPool"},
			{"bad pool name", newCluster(s.conn.Location, pool("Bad_Name", armcontainerservice.AgentPoolModeSystem, 1)), 400, "InvalidParameter"},
			{"system pool of zero", newCluster(s.conn.Location, pool("sys", armcontainerservice.AgentPoolModeSystem, 0)), 400, "InvalidParameter"},
			{"unknown Kubernetes version", func() armcontainerservice.ManagedCluster {
				mc := newCluster(s.conn.Location, pool("sys", armcontainerservice.AgentPoolModeSystem, 1))
				mc.Properties.KubernetesVersion = to.Ptr("1.19.0")
				return mc
			}(), 400, "K8sVersionNotSupported"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.clusters.BeginCreateOrUpdate(ctx, group, "invalid", tc.mc, nil)
				expectCode(t, err, tc.status, tc.code)
			})
		}
		_, err := c.clusters.Get(ctx, group, "invalid", nil)
		expectCode(t, err, http.StatusNotFound, "ResourceNotFound")

		// eTags: a stale If-Match is refused.
		_, err = c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)),
			&armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions{IfMatch: to.Ptr("not-the-etag")})
		expectCode(t, err, http.StatusPreconditionFailed, "PreconditionFailed")

		tok := s.token(t)
		path := fmt.Sprintf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s", s.conn.SubscriptionID, group, name)
		if status, e := s.do(t, "GET", path+"?api-version=1999-01-01", tok, nil); status != 400 || e.Code != "InvalidApiVersionParameter" {
			t.Errorf("unsupported api-version: %d %+v", status, e)
		}
		if status, e := s.do(t, "GET", path, tok, nil); status != 400 || e.Code != "MissingApiVersionParameter" {
			t.Errorf("missing api-version: %d %+v", status, e)
		}
		if status, e := s.do(t, "PUT", path+"?api-version=2025-02-01", tok, `{"location":"local","properties":{"agentPoolProfiles":[{"name":"sys","count":"three"}]}}`); status != 400 || e.Code != "InvalidRequestContent" || !strings.Contains(e.Message, "count") {
			t.Errorf("wrong type: %d %+v", status, e)
		}
		// Segments are case-insensitive and double slashes collapse.
		weird := strings.ReplaceAll(strings.ToUpper(path[:13])+path[13:], "/resourceGroups/", "//RESOURCEGROUPS/")
		if status, e := s.do(t, "GET", weird+"?api-version=2022-11-01", tok, nil); status != 200 {
			t.Errorf("GET %s: %d %+v", weird, status, e)
		}
	})

	t.Run("delete", func(t *testing.T) {
		d, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		_, err = c.clusters.Get(ctx, group, name, nil)
		expectCode(t, err, http.StatusNotFound, "ResourceNotFound")
	})
}

// TestAuthentication checks what happens without the right credentials.
func TestAuthentication(t *testing.T) {
	s := serve(t)
	_, err := s.credential(t, "not-the-secret").GetToken(context.Background(), policyScopes(s))
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("wrong secret: %v", err)
	}
	path := "subscriptions/" + s.conn.SubscriptionID + "/resourcegroups?api-version=2021-04-01"
	if status, e := s.do(t, "GET", path, "", nil); status != 401 || e.Code != "AuthenticationFailed" {
		t.Errorf("no token: %d %+v", status, e)
	}
	if status, e := s.do(t, "GET", path, "not.a.jwt", nil); status != 401 || e.Code != "InvalidAuthenticationToken" {
		t.Errorf("bad token: %d %+v", status, e)
	}
	if status, _ := s.do(t, "GET", path, s.token(t), nil); status != 200 {
		t.Errorf("good token: %d", status)
	}

	// The ADFS shape, as az uses it: tenant "adfs" under the login endpoint.
	adfs, err := azidentity.NewClientSecretCredential("adfs", s.conn.ClientID, s.conn.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: policy.ClientOptions{Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: s.conn.AuthorityHost,
			Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Endpoint: s.conn.ARMEndpoint, Audience: s.conn.Audience}},
		}, Transport: s.httpClient()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := adfs.GetToken(context.Background(), policyScopes(s))
	if err != nil {
		t.Fatalf("ADFS-shaped credential: %v", err)
	}
	if status, e := s.do(t, "GET", path, tok.Token, nil); status != 200 {
		t.Errorf("ADFS token: %d %+v", status, e)
	}
}

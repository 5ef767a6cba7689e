package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// TestKubernetesVersions: the releases are listed as AKS lists them, and a
// cluster made at 1.35 is upgraded to 1.36 (control plane only, then its
// pools) and to 1.37 (all at once) with a PodDisruptionBudget never
// violated, keeping its objects; AKS's version rules refuse what AKS
// refuses.
func TestKubernetesVersions(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()

	t.Run("listed", func(t *testing.T) {
		list, err := c.clusters.ListKubernetesVersions(ctx, s.conn.Location, nil)
		if err != nil {
			t.Fatal(err)
		}
		minors := map[string]*armcontainerservice.KubernetesVersion{}
		for _, v := range list.Values {
			minors[*v.Version] = v
		}
		if len(minors) != 3 || minors["1.35"] == nil || minors["1.36"] == nil || minors["1.37"] == nil {
			t.Fatalf("minors %v, want 1.35, 1.36 and 1.37", keys(minors))
		}
		for minor, v := range minors {
			if *v.IsDefault != (minor == "1.36") {
				t.Errorf("%s isDefault %v: the default is the newest minor but one, 1.36", minor, *v.IsDefault)
			}
		}
		if got := keys(minors["1.36"].PatchVersions); !slices.Equal(got, []string{"1.36.1", "1.36.3"}) {
			t.Errorf("1.36's patches %v", got)
		}
		if got := derefAll(minors["1.36"].PatchVersions["1.36.1"].Upgrades); !slices.Equal(got, []string{"1.36.3", "1.37.2"}) {
			t.Errorf("1.36.1 upgrades to %v, want its later patch and the next minor", got)
		}
		if got := derefAll(minors["1.35"].PatchVersions["1.35.4"].Upgrades); slices.Contains(got, "1.37.2") {
			t.Errorf("1.35.4 upgrades to %v: a minor skipped", got)
		}
	})

	const group, name = "versions-rg", "versions-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), pool("work", armcontainerservice.AgentPoolModeUser, 3))
	spec.Properties.KubernetesVersion = to.Ptr("1.35")
	mc := putCluster(t, c, group, name, spec)
	if got := *mc.Properties.CurrentKubernetesVersion; got != "1.35.4" {
		t.Fatalf("created at 1.35: currentKubernetesVersion %s, want 1.35.4 (the alias's latest patch)", got)
	}
	cfg := adminConfig(t, c, group, name)
	cs := kubernetes.NewForConfigOrDie(cfg)
	serverVersion(t, cs, "v1.35.4")
	kubeletVersions(t, cs, "", "v1.35.4")
	waitServiceAccount(t, cs)

	// What must survive two upgrades: a ConfigMap, a Secret, a custom
	// resource and its definition, and a Deployment a PDB guards.
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Data: map[string]string{"made": "1.35"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, StringData: map[string]string{"token": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	widgets := makeWidgetCRD(t, cfg)
	guarded(t, cs, "web", "work", 6, 4)

	t.Run("refused", func(t *testing.T) {
		skip := spec
		skip.Properties.KubernetesVersion = to.Ptr("1.37.2")
		_, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, skip, nil)
		if _, code := errorCode(err); code != "OperationNotAllowed" || !strings.Contains(err.Error(), "Upgrading Kubernetes version 1.35.4 to 1.37.2 is not allowed") {
			t.Errorf("skipping 1.36: %v", err)
		}
		_, err = c.clusters.BeginCreateOrUpdate(ctx, group, name, withVersion(spec, "1.34"), nil)
		if _, code := errorCode(err); code != "K8sVersionNotSupported" {
			t.Errorf("1.34: %v", err)
		}
		work, err := c.pools.Get(ctx, group, name, "work", nil)
		if err != nil {
			t.Fatal(err)
		}
		work.Properties.OrchestratorVersion = to.Ptr("1.36.3")
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "work", work.AgentPool, nil)
		if _, code := errorCode(err); code != "NodePoolMcVersionIncompatible" {
			t.Errorf("a pool past its control plane: %v", err)
		}
		profile, err := c.clusters.GetUpgradeProfile(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := upgradeVersions(profile.Properties.ControlPlaneProfile.Upgrades); !slices.Equal(got, []string{"1.36.1", "1.36.3"}) {
			t.Errorf("control plane upgrades %v, want 1.36's patches", got)
		}
	})

	t.Run("control plane only to 1.36.3", func(t *testing.T) {
		gaps := watchAPI(cs)
		began := time.Now()
		cpOnly := withVersion(spec, "1.36.3")
		for _, p := range cpOnly.Properties.AgentPoolProfiles {
			p.OrchestratorVersion = to.Ptr("1.35.4") // as az aks upgrade --control-plane-only sends them
		}
		got := putCluster(t, c, group, name, cpOnly)
		took, unavailable := time.Since(began), gaps()
		t.Logf("control plane 1.35.4 -> 1.36.3: %s; a kept-alive client (as kubectl) saw requests fail for at most %s", took.Round(time.Millisecond), unavailable.Round(time.Millisecond))
		// At most a request in flight as the old server closes its
		// connections (measured up to 0.1 s); stopping the old server
		// first left clients without one for 14 s.
		if unavailable > time.Second {
			t.Errorf("a kept-alive client went %s without an answer during the upgrade", unavailable)
		}
		if *got.Properties.CurrentKubernetesVersion != "1.36.3" {
			t.Errorf("currentKubernetesVersion %s", *got.Properties.CurrentKubernetesVersion)
		}
		serverVersion(t, cs, "v1.36.3")
		kubeletVersions(t, cs, "", "v1.35.4")
		work, err := c.pools.Get(ctx, group, name, "work", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *work.Properties.CurrentOrchestratorVersion != "1.35.4" {
			t.Errorf("pool moved with the control plane: %s", *work.Properties.CurrentOrchestratorVersion)
		}
		profile, err := c.pools.GetUpgradeProfile(ctx, group, name, "work", nil)
		if err != nil {
			t.Fatal(err)
		}
		var offered []string
		for _, u := range profile.Properties.Upgrades {
			offered = append(offered, *u.KubernetesVersion)
		}
		if !slices.Equal(offered, []string{"1.36.1", "1.36.3"}) {
			t.Errorf("the pool is offered %v, want 1.36's patches (none past its control plane)", offered)
		}
	})

	t.Run("pools to 1.36.3 with the PDB kept", func(t *testing.T) {
		w := watch(cs, "web", "work")
		for _, name := range []string{"work", "system"} {
			pool, err := c.pools.Get(ctx, group, "versions-aks", name, nil)
			if err != nil {
				t.Fatal(err)
			}
			pool.Properties.OrchestratorVersion = to.Ptr("1.36.3")
			p, err := c.pools.BeginCreateOrUpdate(ctx, group, "versions-aks", name, pool.AgentPool, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.PollUntilDone(ctx, poll)
			if err != nil {
				t.Fatal(err)
			}
			if *got.Properties.CurrentOrchestratorVersion != "1.36.3" || *got.Properties.ProvisioningState != "Succeeded" {
				t.Errorf("pool %s: %s at %s", name, *got.Properties.ProvisioningState, *got.Properties.CurrentOrchestratorVersion)
			}
		}
		minReady, maxNodes := w.finish()
		if minReady < 4 {
			t.Errorf("Ready pods fell to %d, below the PDB's minAvailable 4", minReady)
		}
		if maxNodes != 4 {
			t.Errorf("at most %d nodes of the pool at once, want 3 + 1 surge", maxNodes)
		}
		kubeletVersions(t, cs, "", "v1.36.3")
	})

	t.Run("everything to 1.37.2", func(t *testing.T) {
		w := watch(cs, "web", "work")
		all := withVersion(spec, "1.37.2")
		for _, p := range all.Properties.AgentPoolProfiles {
			p.OrchestratorVersion = to.Ptr("1.37.2") // as az aks upgrade sends them
		}
		got := putCluster(t, c, group, name, all)
		minReady, _ := w.finish()
		if *got.Properties.CurrentKubernetesVersion != "1.37.2" {
			t.Errorf("currentKubernetesVersion %s", *got.Properties.CurrentKubernetesVersion)
		}
		for _, p := range got.Properties.AgentPoolProfiles {
			if *p.CurrentOrchestratorVersion != "1.37.2" {
				t.Errorf("pool %s at %s", *p.Name, *p.CurrentOrchestratorVersion)
			}
		}
		if minReady < 4 {
			t.Errorf("Ready pods fell to %d, below the PDB's minAvailable 4", minReady)
		}
		serverVersion(t, cs, "v1.37.2")
		kubeletVersions(t, cs, "", "v1.37.2")
	})

	t.Run("objects made at 1.35 served at 1.37", func(t *testing.T) {
		cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "keep", metav1.GetOptions{})
		if err != nil || cm.Data["made"] != "1.35" {
			t.Errorf("ConfigMap: %v %v", cm.Data, err)
		}
		secret, err := cs.CoreV1().Secrets("default").Get(ctx, "keep", metav1.GetOptions{})
		if err != nil || string(secret.Data["token"]) != "s3cret" {
			t.Errorf("Secret: %v", err)
		}
		widget, err := dynamic.NewForConfigOrDie(cfg).Resource(widgets).Namespace("default").Get(ctx, "w1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if size, _, _ := unstructured.NestedString(widget.Object, "spec", "size"); size != "large" {
			t.Errorf("widget spec.size %q", size)
		}
		waitReadyPods(t, cs, "app=web", 6)
	})

	t.Run("the upgrades are planned maintenance in Resource Health", func(t *testing.T) {
		h := newHealthClients(t, s)
		var titles, all []string
		for _, st := range h.history(t, *mc.ID) {
			p := st.Properties
			if p.AvailabilityState == nil && ptr.Deref(p.ReasonType, "") == "Planned" {
				titles = append(titles, ptr.Deref(p.Title, ""))
			}
			all = append(all, fmt.Sprintf("%v/%s/%s", ptr.Deref(p.AvailabilityState, "event"), ptr.Deref(p.ReasonType, ""), ptr.Deref(p.Title, "")))
		}
		for _, want := range []string{"Kubernetes version upgrade", "Kubernetes version upgrade of pool work"} {
			if !slices.Contains(titles, want) {
				t.Errorf("no planned maintenance %q in the history; entries: %q", want, all)
			}
		}
	})
}

func withVersion(mc armcontainerservice.ManagedCluster, v string) armcontainerservice.ManagedCluster {
	props := *mc.Properties
	props.KubernetesVersion = to.Ptr(v)
	var pools []*armcontainerservice.ManagedClusterAgentPoolProfile
	for _, p := range props.AgentPoolProfiles {
		cp := *p
		pools = append(pools, &cp)
	}
	props.AgentPoolProfiles = pools
	mc.Properties = &props
	return mc
}

// serverVersion checks the release the API server reports.
func serverVersion(t testing.TB, cs kubernetes.Interface, want string) {
	t.Helper()
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != want {
		t.Errorf("the API server reports %s, want %s", v.GitVersion, want)
	}
}

// kubeletVersions checks the kubelet version of every node (of a pool, if
// named).
func kubeletVersions(t testing.TB, cs kubernetes.Interface, pool, want string) {
	t.Helper()
	opts := metav1.ListOptions{}
	if pool != "" {
		opts.LabelSelector = "agentpool=" + pool
	}
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) == 0 {
		t.Fatal("no nodes")
	}
	for _, n := range nodes.Items {
		if got := n.Status.NodeInfo.KubeletVersion; got != want {
			t.Errorf("node %s: kubelet %s, want %s", n.Name, got, want)
		}
	}
}

// watchAPI asks the API server for /version every 20 ms until the returned
// function is called, which gives the longest stretch it did not answer.
func watchAPI(cs kubernetes.Interface) func() time.Duration {
	return longestFailure(func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error() == nil
	})
}

// longestFailure calls ok every 20 ms until the returned function is
// called, which gives the longest stretch ok was false.
func longestFailure(ok func() bool) func() time.Duration {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var longest time.Duration
	wg.Go(func() {
		var down time.Time
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			up := ok()
			now := time.Now()
			switch {
			case !up && down.IsZero():
				down = now
			case up && !down.IsZero():
				longest, down = max(longest, now.Sub(down)), time.Time{}
			}
		}
	})
	return func() time.Duration {
		close(stop)
		wg.Wait()
		return longest
	}
}

// makeWidgetCRD defines a namespaced Widget custom resource and makes one.
func makeWidgetCRD(t testing.TB, cfg *rest.Config) schema.GroupVersionResource {
	t.Helper()
	ctx := context.Background()
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"size": {Type: "string"}}}}}}}},
		},
	}
	if _, err := apiextensionsclient.NewForConfigOrDie(cfg).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	widget := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"}, "spec": map[string]any{"size": "large"}}}
	eventually(t, 30*time.Second, "the Widget CRD to be served", func() (bool, string) {
		_, err := dynamic.NewForConfigOrDie(cfg).Resource(gvr).Namespace("default").Create(ctx, widget, metav1.CreateOptions{})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return gvr
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func derefAll(ps []*string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

func upgradeVersions(items []*armcontainerservice.ManagedClusterPoolUpgradeProfileUpgradesItem) []string {
	var out []string
	for _, u := range items {
		out = append(out, *u.KubernetesVersion)
	}
	sort.Strings(out)
	return out
}

// TestKubernetesAutoUpgrade: the patch channel waits for
// aksManagedAutoUpgradeSchedule, then takes the cluster and its pool to the
// minor's latest patch, and the run is recorded.
func TestKubernetesAutoUpgrade(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "autoversion-rg", "autoversion-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 2))
	spec.Properties.KubernetesVersion = to.Ptr("1.36.1")
	putCluster(t, c, group, name, spec)
	windows, err := armcontainerservice.NewMaintenanceConfigurationsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := windows.CreateOrUpdate(ctx, group, name, "aksManagedAutoUpgradeSchedule", dailyWindow(time.Now().Add(12*time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	spec.Properties.AutoUpgradeProfile = &armcontainerservice.ManagedClusterAutoUpgradeProfile{UpgradeChannel: to.Ptr(armcontainerservice.UpgradeChannelPatch)}
	putCluster(t, c, group, name, spec)

	runsPath := fmt.Sprintf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s/kubernetesUpgradeRuns?api-version=2025-02-01", s.conn.SubscriptionID, group, name)
	type versionRuns struct {
		Value []struct {
			Properties struct {
				Channel, Status, Message, NextWindow, From, To string
			} `json:"properties"`
		} `json:"value"`
	}
	var runs versionRuns
	eventually(t, 30*time.Second, "a pending run", func() (bool, string) {
		s.getJSON(t, runsPath, &runs)
		return len(runs.Value) > 0 && runs.Value[0].Properties.Status == "Pending" && runs.Value[0].Properties.NextWindow != "", fmt.Sprint(runs)
	})
	if run := runs.Value[0].Properties; run.Channel != "patch" || run.From != "1.36.1" || run.To != "1.36.3" {
		t.Errorf("pending run %+v, want patch from 1.36.1 to 1.36.3", run)
	}
	time.Sleep(6 * time.Second) // the scheduler looks again: nothing may start
	if got, err := c.clusters.Get(ctx, group, name, nil); err != nil || *got.Properties.CurrentKubernetesVersion != "1.36.1" || *got.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("outside the window the cluster is %s at %s (%v)", *got.Properties.ProvisioningState, *got.Properties.CurrentKubernetesVersion, err)
	}

	// The window opens: it started an hour ago.
	if _, err := windows.CreateOrUpdate(ctx, group, name, "aksManagedAutoUpgradeSchedule", dailyWindow(time.Now().Add(-time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the run to succeed", func() (bool, string) {
		s.getJSON(t, runsPath, &runs)
		return runs.Value[0].Properties.Status == "Succeeded", fmt.Sprint(runs.Value[0].Properties)
	})
	got, err := c.clusters.Get(ctx, group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Properties.CurrentKubernetesVersion != "1.36.3" || *got.Properties.KubernetesVersion != "1.36.3" {
		t.Errorf("after the run: kubernetesVersion %s, current %s", *got.Properties.KubernetesVersion, *got.Properties.CurrentKubernetesVersion)
	}
	for _, p := range got.Properties.AgentPoolProfiles {
		if *p.CurrentOrchestratorVersion != "1.36.3" || *p.Count != 2 {
			t.Errorf("pool %s at %s with %d nodes", *p.Name, *p.CurrentOrchestratorVersion, *p.Count)
		}
	}
	cs := adminClient(t, c, group, name)
	serverVersion(t, cs, "v1.36.3")
	kubeletVersions(t, cs, "", "v1.36.3")
}

// TestAZVersions: az 2.45 (api-version 2022-11-01) lists the versions and
// upgrades, upgrades the control plane alone and then a pool, and is
// refused a skipped minor with AKS's message.
func TestAZVersions(t *testing.T) {
	s := serve(t)
	az := newAZ(t, s)
	const group, name = "azversions-rg", "azversions-aks"
	az.run("group", "create", "-n", group, "-l", s.conn.Location, "-o", "none")
	type cluster struct {
		KubernetesVersion, CurrentKubernetesVersion string
		AgentPoolProfiles                           []struct {
			Name, OrchestratorVersion, CurrentOrchestratorVersion string
		}
	}
	var mc cluster
	az.json(&mc, "aks", "create", "-g", group, "-n", name, "--node-count", "1", "--generate-ssh-keys", "--kubernetes-version", "1.35.4")
	if mc.CurrentKubernetesVersion != "1.35.4" {
		t.Fatalf("az aks create --kubernetes-version 1.35.4: %+v", mc)
	}
	// az 2.45's get-versions lists the orchestrators, one per patch.
	var versions struct {
		Orchestrators []struct {
			OrchestratorVersion string
			Default             *bool
		}
	}
	az.json(&versions, "aks", "get-versions", "-l", s.conn.Location)
	var listed []string
	def := ""
	for _, o := range versions.Orchestrators {
		listed = append(listed, o.OrchestratorVersion)
		if o.Default != nil && *o.Default {
			def = o.OrchestratorVersion
		}
	}
	sort.Strings(listed)
	if !slices.Equal(listed, []string{"1.35.4", "1.36.1", "1.36.3", "1.37.2"}) || !strings.HasPrefix(def, "1.36.") {
		t.Errorf("az aks get-versions: %v, default %q", listed, def)
	}
	var upgrades struct {
		ControlPlaneProfile struct {
			KubernetesVersion string
			Upgrades          []struct{ KubernetesVersion string }
		}
	}
	az.json(&upgrades, "aks", "get-upgrades", "-g", group, "-n", name)
	var offered []string
	for _, u := range upgrades.ControlPlaneProfile.Upgrades {
		offered = append(offered, u.KubernetesVersion)
	}
	sort.Strings(offered)
	if upgrades.ControlPlaneProfile.KubernetesVersion != "1.35.4" || !slices.Equal(offered, []string{"1.36.1", "1.36.3"}) {
		t.Errorf("az aks get-upgrades: %+v", upgrades)
	}

	if _, errOut, err := az.try("aks", "upgrade", "-g", group, "-n", name, "--kubernetes-version", "1.37.2", "--yes"); err == nil || !strings.Contains(errOut, "not allowed") {
		t.Errorf("az aks upgrade past a minor: %v\n%s", err, errOut)
	}

	az.json(&mc, "aks", "upgrade", "-g", group, "-n", name, "--kubernetes-version", "1.36.3", "--control-plane-only", "--yes")
	if mc.CurrentKubernetesVersion != "1.36.3" || mc.AgentPoolProfiles[0].CurrentOrchestratorVersion != "1.35.4" {
		t.Errorf("az aks upgrade --control-plane-only: %+v", mc)
	}
	// Then the pools. az 2.45's "az aks nodepool upgrade --kubernetes-version"
	// fails before it sends anything (it formats instance.kubernetes_version,
	// which an AgentPool has not), against AKS as here; "az aks upgrade" to
	// the control plane's version is how it upgrades them.
	az.json(&mc, "aks", "upgrade", "-g", group, "-n", name, "--kubernetes-version", "1.36.3", "--yes")
	if mc.CurrentKubernetesVersion != "1.36.3" || mc.AgentPoolProfiles[0].CurrentOrchestratorVersion != "1.36.3" {
		t.Errorf("az aks upgrade --kubernetes-version 1.36.3 after the control plane: %+v", mc)
	}
	az.json(&mc, "aks", "upgrade", "-g", group, "-n", name, "--kubernetes-version", "1.37.2", "--yes")
	if mc.CurrentKubernetesVersion != "1.37.2" || mc.AgentPoolProfiles[0].CurrentOrchestratorVersion != "1.37.2" {
		t.Errorf("az aks upgrade --kubernetes-version 1.37.2: %+v", mc)
	}
	kubeconfig := filepath.Join(az.home, "kubeconfig")
	az.run("aks", "get-credentials", "-g", group, "-n", name, "--file", kubeconfig)
	out, err := exec.Command("kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "v1.37.2" {
		t.Errorf("kubectl get nodes after the upgrades: %v %s", err, out)
	}
}

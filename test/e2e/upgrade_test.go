package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

const imageLabel = "kubernetes.azure.com/node-image-version"

// publish runs `slipway node-image publish` against the shared server, as
// an operator would, and returns the image it printed.
func (s *server) publish(t testing.TB, osSKU string) string {
	t.Helper()
	out, err := exec.Command(s.bin, "node-image", "publish", "--data-dir", s.dataDir, "--os-sku", osSKU).CombinedOutput()
	if err != nil {
		t.Fatalf("node-image publish: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// getJSON GETs an ARM path as the bootstrap principal and decodes the body.
func (s *server) getJSON(t testing.TB, path string, out any) {
	t.Helper()
	s.getJSONAs(t, s.token(t), path, out)
}

// getJSONAs GETs an ARM path with a token and decodes the body.
func (s *server) getJSONAs(t testing.TB, token, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.conn.ARMEndpoint+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// deploy creates a Deployment of replicas pods labelled app=name on a pool.
func deploy(ctx context.Context, cs kubernetes.Interface, name, pool string, replicas int32) error {
	return deployWith(ctx, cs, name, pool, replicas, nil)
}

// deployWith is deploy with tolerations (of a Spot pool's taint).
func deployWith(ctx context.Context, cs kubernetes.Interface, name, pool string, replicas int32, tolerations []corev1.Toleration) error {
	labels := map[string]string{"app": name}
	_, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: to.Ptr(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"agentpool": pool},
					Tolerations:  tolerations,
					Containers:   []corev1.Container{{Name: "app", Image: "nginx"}},
				},
			},
		},
	}, metav1.CreateOptions{})
	return err
}

// setUpgradeSettings PUTs a pool's upgrade settings through the SDK.
func setUpgradeSettings(t testing.TB, c clients, group, cluster, name string, settings *armcontainerservice.AgentPoolUpgradeSettings) {
	t.Helper()
	ctx := context.Background()
	got, err := c.pools.Get(ctx, group, cluster, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	got.Properties.UpgradeSettings = settings
	up, err := c.pools.BeginCreateOrUpdate(ctx, group, cluster, name, got.AgentPool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
}

// guarded runs a Deployment of replicas pods on pool, with a
// PodDisruptionBudget of minAvailable.
func guarded(t testing.TB, cs kubernetes.Interface, name, pool string, replicas, minAvailable int32) {
	t.Helper()
	guardedWith(t, cs, name, pool, replicas, minAvailable, nil)
}

// guardedWith is guarded with tolerations.
func guardedWith(t testing.TB, cs kubernetes.Interface, name, pool string, replicas, minAvailable int32, tolerations []corev1.Toleration) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": name}
	if err := deployWith(ctx, cs, name, pool, replicas, tolerations); err != nil {
		t.Fatal(err)
	}
	_, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: to.Ptr(intstr.FromInt32(minAvailable)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReadyPods(t, cs, "app="+name, int(replicas))
}

// watcher samples a pool while an upgrade runs: the fewest Ready pods of a
// Deployment, the most nodes at once.
type watcher struct {
	stop     chan struct{}
	done     sync.WaitGroup
	mu       sync.Mutex
	minReady int
	maxNodes int
}

func watch(cs kubernetes.Interface, app, pool string) *watcher {
	w := &watcher{stop: make(chan struct{}), minReady: 1 << 30}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		ctx := context.Background()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			n, err := readyPods(ctx, cs, "app="+app)
			nodes, err2 := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=" + pool})
			if err != nil || err2 != nil {
				continue
			}
			w.mu.Lock()
			w.minReady, w.maxNodes = min(w.minReady, n), max(w.maxNodes, len(nodes.Items))
			w.mu.Unlock()
		}
	}()
	return w
}

// finish stops sampling. A watcher that never got a sample reports 0
// Ready pods, so that it fails the checks rather than passing them.
func (w *watcher) finish() (minReady, maxNodes int) {
	close(w.stop)
	w.done.Wait()
	if w.maxNodes == 0 {
		return 0, 0
	}
	return w.minReady, w.maxNodes
}

func upgradePool(t testing.TB, c clients, group, cluster, pool string) (armcontainerservice.AgentPool, error) {
	t.Helper()
	p, err := c.pools.BeginUpgradeNodeImageVersion(context.Background(), group, cluster, pool, nil)
	if err != nil {
		return armcontainerservice.AgentPool{}, err
	}
	res, err := p.PollUntilDone(context.Background(), poll)
	return res.AgentPool, err
}

func poolNodes(t testing.TB, cs kubernetes.Interface, pool string) []corev1.Node {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: "agentpool=" + pool})
	if err != nil {
		t.Fatal(err)
	}
	return nodes.Items
}

// TestNodeImageUpgrade: a published image rolls through a pool with surge,
// drains that keep a PodDisruptionBudget, reimage, and no Kubernetes
// version change; a PDB that never allows an eviction fails the upgrade or
// quarantines its node; maxSurge sets how many nodes are added; abort
// leaves a consistent pool.
func TestNodeImageUpgrade(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "upgrade-rg", "upgrade-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	// The pool runs Azure Linux, whose images no other test publishes.
	roll := pool("roll", armcontainerservice.AgentPoolModeUser, 5)
	roll.OSSKU = to.Ptr(armcontainerservice.OSSKUAzureLinux)
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), roll), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	cs := adminClient(t, c, group, name)
	before, err := c.pools.Get(ctx, group, name, "roll", nil)
	if err != nil {
		t.Fatal(err)
	}
	oldImage := *before.Properties.NodeImageVersion
	if !strings.HasPrefix(oldImage, "AKSAzureLinux-V3gen2-") {
		t.Fatalf("Azure Linux pool on image %s", oldImage)
	}

	t.Run("publish and roll with a PodDisruptionBudget", func(t *testing.T) {
		image := s.publish(t, "AzureLinux")
		if !strings.HasPrefix(image, "AKSAzureLinux-V3gen2-") || image == oldImage {
			t.Fatalf("published %q after %q", image, oldImage)
		}
		profile, err := c.pools.GetUpgradeProfile(ctx, group, name, "roll", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := *profile.Properties.LatestNodeImageVersion; got != image {
			t.Fatalf("latestNodeImageVersion %s, want %s", got, image)
		}
		guarded(t, cs, "web", "roll", 10, 8)
		w := watch(cs, "web", "roll")
		got, err := upgradePool(t, c, group, name, "roll")
		minReady, maxNodes := w.finish()
		if err != nil {
			t.Fatal(err)
		}
		if *got.Properties.NodeImageVersion != image || *got.Properties.ProvisioningState != "Succeeded" {
			t.Errorf("pool after upgrade: %s on %s", *got.Properties.ProvisioningState, *got.Properties.NodeImageVersion)
		}
		if minReady < 8 {
			t.Errorf("Ready pods fell to %d, below the PDB's minAvailable 8", minReady)
		}
		// AKS's default maxSurge is 10%: one extra node for five.
		if maxNodes != 6 {
			t.Errorf("at most %d nodes at once, want 5 + 1 surge", maxNodes)
		}
		nodes := poolNodes(t, cs, "roll")
		if len(nodes) != 5 {
			t.Errorf("%d nodes after the upgrade, want 5 (surge removed)", len(nodes))
		}
		for _, n := range nodes {
			if n.Labels[imageLabel] != image || n.Spec.Unschedulable || n.Status.NodeInfo.KubeletVersion != "v1.36.3" {
				t.Errorf("node %s: image %s, unschedulable %v, kubelet %s", n.Name, n.Labels[imageLabel], n.Spec.Unschedulable, n.Status.NodeInfo.KubeletVersion)
			}
		}
		events, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]int{}
		for _, e := range events.Items {
			reasons[e.Reason]++
		}
		for _, r := range []string{"Surge", "Drain", "Upgrade"} {
			if reasons[r] == 0 {
				t.Errorf("no %s events (%v)", r, reasons)
			}
		}
		mc, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *mc.Properties.CurrentKubernetesVersion != "1.36.3" {
			t.Errorf("Kubernetes version changed to %s", *mc.Properties.CurrentKubernetesVersion)
		}
	})

	t.Run("maxSurge 50% adds three nodes at once", func(t *testing.T) {
		setUpgradeSettings(t, c, group, name, "roll", &armcontainerservice.AgentPoolUpgradeSettings{MaxSurge: to.Ptr("50%")})
		image := s.publish(t, "AzureLinux")
		w := watch(cs, "web", "roll")
		res, err := upgradePool(t, c, group, name, "roll")
		minReady, maxNodes := w.finish()
		if err != nil {
			t.Fatal(err)
		}
		if *res.Properties.NodeImageVersion != image || maxNodes != 8 || minReady < 8 {
			t.Errorf("image %s (want %s), at most %d nodes (want 5 + 3), fewest Ready pods %d", *res.Properties.NodeImageVersion, image, maxNodes, minReady)
		}
	})

	t.Run("a PodDisruptionBudget that never allows an eviction", func(t *testing.T) {
		guarded(t, cs, "stuck", "roll", 1, 1)
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=stuck"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("stuck pods: %v %v", pods, err)
		}
		stuckNode := pods.Items[0].Spec.NodeName
		image := s.publish(t, "AzureLinux")
		_, err = upgradePool(t, c, group, name, "roll")
		_, code := errorCode(err)
		if code != "UpgradeFailed" || !strings.Contains(err.Error(), "blocked by pdb stuck") || !strings.Contains(err.Error(), pods.Items[0].Name) {
			t.Fatalf("upgrade with an unsatisfiable PDB: %v", err)
		}
		// Cordon: the blocked node is quarantined, the rest is upgraded;
		// a PUT resumes the failed upgrade, as on AKS, and says so.
		status, e := s.do(t, "PUT", "subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group+"/providers/Microsoft.ContainerService/managedClusters/"+name+"/agentPools/roll?api-version=2025-02-01",
			s.token(t), map[string]any{"properties": map[string]any{"count": 5, "vmSize": "Standard_DS2_v2", "mode": "User", "osSKU": "AzureLinux",
				"upgradeSettings": map[string]any{"maxSurge": "50%", "undrainableNodeBehavior": "Cordon"}}})
		if status != http.StatusOK {
			t.Fatalf("PUT with undrainableNodeBehavior Cordon: %d %v", status, e)
		}
		var last armcontainerservice.AgentPool
		eventually(t, 2*time.Minute, "the resumed upgrade to end", func() (bool, string) {
			got, err := c.pools.Get(ctx, group, name, "roll", nil)
			if err != nil {
				return false, err.Error()
			}
			last = got.AgentPool
			state := *got.Properties.ProvisioningState
			return state != "Updating" && state != "UpgradingNodeImageVersion", state
		})
		if *last.Properties.ProvisioningState != "Failed" {
			t.Errorf("upgrade with a quarantined node ended %s, want Failed as on AKS", *last.Properties.ProvisioningState)
		}
		for _, n := range poolNodes(t, cs, "roll") {
			switch {
			case n.Name == stuckNode:
				if n.Labels["kubernetes.azure.com/upgrade-status"] != "Quarantined" || !n.Spec.Unschedulable || n.Labels[imageLabel] == image {
					t.Errorf("blocked node %s: labels %v, unschedulable %v", n.Name, n.Labels, n.Spec.Unschedulable)
				}
			case n.Labels[imageLabel] != image || n.Spec.Unschedulable:
				t.Errorf("node %s: image %s, unschedulable %v", n.Name, n.Labels[imageLabel], n.Spec.Unschedulable)
			}
		}
		// Let the stuck pod go, and upgrade the quarantined node too.
		if err := cs.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "stuck", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := upgradePool(t, c, group, name, "roll"); err != nil {
			t.Fatal(err)
		}
		nodes := poolNodes(t, cs, "roll")
		for _, n := range nodes {
			if n.Labels[imageLabel] != image || n.Spec.Unschedulable || n.Labels["kubernetes.azure.com/upgrade-status"] != "" {
				t.Errorf("after the PDB is gone, node %s: image %s, unschedulable %v", n.Name, n.Labels[imageLabel], n.Spec.Unschedulable)
			}
		}
		if len(nodes) != 5 {
			t.Errorf("%d nodes, want 5: the surge node kept for the quarantined one is gone", len(nodes))
		}
	})

	t.Run("abort leaves a consistent pool", func(t *testing.T) {
		// A soak between batches keeps the upgrade running long enough.
		setUpgradeSettings(t, c, group, name, "roll", &armcontainerservice.AgentPoolUpgradeSettings{MaxSurge: to.Ptr("1"), NodeSoakDurationInMinutes: to.Ptr[int32](10)})
		image := s.publish(t, "AzureLinux")
		if _, err := c.pools.BeginUpgradeNodeImageVersion(ctx, group, name, "roll", nil); err != nil {
			t.Fatal(err)
		}
		var view struct {
			Properties struct {
				ProvisioningState string `json:"provisioningState"`
				UpgradeStatus     struct {
					Phase         string `json:"phase"`
					NodesUpgraded int    `json:"nodesUpgraded"`
					NodesTotal    int    `json:"nodesTotal"`
				} `json:"upgradeStatus"`
			} `json:"properties"`
		}
		path := "subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters/" + name + "/agentPools/roll?api-version=2025-02-01"
		eventually(t, time.Minute, "one node upgraded", func() (bool, string) {
			s.getJSON(t, path, &view)
			u := view.Properties.UpgradeStatus
			return u.NodesUpgraded >= 1, u.Phase
		})
		if u := view.Properties.UpgradeStatus; u.NodesTotal != 5 || view.Properties.ProvisioningState != "UpgradingNodeImageVersion" {
			t.Errorf("progress while upgrading: %+v, state %s", u, view.Properties.ProvisioningState)
		}
		ab, err := c.pools.BeginAbortLatestOperation(ctx, group, name, "roll", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ab.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the pool to wind down", func() (bool, string) {
			s.getJSON(t, path, &view)
			return view.Properties.ProvisioningState == "Canceled", view.Properties.ProvisioningState
		})
		nodes := poolNodes(t, cs, "roll")
		upgraded := 0
		for _, n := range nodes {
			if n.Spec.Unschedulable || !isReady(&n) {
				t.Errorf("node %s after abort: unschedulable %v, ready %v", n.Name, n.Spec.Unschedulable, isReady(&n))
			}
			if n.Labels[imageLabel] == image {
				upgraded++
			}
		}
		if len(nodes) != 5 || upgraded == 0 || upgraded == 5 {
			t.Errorf("after abort: %d nodes, %d on the new image; want 5 nodes, some but not all upgraded", len(nodes), upgraded)
		}
	})
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

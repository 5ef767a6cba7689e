package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
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

	"github.com/slipway-dev/slipway/internal/nodepool"
)

// TestNodePools checks AKS's node-pool rules and the nodes behind them:
// OS disk defaults and errors, node shape, scale with drains that respect
// PodDisruptionBudgets, scale to zero, spot pools, the cost figure.
func TestNodePools(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "pools-rg", "pools-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	eph := pool("eph", armcontainerservice.AgentPoolModeUser, 3)
	eph.VMSize = to.Ptr("Standard_D8s_v3")
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), eph), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	cs := adminClient(t, c, group, name)

	t.Run("OS disks", func(t *testing.T) {
		got, err := c.pools.Get(ctx, group, name, "eph", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Properties.OSDiskType != armcontainerservice.OSDiskTypeEphemeral || *got.Properties.OSDiskSizeGB != 128 {
			t.Errorf("D8s_v3 default disk: %s %d GiB, want Ephemeral 128", *got.Properties.OSDiskType, *got.Properties.OSDiskSizeGB)
		}
		sys, err := c.pools.Get(ctx, group, name, "system", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *sys.Properties.OSDiskType != armcontainerservice.OSDiskTypeManaged {
			t.Errorf("DS2_v2 default disk: %s, want Managed (its 86 GiB cache cannot hold 128 GiB)", *sys.Properties.OSDiskType)
		}
		for _, tc := range []struct{ size, code, message string }{
			{"Standard_DS2_v2", "VMCacheSizeTooSmall", "The virtual machine size Standard_DS2_v2 has a cache size of 92341796864 bytes, but the OS disk requires 137438953472 bytes. Use a VM size with larger cache or disable ephemeral OS."},
			{"Standard_D2s_v5", "VMSizeDoesNotSupportEphemeralOS", "The Virtual Machine size Standard_D2s_v5 does not support Ephemeral OS disk."},
		} {
			_, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "bad", armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
				VMSize: to.Ptr(tc.size), OSDiskType: to.Ptr(armcontainerservice.OSDiskTypeEphemeral), Count: to.Ptr[int32](1)}}, nil)
			expectCode(t, err, http.StatusBadRequest, tc.code)
			status, e := s.do(t, "PUT", "subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group+"/providers/Microsoft.ContainerService/managedClusters/"+name+"/agentPools/bad?api-version=2025-02-01",
				s.token(t), map[string]any{"properties": map[string]any{"vmSize": tc.size, "osDiskType": "Ephemeral", "count": 1}})
			if status != 400 || e.Message != tc.message {
				t.Errorf("%s: %d %q", tc.size, status, e.Message)
			}
		}
		// Type and size are immutable.
		got.Properties.OSDiskType = to.Ptr(armcontainerservice.OSDiskTypeManaged)
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "eph", got.AgentPool, nil)
		expectCode(t, err, http.StatusBadRequest, "PropertyChangeNotAllowed")
	})

	t.Run("VM sizes Azure offers", func(t *testing.T) {
		// Any size Azure offers is taken: a small one for a User pool, an
		// Arm one, a GPU one; a System pool needs 2 vCPUs and 4 GB, and a
		// size Azure does not offer gets AKS's refusal.
		for _, tc := range []struct {
			pool, size string
			cpus       int64
			arch       string
		}{
			{"small", "Standard_DS1_v2", 1, "amd64"},
			{"arm", "Standard_D4pds_v5", 4, "arm64"},
			{"gpu", "Standard_ND96asr_v4", 96, "amd64"},
		} {
			p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, tc.pool, armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
				VMSize: to.Ptr(tc.size), Count: to.Ptr[int32](1), Mode: to.Ptr(armcontainerservice.AgentPoolModeUser)}}, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.size, err)
			}
			if _, err := p.PollUntilDone(ctx, poll); err != nil {
				t.Fatalf("%s: %v", tc.size, err)
			}
			eventually(t, time.Minute, tc.size+" node", func() (bool, string) {
				nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=" + tc.pool})
				if err != nil || len(nodes.Items) != 1 {
					return false, fmt.Sprint(len(nodes.Items), err)
				}
				n := nodes.Items[0]
				return n.Status.Capacity.Cpu().Value() == tc.cpus && n.Labels["kubernetes.io/arch"] == tc.arch && n.Status.NodeInfo.Architecture == tc.arch,
					fmt.Sprintf("%s cpus, arch %s", n.Status.Capacity.Cpu(), n.Labels["kubernetes.io/arch"])
			})
			poller, err := c.pools.BeginDelete(ctx, group, name, tc.pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := poller.PollUntilDone(ctx, poll); err != nil {
				t.Fatal(err)
			}
		}
		path := "subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.ContainerService/managedClusters/" + name + "/agentPools/"
		status, e := s.do(t, "PUT", path+"nosuch?api-version=2025-02-01", s.token(t), map[string]any{"properties": map[string]any{"vmSize": "Standard_D3000s_v9", "count": 1}})
		if want := "The VM size of AgentPoolProfile:nosuch is not allowed in your subscription in location '" + s.conn.Location + "'. For more details, please visit https://aka.ms/aks/quotas-skus-regions"; status != 400 || e.Code != "BadRequest" || e.Message != want {
			t.Errorf("a size Azure does not offer: %d %s %q", status, e.Code, e.Message)
		}
		status, e = s.do(t, "PUT", path+"tinysys?api-version=2025-02-01", s.token(t), map[string]any{"properties": map[string]any{"vmSize": "Standard_DS1_v2", "count": 1, "mode": "System"}})
		if status != 400 || e.Message != "System node pool must use VM sku with more than 2 cores and 4GB memory. Nodepool name: tinysys." {
			t.Errorf("a System pool of 1 vCPU: %d %s %q", status, e.Code, e.Message)
		}
	})

	t.Run("nodes look like AKS nodes", func(t *testing.T) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 3 {
			t.Fatalf("%d eph nodes", len(nodes.Items))
		}
		n := nodes.Items[0]
		for k, v := range map[string]string{
			"kubernetes.azure.com/agentpool": "eph", "kubernetes.azure.com/mode": "user", "kubernetes.azure.com/role": "agent",
			"kubernetes.azure.com/storageprofile": "ephemeral", "node.kubernetes.io/instance-type": "Standard_D8s_v3",
			"kubernetes.io/os": "linux", "kubernetes.azure.com/os-sku": "Ubuntu", "topology.kubernetes.io/zone": "0",
		} {
			if n.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
			}
		}
		if n.Labels["kubernetes.azure.com/node-image-version"] == "" || n.Labels["kubernetes.azure.com/cluster"] == "" {
			t.Errorf("labels %v", n.Labels)
		}
		if n.Status.Capacity.Cpu().Value() != 8 || n.Status.Allocatable.Cpu().MilliValue() != 7820 || n.Status.Capacity.Pods().Value() != 110 {
			t.Errorf("capacity %v allocatable %v", n.Status.Capacity, n.Status.Allocatable)
		}
	})

	t.Run("scale up, then to zero within a PodDisruptionBudget", func(t *testing.T) {
		const replicas = 8
		labels := map[string]string{"app": "guarded"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: to.Ptr[int32](replicas),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
				},
			},
		}
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: to.Ptr(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
		}
		if _, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		scale(t, c, group, name, "eph", 10)
		// The pool's own report is not enough: the nodes are there.
		eventually(t, time.Minute, "10 Ready eph nodes", func() (bool, string) {
			n, err := countNodes(ctx, cs, "eph")
			return err == nil && n.total == 10 && n.ready == 10, fmt.Sprintf("%+v %v", n, err)
		})
		// Every node of the cluster has its own address, whatever its pool.
		all, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, n := range all.Items {
			for _, a := range n.Status.Addresses {
				if a.Type != corev1.NodeInternalIP {
					continue
				}
				if other, dup := seen[a.Address]; dup {
					t.Errorf("nodes %s and %s share the address %s", other, n.Name, a.Address)
				}
				seen[a.Address] = n.Name
			}
		}
		waitReadyPods(t, cs, "app=guarded", replicas)

		// Scale to zero while watching the Deployment: never more than
		// the PDB's one pod down.
		stop := make(chan struct{})
		lowest := make(chan int, 1)
		samples := 0
		go func() {
			low := replicas
			for {
				select {
				case <-stop:
					if samples == 0 {
						low = 0 // no sample, no proof: fail
					}
					lowest <- low
					return
				case <-time.After(50 * time.Millisecond):
				}
				if n, err := readyPods(ctx, cs, "app=guarded"); err == nil {
					samples++
					low = min(low, n)
				}
			}
		}()
		scale(t, c, group, name, "eph", 0)
		close(stop)
		if low := <-lowest; low < replicas-1 {
			t.Errorf("only %d of %d pods ready during the scale-down; the PDB allows one down", low, replicas)
		}
		nodes, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
		if len(nodes.Items) != 0 {
			t.Errorf("%d eph nodes left after scaling to 0", len(nodes.Items))
		}
		t.Logf("%d samples during the scale to zero", samples)
		// Drained, not just deleted: no pod is left bound to a node that
		// is gone (pods of a node removed undrained linger until pod GC).
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=guarded"})
		if err != nil {
			t.Fatal(err)
		}
		for _, pod := range pods.Items {
			if pod.DeletionTimestamp == nil && strings.HasPrefix(pod.Spec.NodeName, "aks-eph-") {
				t.Errorf("pod %s still bound to removed node %s", pod.Name, pod.Spec.NodeName)
			}
		}
		waitReadyPods(t, cs, "app=guarded", replicas)
		got, err := c.pools.Get(ctx, group, name, "eph", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Properties.Count != 0 || *got.Properties.Tags[nodepool.CostTag] != "0.0000" {
			t.Errorf("pool at zero: count %d cost %s", *got.Properties.Count, *got.Properties.Tags[nodepool.CostTag])
		}
	})

	t.Run("system pool cannot go to zero", func(t *testing.T) {
		sys, err := c.pools.Get(ctx, group, name, "system", nil)
		if err != nil {
			t.Fatal(err)
		}
		sys.Properties.Count = to.Ptr[int32](0)
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "system", sys.AgentPool, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")
	})

	t.Run("spot pool", func(t *testing.T) {
		p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "spot", armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			VMSize: to.Ptr("Standard_D4s_v3"), Count: to.Ptr[int32](2), Mode: to.Ptr(armcontainerservice.AgentPoolModeUser),
			ScaleSetPriority: to.Ptr(armcontainerservice.ScaleSetPrioritySpot), SpotMaxPrice: to.Ptr[float32](-1)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.PollUntilDone(ctx, poll)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(got.Properties.NodeTaints, func(s *string) bool { return *s == nodepool.SpotTaint }) {
			t.Errorf("spot pool taints %v", got.Properties.NodeTaints)
		}
		cost, _ := strconv.ParseFloat(*got.Properties.Tags[nodepool.CostTag], 64)
		if cost <= 0 || cost >= 2*0.192 {
			t.Errorf("spot pool of two D4s_v3 costs %v an hour; on demand would be 0.384", cost)
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=spot"})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("spot nodes: %v %v", len(nodes.Items), err)
		}
		n := nodes.Items[0]
		if n.Labels[nodepool.SpotLabel] != "spot" || len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != nodepool.SpotLabel {
			t.Errorf("spot node labels %v taints %v", n.Labels, n.Spec.Taints)
		}
		got.Properties.ScaleSetPriority = to.Ptr(armcontainerservice.ScaleSetPriorityRegular)
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "spot", got.AgentPool, nil)
		expectCode(t, err, http.StatusBadRequest, "PropertyChangeNotAllowed")
	})

	d, err := c.clusters.BeginDelete(ctx, group, name, nil)
	if err == nil {
		_, err = d.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func scale(t testing.TB, c clients, group, cluster, name string, count int32) {
	t.Helper()
	ctx := context.Background()
	got, err := c.pools.Get(ctx, group, cluster, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	got.Properties.Count = to.Ptr(count)
	p, err := c.pools.BeginCreateOrUpdate(ctx, group, cluster, name, got.AgentPool, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	if *res.Properties.ProvisioningState != "Succeeded" || *res.Properties.Count != count {
		t.Fatalf("scale to %d: %s, count %d", count, *res.Properties.ProvisioningState, *res.Properties.Count)
	}
}

// readyPods counts the pods that serve: Ready, on a node that exists and is
// Ready. The simulator removes a deleted VM's Node but not its pods, and a
// rebooting node's pods keep their Ready condition for a while: counting
// those would let an undrained removal or reimage pass for a safe one.
func readyPods(ctx context.Context, cs kubernetes.Interface, selector string) (int, error) {
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	readyNode := map[string]bool{}
	for i := range nodes.Items {
		readyNode[nodes.Items[i].Name] = isReady(&nodes.Items[i])
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || !readyNode[p.Spec.NodeName] {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}

// nodeCount counts a pool's nodes.
type nodeCount struct{ total, ready, cordoned int }

func countNodes(ctx context.Context, cs kubernetes.Interface, pool string) (nodeCount, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=" + pool})
	if err != nil {
		return nodeCount{}, err
	}
	n := nodeCount{total: len(nodes.Items)}
	for i := range nodes.Items {
		if isReady(&nodes.Items[i]) {
			n.ready++
		}
		if nodes.Items[i].Spec.Unschedulable {
			n.cordoned++
		}
	}
	return n, nil
}

// orphanPods lists the pods bound to a node that no longer exists.
func orphanPods(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, n := range nodes.Items {
		exists[n.Name] = true
	}
	var out []string
	for _, p := range pods.Items {
		// A drain leaves DaemonSet pods where they are, on AKS as with
		// kubectl: they go with their node, when pod GC finds it gone.
		if owner := metav1.GetControllerOf(&p); owner != nil && owner.Kind == "DaemonSet" {
			continue
		}
		if p.Spec.NodeName != "" && !exists[p.Spec.NodeName] && p.DeletionTimestamp == nil {
			out = append(out, p.Namespace+"/"+p.Name+" on "+p.Spec.NodeName)
		}
	}
	return out, nil
}

func waitReadyPods(t testing.TB, cs kubernetes.Interface, selector string, want int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		n, err := readyPods(context.Background(), cs, selector)
		if err == nil && n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pods ready (%v)", n, want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

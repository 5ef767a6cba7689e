package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/controller"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// TestStopStartEvictAndDeleteMachines: a stopped and started cluster keeps
// its objects, Managed OS disks keep their contents and Ephemeral ones lose
// them; Spot evictions delete or deallocate per policy; deleteMachines
// removes exactly the machines named.
func TestStopStartEvictAndDeleteMachines(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "life-rg", "life-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	eph := pool("eph", armcontainerservice.AgentPoolModeUser, 2)
	eph.VMSize = to.Ptr("Standard_D8s_v3")
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), eph), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	cs := adminClient(t, c, group, name)

	t.Run("stop and start", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "default"}, Data: map[string]string{"k": "v"}}
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"patched-2026-11"}}}`, compute.OSDiskMarkerAnnotation)
			if _, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		stop, err := c.clusters.BeginStop(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stop.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		got, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Properties.PowerState.Code != armcontainerservice.CodeStopped {
			t.Fatalf("power state after stop: %s", *got.Properties.PowerState.Code)
		}
		for _, ap := range got.Properties.AgentPoolProfiles {
			if cost := *ap.Tags[nodepool.CostTag]; cost != "0.0000" {
				t.Errorf("stopped pool %s costs %s an hour", *ap.Name, cost)
			}
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{}); err == nil {
			t.Error("the API server still answers after stop")
		}

		start, err := c.clusters.BeginStart(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := start.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{}); err != nil {
			t.Fatalf("ConfigMap lost across stop/start: %v", err)
		}
		nodes, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			_, kept := n.Annotations[compute.OSDiskMarkerAnnotation]
			switch n.Labels["agentpool"] {
			case "system":
				if !kept {
					t.Errorf("%s (Managed OS disk) lost its disk contents", n.Name)
				}
			case "eph":
				if kept {
					t.Errorf("%s (Ephemeral OS disk) kept its disk contents across deallocation", n.Name)
				}
			}
		}
	})

	t.Run("spot evictions", func(t *testing.T) {
		for _, policy := range []armcontainerservice.ScaleSetEvictionPolicy{armcontainerservice.ScaleSetEvictionPolicyDelete, armcontainerservice.ScaleSetEvictionPolicyDeallocate} {
			poolName := map[armcontainerservice.ScaleSetEvictionPolicy]string{"Delete": "spotdel", "Deallocate": "spotdea"}[policy]
			p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, poolName, armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
				VMSize: to.Ptr("Standard_D4s_v3"), Count: to.Ptr[int32](2), Mode: to.Ptr(armcontainerservice.AgentPoolModeUser),
				ScaleSetPriority: to.Ptr(armcontainerservice.ScaleSetPrioritySpot), ScaleSetEvictionPolicy: to.Ptr(policy)}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.PollUntilDone(ctx, poll); err != nil {
				t.Fatal(err)
			}
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=" + poolName})
			if err != nil || len(nodes.Items) != 2 {
				t.Fatalf("%s nodes: %d %v", poolName, len(nodes.Items), err)
			}
			victim := nodes.Items[0].Name
			path := fmt.Sprintf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s/agentPools/%s/machines/%s/simulateEviction?api-version=2025-02-01",
				s.conn.SubscriptionID, group, name, poolName, victim)
			if status, e := s.do(t, "POST", path, s.token(t), nil); status != 204 {
				t.Fatalf("simulateEviction: %d %+v", status, e)
			}
			eventually(t, 60*time.Second, string(policy)+" eviction", func() (bool, string) {
				n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
				ap, perr := c.pools.Get(ctx, group, name, poolName, nil)
				if perr != nil {
					return false, perr.Error()
				}
				count := *ap.Properties.Count
				if policy == armcontainerservice.ScaleSetEvictionPolicyDelete {
					return err != nil && count == 1, fmt.Sprintf("node err %v, count %d", err, count)
				}
				if err != nil {
					return false, err.Error()
				}
				ready := false
				for _, cond := range n.Status.Conditions {
					ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
				}
				return !ready && n.Spec.Unschedulable && n.Annotations[controller.EvictionNoticeAnnotation] != "" && count == 2,
					fmt.Sprintf("ready %v unschedulable %v count %d", ready, n.Spec.Unschedulable, count)
			})
		}
	})

	t.Run("pool stop and start through powerState", func(t *testing.T) {
		setPower := func(code armcontainerservice.Code) *armcontainerservice.AgentPool {
			got, err := c.pools.Get(ctx, group, name, "eph", nil)
			if err != nil {
				t.Fatal(err)
			}
			got.Properties.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(code)}
			p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "eph", got.AgentPool, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.PollUntilDone(ctx, poll)
			if err != nil {
				t.Fatal(err)
			}
			return &res.AgentPool
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("eph nodes before the stop: %d, %v", len(nodes.Items), err)
		}
		for _, n := range nodes.Items {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"written"}}}`, compute.OSDiskMarkerAnnotation)
			written, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if err != nil || written.Annotations[compute.OSDiskMarkerAnnotation] != "written" {
				t.Fatalf("writing the OS disk marker on %s: %v", n.Name, err)
			}
		}
		stopped := setPower(armcontainerservice.CodeStopped)
		if *stopped.Properties.PowerState.Code != armcontainerservice.CodeStopped || *stopped.Properties.Tags[nodepool.CostTag] != "0.0000" || *stopped.Properties.Count != 2 {
			t.Errorf("stopped pool: power %s cost %s count %d", *stopped.Properties.PowerState.Code, *stopped.Properties.Tags[nodepool.CostTag], *stopped.Properties.Count)
		}
		eventually(t, 30*time.Second, "pool's nodes deallocated", func() (bool, string) {
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
			if err != nil {
				return false, err.Error()
			}
			for _, n := range nodes.Items {
				for _, cond := range n.Status.Conditions {
					if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue || !n.Spec.Unschedulable {
						return false, n.Name + " still running"
					}
				}
			}
			return len(nodes.Items) == 2, fmt.Sprint(len(nodes.Items), " nodes")
		})
		started := setPower(armcontainerservice.CodeRunning)
		if *started.Properties.PowerState.Code != armcontainerservice.CodeRunning {
			t.Errorf("started pool: %s", *started.Properties.PowerState.Code)
		}
		eventually(t, 30*time.Second, "the pool's 2 nodes Ready again", func() (bool, string) {
			n, err := countNodes(ctx, cs, "eph")
			return err == nil && n.total == 2 && n.ready == 2, fmt.Sprintf("%+v %v", n, err)
		})
		nodes, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			if n.Spec.Unschedulable {
				t.Errorf("%s still cordoned after start", n.Name)
			}
			if _, kept := n.Annotations[compute.OSDiskMarkerAnnotation]; kept {
				t.Errorf("%s (Ephemeral) kept its OS disk contents across deallocation", n.Name)
			}
		}
		// The last running system pool cannot be stopped.
		sys, err := c.pools.Get(ctx, group, name, "system", nil)
		if err != nil {
			t.Fatal(err)
		}
		sys.Properties.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(armcontainerservice.CodeStopped)}
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "system", sys.AgentPool, nil)
		expectCode(t, err, 400, "InvalidParameter")
	})

	t.Run("deleteMachines", func(t *testing.T) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("eph nodes: %d %v", len(nodes.Items), err)
		}
		victim := nodes.Items[1].Name
		d, err := c.pools.BeginDeleteMachines(ctx, group, name, "eph", armcontainerservice.AgentPoolDeleteMachinesParameter{MachineNames: []*string{to.Ptr(victim)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		left, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=eph"})
		if len(left.Items) != 1 || left.Items[0].Name == victim {
			t.Errorf("after deleting %s: %v", victim, left.Items)
		}
		ap, err := c.pools.Get(ctx, group, name, "eph", nil)
		if err != nil || *ap.Properties.Count != 1 {
			t.Errorf("count after deleteMachines: %v %v", ap.Properties.Count, err)
		}
	})

	del, err := c.clusters.BeginDelete(ctx, group, name, nil)
	if err == nil {
		_, err = del.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func adminClient(t testing.TB, c clients, group, name string) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(adminConfig(t, c, group, name))
}

// adminConfig is a client configuration from the cluster's admin
// kubeconfig, as az aks get-credentials --admin writes it.
func adminConfig(t testing.TB, c clients, group, name string) *rest.Config {
	t.Helper()
	creds, err := c.clusters.ListClusterAdminCredentials(context.Background(), group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(creds.Kubeconfigs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s (last: %s)", what, timeout, last)
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/management"
)

// killWhen polls cond every 20 ms and kills slipway serve (SIGKILL) the
// moment it holds, then starts it again over the same data. The kill point
// is a state Slipway shows, not a time: a run that never reaches it fails
// rather than passing without having crashed anywhere.
func (s *server) killWhen(t testing.TB, point string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("kill point %q not reached within %s", point, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	t.Logf("killed slipway serve at %q", point)
	start := time.Now()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("slipway serve answered again %s after the kill", time.Since(start).Round(time.Millisecond))
}

// management is a client of the management plane, for tests that put it in
// the state a crash between two writes leaves.
func (s *server) management(t testing.TB) client.Client {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.dataDir, "management", "clusters", "management", "kubeconfig", "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: management.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// settled checks what every crash must leave: the pool's nodes all there
// and Ready, none cordoned, no pod bound to a node that is gone.
func settled(t testing.TB, cs kubernetes.Interface, poolName string, want int) {
	t.Helper()
	eventually(t, time.Minute, fmt.Sprintf("%d Ready, schedulable %s nodes and no orphan pods", want, poolName), func() (bool, string) {
		n, err := countNodes(context.Background(), cs, poolName)
		if err != nil {
			return false, err.Error()
		}
		orphans, err := orphanPods(context.Background(), cs)
		if err != nil {
			return false, err.Error()
		}
		return n.total == want && n.ready == want && n.cordoned == 0 && len(orphans) == 0, fmt.Sprintf("%+v, orphans %v", n, orphans)
	})
}

// TestCrashRecovery kills slipway serve at named points of its operations
// (create; a node image upgrade while surging, draining, reimaging; a
// scale-in mid-drain; a Spot eviction after its notice; a delete) and requires, after a restart over
// the same data, what AKS would show: the operation Succeeded, the objects
// intact, and no node left cordoned or orphaned. It also puts the
// management plane in the state a crash between an operation's two writes
// leaves, and requires Slipway to finish what was recorded.
func TestCrashRecovery(t *testing.T) {
	s := serve(t)
	ctx := context.Background()
	c := newClients(t, s)
	const group, name = "crash-rg", "crash-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}

	t.Run("mid-create", func(t *testing.T) {
		spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), pool("work", armcontainerservice.AgentPoolModeUser, 2))
		poller, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		resume, err := poller.ResumeToken()
		if err != nil {
			t.Fatal(err)
		}
		s.killWhen(t, "control plane being made", time.Minute, func() bool {
			if !clusterHosted(s, group, name) {
				return false
			}
			mc, err := c.clusters.Get(ctx, group, name, nil)
			return err == nil && *mc.Properties.ProvisioningState == "Creating"
		})
		c = newClients(t, s)
		resumed, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, spec, &armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions{ResumeToken: resume})
		if err != nil {
			t.Fatal(err)
		}
		pollCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		res, err := resumed.PollUntilDone(pollCtx, poll)
		if err != nil {
			t.Fatalf("the create did not succeed after the restart: %v", err)
		}
		if *res.Properties.ProvisioningState != "Succeeded" {
			t.Fatalf("the create ended %s", *res.Properties.ProvisioningState)
		}
		cs := adminClient(t, c, group, name)
		settled(t, cs, "system", 1)
		settled(t, cs, "work", 2)
	})
	cs := adminClient(t, c, group, name)

	// A node image upgrade killed in each of its phases: making the surge
	// node, draining a batch, reimaging it.
	scale(t, c, group, name, "work", 4)
	// At the tests' time scale AKS's 30-minute drain timeout is the 30 s
	// floor, not much more than a restart of serve and the cluster's control
	// plane takes under load; give the drains the room a real one has.
	setUpgradeSettings(t, c, group, name, "work", &armcontainerservice.AgentPoolUpgradeSettings{DrainTimeoutInMinutes: to.Ptr[int32](240)})
	guarded(t, cs, "crashapp", "work", 4, 3)
	for i, phase := range []string{"Surging", "Draining", "Reimaging"} {
		t.Run("mid-upgrade "+phase, func(t *testing.T) {
			target := s.publish(t, "Ubuntu")
			w := watch(cs, "crashapp", "work")
			poller, err := c.pools.BeginUpgradeNodeImageVersion(ctx, group, name, "work", nil)
			if err != nil {
				t.Fatal(err)
			}
			resume, _ := poller.ResumeToken()
			s.killWhen(t, "upgrade "+phase, time.Minute, func() bool {
				var p struct {
					Properties struct {
						UpgradeStatus struct{ Phase, TargetNodeImageVersion string } `json:"upgradeStatus"`
					} `json:"properties"`
				}
				s.getJSON(t, "subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group+"/providers/Microsoft.ContainerService/managedClusters/"+name+"/agentPools/work?api-version=2025-10-01", &p)
				u := p.Properties.UpgradeStatus
				return u.Phase == phase && u.TargetNodeImageVersion == target
			})
			c = newClients(t, s)
			resumed, err := c.pools.BeginUpgradeNodeImageVersion(ctx, group, name, "work", &armcontainerservice.AgentPoolsClientBeginUpgradeNodeImageVersionOptions{ResumeToken: resume})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := resumed.PollUntilDone(ctx, poll); err != nil {
				t.Fatalf("upgrade %d did not succeed after the restart: %v", i+1, err)
			}
			minReady, _ := w.finish()
			if minReady < 3 {
				t.Errorf("%d Ready pods at the least during the upgrade; the PDB keeps 3", minReady)
			}
			settled(t, cs, "work", 4)
			for _, n := range poolNodes(t, cs, "work") {
				if n.Labels[imageLabel] != target {
					t.Errorf("node %s is on %s after the upgrade, want %s", n.Name, n.Labels[imageLabel], target)
				}
			}
		})
	}

	t.Run("mid-scale-in drain", func(t *testing.T) {
		got, err := c.pools.Get(ctx, group, name, "work", nil)
		if err != nil {
			t.Fatal(err)
		}
		got.Properties.Count = to.Ptr[int32](1)
		poller, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "work", got.AgentPool, nil)
		if err != nil {
			t.Fatal(err)
		}
		resume, _ := poller.ResumeToken()
		s.killWhen(t, "scale-in under way", time.Minute, func() bool {
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=work"})
			if err != nil {
				return false
			}
			cordoned := slices.ContainsFunc(nodes.Items, func(n corev1.Node) bool { return n.Spec.Unschedulable })
			return cordoned && len(nodes.Items) > 1
		})
		c = newClients(t, s)
		resumed, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "work", got.AgentPool, &armcontainerservice.AgentPoolsClientBeginCreateOrUpdateOptions{ResumeToken: resume})
		if err != nil {
			t.Fatal(err)
		}
		res, err := resumed.PollUntilDone(ctx, poll)
		if err != nil || *res.Properties.Count != 1 {
			t.Fatalf("the scale-in after the restart: %v", err)
		}
		settled(t, cs, "work", 1)
	})

	t.Run("mid-eviction behind a PDB", func(t *testing.T) {
		ap := armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			Mode: to.Ptr(armcontainerservice.AgentPoolModeUser), Count: to.Ptr[int32](2),
			ScaleSetPriority: to.Ptr(armcontainerservice.ScaleSetPrioritySpot)}}
		p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "spot", ap, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		// A PDB no drain can satisfy: Azure evicts the VM at the end of
		// its notice anyway, and the pool must not wedge on it.
		guardedTolerating(t, cs, "spotapp", "spot", 2, 2)
		victim := poolNodes(t, cs, "spot")[0].Name
		path := fmt.Sprintf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s/agentPools/spot/machines/%s/simulateEviction?api-version=2025-10-01", s.conn.SubscriptionID, group, name, victim)
		if status, e := s.do(t, "POST", path, s.token(t), nil); status != http.StatusNoContent {
			t.Fatalf("simulateEviction: %d %+v", status, e)
		}
		s.killWhen(t, "eviction noticed", time.Minute, func() bool {
			// The notice is out and the VM not yet gone.
			n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
			return err == nil && n.Annotations["slipway.dev/eviction-notice"] != ""
		})
		c = newClients(t, s)
		eventually(t, time.Minute, "the evicted VM gone and the count one lower", func() (bool, string) {
			got, err := c.pools.Get(ctx, group, name, "spot", nil)
			if err != nil {
				return false, err.Error()
			}
			_, gerr := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
			return *got.Properties.Count == 1 && gerr != nil, fmt.Sprintf("count %d, node lookup: %v", *got.Properties.Count, gerr)
		})
		settled(t, cs, "spot", 1)
		// Not wedged: the next operation on the pool runs and ends.
		scale(t, c, group, name, "spot", 2)
		settled(t, cs, "spot", 2)
	})

	t.Run("recorded delete never issued", func(t *testing.T) {
		// The state a crash between DELETE's two writes leaves: the group
		// names a running Deleting operation, but nothing deleted it.
		const g = "crash-half-deleted"
		if _, err := c.groups.CreateOrUpdate(ctx, g, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
			t.Fatal(err)
		}
		mgmt := s.management(t)
		id := armid.ResourceGroup(s.conn.SubscriptionID, g)
		op := &slipwayv1.Operation{
			ObjectMeta: metav1.ObjectMeta{Name: newGUID(), Namespace: slipwayv1.Namespace},
			Spec:       slipwayv1.OperationSpec{SubscriptionID: s.conn.SubscriptionID, Location: s.conn.Location, ResourceID: id, Action: slipwayv1.ActionDeleting, Deletes: true},
		}
		if err := mgmt.Create(ctx, op); err != nil {
			t.Fatal(err)
		}
		rg := &slipwayv1.ResourceGroup{}
		if err := mgmt.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id)}, rg); err != nil {
			t.Fatal(err)
		}
		rg.Spec.Operation = &slipwayv1.OperationRef{ID: op.Name, Action: slipwayv1.ActionDeleting}
		if err := mgmt.Update(ctx, rg); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the recorded delete carried out", func() (bool, string) {
			_, err := c.groups.Get(ctx, g, nil)
			code, _ := errorCode(err)
			got := &slipwayv1.Operation{}
			if gerr := mgmt.Get(ctx, client.ObjectKeyFromObject(op), got); gerr != nil {
				return false, gerr.Error()
			}
			return code == http.StatusNotFound && got.Status.Status == slipwayv1.OperationSucceeded, fmt.Sprintf("group: %d, operation %q", code, got.Status.Status)
		})
	})

	t.Run("mid-delete", func(t *testing.T) {
		hostedDir := clusterDir(s, group, name)
		poller, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		resume, _ := poller.ResumeToken()
		s.killWhen(t, "cluster deleting", time.Minute, func() bool {
			mc, err := c.clusters.Get(ctx, group, name, nil)
			return err == nil && *mc.Properties.ProvisioningState == "Deleting"
		})
		c = newClients(t, s)
		resumed, err := c.clusters.BeginDelete(ctx, group, name, &armcontainerservice.ManagedClustersClientBeginDeleteOptions{ResumeToken: resume})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := resumed.PollUntilDone(ctx, poll); err != nil {
			t.Fatalf("the delete after the restart: %v", err)
		}
		_, err = c.clusters.Get(ctx, group, name, nil)
		expectCode(t, err, http.StatusNotFound, "ResourceNotFound")
		if _, err := os.Stat(hostedDir); !os.IsNotExist(err) {
			t.Errorf("the cluster's data directory %s is still there (%v)", hostedDir, err)
		}
		d, err := c.groups.BeginDelete(ctx, group, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
	})
}

// clusterDir is the data directory of a cluster's control plane.
func clusterDir(s *server, group, name string) string {
	return filepath.Join(s.dataDir, "clusters", armid.ObjectName(armid.ManagedCluster(s.conn.SubscriptionID, group, name)))
}

// clusterHosted says whether the cluster's control plane has begun to be
// made: its data directory exists.
func clusterHosted(s *server, group, name string) bool {
	_, err := os.Stat(clusterDir(s, group, name))
	return err == nil
}

// guardedTolerating is guarded for a pool with the Spot taint.
func guardedTolerating(t testing.TB, cs kubernetes.Interface, name, pool string, replicas, minAvailable int32) {
	t.Helper()
	guardedWith(t, cs, name, pool, replicas, minAvailable, []corev1.Toleration{{Key: "kubernetes.azure.com/scalesetpriority", Operator: corev1.TolerationOpEqual, Value: "spot", Effect: corev1.TaintEffectNoSchedule}})
}

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-dev/slipway/internal/compute"
)

type upgradeRuns struct {
	Value []struct {
		Name       string `json:"name"`
		Properties struct {
			Channel    string `json:"channel"`
			Status     string `json:"status"`
			Message    string `json:"message"`
			NextWindow string `json:"nextWindow"`
			Pools      []struct {
				Name string `json:"name"`
				To   string `json:"to"`
			} `json:"pools"`
		} `json:"properties"`
	} `json:"value"`
}

// dailyWindow is a node OS maintenance window of four hours a day from
// start (UTC).
func dailyWindow(start time.Time) armcontainerservice.MaintenanceConfiguration {
	return armcontainerservice.MaintenanceConfiguration{Properties: &armcontainerservice.MaintenanceConfigurationProperties{
		MaintenanceWindow: &armcontainerservice.MaintenanceWindow{
			Schedule:      &armcontainerservice.Schedule{Daily: &armcontainerservice.DailySchedule{IntervalDays: to.Ptr[int32](1)}},
			DurationHours: to.Ptr[int32](4),
			StartTime:     to.Ptr(start.UTC().Format("15:04")),
			UTCOffset:     to.Ptr("+00:00"),
		},
	}}
}

// TestNodeOSAutoUpgrade: a new image waits for the node OS maintenance
// window and the wait is recorded; a window that is open starts the
// upgrade; SecurityPatch patches the image the nodes have; Unmanaged
// patches in place and the reboot coordinator reboots the nodes one at a
// time, each drained first.
func TestNodeOSAutoUpgrade(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "auto-rg", "auto-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	// Ubuntu 24.04 images are published by no other test.
	sys := pool("system", armcontainerservice.AgentPoolModeSystem, 1)
	sys.OSSKU = to.Ptr(armcontainerservice.OSSKU("Ubuntu2404"))
	work := pool("work", armcontainerservice.AgentPoolModeUser, 2)
	work.OSSKU = to.Ptr(armcontainerservice.OSSKU("Ubuntu2404"))
	cluster := newCluster(s.conn.Location, sys, work)
	cluster.Properties.AutoUpgradeProfile = &armcontainerservice.ManagedClusterAutoUpgradeProfile{NodeOSUpgradeChannel: to.Ptr(armcontainerservice.NodeOSUpgradeChannelNodeImage)}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, cluster, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	cs := adminClient(t, c, group, name)
	windows, err := armcontainerservice.NewMaintenanceConfigurationsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	runsPath := fmt.Sprintf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s/nodeOSUpgradeRuns?api-version=2025-02-01", s.conn.SubscriptionID, group, name)

	t.Run("a window in the future holds the upgrade; an open one starts it", func(t *testing.T) {
		later := time.Now().Add(12 * time.Hour)
		made, err := windows.CreateOrUpdate(ctx, group, name, "aksManagedNodeOSUpgradeSchedule", dailyWindow(later), nil)
		if err != nil {
			t.Fatal(err)
		}
		if sd := made.SystemData; sd == nil || *sd.CreatedBy != s.conn.ClientID || *sd.LastModifiedBy != s.conn.ClientID {
			t.Errorf("the maintenance configuration's systemData: %+v", sd)
		}
		image := s.publish(t, "Ubuntu2404")
		var runs upgradeRuns
		eventually(t, 30*time.Second, "a pending run", func() (bool, string) {
			s.getJSON(t, runsPath, &runs)
			return len(runs.Value) > 0 && runs.Value[0].Properties.Status == "Pending" && runs.Value[0].Properties.NextWindow != "", fmt.Sprint(runs)
		})
		run := runs.Value[0].Properties
		if len(run.Pools) != 2 || run.Pools[0].To != image || run.Channel != "NodeImage" {
			t.Errorf("pending run %+v, want both pools to %s", run, image)
		}
		// Give the scheduler several looks: nothing may start.
		time.Sleep(8 * time.Second)
		for _, pool := range []string{"system", "work"} {
			got, err := c.pools.Get(ctx, group, name, pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			if *got.Properties.ProvisioningState != "Succeeded" || *got.Properties.NodeImageVersion == image {
				t.Errorf("pool %s started outside the window: %s on %s", pool, *got.Properties.ProvisioningState, *got.Properties.NodeImageVersion)
			}
		}
		// The window opens (it started an hour ago).
		if _, err := windows.CreateOrUpdate(ctx, group, name, "aksManagedNodeOSUpgradeSchedule", dailyWindow(time.Now().Add(-time.Hour)), nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the run to succeed", func() (bool, string) {
			s.getJSON(t, runsPath, &runs)
			return runs.Value[0].Properties.Status == "Succeeded", fmt.Sprint(runs.Value[0].Properties)
		})
		for _, n := range poolNodes(t, cs, "work") {
			if n.Labels[imageLabel] != image {
				t.Errorf("node %s on %s after the run, want %s", n.Name, n.Labels[imageLabel], image)
			}
		}
	})

	t.Run("SecurityPatch patches the image the nodes have", func(t *testing.T) {
		before := poolNodes(t, cs, "work")[0].Labels[imageLabel]
		setChannel(t, c, group, name, armcontainerservice.NodeOSUpgradeChannelSecurityPatch)
		s.publish(t, "Ubuntu2404")
		var runs upgradeRuns
		eventually(t, 2*time.Minute, "the SecurityPatch run to succeed", func() (bool, string) {
			s.getJSON(t, runsPath, &runs)
			run := runs.Value[0].Properties
			return run.Channel == "SecurityPatch" && run.Status == "Succeeded", fmt.Sprint(run)
		})
		patched := regexp.MustCompile("^" + regexp.QuoteMeta(before) + `-\d{4}\.\d{2}\.\d{2}$`)
		for _, n := range poolNodes(t, cs, "work") {
			if !patched.MatchString(n.Labels[imageLabel]) || n.Spec.Unschedulable {
				t.Errorf("node %s on %s, want %s with a patch date", n.Name, n.Labels[imageLabel], before)
			}
		}
	})

	t.Run("a run survives a kill of serve", func(t *testing.T) {
		setChannel(t, c, group, name, armcontainerservice.NodeOSUpgradeChannelNodeImage)
		image := s.publish(t, "Ubuntu2404")
		var runs upgradeRuns
		s.killWhen(t, "node OS run under way", 2*time.Minute, func() bool {
			s.getJSON(t, runsPath, &runs)
			return len(runs.Value) > 0 && runs.Value[0].Properties.Status == "InProgress" && len(runs.Value[0].Properties.Pools) > 0 && runs.Value[0].Properties.Pools[0].To == image
		})
		c = newClients(t, s)
		eventually(t, 2*time.Minute, "the run to succeed after the restart", func() (bool, string) {
			s.getJSON(t, runsPath, &runs)
			return runs.Value[0].Properties.Status == "Succeeded", fmt.Sprint(runs.Value[0].Properties)
		})
		settled(t, cs, "system", 1)
		settled(t, cs, "work", 2)
		for _, n := range append(poolNodes(t, cs, "system"), poolNodes(t, cs, "work")...) {
			if n.Labels[imageLabel] != image {
				t.Errorf("node %s on %s after the run, want %s", n.Name, n.Labels[imageLabel], image)
			}
		}
	})

	t.Run("Unmanaged: reboots one node at a time, drained", func(t *testing.T) {
		setChannel(t, c, group, name, armcontainerservice.NodeOSUpgradeChannelUnmanaged)
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 3 {
			t.Fatalf("nodes: %d %v", len(nodes.Items), err)
		}
		// A lock left by a node that is gone must not hold the reboots up.
		gone := "aks-gone-00000000-vmss000099"
		leases := cs.CoordinationV1().Leases("kube-system")
		lease, err := leases.Get(ctx, "slipway-reboot-0", metav1.GetOptions{})
		if err == nil {
			lease.Spec.HolderIdentity = &gone
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		} else {
			_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "slipway-reboot-0"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &gone}}, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		boots, images := map[string]string{}, map[string]string{}
		for _, n := range nodes.Items {
			boots[n.Name], images[n.Name] = n.Status.NodeInfo.BootID, n.Labels[imageLabel]
		}
		// A new release under Unmanaged is patched in place by the node's
		// OS: the image stays, the node asks for a reboot.
		started := time.Now().Add(-time.Second)
		s.publish(t, "Ubuntu2404")
		var runs struct {
			Value []struct {
				Properties struct{ Status, Message string }
			}
		}
		eventually(t, 2*time.Minute, "an Unmanaged run that patched every node", func() (bool, string) {
			s.getJSON(t, fmt.Sprintf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s/nodeOSUpgradeRuns?api-version=2025-10-01", s.conn.SubscriptionID, group, name), &runs)
			for _, r := range runs.Value {
				if strings.HasPrefix(r.Properties.Message, "Patched 3 nodes") && r.Properties.Status == "Succeeded" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v", runs.Value)
		})
		maxCordoned := 0
		// The bound is for a loaded CI machine: with every test's clusters
		// running, a drain can wait minutes on a PodDisruptionBudget for a
		// replacement pod to turn Ready. What the test checks is the
		// order (one node at a time, drained), not the speed.
		eventually(t, 5*time.Minute, "every node rebooted", func() (bool, string) {
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			cordoned, pending := 0, 0
			for _, n := range nodes.Items {
				if n.Spec.Unschedulable {
					cordoned++
				}
				if _, ok := n.Annotations[compute.RebootRequiredAnnotation]; ok || n.Status.NodeInfo.BootID == boots[n.Name] || !isReady(&n) || n.Spec.Unschedulable {
					pending++
				}
			}
			maxCordoned = max(maxCordoned, cordoned)
			return pending == 0, fmt.Sprintf("%d nodes not yet rebooted", pending)
		})
		if maxCordoned > 1 {
			t.Errorf("%d nodes were cordoned at once; reboots must go one at a time", maxCordoned)
		}
		after, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range after.Items {
			if n.Labels[imageLabel] != images[n.Name] {
				t.Errorf("node %s moved from image %s to %s; Unmanaged patches in place", n.Name, images[n.Name], n.Labels[imageLabel])
			}
		}
		events, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Only this subtest's events: earlier subtests drained the same
		// nodes for their upgrades.
		reboots, drains := map[string]bool{}, map[string]bool{}
		for _, e := range events.Items {
			if e.FirstTimestamp.Time.Before(started) {
				continue
			}
			switch {
			case e.Reason == "Reboot":
				reboots[e.InvolvedObject.Name] = true
			case e.Reason == "Drain" && strings.Contains(e.Message, "before its reboot"):
				drains[e.InvolvedObject.Name] = true
			}
		}
		if len(reboots) != 3 || len(drains) != 3 {
			t.Errorf("reboot events for %d nodes, drain events for %d; want 3 each", len(reboots), len(drains))
		}
	})
}

func setChannel(t testing.TB, c clients, group, name string, ch armcontainerservice.NodeOSUpgradeChannel) {
	t.Helper()
	ctx := context.Background()
	mc, err := c.clusters.Get(ctx, group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	mc.Properties.AutoUpgradeProfile = &armcontainerservice.ManagedClusterAutoUpgradeProfile{NodeOSUpgradeChannel: to.Ptr(ch)}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, mc.ManagedCluster, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
}

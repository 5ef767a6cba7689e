package e2e

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"k8s.io/client-go/kubernetes"

	"github.com/slipway-dev/slipway/internal/timing"
)

// BenchmarkNodeImageUpgrade times node image upgrades of pools of 10, 100
// and 500 Managed-disk nodes at maxSurge 1, 33% and 100%, each running one
// pod per node, and prints each next to the least the timing model allows:
// the surge nodes' provisioning plus one reimage per batch (batches =
// nodes / surge, rounded up). Run it with a time scale at which the
// simulated VMs, not Slipway, set the pace:
//
//	make bench-upgrade   (SLIPWAY_E2E_TIME_SCALE=0.01)
func BenchmarkNodeImageUpgrade(b *testing.B) {
	t := b // helpers fail the benchmark, not a throwaway T
	s := serve(t)
	model := timingModel(b)
	scale := model.Scale
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "upgradebench-rg", "upgradebench-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		b.Fatal(err)
	}
	cs := adminClient(t, c, group, name)
	fmt.Printf("time scale %g: reimage %.2fs, new node %.2fs (Managed OS disk)\n", scale, model.Reimage(armcontainerservice.OSDiskTypeManaged).Seconds(), model.NodeReady(armcontainerservice.OSDiskTypeManaged).Seconds())
	fmt.Printf("%6s %8s %6s %8s %9s %9s %6s\n", "nodes", "maxSurge", "surge", "batches", "wall s", "min s", "ratio")
	sizes := []int32{10, 100, 500}
	if v := os.Getenv("SLIPWAY_BENCH_UPGRADE_SIZES"); v != "" { // e.g. "10,100"
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, int32(n))
		}
	}
	for i := 0; i < b.N; i++ {
		for _, size := range sizes {
			for _, r := range measureUpgrade(b, s, c, cs, group, name, size, []string{"1", "33%", "100%"}) {
				fmt.Printf("%6d %8s %6d %8d %9.1f %9.1f %6.2f\n", r.nodes, r.maxSurge, r.surge, r.batches, r.wall.Seconds(), r.least.Seconds(), r.ratio())
				b.ReportMetric(r.ratio(), fmt.Sprintf("ratio-%d-nodes-surge-%s", r.nodes, r.maxSurge))
			}
		}
	}
}

// upgradeRun is one timed node image upgrade of a pool, next to the least
// time the timing model allows for it.
type upgradeRun struct {
	nodes, surge, batches int
	maxSurge              string
	wall, least           time.Duration
}

func (r upgradeRun) ratio() float64 { return r.wall.Seconds() / r.least.Seconds() }

// measureUpgrade adds a pool of size Managed-disk nodes to the cluster,
// runs one pod on each node, and times a node image upgrade at each of the
// maxSurge values, from the POST to the pool's Succeeded on the new image.
// The least time is the surge nodes' provisioning plus one reimage per
// batch (batches = nodes / surge, rounded up). The pool is deleted after.
func measureUpgrade(b *testing.B, s *server, c clients, cs kubernetes.Interface, group, name string, size int32, surges []string) []upgradeRun {
	ctx := context.Background()
	model := timingModel(b)
	poolName := fmt.Sprintf("b%d", size)
	created, err := c.pools.BeginCreateOrUpdate(ctx, group, name, poolName, armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
		Count: to.Ptr(size), VMSize: to.Ptr("Standard_DS2_v2"), Mode: to.Ptr(armcontainerservice.AgentPoolModeUser)}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := created.PollUntilDone(ctx, poll); err != nil {
		b.Fatal(err)
	}
	workload(b, cs, poolName, size)
	var runs []upgradeRun
	for _, surge := range surges {
		setUpgradeSettings(b, c, group, name, poolName, &armcontainerservice.AgentPoolUpgradeSettings{MaxSurge: to.Ptr(surge)})
		image := s.publish(b, "Ubuntu")
		start := time.Now()
		if _, err := c.pools.BeginUpgradeNodeImageVersion(ctx, group, name, poolName, nil); err != nil {
			b.Fatal(err)
		}
		for {
			got, err := c.pools.Get(ctx, group, name, poolName, nil)
			if err != nil {
				b.Fatal(err)
			}
			if state := *got.Properties.ProvisioningState; state != "UpgradingNodeImageVersion" {
				if state != "Succeeded" || *got.Properties.NodeImageVersion != image {
					b.Fatalf("upgrade of %s ended %s on %s", poolName, state, *got.Properties.NodeImageVersion)
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		r := upgradeRun{nodes: int(size), maxSurge: surge, wall: time.Since(start)}
		r.surge = surgeCount(surge, r.nodes)
		r.batches = (r.nodes + r.surge - 1) / r.surge
		r.least = model.NodeReady(armcontainerservice.OSDiskTypeManaged) + time.Duration(r.batches)*model.Reimage(armcontainerservice.OSDiskTypeManaged)
		runs = append(runs, r)
	}
	del, err := c.pools.BeginDelete(ctx, group, name, poolName, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, poll); err != nil {
		b.Fatal(err)
	}
	return runs
}

// timingModel is the VM timing model of the e2e server's time scale
// (SLIPWAY_E2E_TIME_SCALE, as serve passes it).
func timingModel(t testing.TB) timing.Model {
	scale, err := strconv.ParseFloat(cmp.Or(os.Getenv("SLIPWAY_E2E_TIME_SCALE"), "0.005"), 64)
	if err != nil {
		t.Fatal(err)
	}
	return timing.Model{Scale: scale}
}

// surgeCount is maxSurge resolved against a pool's size, as AKS does.
func surgeCount(v string, size int) int {
	if pct, ok := cutPercent(v); ok {
		return int(math.Ceil(pct * float64(size) / 100))
	}
	n, _ := strconv.Atoi(v)
	return n
}

func cutPercent(v string) (float64, bool) {
	if len(v) == 0 || v[len(v)-1] != '%' {
		return 0, false
	}
	f, err := strconv.ParseFloat(v[:len(v)-1], 64)
	return f, err == nil
}

// workload runs one pod per node of a pool, so that drains have pods to
// move.
func workload(b *testing.B, cs kubernetes.Interface, pool string, replicas int32) {
	if err := deploy(context.Background(), cs, "bench-"+pool, pool, replicas); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if n, err := readyPods(context.Background(), cs, "app=bench-"+pool); err == nil && n == int(replicas) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatalf("the %d pods of %s did not become Ready", replicas, pool)
}

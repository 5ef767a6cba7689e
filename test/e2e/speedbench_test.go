package e2e

import (
	"fmt"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

// BenchmarkSpeed measures issue 18's five figures in one run against one
// slipway serve, each printed next to its reference from the same run:
//
//   - GET managedCluster with 16 clients at once, next to the cluster's own
//     kube-apiserver answering a GET of one ConfigMap the same way;
//   - PUT of a 3-node cluster to Succeeded as the SDK sees it (from a spare
//     control plane), next to a create that must start its control plane;
//   - one pool 0 -> 1000 nodes, PUT to all Ready, in nodes per second;
//   - the CPU of serve and all it runs with those 1000 nodes idle, next to
//     the same cluster with the pool empty;
//   - node image upgrades of 100 nodes at maxSurge 33% and 100%, next to the
//     timing model's least time for them;
//
// and serve's resident memory at 1000 nodes. Each figure's count is fixed
// (5 creates, 3000 GETs, one scale, one upgrade each), so run it once:
//
//	make bench-speed
func BenchmarkSpeed(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	model := timingModel(b)
	for i := 0; i < b.N; i++ {
		arm, kube := measureGet(b, s, c, 3000)
		create := measureCreate(b, s, c, 5, 3)
		scale := measureScale(b, s, c, "speed-aks", []int32{1000, 0}, 1000)
		upgrades := measureUpgrade(b, s, c, adminClient(b, c, "scale-rg", "speed-aks"), "scale-rg", "speed-aks", 100, []string{"33%", "100%"})

		fmt.Printf("\nSlipway speed at time scale %g (a Managed node boots in %.2f s); references from the same run\n", model.Scale, model.NodeReady(armcontainerservice.OSDiskTypeManaged).Seconds())
		row := func(figure string, value float64, unit, reference string, ref float64, refUnit string) {
			if ref <= 0 { // a figure with no reference: no ratio either
				fmt.Printf("%-48s %9.3g %-8s\n", figure, value, unit)
				return
			}
			fmt.Printf("%-48s %9.3g %-8s %-44s %9.3g %-6s %6.2f\n", figure, value, unit, reference, ref, refUnit, value/ref)
		}
		fmt.Printf("%-48s %18s %-44s %16s %6s\n", "figure", "Slipway", "reference", "", "ratio")
		row("GET managedCluster, 16 clients, p99", percentile(arm, 99), "ms", "kube-apiserver GET of a ConfigMap, p99", percentile(kube, 99), "ms")
		row("GET managedCluster, 16 clients, p50", percentile(arm, 50), "ms", "kube-apiserver GET of a ConfigMap, p50", percentile(kube, 50), "ms")
		row("PUT 3-node cluster to Succeeded, SDK, median", percentile(create.sdk, 50), "s", "a create that starts its control plane", percentile(create.cold, 50), "s")
		row("  the same, seen by a GET every 50 ms", percentile(create.byGET, 50), "s", "  the same, by a GET every 50 ms", percentile(create.coldByGET, 50), "s")
		up := scale.steps[0]
		row("pool 0 -> 1000 nodes Ready", up.nodesPerSec(), "nodes/s", "issue 18's goal", 200, "nodes/s")
		row("CPU per 1000 idle nodes (all processes)", scale.perThousand(), "cores", "issue 18's goal", 0.15, "cores")
		row("  CPU of all processes, the pool empty", scale.emptyCores, "cores", "", 0, "")
		for _, r := range upgrades {
			row(fmt.Sprintf("node image upgrade, %d nodes, maxSurge %s", r.nodes, r.maxSurge), r.wall.Seconds(), "s", "the timing model's least time", r.least.Seconds(), "s")
		}
		row("serve RSS at 1000 nodes", scale.serveRSSMiB, "MiB", "", 0, "")

		b.ReportMetric(percentile(arm, 99), "ms-p99")
		b.ReportMetric(percentile(kube, 99), "kube-ms-p99")
		b.ReportMetric(percentile(create.sdk, 50), "s-to-Succeeded-p50")
		b.ReportMetric(percentile(create.cold, 50), "cold-s-to-Succeeded-p50")
		b.ReportMetric(up.nodesPerSec(), "nodes/s-0-to-1000")
		scale.report(b)
		for _, r := range upgrades {
			b.ReportMetric(r.ratio(), fmt.Sprintf("ratio-%d-nodes-surge-%s", r.nodes, r.maxSurge))
		}
	}
}

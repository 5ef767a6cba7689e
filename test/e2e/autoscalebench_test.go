package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-dev/slipway/internal/timing"
)

// BenchmarkAutoscaleUp measures, at the default time scale, how long pods
// that fit no node take from Pending to Running on nodes the autoscaler
// adds to a pool at zero (median of b.N, each round three pods, three new
// nodes), against the timing model's time for a node to be Ready. The
// pool goes back to zero between rounds.
//
//	make bench-autoscale
func BenchmarkAutoscaleUp(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group = "scalebench-rg"
	name := fmt.Sprintf("scalebench-%d", time.Now().UnixNano()%1e9)
	// AKS's default scan interval (10 s) would be most of the figure: the
	// benchmark scans every second and lets nodes go at once.
	autoscaledCluster(b, s, c, group, name, "1s")
	b.Cleanup(func() {
		if p, err := c.clusters.BeginDelete(ctx, group, name, nil); err == nil {
			p.PollUntilDone(ctx, poll)
		}
	})
	cs := adminClient(b, c, group, name)
	var secs []float64
	b.ResetTimer()
	for i := range b.N {
		app := fmt.Sprintf("round-%d", i)
		start := time.Now()
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, hungry(app, "burst", 3), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		eventually(b, 2*time.Minute, "3 pods running", func() (bool, string) {
			n, err := runningPods(ctx, cs, app)
			return err == nil && n == 3, fmt.Sprint(n, err)
		})
		secs = append(secs, time.Since(start).Seconds())
		b.StopTimer()
		if err := cs.AppsV1().Deployments("default").Delete(ctx, app, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		eventually(b, 2*time.Minute, "the pool back at 0", func() (bool, string) {
			got, err := c.pools.Get(ctx, group, name, "burst", nil)
			return err == nil && *got.Properties.Count == 0 && len(poolNodes(b, cs, "burst")) == 0, fmt.Sprint(err)
		})
		b.StartTimer()
	}
	b.StopTimer()
	node := timing.Model{Scale: timing.DefaultScale}.NodeReady(armcontainerservice.OSDiskTypeManaged)
	b.ReportMetric(percentile(secs, 50), "s-pending-to-running-p50")
	b.ReportMetric(node.Seconds(), "s-model-node-ready")
	b.Logf("pending → running on new nodes: %v s (model node time %v, scan interval 1 s)", secs, node)
}

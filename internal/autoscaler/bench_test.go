package autoscaler

import (
	"context"
	"fmt"
	"io"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// BenchmarkRunOnce is one autoscaler loop over a big cluster: nodes full
// of running pods, and pending pods of a few Deployments that need new
// nodes. The figure is the CPU one loop takes.
func BenchmarkRunOnce(b *testing.B) {
	// The loop logs each scale-up; the figures are what matters here.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	for _, size := range []struct{ nodes, pending int }{{20, 100}, {100, 500}, {1000, 5000}} {
		b.Run(fmt.Sprintf("%d nodes, %d pending pods", size.nodes, size.pending), func(b *testing.B) {
			pools := &fakePools{pools: []Pool{
				{Name: "user", ScaleSet: "aks-user-12345678-vmss", Enabled: true, Max: 1000, Count: size.nodes, Template: template("user")},
				{Name: "spot", ScaleSet: "aks-spot-12345678-vmss", Enabled: true, Max: 1000, Template: template("spot")},
			}}
			var objs []runtime.Object
			for i := range size.nodes {
				n := node("user", i)
				objs = append(objs, n)
				// Each node nearly full.
				p := pendingPod(fmt.Sprintf("running-%d", i), "1800m", nil)
				p.Spec.NodeName, p.Status = n.Name, corev1.PodStatus{Phase: corev1.PodRunning}
				objs = append(objs, p)
			}
			for i := range size.pending {
				p := pendingPod(fmt.Sprintf("pending-%d", i), "500m", nil)
				app := fmt.Sprint("app-", i%5)
				p.Labels = map[string]string{"app": app}
				p.OwnerReferences[0].Name, p.OwnerReferences[0].UID = app, types.UID(app)
				objs = append(objs, p)
			}
			a, _ := newTestAutoscaler(b, pools, objs...)
			b.ResetTimer()
			for range b.N {
				pools.mu.Lock()
				pools.pools[0].Count, pools.pools[1].Count = size.nodes, 0
				pools.resized = nil
				pools.mu.Unlock()
				a.lastScaleUp = metav1.Time{}.Time
				if _, err := a.RunOnce(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if len(pools.resized) != 1 {
				b.Fatalf("resized %v", pools.resized)
			}
			b.Logf("%s", pools.resized[0])
		})
	}
}

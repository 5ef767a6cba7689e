package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// BenchmarkCreateCluster measures seconds from the PUT of a cluster with
// three nodes to its operation's Succeeded, as a client polling every
// second sees it (the SDK's shortest poll).
//
//	make bench-arm
func BenchmarkCreateCluster(b *testing.B) {
	// Helpers take the benchmark itself: a helper's failure fails it,
	// rather than ending it early with PASS and half a table.
	s := serve(b)
	t := b
	c := newClients(t, s)
	ctx := context.Background()
	const group = "bench-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	var secs []float64
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-%d-%d", time.Now().Unix(), i)
		start := time.Now()
		p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 3)), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			b.Fatal(err)
		}
		secs = append(secs, time.Since(start).Seconds())
		b.StopTimer()
		d, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err == nil {
			_, err = d.PollUntilDone(ctx, poll)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(percentile(secs, 50), "s-to-Succeeded-p50")
}

// BenchmarkGetManagedCluster measures GET managedCluster latency with 16
// clients at once, and reports its median and 99th percentile.
func BenchmarkGetManagedCluster(b *testing.B) {
	// Helpers take the benchmark itself: a helper's failure fails it,
	// rather than ending it early with PASS and half a table.
	s := serve(b)
	t := b
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "bench-get-rg", "bench-get"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := c.clusters.Get(ctx, group, name, nil); err != nil {
		p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), pool("user", armcontainerservice.AgentPoolModeUser, 2)), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	var lat []float64
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []float64
		for pb.Next() {
			start := time.Now()
			if _, err := c.clusters.Get(ctx, group, name, nil); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, float64(time.Since(start).Microseconds())/1000)
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.ReportMetric(percentile(lat, 50), "ms-p50")
	b.ReportMetric(percentile(lat, 99), "ms-p99")
}

func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	sorted := append([]float64(nil), vs...)
	sort.Float64s(sorted)
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// BenchmarkScalePool scales a User pool 0 -> 100 -> 1000 -> 0 and reports
// nodes per second for each step (to all nodes Ready, or all gone), and the
// resident memory of slipway serve while it keeps 1000 simulated nodes.
//
//	make bench-scale
func BenchmarkScalePool(b *testing.B) {
	// Helpers take the benchmark itself: a helper's failure fails it,
	// rather than ending it early with PASS and half a table.
	s := serve(b)
	t := b
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "scale-rg", "scale-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	big := pool("big", armcontainerservice.AgentPoolModeUser, 0)
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), big), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		from := int32(0)
		for _, to := range []int32{100, 1000, 0} {
			start := time.Now()
			scaleB(b, c, group, name, "big", to)
			secs := time.Since(start).Seconds()
			delta := to - from
			if delta < 0 {
				delta = -delta
			}
			b.ReportMetric(float64(delta)/secs, fmt.Sprintf("nodes/s-%d-to-%d", from, to))
			if to == 1000 {
				b.ReportMetric(float64(processRSS(s.cmd.Process.Pid))/(1<<20), "serve-RSS-MiB-at-1000-nodes")
			}
			from = to
		}
	}
}

func scaleB(b *testing.B, c clients, group, cluster, name string, count int32) {
	ctx := context.Background()
	got, err := c.pools.Get(ctx, group, cluster, name, nil)
	if err != nil {
		b.Fatal(err)
	}
	got.Properties.Count = to.Ptr(count)
	p, err := c.pools.BeginCreateOrUpdate(ctx, group, cluster, name, got.AgentPool, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Second}); err != nil {
		b.Fatal(err)
	}
}

// processRSS reads a process's resident set size from /proc.
func processRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

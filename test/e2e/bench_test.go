package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

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
	s := serve(&testing.T{})
	t := &testing.T{}
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
	s := serve(&testing.T{})
	t := &testing.T{}
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

package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
	// create times one create to Succeeded as the SDK's poller sees it
	// (polling every second, as ARM's Retry-After says) and as a GET every
	// 50 ms sees it, and deletes the cluster untimed.
	n := 0
	create := func(mc armcontainerservice.ManagedCluster) (sdk, server float64) {
		n++
		name := fmt.Sprintf("bench-%d-%d", time.Now().Unix(), n)
		start := time.Now()
		p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, mc, nil)
		if err != nil {
			b.Fatal(err)
		}
		seen := make(chan float64, 1)
		go func() {
			for {
				got, err := c.clusters.Get(ctx, group, name, nil)
				if err == nil && got.Properties != nil && got.Properties.ProvisioningState != nil && *got.Properties.ProvisioningState == "Succeeded" {
					seen <- time.Since(start).Seconds()
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			b.Fatal(err)
		}
		sdk = time.Since(start).Seconds()
		server = <-seen
		b.StopTimer()
		d, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err == nil {
			_, err = d.PollUntilDone(ctx, poll)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return sdk, server
	}
	// Each timed create finds a spare control plane ready (serve keeps
	// one, and starts another after each claim): what a user making
	// clusters a few seconds apart sees.
	var secs, serverSecs []float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s.waitSpare(b)
		b.StartTimer()
		sdk, server := create(newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 3)))
		secs, serverSecs = append(secs, sdk), append(serverSecs, server)
	}
	b.StopTimer()
	// The same run's reference: creates no spare fits (another service
	// CIDR, which is an API server flag), so each starts its control
	// plane, as every create did before spares.
	var cold, coldServer []float64
	for range 3 {
		mc := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 3))
		mc.Properties.NetworkProfile = &armcontainerservice.NetworkProfile{ServiceCidr: to.Ptr("10.96.0.0/16"), DNSServiceIP: to.Ptr("10.96.0.10")}
		sdk, server := create(mc)
		cold, coldServer = append(cold, sdk), append(coldServer, server)
	}
	b.Logf("from a spare: SDK %.2f s, GET every 50 ms %.2f s; cold: SDK %.2f s, GET %.2f s", secs, serverSecs, cold, coldServer)
	b.ReportMetric(percentile(secs, 50), "s-to-Succeeded-p50")
	b.ReportMetric(percentile(serverSecs, 50), "s-to-Succeeded-by-GET-p50")
	b.ReportMetric(percentile(cold, 50), "cold-s-to-Succeeded-p50")
}

// BenchmarkGetManagedCluster measures GET managedCluster latency with 16
// clients at once, and reports its median and 99th percentile next to the
// same run's reference: the cluster's kube-apiserver answering a ConfigMap
// GET to 16 client-go clients at once (kube-ms-*).
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
	b.ResetTimer()
	lat := concurrently(b, 16, b.N, func() error {
		_, err := c.clusters.Get(ctx, group, name, nil)
		return err
	})
	b.StopTimer()
	b.ReportMetric(percentile(lat, 50), "ms-p50")
	b.ReportMetric(percentile(lat, 99), "ms-p99")

	// The same run's reference: the cluster's own kube-apiserver serving a
	// GET of one ConfigMap to as many clients at once, as many times.
	cfg := adminConfig(t, c, group, name)
	cfg.QPS = -1 // no client-side limit (client-go would allow 5 a second): the server is measured
	cs := kubernetes.NewForConfigOrDie(cfg)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bench-get", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	ref := concurrently(b, 16, b.N, func() error {
		_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "bench-get", metav1.GetOptions{})
		return err
	})
	b.ReportMetric(percentile(ref, 50), "kube-ms-p50")
	b.ReportMetric(percentile(ref, 99), "kube-ms-p99")
}

// concurrently makes n calls from clients goroutines at once (16 on 2
// cores: more clients than cores, as a busy server sees) and returns each
// call's latency in milliseconds.
func concurrently(b *testing.B, clients, n int, call func() error) []float64 {
	var mu sync.Mutex
	var lat []float64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var mine []float64
			for next.Add(1) <= int64(n) {
				start := time.Now()
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, float64(time.Since(start).Microseconds())/1000)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lat
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

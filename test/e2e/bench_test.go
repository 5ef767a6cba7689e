package e2e

import (
	"context"
	"fmt"
	"math"
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

	"github.com/slipway-dev/slipway/internal/bench"
)

// BenchmarkCreateCluster measures seconds from the PUT of a cluster with
// three nodes to its operation's Succeeded, as a client polling every
// second sees it (the SDK's shortest poll).
//
//	make bench-arm
func BenchmarkCreateCluster(b *testing.B) {
	s := serve(b)
	f := measureCreate(b, s, newClients(b, s), b.N, 3)
	b.Logf("from a spare: SDK %.2f s, GET every 50 ms %.2f s; cold: SDK %.2f s, GET %.2f s", f.sdk, f.byGET, f.cold, f.coldByGET)
	b.ReportMetric(percentile(f.sdk, 50), "s-to-Succeeded-p50")
	b.ReportMetric(percentile(f.byGET, 50), "s-to-Succeeded-by-GET-p50")
	b.ReportMetric(percentile(f.cold, 50), "cold-s-to-Succeeded-p50")
}

// createFigures are the seconds from creates' PUTs to Succeeded: as the
// SDK's poller sees it and as a GET every 50 ms does, for creates that
// find a spare control plane and for cold ones that start their own.
type createFigures struct{ sdk, byGET, cold, coldByGET []float64 }

// measureCreate times warm creates of a 3-node cluster, each finding a
// spare control plane ready (serve keeps one and starts another after each
// claim: what a user making clusters a few seconds apart sees), then the
// same run's reference: cold creates no spare fits (another service CIDR,
// an API server flag), each starting its control plane as every create did
// before spares. Each cluster is deleted untimed.
func measureCreate(b *testing.B, s *server, c clients, warm, cold int) createFigures {
	ctx := context.Background()
	const group = "bench-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
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
	var f createFigures
	for range warm {
		b.StopTimer()
		s.waitSpare(b)
		b.StartTimer()
		sdk, server := create(newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 3)))
		f.sdk, f.byGET = append(f.sdk, sdk), append(f.byGET, server)
	}
	b.StopTimer()
	for range cold {
		mc := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 3))
		mc.Properties.NetworkProfile = &armcontainerservice.NetworkProfile{ServiceCidr: to.Ptr("10.96.0.0/16"), DNSServiceIP: to.Ptr("10.96.0.10")}
		sdk, server := create(mc)
		f.cold, f.coldByGET = append(f.cold, sdk), append(f.coldByGET, server)
	}
	return f
}

// BenchmarkGetManagedCluster measures GET managedCluster latency with 16
// clients at once, and reports its median and 99th percentile next to the
// same run's reference: the cluster's kube-apiserver answering a ConfigMap
// GET to 16 client-go clients at once (kube-ms-*).
func BenchmarkGetManagedCluster(b *testing.B) {
	s := serve(b)
	b.ResetTimer()
	arm, kube := measureGet(b, s, newClients(b, s), b.N)
	b.ReportMetric(percentile(arm, 50), "ms-p50")
	b.ReportMetric(percentile(arm, 99), "ms-p99")
	b.ReportMetric(percentile(kube, 50), "kube-ms-p50")
	b.ReportMetric(percentile(kube, 99), "kube-ms-p99")
}

// measureGet makes n GETs of one managedCluster from 16 clients at once,
// then, as the same run's reference, n GETs of one ConfigMap from the
// cluster's own kube-apiserver by as many client-go clients, and returns
// both sets of latencies in milliseconds.
func measureGet(b *testing.B, s *server, c clients, n int) (arm, kube []float64) {
	ctx := context.Background()
	const group, name = "bench-get-rg", "bench-get"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := c.clusters.Get(ctx, group, name, nil); err != nil {
		b.StopTimer()
		p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), pool("user", armcontainerservice.AgentPoolModeUser, 2)), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	arm = concurrently(b, 16, n, func() error {
		_, err := c.clusters.Get(ctx, group, name, nil)
		return err
	})
	b.StopTimer()
	cfg := adminConfig(b, c, group, name)
	cfg.QPS = -1 // no client-side limit (client-go would allow 5 a second): the server is measured
	cs := kubernetes.NewForConfigOrDie(cfg)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bench-get", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	kube = concurrently(b, 16, n, func() error {
		_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "bench-get", metav1.GetOptions{})
		return err
	})
	return arm, kube
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
// nodes per second for each step (to all nodes Ready, or all gone), the
// resident memory of slipway serve while it keeps 1000 simulated nodes, and
// the CPU of serve and every process it runs with those nodes idle, next to
// the same with none.
//
//	make bench-scale
func BenchmarkScalePool(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	for i := 0; i < b.N; i++ {
		f := measureScale(b, s, c, "scale-aks", []int32{100, 1000, 0}, 1000)
		for _, st := range f.steps {
			b.ReportMetric(st.nodesPerSec(), fmt.Sprintf("nodes/s-%d-to-%d", st.from, st.to))
		}
		f.report(b)
	}
}

// scaleStep is one scale of a pool, timed from the PUT to all its nodes
// Ready (or gone).
type scaleStep struct {
	from, to int32
	secs     float64
}

func (st scaleStep) nodesPerSec() float64 {
	return math.Abs(float64(st.to-st.from)) / st.secs
}

// scaleFigures are a scale run's steps and, at the size idle was measured
// at, serve's resident memory and the CPU of serve's whole process tree
// (Slipway, the control planes, the datastore) with the nodes idle and,
// the same run's reference, with the pool empty.
type scaleFigures struct {
	steps                 []scaleStep
	idleNodes             int32
	idleCores, emptyCores float64
	serveRSSMiB           float64
}

// perThousand is the CPU that idle nodes add, per 1000 nodes.
func (f scaleFigures) perThousand() float64 {
	return (f.idleCores - f.emptyCores) * 1000 / float64(f.idleNodes)
}

func (f scaleFigures) report(b *testing.B) {
	b.ReportMetric(f.serveRSSMiB, fmt.Sprintf("serve-RSS-MiB-at-%d-nodes", f.idleNodes))
	b.ReportMetric(f.emptyCores, "idle-cores-empty-pool")
	b.ReportMetric(f.idleCores, fmt.Sprintf("idle-cores-at-%d-nodes", f.idleNodes))
	b.ReportMetric(f.perThousand(), "idle-cores-per-1000-nodes")
}

// idleWindow is how long the idle CPU is measured over.
const idleWindow = 30 * time.Second

// measureScale makes a cluster with a system node and an empty User pool
// "big", measures the idle CPU of serve's process tree, scales big through
// each of steps, and at idleAt measures the idle CPU again once the nodes'
// DaemonSet pods are all Ready.
func measureScale(b *testing.B, s *server, c clients, name string, steps []int32, idleAt int32) scaleFigures {
	ctx := context.Background()
	const group = "scale-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), pool("big", armcontainerservice.AgentPoolModeUser, 0)), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		b.Fatal(err)
	}
	cs := adminClient(b, c, group, name)
	pid := s.cmd.Process.Pid
	f := scaleFigures{idleNodes: idleAt}
	settle(b, cs)
	f.emptyCores = treeCores(pid)
	from := int32(0)
	for _, to := range steps {
		start := time.Now()
		scaleB(b, c, group, name, "big", to)
		f.steps = append(f.steps, scaleStep{from: from, to: to, secs: time.Since(start).Seconds()})
		fmt.Printf("big %d -> %d nodes: %.1f s\n", from, to, time.Since(start).Seconds())
		if to == idleAt {
			f.serveRSSMiB = float64(processRSS(pid)) / (1 << 20)
			settle(b, cs)
			f.idleCores = treeCores(pid)
			fmt.Printf("idle at %d nodes: %.3f cores (%.3f with the pool empty)\n", to, f.idleCores, f.emptyCores)
		}
		from = to
	}
	return f
}

// settle waits until every DaemonSet's pods are Ready on all its nodes (a
// new node's pods are what is left to do once it is Ready), then a few
// seconds more for the controllers' follow-up writes.
func settle(b *testing.B, cs kubernetes.Interface) {
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		list, err := cs.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		done := true
		for _, ds := range list.Items {
			if ds.Status.NumberReady != ds.Status.DesiredNumberScheduled || ds.Status.ObservedGeneration < ds.Generation {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("DaemonSets' pods not all Ready after 5 minutes")
		}
		time.Sleep(time.Second)
	}
	time.Sleep(10 * time.Second)
}

// treeCores is the CPU, in cores, that a process and its descendants use
// over idleWindow.
func treeCores(pid int) float64 {
	before := bench.TreeCPU(pid)
	time.Sleep(idleWindow)
	return (bench.TreeCPU(pid) - before) / idleWindow.Seconds()
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

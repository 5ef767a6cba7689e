// Package bench measures Slipway: how fast hosted control planes come up and
// how much memory they hold.
package bench

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/simnode"
)

// ClusterOptions configure the cluster benchmark.
type ClusterOptions struct {
	DataDir  string
	Clusters int
	Nodes    int
	// OwnEtcd gives each cluster an etcd of its own, as clusters made
	// before the shared datastore have, instead of the shared datastore.
	OwnEtcd bool
	// Settle is how long the clusters idle after the last one is up before
	// their memory is read; Window is the span their CPU is measured over.
	Settle, Window time.Duration
	Out            io.Writer
}

// ClusterResult is one cluster's figures.
type ClusterResult struct {
	ReadySeconds      float64 // create to /readyz ok
	NodesReadySeconds float64 // node registration to all nodes Ready
	// PSS counts pages shared between processes (the slipway binary's
	// code, mapped by every component of every cluster) in equal shares,
	// and adds the cluster's share of the datastore: the memory one more
	// cluster really costs. Read at idle, once every cluster is up.
	PSS          int64
	ComponentPSS map[string]int64
	// CPU is the cores the cluster's components used while idle.
	CPU          float64
	ComponentCPU map[string]float64
}

// Cluster creates o.Clusters control planes one after another, each with
// o.Nodes simulated nodes, and prints how long each took. Then, with all of
// them up and idle for o.Settle, it prints each one's memory and steady CPU
// and the totals: what a host running that many clusters carries.
func Cluster(ctx context.Context, o ClusterOptions) ([]ClusterResult, error) {
	o.Settle, o.Window = cmp.Or(o.Settle, 30*time.Second), cmp.Or(o.Window, 30*time.Second)
	opts := hosting.Options{DataDir: o.DataDir, Ports: hosting.PortRange{First: 20000, Last: 29997}}
	if !o.OwnEtcd {
		ds, err := datastore.Start(ctx, datastore.Options{Dir: filepath.Join(o.DataDir, "datastore"), ClientPort: 29998, PeerPort: 29999})
		if err != nil {
			return nil, err
		}
		defer ds.Close()
		opts.Datastore = ds
	}
	host, err := hosting.New(opts)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	fmt.Fprintf(o.Out, "%-8s %10s %10s\n", "cluster", "ready s", "nodes s")
	results := make([]ClusterResult, o.Clusters)
	var clusters []*hosting.Cluster
	for i := range o.Clusters {
		start := time.Now()
		c, err := host.Create(ctx, hosting.ClusterSpec{ID: fmt.Sprintf("bench-%d-%d", time.Now().Unix(), i)})
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
		r := &results[i]
		r.ReadySeconds = time.Since(start).Seconds()
		nodesStart := time.Now()
		if err := registerAndWait(ctx, c, o.Nodes); err != nil {
			return nil, err
		}
		r.NodesReadySeconds = time.Since(nodesStart).Seconds()
		fmt.Fprintf(o.Out, "%-8d %10.2f %10.2f\n", i+1, r.ReadySeconds, r.NodesReadySeconds)
	}
	fmt.Fprintf(o.Out, "%-8s %10.2f %10.2f\n", "median",
		median(results, func(r ClusterResult) float64 { return r.ReadySeconds }),
		median(results, func(r ClusterResult) float64 { return r.NodesReadySeconds }))

	fmt.Fprintf(o.Out, "\nidling %s, then CPU over %s\n", o.Settle, o.Window)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.Settle):
	}
	var datastorePID int
	if opts.Datastore != nil {
		datastorePID = opts.Datastore.Process().Status().PID
	}
	// The components' processes, read once: Health probes the API server,
	// which would count in the window.
	pids := make([]map[string]int, len(clusters))
	cpuBefore := make([]map[string]float64, len(clusters))
	for i, c := range clusters {
		pids[i], cpuBefore[i] = map[string]int{}, map[string]float64{}
		for _, s := range c.Health(ctx).Components {
			pids[i][s.Name] = s.PID
			cpuBefore[i][s.Name] = processCPU(s.PID)
		}
	}
	selfBefore, storeBefore := processCPU(os.Getpid()), processCPU(datastorePID)
	time.Sleep(o.Window)
	storeShare := readMemory(datastorePID).pss / int64(len(clusters))
	var totalPSS int64
	fmt.Fprintf(o.Out, "%-8s %10s %10s  %s\n", "cluster", "PSS MiB", "CPU cores", "per component: PSS MiB, CPU millicores")
	for i := range clusters {
		r := &results[i]
		r.ComponentPSS, r.ComponentCPU = map[string]int64{}, map[string]float64{}
		for name, pid := range pids[i] {
			r.ComponentPSS[name] = readMemory(pid).pss
			r.PSS += r.ComponentPSS[name]
			r.ComponentCPU[name] = (processCPU(pid) - cpuBefore[i][name]) / o.Window.Seconds()
			r.CPU += r.ComponentCPU[name]
		}
		if datastorePID != 0 {
			r.ComponentPSS["datastore share"] = storeShare
			r.PSS += storeShare
		}
		totalPSS += r.PSS
		fmt.Fprintf(o.Out, "%-8d %10.1f %10.3f  %s\n", i+1, mib(r.PSS), r.CPU, perComponent(r))
	}
	self, store := processCPU(os.Getpid())-selfBefore, processCPU(datastorePID)-storeBefore
	selfPSS := readMemory(os.Getpid()).pss
	fmt.Fprintf(o.Out, "%-8s %10.1f %10.3f\n", "median",
		median(results, func(r ClusterResult) float64 { return mib(r.PSS) }),
		median(results, func(r ClusterResult) float64 { return r.CPU }))
	clusterCPU := 0.0
	for _, r := range results {
		clusterCPU += r.CPU
	}
	fmt.Fprintf(o.Out, "total: %d clusters, %.0f MiB in their components and datastore, %.0f MiB in this process (the simulated kubelets); "+
		"%.3f cores: components %.3f, datastore %.3f, this process %.3f\n",
		len(clusters), mib(totalPSS), mib(selfPSS), clusterCPU+(self+store)/o.Window.Seconds(),
		clusterCPU, store/o.Window.Seconds(), self/o.Window.Seconds())
	for _, c := range host.List() {
		if err := host.Delete(ctx, c.ID()); err != nil {
			return results, err
		}
	}
	return results, nil
}

func registerAndWait(ctx context.Context, c *hosting.Cluster, n int) error {
	cfg, err := c.RESTConfig(hosting.Admin)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		err := c.Kubelets().Register(ctx, simnode.Node{
			Name:   fmt.Sprintf("node-%d", i),
			Labels: map[string]string{"kubernetes.io/os": "linux"},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("2"),
				corev1.ResourceMemory: resource.MustParse("7Gi"),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
		})
		if err != nil {
			return err
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil && countReady(nodes.Items) == n {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%d nodes not Ready after 2 minutes", n)
}

func countReady(nodes []corev1.Node) int {
	n := 0
	for _, node := range nodes {
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

func perComponent(r *ClusterResult) string {
	names := make([]string, 0, len(r.ComponentPSS))
	for n := range r.ComponentPSS {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		if cpu, ok := r.ComponentCPU[n]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f %.0f", n, mib(r.ComponentPSS[n]), 1000*cpu))
		} else {
			parts = append(parts, fmt.Sprintf("%s %.0f", n, mib(r.ComponentPSS[n])))
		}
	}
	return strings.Join(parts, ", ")
}

func median(rs []ClusterResult, f func(ClusterResult) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	return medianOf(vs)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

type memory struct{ rss, pss int64 }

// readMemory reads a process's resident and proportional set sizes from
// /proc/PID/smaps_rollup; zeros if the process is gone.
func readMemory(pid int) memory {
	var m memory
	if pid == 0 {
		return m
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "Rss:":
			m.rss = kb << 10
		case "Pss:":
			m.pss = kb << 10
		}
	}
	return m
}

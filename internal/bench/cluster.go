// Package bench measures Slipway: how fast hosted control planes come up and
// how much memory they hold.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/simnode"
)

// ClusterOptions configure the cluster benchmark.
type ClusterOptions struct {
	DataDir  string
	Clusters int
	Nodes    int
	Out      io.Writer
}

// ClusterResult is one cluster's figures.
type ClusterResult struct {
	ReadySeconds      float64 // create to /readyz ok
	NodesReadySeconds float64 // node registration to all nodes Ready
	ControlPlaneRSS   int64   // bytes, the four component processes
	// ControlPlanePSS counts pages shared between processes (the slipway
	// binary's code, mapped by every component of every cluster) in equal
	// shares: the memory one more cluster really costs.
	ControlPlanePSS int64
	ComponentPSS    map[string]int64
	KwokRSS         int64 // bytes, growth of this process while the cluster's simulated kubelets run
}

// Cluster creates o.Clusters control planes one after another, each with
// o.Nodes simulated nodes, and prints each one's figures and the medians.
// The clusters stay up until the end, so later ones are measured on a
// machine that already carries the earlier ones, as a real host would.
func Cluster(ctx context.Context, o ClusterOptions) ([]ClusterResult, error) {
	host, err := hosting.New(hosting.Options{DataDir: o.DataDir})
	if err != nil {
		return nil, err
	}
	defer host.Close()
	fmt.Fprintf(o.Out, "%-8s %10s %10s %10s %10s %10s  %s\n", "cluster", "ready s", "nodes s", "RSS MiB", "PSS MiB", "kwok MiB", "PSS per component (MiB)")
	var results []ClusterResult
	for i := 0; i < o.Clusters; i++ {
		rssBefore := selfRSS()
		start := time.Now()
		c, err := host.Create(ctx, hosting.ClusterSpec{ID: fmt.Sprintf("bench-%d-%d", time.Now().Unix(), i)})
		if err != nil {
			return results, err
		}
		r := ClusterResult{ReadySeconds: time.Since(start).Seconds()}
		nodesStart := time.Now()
		if err := registerAndWait(ctx, c, o.Nodes); err != nil {
			return results, err
		}
		r.NodesReadySeconds = time.Since(nodesStart).Seconds()
		// Let the components settle after start-up before reading memory.
		time.Sleep(5 * time.Second)
		r.ComponentPSS = map[string]int64{}
		for _, s := range c.Health(ctx).Components {
			m := readMemory(s.PID)
			r.ComponentPSS[s.Name] = m.pss
			r.ControlPlaneRSS += m.rss
			r.ControlPlanePSS += m.pss
		}
		runtime.GC()
		r.KwokRSS = max(0, selfRSS()-rssBefore)
		results = append(results, r)
		fmt.Fprintf(o.Out, "%-8d %10.2f %10.2f %10.1f %10.1f %10.1f  %s\n", i+1, r.ReadySeconds, r.NodesReadySeconds,
			mib(r.ControlPlaneRSS), mib(r.ControlPlanePSS), mib(r.KwokRSS), perComponent(r.ComponentPSS))
	}
	fmt.Fprintf(o.Out, "%-8s %10.2f %10.2f %10.1f %10.1f %10.1f\n", "median",
		median(results, func(r ClusterResult) float64 { return r.ReadySeconds }),
		median(results, func(r ClusterResult) float64 { return r.NodesReadySeconds }),
		median(results, func(r ClusterResult) float64 { return mib(r.ControlPlaneRSS) }),
		median(results, func(r ClusterResult) float64 { return mib(r.ControlPlanePSS) }),
		median(results, func(r ClusterResult) float64 { return mib(r.KwokRSS) }))
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

func perComponent(m map[string]int64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f", n, mib(m[n])))
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

func selfRSS() int64 { return readMemory(os.Getpid()).rss }

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

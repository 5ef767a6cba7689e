package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/controller"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/version"
)

// HealthOptions configure the health probe benchmark.
type HealthOptions struct {
	DataDir  string
	Clusters int
	Nodes    int
	// Interval is the time between two probes of a cluster; Window is
	// how long each measurement lasts; Rounds is how many pairs of
	// windows (probes off, probes on) are measured.
	Interval, Window time.Duration
	Rounds           int
	Out              io.Writer
}

// Health measures what Resource Health's probes cost: it runs o.Clusters
// idle clusters with their add-ons and o.Nodes simulated nodes, and
// measures the CPU time of Slipway and every control plane process over
// windows without probes and windows with every cluster probed each
// interval, as the health controller probes them. The difference, per
// cluster, is the probes' cost.
func Health(ctx context.Context, o HealthOptions) error {
	host, err := hosting.New(hosting.Options{DataDir: o.DataDir})
	if err != nil {
		return err
	}
	defer host.Close()
	var clusters []*hosting.Cluster
	for i := range o.Clusters {
		c, err := host.Create(ctx, hosting.ClusterSpec{ID: fmt.Sprintf("health-%d-%d", time.Now().Unix(), i)})
		if err != nil {
			return err
		}
		if err := registerAndWait(ctx, c, o.Nodes); err != nil {
			return err
		}
		cfg, err := c.RESTConfig(hosting.Admin)
		if err != nil {
			return err
		}
		dc, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return err
		}
		if err := addons.Apply(ctx, dc, addons.Spec{ServiceCIDR: hosting.DefaultServiceCIDR, PodCIDR: hosting.DefaultPodCIDR, APIServerFQDN: c.FQDN(),
			KubernetesVersion: version.Kubernetes, DiskCSIDriver: true, FileCSIDriver: true}); err != nil {
			return err
		}
		clusters = append(clusters, c)
		fmt.Fprintf(o.Out, "cluster %d of %d up\n", i+1, o.Clusters)
	}
	// Let start-up settle: the add-ons' pods, the controllers' first syncs.
	time.Sleep(o.Window)
	probes := 0
	var off, on []float64
	for round := range o.Rounds {
		idle := TreeCPU(os.Getpid())
		time.Sleep(o.Window)
		idle = TreeCPU(os.Getpid()) - idle
		busy := TreeCPU(os.Getpid())
		probes += probeFor(ctx, clusters, o.Interval, o.Window)
		busy = TreeCPU(os.Getpid()) - busy
		off, on = append(off, idle/o.Window.Seconds()), append(on, busy/o.Window.Seconds())
		fmt.Fprintf(o.Out, "round %d: %.3f cores without probes, %.3f with\n", round+1, off[round], on[round])
	}
	mOff, mOn := medianOf(off), medianOf(on)
	perCluster := (mOn - mOff) / float64(o.Clusters)
	fmt.Fprintf(o.Out, "median of %d rounds: %.3f cores idle, %.3f probed every %s; probes cost %.2f%% of a core per cluster (%d probes, %.1f ms of CPU each)\n",
		o.Rounds, mOff, mOn, o.Interval, 100*perCluster, probes, 1000*(mOn-mOff)*o.Window.Seconds()*float64(o.Rounds)/float64(max(probes, 1)))
	return nil
}

// probeFor probes every cluster once an interval for d, each on its own
// schedule as the controller's requeues spread them, and returns how many
// probes ran.
func probeFor(ctx context.Context, cs []*hosting.Cluster, interval, d time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			// Spread the clusters over the interval.
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval * time.Duration(i) / time.Duration(len(cs))):
			}
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				if _, _, err := controller.ProbeCluster(ctx, c, time.Now()); err == nil {
					mu.Lock()
					n++
					mu.Unlock()
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	wg.Wait()
	return n
}

// processCPU is the CPU time (user and system) of one process, from
// /proc; zero if it is gone.
func processCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, utime, stime, ok := parseStat(b)
	if !ok {
		return 0
	}
	return (utime + stime) / 100 // USER_HZ
}

// parseStat reads a /proc/PID/stat line's parent and CPU ticks.
func parseStat(b []byte) (ppid int, utime, stime float64, ok bool) {
	// The command name, in parentheses, may hold spaces.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(fields) < 13 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	utime, _ = strconv.ParseFloat(fields[11], 64)
	stime, _ = strconv.ParseFloat(fields[12], 64)
	return ppid, utime, stime, true
}

// TreeCPU is the CPU seconds (user and system) of a process and all its
// descendants alive now, from /proc: for slipway serve, every control plane
// process and the datastore with it.
func TreeCPU(root int) float64 {
	children := map[int][]int{}
	ticks := map[int]float64{}
	stats, _ := os.ReadDir("/proc")
	for _, e := range stats {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		ppid, utime, stime, ok := parseStat(b)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		ticks[pid] = utime + stime
	}
	total := 0.0
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		total += ticks[pid]
		stack = append(stack, children[pid]...)
	}
	return total / 100 // USER_HZ
}

func medianOf(vs []float64) float64 {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

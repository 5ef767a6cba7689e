package components

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"time"
)

// BusyGOGCEnv names the GOGC a component runs at while it is busy; its
// GOGC environment variable is the one it runs at while idle.
//
// A hosted API server runs at GOGC=25 for density: its idle heap is
// mostly caches, and a low GOGC keeps an idle cluster ~25 MiB smaller.
// Under a 1,000-node scale-out the same setting spent 40% of the API
// server's CPU in the garbage collector (a CPU profile: gcAssistAlloc and
// the background mark workers), on a machine whose two cores the whole
// control plane shares; with those 1,000 nodes idle, renewing their leases
// 100 times a second, it still spent 43%. So the collector is tuned by
// load: a process that allocates its live heap's worth within a second, or
// whose collector uses more than gcBusyCPU, is busy and collects at the
// busy GOGC. The collector's cost per byte allocated goes as 1/GOGC, so
// running at the busy GOGC cuts it by busy/idle; a busy process goes back
// to the idle GOGC once, for idleAfter, it allocates under a tenth of its
// live heap a second and its collector would cost under half of
// gcBusyCPU at the idle GOGC. Its heap then shrinks with the next cycles.
const BusyGOGCEnv = "SLIPWAY_GOGC_BUSY"

const (
	gcTuneTick = time.Second
	idleAfter  = 30 * time.Second
	// gcBusyCPU is the collector's share of a core, over gcWindow ticks,
	// above which a process is busy: an idle small cluster's API server
	// spends under a hundredth of a core in it. The runtime counts a
	// cycle's CPU when the cycle ends, so one tick holds a whole cycle or
	// nothing; the window smooths that.
	gcBusyCPU = 0.05
	gcWindow  = 10
	// startupGrace is how long a process runs at its idle GOGC whatever
	// its load. A start allocates its heap many times over; at the busy
	// GOGC the API server's long-lived objects ended up spread over ~45
	// MiB more of partly used spans than at the idle one, which no later
	// collection gave back: at 10 clusters (bench cluster, 2026-12-03)
	// the API server's idle PSS was 174 MiB with a busy start and 141 with
	// this grace. The grace's price is a slower cold start (create to
	// /readyz, median, 5.6 s busy, 7.6 s idle), which spares hide.
	startupGrace = 30 * time.Second
)

// gcMode is a process's collector setting: idle or busy.
type gcMode struct {
	idle, busy int
	isBusy     bool
	// started is when the process started (see startupGrace).
	started    time.Time
	quietSince time.Time
	// recent holds the collector's CPU seconds of the last gcWindow
	// ticks, oldest first.
	recent []float64
}

// next says whether the process is busy after a tick in which it
// allocated allocated bytes over a live heap of live bytes and its
// collector's cycles that ended used gcCPU seconds of CPU.
func (m *gcMode) next(now time.Time, allocated, live uint64, gcCPU float64) (percent int, changed bool) {
	m.recent = append(m.recent, gcCPU)
	if len(m.recent) > gcWindow {
		m.recent = m.recent[1:]
	}
	sum := 0.0
	for _, c := range m.recent {
		sum += c
	}
	gcCores := sum / (float64(len(m.recent)) * gcTuneTick.Seconds())
	if now.Sub(m.started) < startupGrace {
		return 0, false
	}
	switch {
	case allocated >= live || gcCores >= gcBusyCPU:
		m.quietSince = time.Time{}
		if !m.isBusy {
			m.isBusy = true
			return m.busy, true
		}
	case m.isBusy && allocated < live/10 && gcCores*float64(m.busy)/float64(m.idle) < gcBusyCPU/2:
		if m.quietSince.IsZero() {
			m.quietSince = now
		} else if now.Sub(m.quietSince) >= idleAfter {
			m.isBusy, m.quietSince = false, time.Time{}
			return m.idle, true
		}
	default:
		m.quietSince = time.Time{}
	}
	return 0, false
}

// tuneGC runs the load-driven collector setting for the life of the
// process, when the environment asks for one.
func tuneGC() {
	idle, err1 := strconv.Atoi(os.Getenv("GOGC"))
	busy, err2 := strconv.Atoi(os.Getenv(BusyGOGCEnv))
	if err1 != nil || err2 != nil || idle <= 0 || busy <= idle {
		return
	}
	m := &gcMode{idle: idle, busy: busy, started: time.Now()}
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(samples)
	lastAllocs, lastGC := samples[0].Value.Uint64(), samples[2].Value.Float64()
	go func() {
		for now := range time.Tick(gcTuneTick) {
			metrics.Read(samples)
			allocs, live, gc := samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Float64()
			if percent, changed := m.next(now, allocs-lastAllocs, live, gc-lastGC); changed {
				debug.SetGCPercent(percent)
				if percent == idle {
					// The heap grew to the busy GOGC's size: collect
					// now and hand the freed pages back, rather than
					// keep them resident until the scavenger's pace
					// (an idle API server kept ~15 MiB that way, and
					// idle is where a cluster's memory is measured).
					debug.FreeOSMemory()
				}
			}
			lastAllocs, lastGC = allocs, gc
		}
	}()
}

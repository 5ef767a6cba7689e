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
// control plane shares. So the collector is tuned by load: a process that
// allocates its live heap's worth within a second is busy and collects at
// the busy GOGC; one that stays below a tenth of that for idleAfter goes
// back to the idle GOGC, and its heap shrinks with the next cycles.
const BusyGOGCEnv = "SLIPWAY_GOGC_BUSY"

const (
	gcTuneTick = time.Second
	idleAfter  = 30 * time.Second
)

// gcMode is a process's collector setting: idle or busy.
type gcMode struct {
	idle, busy int
	isBusy     bool
	quietSince time.Time
}

// next says whether the process is busy after a tick in which it
// allocated allocated bytes over a live heap of live bytes.
func (m *gcMode) next(now time.Time, allocated, live uint64) (percent int, changed bool) {
	switch {
	case allocated >= live:
		m.quietSince = time.Time{}
		if !m.isBusy {
			m.isBusy = true
			return m.busy, true
		}
	case m.isBusy && allocated < live/10:
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
	if err1 != nil || err2 != nil || busy <= idle {
		return
	}
	m := &gcMode{idle: idle, busy: busy}
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	last := samples[0].Value.Uint64()
	go func() {
		for now := range time.Tick(gcTuneTick) {
			metrics.Read(samples)
			allocs, live := samples[0].Value.Uint64(), samples[1].Value.Uint64()
			if percent, changed := m.next(now, allocs-last, live); changed {
				debug.SetGCPercent(percent)
			}
			last = allocs
		}
	}()
}

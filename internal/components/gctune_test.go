package components

import (
	"testing"
	"time"
)

func TestGCModeFollowsLoad(t *testing.T) {
	m := &gcMode{idle: 25, busy: 100}
	t0 := time.Now()
	const live = 100 << 20
	steps := []struct {
		after     time.Duration
		allocated uint64
		gcCPU     float64
		percent   int
		changed   bool
	}{
		{0, 1 << 20, 0, 0, false},                  // idle stays idle
		{time.Second, live, 0, 100, true},          // a heap's worth in a second: busy
		{2 * time.Second, 2 * live, 0, 0, false},   // still busy
		{3 * time.Second, live / 20, 0, 0, false},  // quiet starts
		{20 * time.Second, live / 20, 0, 0, false}, // quiet, not long enough
		{21 * time.Second, live / 2, 0, 0, false},  // some work: the quiet starts over
		{22 * time.Second, live / 20, 0, 0, false}, // quiet again
		{51 * time.Second, live / 20, 0, 0, false}, // 29 s
		{52 * time.Second, live / 20, 0, 25, true}, // 30 s quiet: idle
		{53 * time.Second, live / 20, 0, 0, false}, // stays idle
	}
	for i, s := range steps {
		percent, changed := m.next(t0.Add(s.after), s.allocated, live, s.gcCPU)
		if percent != s.percent || changed != s.changed {
			t.Fatalf("step %d (%v): got (%d, %v), want (%d, %v)", i, s.after, percent, changed, s.percent, s.changed)
		}
	}
}

func TestGCModeBusyWhileTheCollectorIsCostly(t *testing.T) {
	// A thousand idle nodes: the API server allocates a fraction of its
	// live heap a second, yet its collector at GOGC 25 takes 0.4 core.
	m := &gcMode{idle: 25, busy: 100}
	t0 := time.Now()
	const live = 400 << 20
	if percent, changed := m.next(t0, live/4, live, 0.4); percent != 100 || !changed {
		t.Fatalf("a costly collector: got (%d, %v), want (100, true)", percent, changed)
	}
	// At GOGC 100 it costs a quarter; at 25 it would cost 0.4 again, so
	// however long that lasts the process stays busy.
	for s := 1; s <= 60; s++ {
		if percent, changed := m.next(t0.Add(time.Duration(s)*time.Second), live/20, live, 0.1); changed {
			t.Fatalf("after %d s: went to GOGC %d while its collector would cost 0.4 core at 25", s, percent)
		}
	}
	// The nodes are gone: the collector is nearly idle, and once the
	// window has forgotten the busy ticks and idleAfter has passed the
	// process returns to its idle GOGC.
	var back time.Duration
	for s := 61; s <= 120; s++ {
		if percent, changed := m.next(t0.Add(time.Duration(s)*time.Second), live/20, live, 0.001); changed {
			if percent != 25 {
				t.Fatalf("went to GOGC %d, want 25", percent)
			}
			back = time.Duration(s-61) * time.Second
			break
		}
	}
	if want := idleAfter + (gcWindow-1)*gcTuneTick; back != want {
		t.Fatalf("back to idle after %v of quiet, want %v", back, want)
	}
}

func TestGCModeIdleThroughASmallHeapsCycles(t *testing.T) {
	// An idle small cluster's API server: a cycle of 80 ms every 15 s,
	// counted in the tick it ends in, is not a busy collector.
	m := &gcMode{idle: 25, busy: 100}
	t0 := time.Now()
	const live = 95 << 20
	for s := range 120 {
		gc := 0.0
		if s%15 == 14 {
			gc = 0.08
		}
		if percent, changed := m.next(t0.Add(time.Duration(s)*time.Second), 1<<20, live, gc); changed {
			t.Fatalf("after %d s: went to GOGC %d", s, percent)
		}
	}
}

// A start allocates a great deal, and must not make the process busy: the
// heap it leaves behind at the busy GOGC stays fragmented (startupGrace).
func TestGCModeIdleThroughTheStart(t *testing.T) {
	t0 := time.Now()
	m := &gcMode{idle: 25, busy: 100, started: t0}
	const live = 100 << 20
	for s := time.Duration(0); s < startupGrace; s += time.Second {
		if percent, changed := m.next(t0.Add(s), 10*live, live, 0.5); changed {
			t.Fatalf("%v into the start: changed to GOGC %d; want the idle GOGC until %v", s, percent, startupGrace)
		}
	}
	if percent, changed := m.next(t0.Add(startupGrace), 10*live, live, 0.5); !changed || percent != 100 {
		t.Fatalf("the same load after the start: got (%d, %v), want (100, true)", percent, changed)
	}
}

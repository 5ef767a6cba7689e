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
		percent   int
		changed   bool
	}{
		{0, 1 << 20, 0, false},                  // idle stays idle
		{time.Second, live, 100, true},          // a heap's worth in a second: busy
		{2 * time.Second, 2 * live, 0, false},   // still busy
		{3 * time.Second, live / 20, 0, false},  // quiet starts
		{20 * time.Second, live / 20, 0, false}, // quiet, not long enough
		{21 * time.Second, live / 2, 0, false},  // some work: the quiet starts over
		{22 * time.Second, live / 20, 0, false}, // quiet again
		{51 * time.Second, live / 20, 0, false}, // 29 s
		{52 * time.Second, live / 20, 25, true}, // 30 s quiet: idle
		{53 * time.Second, live / 20, 0, false}, // stays idle
	}
	for i, s := range steps {
		percent, changed := m.next(t0.Add(s.after), s.allocated, live)
		if percent != s.percent || changed != s.changed {
			t.Fatalf("step %d (%v): got (%d, %v), want (%d, %v)", i, s.after, percent, changed, s.percent, s.changed)
		}
	}
}

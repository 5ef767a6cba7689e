package identity

import (
	"sync"
	"time"
)

// FailureLimiter slows down guessing of client secrets: after free failed
// attempts for an app ID, each further attempt must wait a delay that
// doubles with every failure, up to max. A success clears the count.
// State is per app ID, the thing being guessed, rather than per address,
// which a guesser can change; a legitimate client of that app is slowed
// too while the guessing lasts, as Entra's lockout does.
type FailureLimiter struct {
	free       int
	base, max  time.Duration
	now        func() time.Time
	mu         sync.Mutex
	byClient   map[string]*failures
	lastPruned time.Time
}

type failures struct {
	count int
	until time.Time // no attempt before this
	last  time.Time
}

// NewFailureLimiter allows free failures, then waits base, 2×base, … max.
func NewFailureLimiter(free int, base, max time.Duration) *FailureLimiter {
	return &FailureLimiter{free: free, base: base, max: max, now: time.Now, byClient: map[string]*failures{}}
}

// Wait is how long a client must still wait before its next attempt.
func (l *FailureLimiter) Wait(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.byClient[client]
	if f == nil {
		return 0
	}
	return max(0, f.until.Sub(l.now()))
}

// Failed records a failed attempt.
func (l *FailureLimiter) Failed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.prune(now)
	f := l.byClient[client]
	if f == nil {
		f = &failures{}
		l.byClient[client] = f
	}
	f.count++
	f.last = now
	if over := f.count - l.free; over > 0 {
		d := l.base << min(over-1, 20)
		if d > l.max || d <= 0 {
			d = l.max
		}
		f.until = now.Add(d)
	}
}

// Succeeded clears a client's failures.
func (l *FailureLimiter) Succeeded(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byClient, client)
}

// prune forgets clients idle for longer than max, so the map is bounded
// by the clients that failed recently.
func (l *FailureLimiter) prune(now time.Time) {
	if now.Sub(l.lastPruned) < l.max {
		return
	}
	l.lastPruned = now
	for k, f := range l.byClient {
		if now.Sub(f.last) > l.max && !now.Before(f.until) {
			delete(l.byClient, k)
		}
	}
}

package health

import (
	"crypto/rand"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Policy says how the history is kept.
type Policy struct {
	// UnknownAfter is how long without a probe makes a cluster's state
	// Unknown (Resource Health's ten minutes).
	UnknownAfter time.Duration
	// Heartbeat is how often CheckedAt is written when nothing changes.
	// It must be well under UnknownAfter, or a healthy cluster would
	// look as if it had gone unprobed.
	Heartbeat time.Duration
	// Retention is how far back history is kept (30 days).
	Retention time.Duration
	// MaxTransitions and MaxEvents bound the history however often a
	// cluster flaps: past them the oldest entries go, so the history
	// then reaches back less than Retention. At one transition an hour
	// the bound is never met; the object stays well under etcd's limit
	// (an entry is about 400 bytes).
	MaxTransitions, MaxEvents int
}

// DefaultPolicy is Resource Health's: Unknown after ten minutes without a
// signal, 30 days of history.
func DefaultPolicy() Policy {
	return Policy{UnknownAfter: 10 * time.Minute, Heartbeat: time.Minute, Retention: 30 * 24 * time.Hour, MaxTransitions: 1000, MaxEvents: 300}
}

// The Service Health event types Slipway raises.
const (
	EventPlannedMaintenance = "PlannedMaintenance"
	EventServiceIssue       = "ServiceIssue"
)

// EventSpec is an event that is active now.
type EventSpec struct {
	// Key identifies it across probes (an operation's ID, an outage's
	// start).
	Key, Type, Title, Summary string
}

// Observe records that st was seen at now, with events the events active
// now. It reports whether h changed in a way that must be written: a
// transition, an event opened or closed, or a heartbeat due.
func Observe(h *slipwayv1.ClusterHealthStatus, st Status, events []EventSpec, now time.Time, p Policy) bool {
	changed := false
	t := metav1.NewTime(now)
	if h.CheckedAt != nil && now.Sub(h.CheckedAt.Time) > p.UnknownAfter {
		// No probe ran for longer than Resource Health waits for a
		// signal (Slipway was down): from the last one on, nothing was
		// known, and the history says so.
		if last := lastTransition(h); last == nil || last.State != Unknown {
			h.Transitions = append(h.Transitions, slipwayv1.HealthTransition{
				State: Unknown, Reason: "NoSignal", Title: "Unknown", Since: *h.CheckedAt,
				Summary: "No health signal was received from the cluster between " + h.CheckedAt.UTC().Format(time.RFC3339) + " and " + now.UTC().Format(time.RFC3339) + ".",
			})
		}
		changed = true
	}
	last := lastTransition(h)
	switch {
	case last == nil || last.State != st.State || last.ReasonType != st.ReasonType || last.Reason != st.Reason:
		h.Transitions = append(h.Transitions, slipwayv1.HealthTransition{State: st.State, ReasonType: st.ReasonType, Reason: st.Reason, Title: st.Title, Summary: st.Summary, Since: t})
		changed = true
	case last.Summary != st.Summary || last.Title != st.Title:
		// The same state, described afresh (another node went NotReady):
		// the current entry says what is true now.
		last.Title, last.Summary = st.Title, st.Summary
		changed = true
	}
	if trackEvents(h, events, t) {
		changed = true
	}
	if changed || h.CheckedAt == nil || now.Sub(h.CheckedAt.Time) >= p.Heartbeat {
		h.CheckedAt = &t
		changed = true
	}
	if prune(h, now, p) {
		changed = true
	}
	return changed
}

func lastTransition(h *slipwayv1.ClusterHealthStatus) *slipwayv1.HealthTransition {
	if len(h.Transitions) == 0 {
		return nil
	}
	return &h.Transitions[len(h.Transitions)-1]
}

// trackEvents opens an event for each active one not yet open, and ends
// the open ones no longer active.
func trackEvents(h *slipwayv1.ClusterHealthStatus, active []EventSpec, now metav1.Time) bool {
	changed := false
	open := map[string]bool{}
	for i := range h.Events {
		e := &h.Events[i]
		if e.End != nil {
			continue
		}
		still := false
		for _, a := range active {
			if a.Key == e.Key {
				still = true
				if a.Summary != e.Summary {
					e.Summary, e.LastUpdate = a.Summary, now
					changed = true
				}
			}
		}
		if still {
			open[e.Key] = true
			continue
		}
		e.End, e.LastUpdate = &now, now
		changed = true
	}
	for _, a := range active {
		if open[a.Key] {
			continue
		}
		h.Events = append(h.Events, slipwayv1.HealthEvent{ID: TrackingID(), Type: a.Type, Title: a.Title, Summary: a.Summary, Key: a.Key, Start: now, LastUpdate: now})
		open[a.Key] = true
		changed = true
	}
	return changed
}

// prune drops what is older than the retention, keeping the transition in
// force when the window opens, then the oldest entries past the bounds.
func prune(h *slipwayv1.ClusterHealthStatus, now time.Time, p Policy) bool {
	n, m := len(h.Transitions), len(h.Events)
	cutoff := now.Add(-p.Retention)
	drop := 0
	for drop+1 < len(h.Transitions) && h.Transitions[drop+1].Since.Time.Before(cutoff) {
		drop++
	}
	if over := len(h.Transitions) - drop - p.MaxTransitions; p.MaxTransitions > 0 && over > 0 {
		drop += over
	}
	h.Transitions = h.Transitions[drop:]
	events := h.Events[:0]
	for _, e := range h.Events {
		if e.End == nil || !e.End.Time.Before(cutoff) {
			events = append(events, e)
		}
	}
	if over := len(events) - p.MaxEvents; p.MaxEvents > 0 && over > 0 {
		events = events[over:]
	}
	h.Events = events
	return len(h.Transitions) != n || len(h.Events) != m
}

// TrackingID is a Service Health tracking ID: three letters or digits, a
// dash, three more (as in "KTRF-9B0").
func TrackingID() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
	b := make([]byte, 7)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	b[3] = '-'
	return string(b)
}

// Current is the state a reader should see at now: the last transition,
// or Unknown when no probe has reported for longer than the policy allows
// (the prober is not running).
func Current(h *slipwayv1.ClusterHealthStatus, now time.Time, p Policy) (slipwayv1.HealthTransition, *metav1.Time) {
	last := lastTransition(h)
	if last == nil {
		return slipwayv1.HealthTransition{State: Unknown, Reason: "NoSignal", Title: "Unknown",
			Summary: "No health signal has been received from the cluster yet."}, h.CheckedAt
	}
	if h.CheckedAt != nil && now.Sub(h.CheckedAt.Time) > p.UnknownAfter {
		return slipwayv1.HealthTransition{State: Unknown, Reason: "NoSignal", Title: "Unknown", Since: *h.CheckedAt,
			Summary: "No health signal has been received from the cluster since " + h.CheckedAt.UTC().Format(time.RFC3339) + "."}, h.CheckedAt
	}
	return *last, h.CheckedAt
}

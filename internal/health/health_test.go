package health

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

func TestAssess(t *testing.T) {
	for _, c := range []struct {
		name             string
		sig              Signal
		state, rtype, in string
	}{
		{"all well", Signal{Nodes: 3}, Available, "", "any known problems"},
		{"creating", Signal{Creating: true, APIServer: errors.New("refused")}, Unknown, "", "being created"},
		{"stopped", Signal{Stopped: true, APIServer: errors.New("refused")}, Unavailable, UserInitiated, "stopped by a user"},
		{"api down", Signal{APIServer: errors.New("context deadline exceeded")}, Unavailable, Unplanned, "context deadline exceeded"},
		{"nodes", Signal{Nodes: 3, NotReady: []string{"aks-a-0"}}, Degraded, Unplanned, "1 of 3 nodes are not ready (aks-a-0)"},
		{"services", Signal{Services: map[string]string{"coredns": "0 of 2 replicas available"}}, Degraded, Unplanned, "coredns (0 of 2 replicas available)"},
		{"scheduler", Signal{Components: map[string]error{"scheduler": errors.New("timeout"), "etcd": nil}}, Degraded, Unplanned, "the scheduler is unhealthy"},
		{"identity", Signal{Identity: errors.New("secret expired")}, Degraded, Unplanned, "secret expired"},
		{"api down during an upgrade", Signal{APIServer: errors.New("connection refused"), Maintenance: []string{"Kubernetes version upgrade of the cluster to 1.37.2"}}, Unavailable, Planned, "1.37.2"},
		{"maintenance", Signal{Nodes: 3, NotReady: []string{"aks-a-0"}, Maintenance: []string{"node image upgrade of pool a"}}, Degraded, Planned, "node image upgrade of pool a"},
	} {
		st := Assess(c.sig)
		if st.State != c.state || st.ReasonType != c.rtype || !strings.Contains(st.Summary, c.in) {
			t.Errorf("%s: %+v, want %s/%s with %q", c.name, st, c.state, c.rtype, c.in)
		}
	}
}

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func TestObserveTransitionsAndHeartbeat(t *testing.T) {
	p := DefaultPolicy()
	var h slipwayv1.ClusterHealthStatus
	ok := Assess(Signal{Nodes: 1})
	if !Observe(&h, ok, nil, t0, p) || len(h.Transitions) != 1 {
		t.Fatalf("first observation: %+v", h)
	}
	if Observe(&h, ok, nil, t0.Add(5*time.Second), p) {
		t.Error("the same state again, before the heartbeat, asked for a write")
	}
	if !Observe(&h, ok, nil, t0.Add(p.Heartbeat), p) || !h.CheckedAt.Time.Equal(t0.Add(p.Heartbeat)) || len(h.Transitions) != 1 {
		t.Errorf("heartbeat: %+v", h)
	}
	down := Assess(Signal{APIServer: errors.New("timeout")})
	if !Observe(&h, down, nil, t0.Add(2*time.Minute), p) || len(h.Transitions) != 2 || h.Transitions[1].State != Unavailable {
		t.Errorf("transition: %+v", h.Transitions)
	}
}

func TestObserveGapIsUnknown(t *testing.T) {
	p := DefaultPolicy()
	var h slipwayv1.ClusterHealthStatus
	ok := Assess(Signal{})
	Observe(&h, ok, nil, t0, p)
	// Slipway was down for half an hour.
	back := t0.Add(30 * time.Minute)
	if cur, _ := Current(&h, back, p); cur.State != Unknown {
		t.Errorf("read during the gap: %s, want Unknown", cur.State)
	}
	Observe(&h, ok, nil, back, p)
	states := []string{}
	for _, tr := range h.Transitions {
		states = append(states, tr.State+"@"+tr.Since.Sub(t0).String())
	}
	if got := strings.Join(states, " "); got != "Available@0s Unknown@0s Available@30m0s" {
		t.Errorf("history %s, want Available@0s Unknown@0s Available@30m0s", got)
	}
	if cur, _ := Current(&h, back, p); cur.State != Available {
		t.Errorf("after the gap: %s", cur.State)
	}
}

func TestPruneAfterThirtyDays(t *testing.T) {
	p := DefaultPolicy()
	var h slipwayv1.ClusterHealthStatus
	now := t0
	for i := range 40 {
		// One outage a day, an hour long, each with its incident.
		now = t0.Add(time.Duration(i) * 24 * time.Hour)
		Observe(&h, Assess(Signal{APIServer: errors.New("down")}), []EventSpec{{Key: fmt.Sprint(i), Type: EventServiceIssue}}, now, p)
		now = now.Add(time.Hour)
		Observe(&h, Assess(Signal{}), nil, now, p)
	}
	cutoff := now.Add(-p.Retention)
	if first := h.Transitions[0].Since.Time; !first.Before(cutoff) || h.Transitions[1].Since.Time.Before(cutoff) {
		t.Errorf("oldest kept transition %v, next %v; the window opens at %v", first, h.Transitions[1].Since.Time, cutoff)
	}
	for _, e := range h.Events {
		if e.End.Time.Before(cutoff) {
			t.Errorf("event %s ended %v, before the window", e.ID, e.End.Time)
		}
	}
	if len(h.Events) < 29 || len(h.Events) > 31 {
		t.Errorf("%d events kept, want about 30", len(h.Events))
	}
}

func TestFlappingIsBounded(t *testing.T) {
	p := DefaultPolicy()
	var h slipwayv1.ClusterHealthStatus
	for i := range 5000 {
		sig := Signal{}
		if i%2 == 1 {
			sig.APIServer = errors.New("down")
		}
		Observe(&h, Assess(sig), nil, t0.Add(time.Duration(i)*10*time.Second), p)
	}
	if len(h.Transitions) != p.MaxTransitions {
		t.Errorf("%d transitions kept, want the bound %d", len(h.Transitions), p.MaxTransitions)
	}
	if last := h.Transitions[len(h.Transitions)-1]; last.State != Unavailable {
		t.Errorf("the newest transition was dropped: %+v", last)
	}
}

func TestEvents(t *testing.T) {
	p := DefaultPolicy()
	var h slipwayv1.ClusterHealthStatus
	up := Assess(Signal{Maintenance: []string{"node image upgrade"}})
	ev := []EventSpec{{Key: "op1", Type: EventPlannedMaintenance, Title: "Node image upgrade"}}
	Observe(&h, up, ev, t0, p)
	Observe(&h, up, ev, t0.Add(time.Second), p)
	if len(h.Events) != 1 || h.Events[0].End != nil || len(h.Events[0].ID) != 7 || h.Events[0].ID[3] != '-' {
		t.Fatalf("events %+v", h.Events)
	}
	Observe(&h, Assess(Signal{}), nil, t0.Add(time.Minute), p)
	if h.Events[0].End == nil || !h.Events[0].End.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("the event did not end with the maintenance: %+v", h.Events[0])
	}
}

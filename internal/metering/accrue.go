package metering

import (
	"math"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// dateLayout is a record's day.
const dateLayout = "2006-01-02"

// Downtime is the last stretch Slipway was not running, from the last
// heartbeat before it stopped to its start. The simulated VMs do not run
// while Slipway does not, so that time is not billed.
type Downtime struct{ From, To time.Time }

// RecordName is the name of a group's record of a day.
func RecordName(sub, group string, day time.Time) string {
	return armid.ObjectName(armid.ResourceGroup(sub, group)) + "-" + day.UTC().Format("20060102")
}

// NewRecord is a group's empty record of the day of at, accrued to at.
func NewRecord(sub, group string, at time.Time) *slipwayv1.UsageRecord {
	return &slipwayv1.UsageRecord{
		ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: RecordName(sub, group, at), Labels: map[string]string{
			slipwayv1.LabelSubscription: armid.Label(sub), slipwayv1.LabelResourceGroup: armid.Label(group),
		}},
		Spec:   slipwayv1.UsageRecordSpec{SubscriptionID: sub, ResourceGroup: group, Date: at.UTC().Format(dateLayout)},
		Status: slipwayv1.UsageRecordStatus{AccruedUntil: metav1.NewMicroTime(at)},
	}
}

// Advance brings a group's latest record up to now: the rates in force
// are charged for the time since it was accrued, less the downtime, day
// by day. It returns the records touched, latest last: latest itself, and
// a new one for each later day that had usage or is today. latest is
// changed in place; it must be a copy when it came from a cache.
func Advance(latest *slipwayv1.UsageRecord, now time.Time, down Downtime) []*slipwayv1.UsageRecord {
	a := advancer{recs: []*slipwayv1.UsageRecord{latest}}
	if t := latest.Status.AccruedUntil.Time; t.Before(down.To) && !down.From.IsZero() {
		a.to(minTime(down.From, now), true)
		a.to(minTime(down.To, now), false)
	}
	a.to(now, true)
	return a.recs
}

type advancer struct{ recs []*slipwayv1.UsageRecord }

func (a *advancer) cur() *slipwayv1.UsageRecord { return a.recs[len(a.recs)-1] }

// to moves the latest record's accrual to t, charging its rates for the
// time when charge is set, and opening a record for each new day.
func (a *advancer) to(t time.Time, charge bool) {
	for {
		cur := a.cur()
		from := cur.Status.AccruedUntil.Time
		if !from.Before(t) {
			return
		}
		if !charge || len(cur.Status.Rates) == 0 {
			// Nothing to count: jump, with no record for the days
			// between.
			a.move(t)
			return
		}
		day, err := time.Parse(dateLayout, cur.Spec.Date)
		if err != nil {
			day = from.UTC().Truncate(24 * time.Hour)
		}
		end := day.Add(24 * time.Hour)
		step := minTime(t, end)
		accrue(&cur.Status, step)
		if !step.Before(t) {
			return
		}
		a.move(step)
	}
}

// move carries the accrual point to t, in a new record when t is on a
// later day, with the rates in force.
func (a *advancer) move(t time.Time) {
	cur := a.cur()
	if t.UTC().Format(dateLayout) == cur.Spec.Date {
		cur.Status.AccruedUntil = metav1.NewMicroTime(t)
		return
	}
	next := NewRecord(cur.Spec.SubscriptionID, cur.Spec.ResourceGroup, t)
	next.Status.Rates = cur.Status.Rates
	a.recs = append(a.recs, next)
}

// accrue charges st's rates from its AccruedUntil to t (the same day), in
// whole milliseconds: quantity and cost count the same time, and the
// fraction left over is counted by the next accrual.
func accrue(st *slipwayv1.UsageRecordStatus, t time.Time) {
	d := t.Sub(st.AccruedUntil.Time).Truncate(time.Millisecond)
	for _, r := range st.Rates {
		l := line(st, r.UsageMeter)
		units := r.Units * d.Milliseconds()
		cost := int64(math.Round(float64(r.Units) * float64(r.NanoUSDPerUnitHour) * d.Hours()))
		l.UnitMillis += units
		l.NanoUSD += cost
		if len(r.Split) == 0 {
			continue
		}
		// What no namespace takes is idle; it gets the rounding too, so
		// the parts add up to the line.
		idleUnits, idleCost := units, cost
		for _, sh := range r.Split {
			u, c := part(units, sh.PartsPerMillion), part(cost, sh.PartsPerMillion)
			addSplit(l, sh.Namespace, sh.Workload, u, c)
			idleUnits, idleCost = idleUnits-u, idleCost-c
		}
		addSplit(l, IdleNamespace, "", idleUnits, idleCost)
	}
	st.AccruedUntil = metav1.NewMicroTime(st.AccruedUntil.Add(d))
}

// part is ppm millionths of x (in floating point: a day's cost of a large
// pool, in nano-dollars, times a million overflows an int64).
func part(x, ppm int64) int64 { return int64(math.Round(float64(x) * float64(ppm) / 1e6)) }

// IdleNamespace holds the part of the nodes no pod requested, as OpenCost
// names it.
const IdleNamespace = "__idle__"

func addSplit(l *slipwayv1.UsageLine, namespace, workload string, units, cost int64) {
	if units == 0 && cost == 0 {
		return
	}
	for i := range l.Split {
		if sp := &l.Split[i]; sp.Namespace == namespace && sp.Workload == workload {
			sp.UnitMillis += units
			sp.NanoUSD += cost
			return
		}
	}
	l.Split = append(l.Split, slipwayv1.UsageSplit{Namespace: namespace, Workload: workload, UnitMillis: units, NanoUSD: cost})
}

// line is st's line for a meter, added if new; its tags are the meter's
// latest.
func line(st *slipwayv1.UsageRecordStatus, m slipwayv1.UsageMeter) *slipwayv1.UsageLine {
	for i := range st.Lines {
		if l := &st.Lines[i]; strings.EqualFold(l.ResourceID, m.ResourceID) && l.Meter == m.Meter {
			l.UsageMeter = m
			return l
		}
	}
	st.Lines = append(st.Lines, slipwayv1.UsageLine{UsageMeter: m})
	return &st.Lines[len(st.Lines)-1]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

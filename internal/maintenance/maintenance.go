// Package maintenance holds AKS's maintenance configurations: which names
// exist, what makes one valid, and whether a given moment falls inside the
// windows one describes.
//
// A cluster has up to three: "default" (hour slots in the week, in UTC, and
// spans when nothing may happen), "aksManagedAutoUpgradeSchedule" (Kubernetes
// auto-upgrades) and "aksManagedNodeOSUpgradeSchedule" (node OS
// auto-upgrades); the last two describe a recurring window of a start time
// and a duration, in a UTC offset.
package maintenance

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

// Configuration names AKS accepts.
const (
	Default          = "default"
	AutoUpgrade      = "aksManagedAutoUpgradeSchedule"
	NodeOSUpgrade    = "aksManagedNodeOSUpgradeSchedule"
	minDurationHours = 4
	maxDurationHours = 24
)

// CanonicalName returns a configuration name as AKS spells it, or false if
// AKS has no configuration of that name.
func CanonicalName(name string) (string, bool) {
	for _, n := range []string{Default, AutoUpgrade, NodeOSUpgrade} {
		if strings.EqualFold(n, name) {
			return n, true
		}
	}
	return "", false
}

// Properties are a configuration's properties, as the SDK models them.
type Properties = armcontainerservice.MaintenanceConfigurationProperties

// Invalid is a configuration AKS would refuse: an InvalidParameter on
// Target.
type Invalid struct{ Target, Message string }

func (e *Invalid) Error() string { return e.Target + ": " + e.Message }

func invalid(target, format string, args ...any) error {
	return &Invalid{Target: target, Message: fmt.Sprintf(format, args...)}
}

var (
	startTimePattern = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	offsetPattern    = regexp.MustCompile(`^[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)$`)
)

// Validate checks a configuration as AKS does: "default" takes timeInWeek
// and notAllowedTime; the managed schedules take a maintenanceWindow with
// exactly one schedule.
func Validate(name string, p *Properties) error {
	if p == nil {
		return invalid("properties", "The maintenance configuration has no properties.")
	}
	if name == Default {
		if p.MaintenanceWindow != nil {
			return invalid("properties.maintenanceWindow", "maintenanceWindow is not supported for the default configuration; use timeInWeek.")
		}
		for _, t := range p.TimeInWeek {
			if t == nil || t.Day == nil {
				return invalid("properties.timeInWeek.day", "Each timeInWeek entry needs a day.")
			}
			if !validDay(*t.Day) {
				return invalid("properties.timeInWeek.day", "The value of parameter timeInWeek.day is invalid: %q. Allowed values are Monday to Sunday.", *t.Day)
			}
			for _, h := range t.HourSlots {
				if h == nil || *h < 0 || *h > 23 {
					return invalid("properties.timeInWeek.hourSlots", "Hour slots must be between 0 and 23.")
				}
			}
		}
		for _, s := range p.NotAllowedTime {
			if s == nil || s.Start == nil || s.End == nil || !s.End.After(*s.Start) {
				return invalid("properties.notAllowedTime", "Each notAllowedTime span needs a start before its end.")
			}
		}
		return nil
	}
	if len(p.TimeInWeek) > 0 || len(p.NotAllowedTime) > 0 {
		return invalid("properties.timeInWeek", "timeInWeek and notAllowedTime are only for the default configuration; %s takes a maintenanceWindow.", name)
	}
	w := p.MaintenanceWindow
	if w == nil {
		return invalid("properties.maintenanceWindow", "%s needs a maintenanceWindow.", name)
	}
	if w.DurationHours == nil || *w.DurationHours < minDurationHours || *w.DurationHours > maxDurationHours {
		return invalid("properties.maintenanceWindow.durationHours", "durationHours must be between %d and %d.", minDurationHours, maxDurationHours)
	}
	if w.StartTime == nil || !startTimePattern.MatchString(*w.StartTime) {
		return invalid("properties.maintenanceWindow.startTime", "startTime must be HH:mm, from 00:00 to 23:59.")
	}
	if w.UTCOffset != nil && *w.UTCOffset != "" && !offsetPattern.MatchString(*w.UTCOffset) {
		return invalid("properties.maintenanceWindow.utcOffset", "utcOffset must be +HH:mm or -HH:mm, for example +05:30.")
	}
	s := w.Schedule
	if s == nil {
		return invalid("properties.maintenanceWindow.schedule", "The maintenance window needs a schedule.")
	}
	kinds := 0
	for _, set := range []bool{s.Daily != nil, s.Weekly != nil, s.AbsoluteMonthly != nil, s.RelativeMonthly != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return invalid("properties.maintenanceWindow.schedule", "Exactly one of daily, weekly, absoluteMonthly and relativeMonthly must be set.")
	}
	switch {
	case s.Daily != nil:
		if interval(s.Daily.IntervalDays) > 7 {
			return invalid("properties.maintenanceWindow.schedule.daily.intervalDays", "intervalDays must be between 1 and 7.")
		}
	case s.Weekly != nil:
		if s.Weekly.DayOfWeek == nil || !validDay(*s.Weekly.DayOfWeek) {
			return invalid("properties.maintenanceWindow.schedule.weekly.dayOfWeek", "A weekly schedule needs dayOfWeek, Monday to Sunday.")
		}
		if interval(s.Weekly.IntervalWeeks) > 4 {
			return invalid("properties.maintenanceWindow.schedule.weekly.intervalWeeks", "intervalWeeks must be between 1 and 4.")
		}
	case s.AbsoluteMonthly != nil:
		if d := s.AbsoluteMonthly.DayOfMonth; d == nil || *d < 1 || *d > 31 {
			return invalid("properties.maintenanceWindow.schedule.absoluteMonthly.dayOfMonth", "dayOfMonth must be between 1 and 31.")
		}
	case s.RelativeMonthly != nil:
		if s.RelativeMonthly.DayOfWeek == nil || s.RelativeMonthly.WeekIndex == nil {
			return invalid("properties.maintenanceWindow.schedule.relativeMonthly", "A relativeMonthly schedule needs dayOfWeek and weekIndex.")
		}
		if !validDay(*s.RelativeMonthly.DayOfWeek) {
			return invalid("properties.maintenanceWindow.schedule.relativeMonthly.dayOfWeek", "The value of parameter dayOfWeek is invalid: %q. Allowed values are Monday to Sunday.", *s.RelativeMonthly.DayOfWeek)
		}
		if !slices.Contains(armcontainerservice.PossibleTypeValues(), *s.RelativeMonthly.WeekIndex) {
			return invalid("properties.maintenanceWindow.schedule.relativeMonthly.weekIndex", "The value of parameter weekIndex is invalid: %q. Allowed values are First, Second, Third, Fourth and Last.", *s.RelativeMonthly.WeekIndex)
		}
	}
	return nil
}

// interval reads a schedule interval; unset or 0 means every period.
func interval(p *int32) int {
	if p == nil || *p < 1 {
		return 1
	}
	return int(*p)
}

// horizon bounds how far ahead Next looks: past the longest recurrence
// (every 6 months or so) with room to spare.
const horizon = 400 * 24 * time.Hour

// Open reports whether now falls inside one of the configuration's windows,
// and, if not, when the next one opens (zero if none within a year).
func Open(name string, p *Properties, now time.Time) (open bool, next time.Time) {
	if name == Default {
		return openInWeek(p, now)
	}
	w := p.MaintenanceWindow
	if w == nil || w.StartTime == nil || w.DurationHours == nil {
		return false, time.Time{}
	}
	zone := offsetZone(w.UTCOffset)
	local := now.In(zone)
	hh, _ := strconv.Atoi((*w.StartTime)[:2])
	mm, _ := strconv.Atoi((*w.StartTime)[3:])
	duration := time.Duration(*w.DurationHours) * time.Hour
	// Start from the first day whose window could still be open now.
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, zone).AddDate(0, 0, -2)
	for ; day.Sub(local) < horizon; day = day.AddDate(0, 0, 1) {
		if !scheduled(w, day) {
			continue
		}
		start := time.Date(day.Year(), day.Month(), day.Day(), hh, mm, 0, 0, zone)
		end := start.Add(duration)
		if !end.After(now) {
			continue
		}
		if w.StartDate != nil && start.Before(dateIn(*w.StartDate, zone)) {
			continue
		}
		if !start.After(now) {
			if notAllowed(w.NotAllowedDates, now, zone) {
				continue // this window is blocked; look for the next one
			}
			return true, start
		}
		if notAllowed(w.NotAllowedDates, start, zone) {
			continue
		}
		return false, start
	}
	return false, time.Time{}
}

// scheduled says whether the window recurs on day (midnight, in the
// window's zone).
func scheduled(w *armcontainerservice.MaintenanceWindow, day time.Time) bool {
	s := w.Schedule
	if s == nil {
		return false
	}
	anchor := time.Date(1970, 1, 1, 0, 0, 0, 0, day.Location())
	if w.StartDate != nil {
		anchor = dateIn(*w.StartDate, day.Location())
	}
	days := int(day.Sub(anchor).Hours()+12) / 24 // +12 h: DST-proof rounding
	months := (day.Year()-anchor.Year())*12 + int(day.Month()-anchor.Month())
	switch {
	case s.Daily != nil:
		return days >= 0 && days%interval(s.Daily.IntervalDays) == 0
	case s.Weekly != nil:
		if s.Weekly.DayOfWeek == nil || day.Weekday().String() != string(*s.Weekly.DayOfWeek) {
			return false
		}
		return floorDiv(days, 7)%interval(s.Weekly.IntervalWeeks) == 0
	case s.AbsoluteMonthly != nil:
		want := int(*s.AbsoluteMonthly.DayOfMonth)
		last := time.Date(day.Year(), day.Month()+1, 0, 0, 0, 0, 0, day.Location()).Day()
		return min(want, last) == day.Day() && months%interval(s.AbsoluteMonthly.IntervalMonths) == 0
	case s.RelativeMonthly != nil:
		r := s.RelativeMonthly
		if r.DayOfWeek == nil || r.WeekIndex == nil || day.Weekday().String() != string(*r.DayOfWeek) || months%interval(r.IntervalMonths) != 0 {
			return false
		}
		nth := (day.Day()-1)/7 + 1
		if *r.WeekIndex == armcontainerservice.TypeLast {
			return day.AddDate(0, 0, 7).Month() != day.Month()
		}
		return map[armcontainerservice.Type]int{armcontainerservice.TypeFirst: 1, armcontainerservice.TypeSecond: 2, armcontainerservice.TypeThird: 3, armcontainerservice.TypeFourth: 4}[*r.WeekIndex] == nth
	}
	return false
}

func floorDiv(a, b int) int {
	if a < 0 {
		return -((-a + b - 1) / b)
	}
	return a / b
}

// notAllowed says whether t falls on a blocked date (whole days, in the
// window's zone, both ends included).
func notAllowed(spans []*armcontainerservice.DateSpan, t time.Time, zone *time.Location) bool {
	for _, s := range spans {
		if s == nil || s.Start == nil || s.End == nil {
			continue
		}
		from, to := dateIn(*s.Start, zone), dateIn(*s.End, zone).AddDate(0, 0, 1)
		if !t.Before(from) && t.Before(to) {
			return true
		}
	}
	return false
}

// dateIn is midnight of d's calendar date in zone (the SDK parses dates as
// UTC midnight).
func dateIn(d time.Time, zone *time.Location) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, zone)
}

// offsetZone parses "+05:30"; empty or malformed is UTC.
func offsetZone(s *string) *time.Location {
	if s == nil || !offsetPattern.MatchString(*s) {
		return time.UTC
	}
	h, _ := strconv.Atoi((*s)[1:3])
	m, _ := strconv.Atoi((*s)[4:])
	secs := h*3600 + m*60
	if (*s)[0] == '-' {
		secs = -secs
	}
	return time.FixedZone(*s, secs)
}

// openInWeek evaluates the default configuration: hour slots in each
// weekday, in UTC, less the not-allowed spans. An empty timeInWeek allows
// every hour.
func openInWeek(p *Properties, now time.Time) (bool, time.Time) {
	allowed := func(t time.Time) bool {
		for _, s := range p.NotAllowedTime {
			if s != nil && s.Start != nil && s.End != nil && !t.Before(*s.Start) && t.Before(*s.End) {
				return false
			}
		}
		if len(p.TimeInWeek) == 0 {
			return true
		}
		t = t.UTC()
		for _, w := range p.TimeInWeek {
			if w == nil || w.Day == nil || string(*w.Day) != t.Weekday().String() {
				continue
			}
			if len(w.HourSlots) == 0 {
				return true // the whole day
			}
			for _, h := range w.HourSlots {
				if h != nil && int(*h) == t.Hour() {
					return true
				}
			}
		}
		return false
	}
	if allowed(now) {
		return true, now
	}
	hour := now.UTC().Truncate(time.Hour)
	for t := hour.Add(time.Hour); t.Sub(now) < horizon; t = t.Add(time.Hour) {
		if allowed(t) {
			return false, t
		}
	}
	return false, time.Time{}
}

// validDay says whether d names a day of the week, as the API spells them.
func validDay(d armcontainerservice.WeekDay) bool {
	return slices.Contains(armcontainerservice.PossibleWeekDayValues(), d)
}

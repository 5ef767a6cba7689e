package maintenance

import (
	"encoding/json"
	"testing"
	"time"
)

func props(t *testing.T, js string) *Properties {
	t.Helper()
	var p Properties
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWeeklyWindowWithOffset(t *testing.T) {
	// Saturdays 02:00 to 06:00 at UTC+02:00, i.e. Friday 00:00 to 04:00 UTC.
	p := props(t, `{"maintenanceWindow":{"schedule":{"weekly":{"dayOfWeek":"Saturday","intervalWeeks":1}},"durationHours":4,"startTime":"02:00","utcOffset":"+02:00"}}`)
	if err := Validate(NodeOSUpgrade, p); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  string
		open bool
		next string
	}{
		{"2026-11-27T23:59:00Z", false, "2026-11-28T00:00:00Z"}, // Friday night UTC, Saturday 01:59 local
		{"2026-11-28T00:00:00Z", true, "2026-11-28T00:00:00Z"},
		{"2026-11-28T03:59:59Z", true, "2026-11-28T00:00:00Z"},
		{"2026-11-28T04:00:00Z", false, "2026-12-05T00:00:00Z"}, // closed: next Saturday
		{"2026-11-30T12:00:00Z", false, "2026-12-05T00:00:00Z"},
	} {
		open, next := Open(NodeOSUpgrade, p, at(tc.now))
		if open != tc.open || !next.Equal(at(tc.next)) {
			t.Errorf("at %s: open=%v next=%s, want %v %s", tc.now, open, next.UTC().Format(time.RFC3339), tc.open, tc.next)
		}
	}
}

func TestDailyWindowAcrossMidnightAndBlockedDates(t *testing.T) {
	p := props(t, `{"maintenanceWindow":{"schedule":{"daily":{"intervalDays":1}},"durationHours":6,"startTime":"22:00",
		"notAllowedDates":[{"start":"2026-12-24","end":"2026-12-26"}]}}`)
	if err := Validate(NodeOSUpgrade, p); err != nil {
		t.Fatal(err)
	}
	if open, _ := Open(NodeOSUpgrade, p, at("2026-12-01T03:00:00Z")); !open {
		t.Error("the window that opened at 22:00 the day before runs to 04:00")
	}
	if open, next := Open(NodeOSUpgrade, p, at("2026-12-01T04:00:00Z")); open || !next.Equal(at("2026-12-01T22:00:00Z")) {
		t.Errorf("at 04:00: open=%v next=%s", open, next)
	}
	if open, next := Open(NodeOSUpgrade, p, at("2026-12-24T23:00:00Z")); open || !next.Equal(at("2026-12-27T22:00:00Z")) {
		t.Errorf("on a blocked date: open=%v next=%s, want the 27th", open, next)
	}
}

func TestStartDateDefersTheWindow(t *testing.T) {
	p := props(t, `{"maintenanceWindow":{"schedule":{"daily":{}},"durationHours":4,"startTime":"00:00","startDate":"2027-01-10"}}`)
	if open, next := Open(NodeOSUpgrade, p, at("2026-12-01T01:00:00Z")); open || !next.Equal(at("2027-01-10T00:00:00Z")) {
		t.Errorf("before startDate: open=%v next=%s", open, next)
	}
}

func TestMonthlySchedules(t *testing.T) {
	abs := props(t, `{"maintenanceWindow":{"schedule":{"absoluteMonthly":{"dayOfMonth":31,"intervalMonths":1}},"durationHours":4,"startTime":"01:00"}}`)
	if _, next := Open(NodeOSUpgrade, abs, at("2027-02-01T00:00:00Z")); !next.Equal(at("2027-02-28T01:00:00Z")) {
		t.Errorf("day 31 in February falls on its last day, got %s", next)
	}
	rel := props(t, `{"maintenanceWindow":{"schedule":{"relativeMonthly":{"dayOfWeek":"Monday","weekIndex":"Last","intervalMonths":1}},"durationHours":4,"startTime":"01:00"}}`)
	if _, next := Open(NodeOSUpgrade, rel, at("2026-11-27T00:00:00Z")); !next.Equal(at("2026-11-30T01:00:00Z")) {
		t.Errorf("last Monday of November 2026 is the 30th, got %s", next)
	}
}

func TestDefaultConfiguration(t *testing.T) {
	p := props(t, `{"timeInWeek":[{"day":"Sunday","hourSlots":[1,2]}],"notAllowedTime":[{"start":"2026-11-29T01:30:00Z","end":"2026-11-29T02:30:00Z"}]}`)
	if err := Validate(Default, p); err != nil {
		t.Fatal(err)
	}
	if open, next := Open(Default, p, at("2026-11-27T10:00:00Z")); open || !next.Equal(at("2026-11-29T01:00:00Z")) {
		t.Errorf("Friday: open=%v next=%s", open, next)
	}
	if open, _ := Open(Default, p, at("2026-11-29T01:45:00Z")); open {
		t.Error("inside notAllowedTime")
	}
	if open, _ := Open(Default, p, at("2026-11-29T01:10:00Z")); !open {
		t.Error("Sunday 01:10 is in an hour slot")
	}
}

func TestValidate(t *testing.T) {
	for name, js := range map[string]string{
		"short":     `{"maintenanceWindow":{"schedule":{"daily":{}},"durationHours":3,"startTime":"00:00"}}`,
		"time":      `{"maintenanceWindow":{"schedule":{"daily":{}},"durationHours":4,"startTime":"24:00"}}`,
		"offset":    `{"maintenanceWindow":{"schedule":{"daily":{}},"durationHours":4,"startTime":"00:00","utcOffset":"0530"}}`,
		"two kinds": `{"maintenanceWindow":{"schedule":{"daily":{},"weekly":{"dayOfWeek":"Monday"}},"durationHours":4,"startTime":"00:00"}}`,
		"none":      `{"maintenanceWindow":{"schedule":{},"durationHours":4,"startTime":"00:00"}}`,
		"inweek":    `{"timeInWeek":[{"day":"Monday"}]}`,
	} {
		if err := Validate(NodeOSUpgrade, props(t, js)); err == nil {
			t.Errorf("%s: %s was accepted", name, js)
		}
	}
	if err := Validate(Default, props(t, `{"maintenanceWindow":{"schedule":{"daily":{}},"durationHours":4,"startTime":"00:00"}}`)); err == nil {
		t.Error("default with a maintenanceWindow was accepted")
	}
}

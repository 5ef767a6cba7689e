package policyinsights

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/policyinsights/armpolicyinsights"
)

// TestFilters: $filter names a record's fields by their JSON names, in any
// case, for states and events alike.
func TestFilters(t *testing.T) {
	state := &armpolicyinsights.PolicyState{PolicyAssignmentName: to.Ptr("limits"), ComplianceState: to.Ptr("NonCompliant"), IsCompliant: to.Ptr(false)}
	event := &armpolicyinsights.PolicyEvent{PolicyAssignmentName: to.Ptr("limits"), PolicyDefinitionAction: to.Ptr("deny"), IsCompliant: to.Ptr(false)}
	for _, c := range []struct {
		record  any
		filters []filter
		want    bool
	}{
		{state, []filter{{"policyassignmentname", "LIMITS"}, {"compliancestate", "noncompliant"}}, true},
		{state, []filter{{"iscompliant", "false"}}, true},
		{state, []filter{{"compliancestate", "Compliant"}}, false},
		{event, []filter{{"policydefinitionaction", "deny"}, {"policyassignmentname", "limits"}}, true},
		{event, []filter{{"policydefinitionaction", "audit"}}, false},
		// A field the record does not have does not filter it out.
		{event, []filter{{"resourcetags", "x"}}, true},
	} {
		if got := matches(fieldsOf(c.record), c.filters); got != c.want {
			t.Errorf("%T %+v: %v, want %v", c.record, c.filters, got, c.want)
		}
	}
}

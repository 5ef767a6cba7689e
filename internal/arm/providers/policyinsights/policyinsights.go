// Package policyinsights is the Microsoft.PolicyInsights provider:
// compliance of resources with policy assignments (policyStates
// queryResults and summarize) and the evaluations of requests (policyEvents
// queryResults) at a subscription, a resource group, a resource and an
// assignment, on the official SDK's models (armpolicyinsights). For
// Kubernetes definitions the resource is the cluster, and the pods or
// namespaces that break the rule are its components, as Azure reports
// them; the records are the policy controller's (PolicyCompliance) and
// those read from the clusters' audit logs (PolicyEvent).
package policyinsights

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/policyinsights/armpolicyinsights"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/armid"
	policies "github.com/slipway-dev/slipway/internal/policy"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.PolicyInsights"

// versions: armpolicyinsights v0.9.0 sends 2019-10-01 for most scopes and
// 2024-10-01 for a resource's; az 2.45 sends 2019-10-01.
var versions = arm.DatedVersions("2024-10-01")

// Provider serves policy states.
type Provider struct {
	*arm.Server
}

// Register adds policyStates at the subscription, at every resource type
// registered so far (call it after the providers whose resources are
// evaluated) and at assignments of a subscription or a resource group.
func Register(core *arm.Server) *Provider {
	s := &Provider{Server: core}
	scopes := append([]string{"subscriptions/{sub}"}, core.ResourcePatterns()...)
	for _, scope := range scopes {
		s.routes(scope, "")
	}
	s.routes("subscriptions/{sub}", "/providers/Microsoft.Authorization/policyAssignments/{assignment}")
	s.routes("subscriptions/{sub}/resourceGroups/{rg}", "/providers/Microsoft.Authorization/policyAssignments/{assignment}")
	return s
}

func (s *Provider) routes(scope, assignment string) {
	base := scope + assignment + "/providers/" + Namespace
	s.Handle("POST", base+"/policyStates/{states}/queryResults", versions, s.at(scope, s.queryResults))
	s.Handle("POST", base+"/policyStates/{states}/summarize", versions, s.at(scope, s.summarize))
	s.Handle("POST", base+"/policyEvents/{events}/queryResults", versions, s.at(scope, s.eventResults))
}

// query is what a request asks of the records.
type query struct {
	// scope is the ID records' resources must be at or under;
	// assignment, if set, the one assignment they must be of.
	scope, assignment string
	filters           []filter
	top               int
	components        bool
	// from and to bound events' times (Azure's default: the day
	// before the request).
	from, to time.Time
}

type filter struct{ field, value string }

var eqFilter = regexp.MustCompile(`(?i)(\w+)\s+eq\s+'([^']*)'`)

type scopedHandler func(w http.ResponseWriter, r *http.Request, q *query) error

// at resolves a request's scope and query options: $filter (field eq
// 'value' terms joined by and), $top, $expand=components.
func (s *Provider) at(pattern string, h scopedHandler) arm.HandlerFunc {
	return s.AtScope(pattern, func(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
		if st, ok := p["states"]; ok && !strings.EqualFold(st, "latest") && !strings.EqualFold(st, "default") {
			return arm.BadRequest("InvalidPolicyStatesResource", "policyStatesResource", "The policy states resource '%s' is not one of latest, default.", st)
		}
		if ev, ok := p["events"]; ok && !strings.EqualFold(ev, "default") {
			return arm.BadRequest("InvalidPolicyEventsResource", "policyEventsResource", "The policy events resource '%s' is not default.", ev)
		}
		q := &query{scope: scope, to: time.Now()}
		if name := p["assignment"]; name != "" {
			q.assignment = scope + "/providers/Microsoft.Authorization/policyAssignments/" + name
		}
		v := r.URL.Query()
		f := v.Get("$filter")
		if f != "" && strings.Contains(strings.ToLower(f), " or ") {
			return arm.BadRequest("InvalidFilterInQueryString", "$filter", "Only 'eq' terms joined by 'and' are supported in $filter: %s", f)
		}
		for _, m := range eqFilter.FindAllStringSubmatch(f, -1) {
			q.filters = append(q.filters, filter{strings.ToLower(m[1]), m[2]})
		}
		if t := v.Get("$top"); t != "" {
			var err error
			if q.top, err = strconv.Atoi(t); err != nil || q.top < 1 {
				return arm.BadRequest("InvalidTopInQueryString", "$top", "The $top value '%s' is not a positive integer.", t)
			}
		}
		q.components = strings.Contains(strings.ToLower(v.Get("$expand")), "components")
		for _, t := range []struct {
			name string
			into *time.Time
		}{{"$to", &q.to}, {"$from", &q.from}} {
			if raw := v.Get(t.name); raw != "" {
				at, err := time.Parse(time.RFC3339Nano, raw)
				if err != nil {
					return arm.BadRequest("InvalidDateTimeInQueryString", t.name, "The %s value '%s' is not an ISO 8601 date and time.", t.name, raw)
				}
				*t.into = at
			}
		}
		if q.from.IsZero() {
			q.from = q.to.Add(-24 * time.Hour)
		}
		if q.from.After(q.to) {
			return arm.BadRequest("InvalidDateTimeRange", "$from", "$from (%s) is after $to (%s).", q.from.Format(time.RFC3339), q.to.Format(time.RFC3339))
		}
		return h(w, r, q)
	})
}

// states are the records of the compliance objects under a query's
// scope, newest evaluation first, filtered and cut to $top.
func (s *Provider) states(r *http.Request, q *query) ([]*armpolicyinsights.PolicyState, error) {
	list := &slipwayv1.PolicyComplianceList{}
	if err := s.Client().List(r.Context(), list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, err
	}
	var out []*armpolicyinsights.PolicyState
	for i := range list.Items {
		c := &list.Items[i]
		if !policies.Covers(q.scope, c.Spec.ClusterID) || q.assignment != "" && !strings.EqualFold(q.assignment, c.Spec.AssignmentID) {
			continue
		}
		st := s.state(r, c, q.components)
		if !matches(fieldsOf(st), q.filters) {
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *armpolicyinsights.PolicyState) int { return b.Timestamp.Compare(*a.Timestamp) })
	if q.top > 0 && len(out) > q.top {
		out = out[:q.top]
	}
	return out, nil
}

// state is a compliance object as a policy state record.
func (s *Provider) state(r *http.Request, c *slipwayv1.PolicyCompliance, components bool) *armpolicyinsights.PolicyState {
	state := "Compliant"
	if !c.Status.Compliant {
		state = "NonCompliant"
	}
	name := armid.NameOf(c.Spec.AssignmentID)
	_, group, _ := armid.GroupOf(c.Spec.ClusterID)
	st := &armpolicyinsights.PolicyState{
		ODataID:   to.Ptr(""),
		Timestamp: to.Ptr(c.Status.Evaluated.UTC()), ResourceID: to.Ptr(c.Spec.ClusterID),
		PolicyAssignmentID: to.Ptr(c.Spec.AssignmentID), PolicyAssignmentName: to.Ptr(name), PolicyAssignmentScope: to.Ptr(policies.AssignmentScope(c.Spec.AssignmentID)),
		PolicyDefinitionID: to.Ptr(c.Spec.DefinitionID), PolicyDefinitionName: to.Ptr(armid.NameOf(c.Spec.DefinitionID)),
		PolicyDefinitionAction: to.Ptr(strings.ToLower(c.Status.Effect)), PolicyDefinitionCategory: to.Ptr("Kubernetes"),
		IsCompliant: to.Ptr(c.Status.Compliant), ComplianceState: to.Ptr(state),
		SubscriptionID: to.Ptr(armid.SubscriptionOf(c.Spec.ClusterID)), ResourceGroup: to.Ptr(group),
		ResourceType: to.Ptr("Microsoft.ContainerService/managedClusters"), ResourceLocation: to.Ptr(s.Location()),
		PolicySetDefinitionID: to.Ptr(""), PolicyDefinitionReferenceID: to.Ptr(""), ManagementGroupIDs: to.Ptr(""),
	}
	if components {
		for _, v := range c.Status.NonCompliant {
			id := v.Name
			if v.Namespace != "" {
				id = v.Namespace + "/" + v.Name
			}
			st.Components = append(st.Components, &armpolicyinsights.ComponentStateDetails{
				ID: to.Ptr(id), Name: to.Ptr(v.Name), Type: to.Ptr(v.Kind), Timestamp: to.Ptr(c.Status.Evaluated.UTC()),
				ComplianceState: to.Ptr("NonCompliant"), AdditionalProperties: map[string]any{"message": v.Message, "namespace": v.Namespace},
			})
		}
	}
	return st
}

// fieldsOf are the fields of a record (a policy state or event) that
// $filter can name: its string and boolean JSON properties, by their
// lower-cased names.
func fieldsOf(record any) map[string]string {
	b, _ := json.Marshal(record)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v.(type) {
		case string, bool:
			out[strings.ToLower(k)] = fmt.Sprint(v)
		}
	}
	return out
}

// matches applies eq filters on a record's fields.
func matches(fields map[string]string, filters []filter) bool {
	for _, f := range filters {
		if v, ok := fields[f.field]; ok && !strings.EqualFold(v, f.value) {
			return false
		}
	}
	return true
}

// odataContext is a query's @odata.context: the collection's metadata URL
// at the request's scope.
func odataContext(r *http.Request, collection, entity string) string {
	return "https://" + r.Host + strings.SplitN(r.URL.Path, "/"+collection+"/", 2)[0] + "/" + collection + "/$metadata#" + entity
}

func (s *Provider) queryResults(w http.ResponseWriter, r *http.Request, q *query) error {
	states, err := s.states(r, q)
	if err != nil {
		return err
	}
	if states == nil {
		states = []*armpolicyinsights.PolicyState{}
	}
	ctx := odataContext(r, "policyStates", "latest")
	for _, st := range states {
		st.ODataContext = to.Ptr(ctx + "/$entity")
	}
	arm.WriteJSON(w, http.StatusOK, armpolicyinsights.PolicyStatesQueryResults{ODataContext: to.Ptr(ctx), ODataCount: to.Ptr(int32(len(states))), Value: states})
	return nil
}

// summarize counts, at the scope, the resources and assignments that do
// not comply, overall and by assignment.
func (s *Provider) summarize(w http.ResponseWriter, r *http.Request, q *query) error {
	states, err := s.states(r, q)
	if err != nil {
		return err
	}
	type tally struct {
		resources map[string]bool // resource -> compliant
		st        *armpolicyinsights.PolicyState
	}
	byAssignment := map[string]*tally{}
	all := map[string]bool{}
	for _, st := range states {
		id := strings.ToLower(*st.PolicyAssignmentID)
		t := byAssignment[id]
		if t == nil {
			t = &tally{resources: map[string]bool{}, st: st}
			byAssignment[id] = t
		}
		res := strings.ToLower(*st.ResourceID)
		t.resources[res] = *st.IsCompliant
		if c, seen := all[res]; !seen || c {
			all[res] = *st.IsCompliant
		}
	}
	results := func(resources map[string]bool, policies int32) *armpolicyinsights.SummaryResults {
		var bad, good int32
		for _, ok := range resources {
			if ok {
				good++
			} else {
				bad++
			}
		}
		return &armpolicyinsights.SummaryResults{
			QueryResultsURI:       to.Ptr(strings.TrimSuffix("https://"+r.Host+r.URL.Path, "/summarize") + "/queryResults?api-version=2019-10-01"),
			NonCompliantResources: to.Ptr(bad), NonCompliantPolicies: to.Ptr(policies),
			ResourceDetails: []*armpolicyinsights.ComplianceDetail{{ComplianceState: to.Ptr("compliant"), Count: to.Ptr(good)}, {ComplianceState: to.Ptr("noncompliant"), Count: to.Ptr(bad)}},
		}
	}
	summary := &armpolicyinsights.Summary{ODataID: nil, ODataContext: to.Ptr(odataContext(r, "policyStates", "latest") + "/$entity"), PolicyAssignments: []*armpolicyinsights.PolicyAssignmentSummary{}}
	var nonCompliantPolicies int32
	for _, id := range slices.Sorted(maps.Keys(byAssignment)) {
		t := byAssignment[id]
		bad := int32(0)
		for _, ok := range t.resources {
			if !ok {
				bad = 1
			}
		}
		nonCompliantPolicies += bad
		summary.PolicyAssignments = append(summary.PolicyAssignments, &armpolicyinsights.PolicyAssignmentSummary{
			PolicyAssignmentID: t.st.PolicyAssignmentID, PolicySetDefinitionID: to.Ptr(""), Results: results(t.resources, bad),
			PolicyDefinitions: []*armpolicyinsights.PolicyDefinitionSummary{{PolicyDefinitionID: t.st.PolicyDefinitionID, PolicyDefinitionReferenceID: to.Ptr(""),
				Effect: t.st.PolicyDefinitionAction, Results: results(t.resources, bad)}},
			PolicyGroups: []*armpolicyinsights.PolicyGroupSummary{},
		})
	}
	summary.Results = results(all, nonCompliantPolicies)
	arm.WriteJSON(w, http.StatusOK, armpolicyinsights.SummarizeResults{ODataContext: to.Ptr(odataContext(r, "policyStates", "latest")), ODataCount: to.Ptr(int32(1)), Value: []*armpolicyinsights.Summary{summary}})
	return nil
}

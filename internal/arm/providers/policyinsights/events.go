package policyinsights

import (
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/policyinsights/armpolicyinsights"
	"github.com/google/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/armid"
	policies "github.com/slipway-dev/slipway/internal/policy"
)

// events are the event records under a query's scope and in its time
// window, newest first, filtered and cut to $top.
func (s *Provider) events(r *http.Request, q *query) ([]*armpolicyinsights.PolicyEvent, error) {
	list := &slipwayv1.PolicyEventList{}
	if err := s.Client().List(r.Context(), list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, err
	}
	var out []*armpolicyinsights.PolicyEvent
	for i := range list.Items {
		e := &list.Items[i]
		at := e.Spec.Time.Time
		if at.Before(q.from) || at.After(q.to) || !policies.Covers(q.scope, e.Spec.ClusterID) ||
			q.assignment != "" && !strings.EqualFold(q.assignment, e.Spec.AssignmentID) {
			continue
		}
		ev := s.event(e, q.components)
		if !matches(fieldsOf(ev), q.filters) {
			continue
		}
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b *armpolicyinsights.PolicyEvent) int { return b.Timestamp.Compare(*a.Timestamp) })
	if q.top > 0 && len(out) > q.top {
		out = out[:q.top]
	}
	return out, nil
}

// event is an event record: the cluster is the resource, and the
// Kubernetes object the request was for its component.
func (s *Provider) event(e *slipwayv1.PolicyEvent, components bool) *armpolicyinsights.PolicyEvent {
	assignment := e.Spec.AssignmentID
	_, group, _ := armid.GroupOf(e.Spec.ClusterID)
	at := e.Spec.Time.UTC()
	// The user is an object ID when it is an Azure principal's.
	var principal *string
	if _, err := uuid.Parse(e.Spec.User); err == nil {
		principal = to.Ptr(e.Spec.User)
	}
	ev := &armpolicyinsights.PolicyEvent{
		Timestamp: to.Ptr(at), ResourceID: to.Ptr(e.Spec.ClusterID),
		PolicyAssignmentID: to.Ptr(assignment), PolicyAssignmentName: to.Ptr(armid.NameOf(assignment)), PolicyAssignmentScope: to.Ptr(policies.AssignmentScope(assignment)),
		PolicyDefinitionID: to.Ptr(e.Spec.DefinitionID), PolicyDefinitionName: to.Ptr(armid.NameOf(e.Spec.DefinitionID)),
		PolicyDefinitionAction: to.Ptr(e.Spec.Action), PolicyDefinitionCategory: to.Ptr("Kubernetes"),
		IsCompliant: to.Ptr(false), ComplianceState: to.Ptr("NonCompliant"),
		SubscriptionID: to.Ptr(armid.SubscriptionOf(e.Spec.ClusterID)), ResourceGroup: to.Ptr(group),
		ResourceType: to.Ptr("Microsoft.ContainerService/managedClusters"), ResourceLocation: to.Ptr(s.Location()),
		TenantID: to.Ptr(s.TenantID()), PrincipalOid: principal,
		PolicySetDefinitionID: to.Ptr(""), PolicyDefinitionReferenceID: to.Ptr(""), ManagementGroupIDs: to.Ptr(""),
	}
	if components {
		o := e.Spec.Object
		id := o.Name
		if o.Namespace != "" {
			id = o.Namespace + "/" + o.Name
		}
		ev.Components = []*armpolicyinsights.ComponentEventDetails{{
			ID: to.Ptr(id), Name: to.Ptr(o.Name), Type: to.Ptr(o.Kind), Timestamp: to.Ptr(at),
			PolicyDefinitionAction: to.Ptr(e.Spec.Action), TenantID: to.Ptr(s.TenantID()), PrincipalOid: principal,
			AdditionalProperties: map[string]any{"namespace": o.Namespace, "message": o.Message, "operation": e.Spec.Operation, "user": e.Spec.User},
		}}
	}
	return ev
}

func (s *Provider) eventResults(w http.ResponseWriter, r *http.Request, q *query) error {
	events, err := s.events(r, q)
	if err != nil {
		return err
	}
	if events == nil {
		events = []*armpolicyinsights.PolicyEvent{}
	}
	ctx := odataContext(r, "policyEvents", "default")
	for _, ev := range events {
		ev.ODataContext = to.Ptr(ctx + "/$entity")
	}
	arm.WriteJSON(w, http.StatusOK, armpolicyinsights.PolicyEventsQueryResults{ODataContext: to.Ptr(ctx), ODataCount: to.Ptr(int32(len(events))), Value: events})
	return nil
}

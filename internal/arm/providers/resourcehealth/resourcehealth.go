// Package resourcehealth is the Microsoft.ResourceHealth provider: the
// availability of each managed cluster now and 30 days back, and the
// Service Health events (planned maintenance, incidents) that impacted it.
// The health controller probes the clusters and keeps their ClusterHealth
// objects; this package only reads them, and shapes them with the Resource
// Health SDK's own models.
package resourcehealth

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resourcehealth/armresourcehealth"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/health"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.ResourceHealth"

// versions are the stable api-versions of the public specs, 2015-01-01 to
// 2025-05-01 (the SDK, armresourcehealth v1.3.0, sends 2022-10-01). The
// shapes Slipway serves are common to all of them.
var versions = arm.Versions("2015-01-01", "2017-07-01", "2018-07-01", "2020-05-01", "2022-05-01", "2022-10-01", "2024-02-01", "2025-04-01", "2025-05-01")

// service is the impacted service's name in events.
const service = "Azure Kubernetes Service (AKS)"

// Provider serves Microsoft.ResourceHealth.
type Provider struct {
	*arm.Server
	policy health.Policy
	now    func() time.Time
}

// Register adds the provider's routes for resources of the given route
// patterns (those the health controller keeps a ClusterHealth for).
func Register(core *arm.Server, policy health.Policy, resources ...string) *Provider {
	s := &Provider{Server: core, policy: policy, now: time.Now}
	const rh = "/providers/" + Namespace
	for _, pattern := range resources {
		core.Handle("GET", pattern+rh+"/availabilityStatuses/current", versions, rhErrors(s.getCurrent))
		core.Handle("GET", pattern+rh+"/availabilityStatuses", versions, rhErrors(s.listHistory))
		core.Handle("GET", pattern+rh+"/events", versions, rhErrors(s.listResourceEvents))
	}
	core.Handle("GET", "subscriptions/{sub}"+rh+"/availabilityStatuses", versions, rhErrors(s.listCurrent))
	core.Handle("GET", "subscriptions/{sub}/resourceGroups/{rg}"+rh+"/availabilityStatuses", versions, rhErrors(s.listCurrent))
	core.Handle("GET", "subscriptions/{sub}"+rh+"/events", versions, rhErrors(s.listEvents))
	core.Handle("GET", "subscriptions/{sub}"+rh+"/events/{event}", versions, rhErrors(s.getEvent))
	return s
}

// rhErrors answers a handler's errors in Resource Health's own shape,
// {"code","message","details"}, not ARM's {"error":{...}}. Errors of the
// front door (authentication, authorization, api-version) stay ARM's, as
// ARM answers those before the request reaches the provider.
func rhErrors(h arm.HandlerFunc) arm.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p arm.Params) error {
		err := h(w, r, p)
		var e *arm.Error
		if !errors.As(err, &e) {
			return err
		}
		arm.WriteJSON(w, e.Status, map[string]string{"code": e.Code, "message": e.Message, "details": e.Target})
		return nil
	}
}

// resourceOf is the health of the resource a request's path names (the
// part before /providers/Microsoft.ResourceHealth).
func (s *Provider) resourceOf(r *http.Request) (string, *slipwayv1.ClusterHealth, error) {
	path := r.URL.Path
	id := path[:strings.Index(strings.ToLower(path), "/providers/microsoft.resourcehealth")]
	res, err := s.Lookup(r.Context(), id)
	if err != nil {
		return "", nil, err
	}
	h := &slipwayv1.ClusterHealth{}
	err = s.Client().Get(r.Context(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(res.ID)}, h)
	if client.IgnoreNotFound(err) != nil {
		return "", nil, err
	}
	if err != nil {
		// Not probed yet: a resource made a moment ago.
		h = &slipwayv1.ClusterHealth{Spec: slipwayv1.ClusterHealthSpec{ResourceID: res.ID}}
	}
	return res.ID, h, nil
}

func (s *Provider) getCurrent(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	id, h, err := s.resourceOf(r)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, s.current(id, h, expandsActions(r)))
	return nil
}

func expandsActions(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.URL.Query().Get("$expand")), "recommendedactions")
}

// current renders a cluster's state now.
func (s *Provider) current(id string, h *slipwayv1.ClusterHealth, actions bool) *armresourcehealth.AvailabilityStatus {
	st, _ := s.currentAt(s.now(), id, h, actions)
	return st
}

// currentAt renders a cluster's state at now, and says which transition it
// stands for.
func (s *Provider) currentAt(now time.Time, id string, h *slipwayv1.ClusterHealth, actions bool) (*armresourcehealth.AvailabilityStatus, slipwayv1.HealthTransition) {
	tr, checked := health.Current(&h.Status, now, s.policy)
	st := s.status(id, h, "current", tr)
	p := st.Properties
	if checked != nil {
		p.ReportedTime = to.Ptr(checked.UTC())
	}
	if actions {
		p.RecommendedActions = recommendedActions(tr, id)
	}
	if n := len(h.Status.Transitions); tr.State == health.Available && n >= 2 {
		// Resource Health notes an outage that ended within a day.
		prev := h.Status.Transitions[n-2]
		if prev.State == health.Unavailable && prev.ReasonType == health.Unplanned && now.Sub(tr.Since.Time) < 24*time.Hour {
			p.RecentlyResolved = &armresourcehealth.AvailabilityStatusPropertiesRecentlyResolved{
				UnavailableOccurredTime: to.Ptr(prev.Since.UTC()), ResolvedTime: to.Ptr(tr.Since.UTC()), UnavailabilitySummary: to.Ptr(prev.Summary),
			}
		}
	}
	for _, e := range h.Status.Events {
		if e.End == nil {
			p.ServiceImpactingEvents = append(p.ServiceImpactingEvents, impacting(e, h.Spec.Location))
		}
	}
	return st, tr
}

// status renders one transition as an availabilityStatus named name.
func (s *Provider) status(id string, h *slipwayv1.ClusterHealth, name string, tr slipwayv1.HealthTransition) *armresourcehealth.AvailabilityStatus {
	p := &armresourcehealth.AvailabilityStatusProperties{
		AvailabilityState: to.Ptr(armresourcehealth.AvailabilityStateValues(tr.State)),
		Title:             to.Ptr(tr.Title),
		Summary:           to.Ptr(tr.Summary),
		DetailedStatus:    to.Ptr(tr.Summary),
		ReasonChronicity:  to.Ptr(armresourcehealth.ReasonChronicityTypesPersistent),
	}
	if !tr.Since.IsZero() {
		p.OccurredTime = to.Ptr(tr.Since.UTC())
	}
	if tr.ReasonType != "" {
		p.ReasonType = to.Ptr(tr.ReasonType)
		p.Category = to.Ptr(tr.ReasonType)
		p.Context = to.Ptr("Platform Initiated")
		if tr.ReasonType == health.UserInitiated {
			p.Context = to.Ptr("Customer Initiated")
		}
	}
	return &armresourcehealth.AvailabilityStatus{
		ID:         to.Ptr(id + "/providers/" + Namespace + "/availabilityStatuses/" + name),
		Name:       to.Ptr(name),
		Type:       to.Ptr(Namespace + "/AvailabilityStatuses"),
		Location:   to.Ptr(h.Spec.Location),
		Properties: p,
	}
}

// recommendedActions says what a user can do about a state.
func recommendedActions(tr slipwayv1.HealthTransition, id string) []*armresourcehealth.RecommendedAction {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	group, name := segs[3], segs[len(segs)-1]
	act := func(action, url, text string) *armresourcehealth.RecommendedAction {
		return &armresourcehealth.RecommendedAction{Action: to.Ptr(action), ActionURL: to.Ptr(url), ActionURLText: to.Ptr(text)}
	}
	switch tr.Reason {
	case "ClusterStopped":
		return []*armresourcehealth.RecommendedAction{act("Start the cluster: az aks start -g "+group+" -n "+name, "https://aka.ms/aks/stop-start", "Stop and start an AKS cluster")}
	case "APIServerUnreachable", "ControlPlaneComponentUnhealthy":
		return []*armresourcehealth.RecommendedAction{act("Check the cluster's state with az aks show -g "+group+" -n "+name+"; if the outage lasts, open a support request.", "https://aka.ms/aks/troubleshooting", "Troubleshoot AKS")}
	case "NodesNotReady":
		return []*armresourcehealth.RecommendedAction{act("Find the nodes that are not Ready with kubectl get nodes and read their conditions with kubectl describe node.", "https://aka.ms/aks/node-not-ready", "Troubleshoot nodes that are not ready")}
	case "CoreServicesUnavailable":
		return []*armresourcehealth.RecommendedAction{act("Look at the pods of kube-system with kubectl get pods -n kube-system; a system node pool with room for them restores the services.", "https://aka.ms/aks/system-pools", "Manage system node pools")}
	case "IdentityInvalid":
		return []*armresourcehealth.RecommendedAction{act("Reset the cluster's credentials: az aks update-credentials -g "+group+" -n "+name+" --reset-service-principal.", "https://aka.ms/aks/update-credentials", "Update cluster credentials")}
	case "PlannedMaintenance":
		return []*armresourcehealth.RecommendedAction{act("No action is needed. Set a maintenance window to choose when maintenance runs: az aks maintenanceconfiguration add.", "https://aka.ms/aks/planned-maintenance", "Planned maintenance")}
	}
	return []*armresourcehealth.RecommendedAction{}
}

func impacting(e slipwayv1.HealthEvent, location string) *armresourcehealth.ServiceImpactingEvent {
	status, kind := "Active", "Incident"
	if e.End != nil {
		status = "Resolved"
	}
	if e.Type == health.EventPlannedMaintenance {
		kind = "Maintenance"
	}
	return &armresourcehealth.ServiceImpactingEvent{
		EventStartTime: to.Ptr(e.Start.UTC()), EventStatusLastModifiedTime: to.Ptr(e.LastUpdate.UTC()), CorrelationID: to.Ptr(e.ID),
		Status:             &armresourcehealth.ServiceImpactingEventStatus{Value: to.Ptr(status)},
		IncidentProperties: &armresourcehealth.ServiceImpactingEventIncidentProperties{Title: to.Ptr(e.Title), Service: to.Ptr(service), Region: to.Ptr(location), IncidentType: to.Ptr(kind)},
	}
}

// listHistory lists a resource's transitions and impacting events of the
// last 30 days, newest first: the current state first, as "current".
func (s *Provider) listHistory(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	id, h, err := s.resourceOf(r)
	if err != nil {
		return err
	}
	now := s.now()
	cutoff := now.Add(-s.policy.Retention)
	type entry struct {
		at time.Time
		st *armresourcehealth.AvailabilityStatus
	}
	cur, c := s.currentAt(now, id, h, expandsActions(r))
	entries := []entry{{now, cur}}
	trs := h.Status.Transitions
	if len(trs) > 0 && c.Since.Equal(&trs[len(trs)-1].Since) && c.State == trs[len(trs)-1].State {
		trs = trs[:len(trs)-1] // the current entry stands for it
	}
	for i, tr := range trs {
		if i+1 < len(h.Status.Transitions) && h.Status.Transitions[i+1].Since.Time.Before(cutoff) {
			continue // over before the window opened
		}
		entries = append(entries, entry{tr.Since.Time, s.status(id, h, tr.Since.UTC().Format("2006-01-02+15%3a04%3a05Z"), tr)})
	}
	for _, e := range h.Status.Events {
		entries = append(entries, entry{e.Start.Time, s.eventEntry(id, h, e)})
	}
	sort.SliceStable(entries[1:], func(i, j int) bool { return entries[1+i].at.After(entries[1+j].at) })
	out := make([]*armresourcehealth.AvailabilityStatus, len(entries))
	for i, e := range entries {
		out[i] = e.st
	}
	return writePage(s, w, r, out)
}

// eventEntry is an impacting event in a history: an entry without an
// availability state, as Resource Health lists them.
func (s *Provider) eventEntry(id string, h *slipwayv1.ClusterHealth, e slipwayv1.HealthEvent) *armresourcehealth.AvailabilityStatus {
	category := health.Unplanned
	if e.Type == health.EventPlannedMaintenance {
		category = health.Planned
	}
	return &armresourcehealth.AvailabilityStatus{
		ID:       to.Ptr(id + "/providers/" + Namespace + "/availabilityStatuses/" + e.ID),
		Name:     to.Ptr(e.ID),
		Type:     to.Ptr(Namespace + "/AvailabilityStatuses"),
		Location: to.Ptr(h.Spec.Location),
		Properties: &armresourcehealth.AvailabilityStatusProperties{
			Title: to.Ptr(e.Title), Summary: to.Ptr(e.Summary), ReasonType: to.Ptr(category), Category: to.Ptr(category),
			OccurredTime: to.Ptr(e.Start.UTC()), HealthEventID: to.Ptr(e.ID), HealthEventType: to.Ptr(e.Type), HealthEventCategory: to.Ptr(category),
			ServiceImpactingEvents: []*armresourcehealth.ServiceImpactingEvent{impacting(e, h.Spec.Location)},
		},
	}
}

// listCurrent lists the current state of every cluster of a subscription
// or resource group.
func (s *Provider) listCurrent(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	opts := []client.ListOption{client.InNamespace(slipwayv1.Namespace)}
	if g := p["rg"]; g != "" {
		if _, err := s.LookupResourceGroup(r.Context(), g); err != nil {
			return err
		}
		opts = append(opts, client.MatchingLabels{slipwayv1.LabelResourceGroup: armid.Label(g)})
	}
	healths, err := s.healths(r.Context(), opts...)
	if err != nil {
		return err
	}
	out := []*armresourcehealth.AvailabilityStatus{}
	for i := range healths {
		out = append(out, s.current(healths[i].Spec.ResourceID, &healths[i], expandsActions(r)))
	}
	return writePage(s, w, r, out)
}

func (s *Provider) healths(ctx context.Context, opts ...client.ListOption) ([]slipwayv1.ClusterHealth, error) {
	var list slipwayv1.ClusterHealthList
	if err := s.Client().List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return strings.ToLower(list.Items[i].Spec.ResourceID) < strings.ToLower(list.Items[j].Spec.ResourceID)
	})
	return list.Items, nil
}

// listEvents lists the subscription's Service Health events, newest
// first, updated since queryStartTime when given.
func (s *Provider) listEvents(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	healths, err := s.healths(r.Context(), client.InNamespace(slipwayv1.Namespace))
	if err != nil {
		return err
	}
	return s.writeEvents(w, r, healths)
}

func (s *Provider) listResourceEvents(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	_, h, err := s.resourceOf(r)
	if err != nil {
		return err
	}
	return s.writeEvents(w, r, []slipwayv1.ClusterHealth{*h})
}

func (s *Provider) writeEvents(w http.ResponseWriter, r *http.Request, healths []slipwayv1.ClusterHealth) error {
	since, err := queryStartTime(r.URL.Query().Get("queryStartTime"))
	if err != nil {
		return err
	}
	type item struct {
		e slipwayv1.HealthEvent
		h *slipwayv1.ClusterHealth
	}
	var items []item
	for i := range healths {
		for _, e := range healths[i].Status.Events {
			if !e.LastUpdate.Time.Before(since) {
				items = append(items, item{e, &healths[i]})
			}
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].e.Start.After(items[j].e.Start.Time) })
	out := []*armresourcehealth.Event{}
	for _, it := range items {
		out = append(out, s.event(it.e, it.h))
	}
	return writePage(s, w, r, out)
}

func (s *Provider) getEvent(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	healths, err := s.healths(r.Context(), client.InNamespace(slipwayv1.Namespace))
	if err != nil {
		return err
	}
	for i := range healths {
		for _, e := range healths[i].Status.Events {
			if strings.EqualFold(e.ID, p["event"]) {
				arm.WriteJSON(w, http.StatusOK, s.event(e, &healths[i]))
				return nil
			}
		}
	}
	return arm.NewError(http.StatusNotFound, "NotFound", "", "The event %s was not found.", p["event"])
}

// event renders a Service Health event.
func (s *Provider) event(e slipwayv1.HealthEvent, h *slipwayv1.ClusterHealth) *armresourcehealth.Event {
	status, level := armresourcehealth.EventStatusValuesActive, armresourcehealth.EventLevelValuesWarning
	if e.End != nil {
		status = armresourcehealth.EventStatusValuesResolved
	}
	if e.Type == health.EventPlannedMaintenance {
		level = armresourcehealth.EventLevelValuesInformational
	}
	p := &armresourcehealth.EventProperties{
		EventType: to.Ptr(armresourcehealth.EventTypeValues(e.Type)), EventSource: to.Ptr(armresourcehealth.EventSourceValuesResourceHealth),
		Status: to.Ptr(status), Title: to.Ptr(e.Title), Header: to.Ptr(e.Title), Summary: to.Ptr(e.Summary + " Impacted resource: " + h.Spec.ResourceID + "."),
		EventLevel: to.Ptr(level), PlatformInitiated: to.Ptr(true),
		ImpactStartTime: to.Ptr(e.Start.UTC()), LastUpdateTime: to.Ptr(e.LastUpdate.UTC()),
		Impact: []*armresourcehealth.Impact{{ImpactedService: to.Ptr(service), ImpactedRegions: []*armresourcehealth.ImpactedServiceRegion{{
			ImpactedRegion: to.Ptr(h.Spec.Location), Status: to.Ptr(status), LastUpdateTime: to.Ptr(e.LastUpdate.UTC()),
			ImpactedSubscriptions: []*string{to.Ptr(s.SubscriptionID())},
		}}}},
	}
	if e.End != nil {
		p.ImpactMitigationTime = to.Ptr(e.End.UTC())
	}
	return &armresourcehealth.Event{
		ID: to.Ptr("/subscriptions/" + s.SubscriptionID() + "/providers/" + Namespace + "/events/" + e.ID), Name: to.Ptr(e.ID),
		Type: to.Ptr(Namespace + "/events"), Properties: p,
	}
}

// queryStartTime parses the events list's filter, which Azure documents
// as "7/24/2020" and clients also send as an ISO date.
func queryStartTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02", "1/2/2006", "1/2/2006 15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, arm.InvalidParameter("queryStartTime", "The value %q of queryStartTime is not a date, such as 7/24/2020.", v)
}

// pageSize is how many entries a page holds unless $top asks for fewer.
const pageSize = 50

// writePage writes one page of items with a nextLink to the next, as
// Resource Health pages its lists.
func writePage[T any](s *Provider, w http.ResponseWriter, r *http.Request, items []T) error {
	q := r.URL.Query()
	size := pageSize
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return arm.InvalidParameter("$top", "The value %q of $top must be a positive integer.", v)
		}
		size = min(n, 1000)
	}
	start := 0
	if v := q.Get("$skiptoken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return arm.InvalidParameter("$skiptoken", "The continuation token %q is not valid.", v)
		}
		start = min(n, len(items))
	}
	end := min(start+size, len(items))
	body := struct {
		Value    []T     `json:"value"`
		NextLink *string `json:"nextLink,omitempty"`
	}{Value: items[start:end]}
	if end < len(items) {
		q.Set("$skiptoken", strconv.Itoa(end))
		next := s.BaseURL() + r.URL.Path + "?" + q.Encode()
		body.NextLink = &next
	}
	arm.WriteJSON(w, http.StatusOK, body)
	return nil
}

package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/auditlog"
	"github.com/slipway-dev/slipway/internal/hosting"
	policies "github.com/slipway-dev/slipway/internal/policy"
)

// clusterPolicyEvents records, from each running cluster's audit log, the
// requests that Azure Policy's add-on denied or audited, as PolicyEvents
// (what Microsoft.PolicyInsights/policyEvents answers from). The API
// server enforces the policies alone; this only reads what it wrote, so a
// Slipway that is down loses no event, it reads them when back (from the
// newest it has, across one rotation of the log).
type clusterPolicyEvents struct {
	// client writes and lists events directly: they are many and never
	// read back through a cache.
	client client.Client
	log    *slog.Logger
}

// policyEventPoll is how often a cluster's audit log is read for more.
const policyEventPoll = 250 * time.Millisecond

func (p clusterPolicyEvents) start(ctx context.Context, c *hosting.Cluster) (func(), error) {
	mc := &slipwayv1.ManagedCluster{}
	if err := p.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: c.ID()}, mc); err != nil {
		return nil, fmt.Errorf("policy events: %w", err)
	}
	cs, err := c.AdminClient()
	if err != nil {
		return nil, err
	}
	rec := &eventRecorder{client: p.client, cluster: cs, clusterID: mc.Spec.ResourceID, origins: map[string]origin{}}
	since, err := rec.prune(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := auditlog.Follow(ctx, c.AuditLogPath(), since, policyEventPoll, func(ev *auditv1.Event) { rec.record(ctx, ev) })
		if err != nil {
			p.log.Error("policy events stopped", "cluster", c.ID(), "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// origin is the assignment (and its definition) an add-on object in a
// cluster enforces.
type origin struct{ assignment, definition string }

// eventRecorder writes one cluster's events. It is used by one goroutine
// at a time: start prunes before the follower begins, which alone calls
// record.
type eventRecorder struct {
	client    client.Client
	cluster   kubernetes.Interface
	clusterID string

	// origins caches the assignment of each add-on object by its name,
	// which is made from the assignment's ID and never names another.
	origins map[string]origin
	// written counts events since the last prune.
	written int
}

// record writes an event for each of the add-on's findings on a request.
func (r *eventRecorder) record(ctx context.Context, ev *auditv1.Event) {
	findings := policies.FindingsOf(ev)
	if len(findings) == 0 {
		return
	}
	kind, ns, name := policies.ObjectOf(ev)
	for _, f := range findings {
		o, ok := r.originOf(ctx, f, ns)
		if !ok {
			continue
		}
		pe := &slipwayv1.PolicyEvent{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: slipwayv1.Namespace,
				// Named by the request and the policy: reading a log
				// again makes no second event.
				Name: "pe-" + armid.Label(string(ev.AuditID)+"/"+f.Policy+f.Quota),
				Labels: map[string]string{
					slipwayv1.LabelPolicyCluster:    armid.Label(r.clusterID),
					slipwayv1.LabelPolicyAssignment: armid.Label(o.assignment),
				},
			},
			Spec: slipwayv1.PolicyEventSpec{
				AssignmentID: o.assignment, DefinitionID: o.definition, ClusterID: r.clusterID,
				Time: ev.StageTimestamp, Action: f.Action, Operation: ev.Verb, User: ev.User.Username, AuditID: string(ev.AuditID),
				Object: slipwayv1.PolicyViolation{Kind: kind, Namespace: ns, Name: name, Message: f.Message},
			},
		}
		if err := r.client.Create(ctx, pe); err != nil && !apierrors.IsAlreadyExists(err) {
			continue
		}
		r.written++
		if r.written >= slipwayv1.MaxPolicyEvents/10 {
			_, _ = r.prune(ctx)
		}
	}
}

// originOf reads the assignment from the annotations of the add-on's
// policy or quota that made the finding; an object gone since (its
// assignment deleted) makes no event.
func (r *eventRecorder) originOf(ctx context.Context, f policies.Finding, namespace string) (origin, bool) {
	key := f.Policy
	if f.Quota != "" {
		key = namespace + "/" + f.Quota
	}
	if o, ok := r.origins[key]; ok {
		return o, true
	}
	var obj metav1.Object
	var err error
	if f.Quota != "" {
		obj, err = r.cluster.CoreV1().ResourceQuotas(namespace).Get(ctx, f.Quota, metav1.GetOptions{})
	} else {
		obj, err = r.cluster.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, f.Policy, metav1.GetOptions{})
	}
	if err != nil {
		return origin{}, false
	}
	a := obj.GetAnnotations()
	o := origin{assignment: a[policies.AssignmentAnnotation], definition: a[policies.DefinitionAnnotation]}
	if o.assignment == "" {
		return origin{}, false
	}
	r.origins[key] = o
	return o, true
}

// prune deletes the cluster's events past the newest MaxPolicyEvents and
// those older than the retention, and returns the time of the newest.
func (r *eventRecorder) prune(ctx context.Context) (time.Time, error) {
	r.written = 0
	list := &slipwayv1.PolicyEventList{}
	if err := r.client.List(ctx, list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelPolicyCluster: armid.Label(r.clusterID)}); err != nil {
		return time.Time{}, fmt.Errorf("policy events: %w", err)
	}
	events := list.Items
	slices.SortFunc(events, func(a, b slipwayv1.PolicyEvent) int { return b.Spec.Time.Compare(a.Spec.Time.Time) })
	cutoff := time.Now().Add(-slipwayv1.PolicyEventRetention)
	for i := range events {
		if i >= slipwayv1.MaxPolicyEvents || events[i].Spec.Time.Time.Before(cutoff) {
			_ = client.IgnoreNotFound(r.client.Delete(ctx, &events[i]))
		}
	}
	if len(events) == 0 {
		return time.Time{}, nil
	}
	return events[0].Spec.Time.Time, nil
}

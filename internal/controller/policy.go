package controller

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/policy"
)

// PolicyReconciler is the Azure Policy add-on of every cluster that has
// it on (addonProfiles.azurepolicy): once an interval, and at once when an
// assignment or definition changes, it resolves the assignments whose
// scope covers the cluster, makes the cluster's API server enforce them
// (policy.Sync: ValidatingAdmissionPolicies and ResourceQuotas, no
// webhook of Slipway's on the request path), evaluates the cluster's
// existing objects against them and keeps a PolicyCompliance per
// assignment, which Microsoft.PolicyInsights answers from.
type PolicyReconciler struct {
	Client  client.Client
	Hosting Hosting
	// Placement, if set, limits this host to the clusters it runs.
	Placement Placement
	// Interval is how often each cluster is synced and audited (AKS's
	// add-on: 15 minutes; Slipway's default: 10 s).
	Interval time.Duration
	Clock    clock.PassiveClock
}

// SetupWithManager registers the reconciler.
func (r *PolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	everyCluster := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		list := &slipwayv1.ManagedClusterList{}
		if err := r.Client.List(ctx, list, client.InNamespace(slipwayv1.Namespace)); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for _, mc := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&mc)})
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.ManagedCluster{}).
		Watches(&slipwayv1.PolicyAssignment{}, everyCluster).
		Watches(&slipwayv1.PolicyDefinition{}, everyCluster).
		WithOptions(perCluster(r.Placement, controller.Options{MaxConcurrentReconciles: 2})).
		Named("policy").
		Complete(r)
}

// complianceOf lists a cluster's compliance records.
func (r *PolicyReconciler) complianceOf(ctx context.Context, clusterID string) ([]slipwayv1.PolicyCompliance, error) {
	list := &slipwayv1.PolicyComplianceList{}
	err := r.Client.List(ctx, list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelPolicyCluster: armid.Label(clusterID)})
	return list.Items, err
}

// Reconcile syncs and audits one cluster.
func (r *PolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &slipwayv1.ManagedCluster{}
	err := r.Client.Get(ctx, req.NamespacedName, mc)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil // deleted while this process was down: its records were dropped on its deletion, or stay harmless
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if !runsHere(r.Placement, mc) {
		return elsewhere()
	}
	records, err := r.complianceOf(ctx, mc.Spec.ResourceID)
	if err != nil {
		return ctrl.Result{}, err
	}
	if mc.DeletionTimestamp != nil {
		// A cluster being deleted complies with nothing any more.
		for i := range records {
			if err := client.IgnoreNotFound(r.Client.Delete(ctx, &records[i])); err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{}, nil
	}
	c, err := desired(mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	on := addons.Enabled(c.Properties.AddonProfiles, addons.AzurePolicyAddon)
	if !on && len(records) == 0 {
		// Never on (most clusters): no call to the cluster on each change.
		return ctrl.Result{}, nil
	}
	again := ctrl.Result{RequeueAfter: r.Interval}
	if mc.Spec.Stopped {
		return ctrl.Result{}, nil // nothing runs to evaluate; enforcement stays in the API server's objects
	}
	cs, running, err := adminClientOf(r.Hosting, mc.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !running {
		return again, nil // its control plane is being made
	}
	syncCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var rules []*policy.Rule
	if on {
		if rules, err = r.rules(ctx, mc.Spec.ResourceID); err != nil {
			return ctrl.Result{}, err
		}
	}
	nsList, err := cs.CoreV1().Namespaces().List(syncCtx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return again, nil // the control plane is restarting: next time
	}
	namespaces := policy.Namespaces{}
	for _, ns := range nsList.Items {
		namespaces[ns.Name] = ns.Labels
	}
	if err := policy.Sync(syncCtx, cs, rules, namespaces); err != nil {
		slog.Warn("Azure Policy: syncing a cluster's admission objects", "cluster", mc.Spec.ResourceID, "err", err)
		return again, nil
	}
	keep := map[string]bool{}
	if len(rules) > 0 {
		pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(syncCtx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return again, nil
		}
		for _, rule := range rules {
			if rule.Effect == policy.EffectDisabled {
				continue
			}
			ev, err := rule.Evaluate(namespaces, pods.Items)
			if err != nil {
				slog.Warn("Azure Policy: evaluating a cluster", "cluster", mc.Spec.ResourceID, "assignment", rule.AssignmentID, "err", err)
				continue
			}
			name, err := r.record(ctx, mc, rule, ev)
			if err != nil {
				return ctrl.Result{}, err
			}
			keep[name] = true
		}
	}
	for i := range records {
		if !keep[records[i].Name] {
			if err := client.IgnoreNotFound(r.Client.Delete(ctx, &records[i])); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if !on {
		return ctrl.Result{}, nil
	}
	return again, nil
}

// rules are the assignments whose scope covers the cluster, resolved;
// those of definitions that are not Kubernetes ones, or that do not
// resolve, are left out.
func (r *PolicyReconciler) rules(ctx context.Context, clusterID string) ([]*policy.Rule, error) {
	list := &slipwayv1.PolicyAssignmentList{}
	if err := r.Client.List(ctx, list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, err
	}
	var out []*policy.Rule
	for i := range list.Items {
		a, err := policy.RenderAssignment(&list.Items[i])
		if err != nil {
			return nil, err
		}
		if !policy.InScope(a, clusterID) {
			continue
		}
		def, err := policy.Definition(ctx, r.Client, deref(a.Properties.PolicyDefinitionID))
		if errors.Is(err, policy.ErrDefinitionNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(deref(def.Properties.Mode), policy.KubernetesMode) {
			continue
		}
		rule, err := policy.Resolve(*a.ID, a.Properties, def)
		if err != nil {
			slog.Warn("Azure Policy: an assignment does not resolve", "assignment", *a.ID, "err", err)
			continue
		}
		rule.Instance = string(list.Items[i].UID)
		out = append(out, rule)
	}
	return out, nil
}

// record keeps an evaluation as the assignment's compliance record for
// the cluster (dropped when the cluster is deleted); it is written when the result
// changed or the last one is a minute old.
func (r *PolicyReconciler) record(ctx context.Context, mc *slipwayv1.ManagedCluster, rule *policy.Rule, ev *policy.Evaluation) (string, error) {
	status := slipwayv1.PolicyComplianceStatus{
		Evaluated: metav1.NewTime(r.Clock.Now().UTC().Truncate(time.Second)), Compliant: len(ev.Violations) == 0,
		Evaluations: ev.Evaluated, NonCompliantCount: len(ev.Violations), Effect: rule.Effect,
		NonCompliant: ev.Violations[:min(len(ev.Violations), slipwayv1.MaxNonCompliant)],
	}
	name := "pc-" + armid.Label(rule.AssignmentID+"|"+mc.Spec.ResourceID)
	pc := &slipwayv1.PolicyCompliance{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: name}, pc)
	if apierrors.IsNotFound(err) {
		pc = &slipwayv1.PolicyCompliance{
			ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: name,
				Labels: map[string]string{slipwayv1.LabelPolicyCluster: armid.Label(mc.Spec.ResourceID), slipwayv1.LabelPolicyAssignment: armid.Label(rule.AssignmentID)}},
			Spec:   slipwayv1.PolicyComplianceSpec{AssignmentID: rule.AssignmentID, DefinitionID: rule.DefinitionID, ClusterID: mc.Spec.ResourceID},
			Status: status,
		}
		return name, r.Client.Create(ctx, pc)
	}
	if err != nil {
		return name, err
	}
	old := pc.Status
	old.Evaluated = status.Evaluated
	if equality.Semantic.DeepEqual(old, status) && status.Evaluated.Sub(pc.Status.Evaluated.Time) < time.Minute && pc.Spec.DefinitionID == rule.DefinitionID {
		return name, nil
	}
	pc.Status, pc.Spec.DefinitionID = status, rule.DefinitionID
	return name, r.Client.Update(ctx, pc)
}

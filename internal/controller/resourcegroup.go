package controller

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/authz"
)

// ResourceGroupReconciler deletes what a deleted resource group holds.
type ResourceGroupReconciler struct {
	Client client.Client
	// Fresh reads from the API server: the last look for clusters before
	// the group goes must not miss one the cache has not seen.
	Fresh client.Reader
	// StartOperation records a new operation, as the ARM layer does.
	StartOperation func(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error)
	// Contents delete what a group holds besides clusters: managed disks,
	// storage accounts.
	Contents []GroupContents
}

// GroupContents is a service whose resources live in resource groups.
type GroupContents interface {
	DeleteGroup(ctx context.Context, sub, group string) error
}

// SetupWithManager registers the reconciler.
func (r *ResourceGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&slipwayv1.ResourceGroup{}).Named("resourcegroup").Complete(r)
}

// Reconcile deletes a deleted group's clusters, then lets the group go.
func (r *ResourceGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &slipwayv1.ResourceGroup{}
	if err := r.Client.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if issued, err := finishRecordedDelete(ctx, r.Client, g, g.Spec.Operation); issued || err != nil {
		return ctrl.Result{}, err
	}
	if g.DeletionTimestamp == nil || !controllerutil.ContainsFinalizer(g, slipwayv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	var clusters slipwayv1.ManagedClusterList
	if err := r.Fresh.List(ctx, &clusters, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelResourceGroup: armid.Label(g.Spec.Name)}); err != nil {
		return ctrl.Result{}, err
	}
	for i := range clusters.Items {
		mc := &clusters.Items[i]
		if mc.DeletionTimestamp != nil {
			continue
		}
		op, err := r.StartOperation(ctx, mc.Spec.ResourceID, slipwayv1.ActionDeleting, g.Spec.Location, true)
		if err != nil {
			return ctrl.Result{}, err
		}
		mc.Spec.Operation = &slipwayv1.OperationRef{ID: op.Name, Action: slipwayv1.ActionDeleting}
		if err := r.Client.Update(ctx, mc); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.Client.Delete(ctx, mc); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
	}
	if len(clusters.Items) > 0 {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	// The clusters are gone, and with them the VMs the group's disks
	// were attached to.
	for _, c := range r.Contents {
		if err := c.DeleteGroup(ctx, g.Spec.SubscriptionID, g.Spec.Name); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := authz.DeleteAssignmentsUnder(ctx, r.Client, armid.ResourceGroup(g.Spec.SubscriptionID, g.Spec.Name)); err != nil {
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(g, slipwayv1.Finalizer)
	if err := client.IgnoreNotFound(r.Client.Update(ctx, g)); err != nil {
		return ctrl.Result{}, err
	}
	if g.Spec.Operation != nil {
		return ctrl.Result{}, endOperation(ctx, r.Client, g.Spec.Operation.ID, slipwayv1.OperationSucceeded, nil)
	}
	return ctrl.Result{}, nil
}

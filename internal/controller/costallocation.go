package controller

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/metering"
)

// CostAllocationReconciler is the cost analysis add-on's agent: while a
// cluster's metricsProfile.costAnalysis is enabled, it reads the cluster's
// nodes and pods once an interval and keeps the cluster's CostAllocation,
// how its pools are shared out among namespaces and workloads. The
// metering controller charges by it.
type CostAllocationReconciler struct {
	Client  client.Client
	Hosting Hosting
	// Placement, if set, limits this host to the clusters it runs.
	Placement Placement
	// Interval is the time between two samples of a cluster.
	Interval time.Duration
	Clock    clock.PassiveClock
}

// SetupWithManager registers the reconciler.
func (r *CostAllocationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.ManagedCluster{}).
		WithOptions(perCluster(r.Placement, controller.Options{MaxConcurrentReconciles: 2})).
		Named("costallocation").
		Complete(r)
}

// costAnalysis says the cluster's cost analysis add-on is on.
func costAnalysis(c *armcontainerservice.ManagedCluster) bool {
	m := c.Properties.MetricsProfile
	return m != nil && m.CostAnalysis != nil && deref(m.CostAnalysis.Enabled)
}

// Reconcile samples one cluster.
func (r *CostAllocationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// drop deletes the cluster's allocation, if the cache shows one: a
	// cluster without cost analysis (most) costs no call on each change.
	drop := func() (ctrl.Result, error) {
		a := &slipwayv1.CostAllocation{}
		if err := r.Client.Get(ctx, req.NamespacedName, a); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, a))
	}
	mc := &slipwayv1.ManagedCluster{}
	err := r.Client.Get(ctx, req.NamespacedName, mc)
	if apierrors.IsNotFound(err) || err == nil && mc.DeletionTimestamp != nil {
		return drop()
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if !runsHere(r.Placement, mc) {
		return elsewhere()
	}
	c, err := desired(mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !costAnalysis(c) {
		return drop()
	}
	again := ctrl.Result{RequeueAfter: r.Interval}
	if mc.Spec.Stopped {
		// No VM runs, nothing to share out; the last sample stays for
		// when the cluster starts.
		return ctrl.Result{}, nil
	}
	cs, running, err := adminClientOf(r.Hosting, mc.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !running {
		return again, nil // its control plane is being made
	}
	sampleCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(sampleCtx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return again, nil // the control plane is restarting: sample next time
	}
	pods, err := cs.CoreV1().Pods(corev1.NamespaceAll).List(sampleCtx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return again, nil
	}
	shares := metering.Allocate(nodes.Items, pods.Items)
	a := &slipwayv1.CostAllocation{}
	err = r.Client.Get(ctx, req.NamespacedName, a)
	switch {
	case apierrors.IsNotFound(err):
		a = &slipwayv1.CostAllocation{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name},
			Spec: slipwayv1.CostAllocationSpec{Pools: shares, SampledAt: metav1.NewTime(r.Clock.Now())}}
		return again, r.Client.Create(ctx, a)
	case err != nil:
		return ctrl.Result{}, err
	case equality.Semantic.DeepEqual(a.Spec.Pools, shares) || len(a.Spec.Pools) == 0 && len(shares) == 0:
		// Unchanged: no write, and no new rates to record.
		return again, nil
	}
	a.Spec.Pools, a.Spec.SampledAt = shares, metav1.NewTime(r.Clock.Now())
	return again, r.Client.Update(ctx, a)
}

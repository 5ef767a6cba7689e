package controller

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// idleStartHold bounds how long, after serve starts, an idle cluster's
// control plane waits for those of clusters with work in flight: long
// enough for a loaded 2-core machine to start a few, short enough that a
// cluster whose start keeps failing holds no one back for good.
const idleStartHold = 2 * time.Minute

// holdStart reports whether mc's control plane should wait before
// starting. After a restart every control plane starts at once, and on a
// small machine a dozen API servers starting side by side take minutes; a
// cluster in the middle of an operation, a Spot eviction or a machine
// delete would wait its turn among them while its work (and its user's
// poller) stands still. So clusters with work in flight start first, and
// idle ones once those run.
func (r *ClusterReconciler) holdStart(ctx context.Context, mc *slipwayv1.ManagedCluster) (bool, error) {
	if r.Started.IsZero() || time.Since(r.Started) > idleStartHold {
		return false, nil
	}
	var clusters slipwayv1.ManagedClusterList
	if err := r.Client.List(ctx, &clusters, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return false, err
	}
	var pools slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return false, err
	}
	working := map[string]bool{}
	for _, p := range pools.Items {
		if busy(p.Spec.Operation, p.Status.CompletedOperation) || len(p.Spec.Evictions) > 0 || len(p.Spec.DeleteMachines) > 0 {
			working[p.Spec.Cluster] = true
		}
	}
	for _, c := range clusters.Items {
		if busy(c.Spec.Operation, c.Status.CompletedOperation) {
			working[c.Name] = true
		}
	}
	if working[mc.Name] {
		return false, nil
	}
	for _, c := range clusters.Items {
		if !working[c.Name] || c.Spec.Stopped || !runsHere(r.Placement, &c) {
			continue
		}
		if hosted, err := r.Hosting.Get(c.Name); err == nil && !hosted.Running() {
			return true, nil
		}
	}
	return false, nil
}

package controller

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// What the auto-upgrade schedulers (node OS, Kubernetes version) share:
// the cluster they look at, and the history of runs each keeps on it.

// runningCluster is the cluster a scheduler looks at and its pools, or nil
// when there is nothing to schedule: the cluster is gone, going, stopped or
// not yet hosted.
func runningCluster(ctx context.Context, c client.Client, req ctrl.Request) (*slipwayv1.ManagedCluster, []slipwayv1.AgentPool, error) {
	mc := &slipwayv1.ManagedCluster{}
	if err := c.Get(ctx, req.NamespacedName, mc); err != nil {
		return nil, nil, client.IgnoreNotFound(err)
	}
	if mc.DeletionTimestamp != nil || mc.Spec.Stopped || mc.Status.HostedCluster == "" {
		return nil, nil, nil
	}
	var pools slipwayv1.AgentPoolList
	if err := c.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return nil, nil, err
	}
	return mc, pools.Items, nil
}

// latestOpen is the newest of runs if it has not ended (Pending or
// InProgress), else nil; it points into runs.
func latestOpen(runs []slipwayv1.AutoUpgradeRun) *slipwayv1.AutoUpgradeRun {
	if n := len(runs); n > 0 && (runs[n-1].Status == runPending || runs[n-1].Status == runInProgress) {
		return &runs[n-1]
	}
	return nil
}

// addRun appends run to a history, keeping the newest maxRuns, and
// returns it as kept.
func addRun(runs *[]slipwayv1.AutoUpgradeRun, run slipwayv1.AutoUpgradeRun) *slipwayv1.AutoUpgradeRun {
	*runs = append(*runs, run)
	if n := len(*runs); n > maxRuns {
		*runs = (*runs)[n-maxRuns:]
	}
	return &(*runs)[len(*runs)-1]
}

// holdRun records why a pending run waits and until when, and says when to
// look again.
func holdRun(ctx context.Context, c client.Client, mc *slipwayv1.ManagedCluster, run *slipwayv1.AutoUpgradeRun, why string, opens time.Time) (time.Duration, error) {
	msg := why + "."
	var nextWindow *metav1.Time
	if !opens.IsZero() {
		nextWindow = &metav1.Time{Time: opens}
	}
	if run.Message != msg || !timesEqual(run.NextWindow, nextWindow) {
		run.Message, run.NextWindow = msg, nextWindow
		if err := c.Status().Update(ctx, mc); err != nil {
			return 0, err
		}
	}
	if opens.IsZero() {
		return schedulerTick, nil
	}
	return max(time.Second, min(time.Until(opens), schedulerTick)), nil
}

// endRun records how run ended, at now, and saves the cluster; what is
// the log message.
func endRun(ctx context.Context, c client.Client, mc *slipwayv1.ManagedCluster, run *slipwayv1.AutoUpgradeRun, status, msg string, now time.Time, what string) error {
	end := metav1.NewTime(now)
	run.Status, run.Message, run.EndTime, run.NextWindow = status, msg, &end, nil
	log.FromContext(ctx).Info(what, "cluster", mc.Spec.ResourceID, "run", run.ID, "status", status)
	return c.Status().Update(ctx, mc)
}

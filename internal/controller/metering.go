package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/metering"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// MeteringReconciler keeps each resource group's usage. When what runs in
// a group changes (a pool grows, a VM is evicted, a disk is made, a
// cluster stops) it charges the rates in force until now and records the
// new ones, so the cost of any stretch is exact whenever it is read. A
// request names a group by subscription (Namespace) and lower-cased name.
type MeteringReconciler struct {
	Client client.Client
	Clock  clock.PassiveClock
	// Downtime is the last stretch Slipway was down, which is not billed.
	Downtime func() metering.Downtime
}

// SetupWithManager registers the reconciler, woken by every object that is
// billed or decides a bill.
func (r *MeteringReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byID := func(ids ...string) []reconcile.Request {
		var out []reconcile.Request
		for _, id := range ids {
			if sub, group, ok := armid.GroupOf(id); ok {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: sub, Name: strings.ToLower(group)}})
			}
		}
		return out
	}
	// nodeGroup is the node resource group of the cluster of that name.
	nodeGroup := func(ctx context.Context, cluster string) []reconcile.Request {
		mc := &slipwayv1.ManagedCluster{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: cluster}, mc); err != nil {
			return nil
		}
		sub, group, _, err := nodeResourceGroup(mc)
		if err != nil || group == "" {
			return nil
		}
		return byID(armid.ResourceGroup(sub, group))
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("metering").
		Watches(&slipwayv1.ResourceGroup{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			rg := o.(*slipwayv1.ResourceGroup)
			return byID(armid.ResourceGroup(rg.Spec.SubscriptionID, rg.Spec.Name))
		})).
		Watches(&slipwayv1.ManagedCluster{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			mc := o.(*slipwayv1.ManagedCluster)
			ids := []string{mc.Spec.ResourceID}
			if sub, group, _, err := nodeResourceGroup(mc); err == nil && group != "" {
				ids = append(ids, armid.ResourceGroup(sub, group))
			}
			return byID(ids...)
		})).
		Watches(&slipwayv1.AgentPool{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return nodeGroup(ctx, o.(*slipwayv1.AgentPool).Spec.Cluster)
		})).
		Watches(&slipwayv1.CostAllocation{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return nodeGroup(ctx, o.GetName())
		})).
		Watches(&slipwayv1.Disk{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return byID(o.(*slipwayv1.Disk).Spec.ResourceID)
		})).
		Watches(&slipwayv1.FileShare{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return byID(o.(*slipwayv1.FileShare).Spec.ResourceID)
		})).
		Watches(&slipwayv1.StorageAccount{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return byID(o.(*slipwayv1.StorageAccount).Spec.ResourceID)
		})).
		Complete(r)
}

// Reconcile brings one group's latest record up to now and records the
// rates that run from now on.
func (r *MeteringReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sub, group := req.Namespace, req.Name
	rg := &slipwayv1.ResourceGroup{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(armid.ResourceGroup(sub, group))}, rg)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	if err == nil {
		group = rg.Spec.Name
	}
	rates, err := r.rates(ctx, sub, group, rg)
	if err != nil {
		return ctrl.Result{}, err
	}
	latest, err := latestRecord(ctx, r.Client, sub, group)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	var touched []*slipwayv1.UsageRecord
	switch {
	case latest == nil && len(rates) == 0:
		return ctrl.Result{}, nil
	case latest == nil:
		rec := metering.NewRecord(sub, group, now)
		rec.Status.Rates = rates
		touched = []*slipwayv1.UsageRecord{rec}
	default:
		touched = metering.Advance(latest.DeepCopy(), now, r.Downtime())
		last := touched[len(touched)-1]
		if len(touched) == 1 && equality.Semantic.DeepEqual(last.Status.Rates, rates) {
			// Nothing changed: the rates in force still run.
			return r.nextDay(now, rates), nil
		}
		last.Status.Rates = rates
	}
	for _, rec := range touched {
		if err := writeRecord(ctx, r.Client, rec); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.nextDay(now, rates), nil
}

// nextDay wakes the group just after midnight while anything runs, so each
// day's record is closed on its day and a query never has to carry a
// record across many.
func (r *MeteringReconciler) nextDay(now time.Time, rates []slipwayv1.UsageRate) ctrl.Result {
	if len(rates) == 0 {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: now.UTC().Truncate(24 * time.Hour).Add(24*time.Hour + time.Second).Sub(now)}
}

// writeRecord creates a new record or updates one read before.
func writeRecord(ctx context.Context, c client.Client, rec *slipwayv1.UsageRecord) error {
	if rec.ResourceVersion == "" {
		if err := c.Create(ctx, rec); err != nil {
			return fmt.Errorf("recording usage of %s/%s on %s: %w", rec.Spec.SubscriptionID, rec.Spec.ResourceGroup, rec.Spec.Date, err)
		}
		return nil
	}
	if err := c.Update(ctx, rec); err != nil {
		return fmt.Errorf("recording usage of %s/%s on %s: %w", rec.Spec.SubscriptionID, rec.Spec.ResourceGroup, rec.Spec.Date, err)
	}
	return nil
}

// latestRecord is a group's most recent record, or nil.
func latestRecord(ctx context.Context, c client.Reader, sub, group string) (*slipwayv1.UsageRecord, error) {
	var list slipwayv1.UsageRecordList
	if err := c.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{
		slipwayv1.LabelSubscription: armid.Label(sub), slipwayv1.LabelResourceGroup: armid.Label(group),
	}); err != nil {
		return nil, err
	}
	var latest *slipwayv1.UsageRecord
	for i := range list.Items {
		if rec := &list.Items[i]; latest == nil || rec.Spec.Date > latest.Spec.Date {
			latest = rec
		}
	}
	return latest, nil
}

// rates are the meters running in a group now: its clusters' tiers, the
// pools of the cluster whose node group it is, its disks and its shares.
func (r *MeteringReconciler) rates(ctx context.Context, sub, group string, rg *slipwayv1.ResourceGroup) ([]slipwayv1.UsageRate, error) {
	inGroup := client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub), slipwayv1.LabelResourceGroup: armid.Label(group)}
	ns := client.InNamespace(slipwayv1.Namespace)
	var rates []slipwayv1.UsageRate

	var clusters slipwayv1.ManagedClusterList
	if err := r.Client.List(ctx, &clusters, ns, inGroup); err != nil {
		return nil, err
	}
	for i := range clusters.Items {
		mc := &clusters.Items[i]
		c, err := desired(mc)
		if err != nil {
			return nil, err
		}
		rates = append(rates, metering.ClusterRates(mc, c)...)
	}

	if rg.Spec.ManagedBy != "" {
		pools, err := r.poolRates(ctx, sub, rg)
		if err != nil {
			return nil, err
		}
		rates = append(rates, pools...)
	}

	var disks slipwayv1.DiskList
	if err := r.Client.List(ctx, &disks, ns, inGroup); err != nil {
		return nil, err
	}
	for i := range disks.Items {
		d, err := metering.DiskRates(&disks.Items[i])
		if err != nil {
			return nil, err
		}
		rates = append(rates, d...)
	}

	var shares slipwayv1.FileShareList
	if err := r.Client.List(ctx, &shares, ns, inGroup); err != nil {
		return nil, err
	}
	for i := range shares.Items {
		sh := &shares.Items[i]
		acct := &slipwayv1.StorageAccount{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(sh.Spec.Account)}, acct); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		s, err := metering.ShareRates(acct, sh)
		if err != nil {
			return nil, err
		}
		rates = append(rates, s...)
	}
	slices.SortFunc(rates, func(a, b slipwayv1.UsageRate) int {
		return strings.Compare(strings.ToLower(a.ResourceID)+"\x00"+a.Meter, strings.ToLower(b.ResourceID)+"\x00"+b.Meter)
	})
	return rates, nil
}

// poolRates are the VMs of the cluster that manages rg, its node group.
func (r *MeteringReconciler) poolRates(ctx context.Context, sub string, rg *slipwayv1.ResourceGroup) ([]slipwayv1.UsageRate, error) {
	mc := &slipwayv1.ManagedCluster{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(rg.Spec.ManagedBy)}, mc)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := desired(mc)
	if err != nil {
		return nil, err
	}
	var pools slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return nil, err
	}
	alloc := &slipwayv1.CostAllocation{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: mc.Name}, alloc); client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	if !costAnalysis(c) {
		alloc.Spec.Pools = nil // switched off a moment ago: its agent has yet to see it
	}
	var rates []slipwayv1.UsageRate
	for i := range pools.Items {
		pool := &pools.Items[i]
		var props nodepool.Properties
		if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
			return nil, fmt.Errorf("stored pool %s: %w", pool.Spec.ResourceID, err)
		}
		p := metering.Pool{Subscription: sub, NodeResourceGroup: rg.Spec.Name, Location: deref(c.Location),
			ClusterID: mc.Spec.ResourceID, Name: pool.Spec.Name, Props: &props,
			ClusterTags: metering.Tags(c.Tags), Tags: metering.Tags(c.Tags, props.Tags), Split: alloc.Spec.Pools[pool.Spec.Name]}
		for _, node := range pool.Status.Nodes {
			i, ok := nodepool.InstanceOf(node)
			if !ok {
				continue
			}
			p.Allocated = append(p.Allocated, i)
			if !mc.Spec.Stopped && !slices.Contains(pool.Status.Deallocated, node) {
				p.Running = append(p.Running, i)
			}
		}
		rates = append(rates, metering.PoolRates(p)...)
	}
	return rates, nil
}

// MeteringHeartbeat marks that Slipway runs, once an interval, in a Lease:
// after a restart, the time since its last renewal (less two intervals) is
// the downtime no VM ran in. Records accrued before the downtime are
// carried past it before the first renewal, so a second restart cannot
// lose track of it.
type MeteringHeartbeat struct {
	client   client.Client
	interval time.Duration
	clock    clock.PassiveClock
	down     metering.Downtime
}

// heartbeatLease is the Lease the heartbeat renews.
const heartbeatLease = "slipway-metering"

// NewMeteringHeartbeat reads the last heartbeat, so the downtime is known
// before any group is metered. c must read through to the API server.
func NewMeteringHeartbeat(ctx context.Context, c client.Client, interval time.Duration, clk clock.PassiveClock) (*MeteringHeartbeat, error) {
	h := &MeteringHeartbeat{client: c, interval: interval, clock: clk}
	lease := &coordinationv1.Lease{}
	err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: heartbeatLease}, lease)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading the metering heartbeat: %w", err)
	case lease.Spec.RenewTime != nil:
		// Slipway may have run up to an interval past the last renewal
		// (two, for a late tick), and a query then may have shown that
		// time's usage: it stays billed, so costs never go back.
		if from, now := lease.Spec.RenewTime.Add(2*interval), clk.Now(); now.After(from) {
			h.down = metering.Downtime{From: from, To: now}
		}
	}
	return h, nil
}

// Downtime is the stretch before this start when Slipway was down.
func (h *MeteringHeartbeat) Downtime() metering.Downtime { return h.down }

// Start carries every group past the downtime, then renews the lease until
// ctx ends.
func (h *MeteringHeartbeat) Start(ctx context.Context) error {
	if err := h.rebase(ctx); err != nil {
		return err
	}
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		if err := h.renew(ctx); err != nil && ctx.Err() == nil {
			ctrl.Log.WithName("metering").Error(err, "renewing the heartbeat")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// rebase advances each group's latest record that still runs rates past
// the downtime, including those of groups that are gone.
func (h *MeteringHeartbeat) rebase(ctx context.Context) error {
	if h.down.From.IsZero() {
		return nil
	}
	var list slipwayv1.UsageRecordList
	if err := h.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return fmt.Errorf("listing usage records: %w", err)
	}
	latest := map[string]*slipwayv1.UsageRecord{}
	for i := range list.Items {
		rec := &list.Items[i]
		k := rec.Spec.SubscriptionID + "/" + strings.ToLower(rec.Spec.ResourceGroup)
		if l := latest[k]; l == nil || rec.Spec.Date > l.Spec.Date {
			latest[k] = rec
		}
	}
	for _, rec := range latest {
		if len(rec.Status.Rates) == 0 || !rec.Status.AccruedUntil.Time.Before(h.down.To) {
			continue
		}
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			fresh, err := latestRecord(ctx, h.client, rec.Spec.SubscriptionID, rec.Spec.ResourceGroup)
			if err != nil || fresh == nil || !fresh.Status.AccruedUntil.Time.Before(h.down.To) {
				return err
			}
			for _, r := range metering.Advance(fresh, h.down.To, h.down) {
				if err := writeRecord(ctx, h.client, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

func (h *MeteringHeartbeat) renew(ctx context.Context) error {
	now := metav1.NewMicroTime(h.clock.Now())
	lease := &coordinationv1.Lease{}
	err := h.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: heartbeatLease}, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: heartbeatLease},
			Spec: coordinationv1.LeaseSpec{RenewTime: &now}}
		return h.client.Create(ctx, lease)
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	return h.client.Update(ctx, lease)
}

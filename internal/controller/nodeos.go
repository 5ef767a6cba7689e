package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/maintenance"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// NodeOSUpgradeReconciler is the node OS auto-upgrade scheduler. For each
// cluster it compares its pools' images with the catalog, per the cluster's
// nodeOSUpgradeChannel: NodeImage rolls pools to a newer image, SecurityPatch
// to their image with the newest security patches, Unmanaged patches nodes
// in place (leaving them needing a reboot, which the reboot coordinator
// does), None does nothing. Upgrades start only inside the node OS
// maintenance window, and every run is recorded on the cluster (found,
// waiting for a window, started, ended), so an upgrade that did not happen
// says why.
type NodeOSUpgradeReconciler struct {
	Client client.Client
	// Fresh reads from the API server, for what the cache may not have
	// seen yet.
	Fresh   client.Reader
	Hosting Hosting
	// Placement, if set, limits this host to the clusters it runs.
	Placement Placement
	Compute   compute.Provider
	Images    *nodeimage.Catalog
	Timing    interface {
		Reboot(armcontainerservice.OSDiskType) time.Duration
	}
	// StartOperation records a new operation, as the ARM layer does.
	StartOperation func(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error)
	// Delay is how long after a release a cluster with no maintenance
	// configuration gets it: AKS rolls each weekly release out over days.
	Delay time.Duration
	// RebootConcurrency is how many nodes of a cluster reboot at once.
	RebootConcurrency int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// The node OS upgrade channels.
const (
	channelNone          = "None"
	channelUnmanaged     = "Unmanaged"
	channelNodeImage     = "NodeImage"
	channelSecurityPatch = "SecurityPatch"
)

// Run statuses.
const (
	runPending    = "Pending"
	runInProgress = "InProgress"
)

// maxRuns bounds the history kept on a cluster.
const maxRuns = 20

// schedulerTick is how often the scheduler looks at a cluster with nothing
// else to wait for: a window that opens is acted on within it.
const schedulerTick = 5 * time.Second

// SetupWithManager registers the reconciler; a published image wakes every
// cluster.
func (r *NodeOSUpgradeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.ManagedCluster{}).
		Watches(&slipwayv1.NodeImage{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
			var list slipwayv1.ManagedClusterList
			if err := mgr.GetClient().List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
				return nil
			}
			var out []reconcile.Request
			for _, mc := range list.Items {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: mc.Namespace, Name: mc.Name}})
			}
			return out
		})).
		WithOptions(perCluster(r.Placement, controller.Options{})).
		Named("nodeosupgrade").
		Complete(r)
}

func (r *NodeOSUpgradeReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile looks at one cluster.
func (r *NodeOSUpgradeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc, pools, err := runningCluster(ctx, r.Client, req)
	if mc == nil || err != nil {
		return ctrl.Result{}, err
	}
	if !runsHere(r.Placement, mc) {
		return elsewhere()
	}
	open, next := r.window(mc)
	rebootWait, err := r.coordinateReboots(ctx, mc, open)
	if err != nil {
		log.FromContext(ctx).Info("Reboot coordination failed; retrying", "cluster", mc.Spec.ResourceID, "err", err.Error())
	}
	wait, err := r.schedule(ctx, mc, pools, open, next)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: min(wait, rebootWait)}, nil
}

// channel is the cluster's nodeOSUpgradeChannel (AKS's default NodeImage).
func channel(mc *slipwayv1.ManagedCluster) string {
	if c, err := desired(mc); err == nil && c.Properties.AutoUpgradeProfile != nil && c.Properties.AutoUpgradeProfile.NodeOSUpgradeChannel != nil {
		return string(*c.Properties.AutoUpgradeProfile.NodeOSUpgradeChannel)
	}
	return channelNodeImage
}

// window says whether the cluster's node OS maintenance window is open now,
// and when it next opens. aksManagedNodeOSUpgradeSchedule governs; without
// it, the default configuration; with neither, configured reports false.
func (r *NodeOSUpgradeReconciler) window(mc *slipwayv1.ManagedCluster) (open windowState, next time.Time) {
	return maintenanceWindow(mc, r.now(), maintenance.NodeOSUpgrade, maintenance.Default)
}

// maintenanceWindow is the first of the named maintenance configurations
// the cluster has: whether it is open at now, and when it next opens.
func maintenanceWindow(mc *slipwayv1.ManagedCluster, now time.Time, names ...string) (open windowState, next time.Time) {
	for _, name := range names {
		for _, c := range mc.Spec.MaintenanceConfigurations {
			if c.Name != name {
				continue
			}
			var p maintenance.Properties
			if err := json.Unmarshal(c.Properties.Raw, &p); err != nil {
				continue
			}
			isOpen, next := maintenance.Open(name, &p, now)
			return windowState{configured: true, open: isOpen, config: name}, next
		}
	}
	return windowState{}, time.Time{}
}

type windowState struct {
	configured, open bool
	// config names the configuration that decided.
	config string
}

// target is a pool's part in a run.
type target struct {
	pool *slipwayv1.AgentPool
	from string
	to   nodeimage.Image
}

// targets lists the pools the channel would change now.
func (r *NodeOSUpgradeReconciler) targets(ctx context.Context, ch string, pools []slipwayv1.AgentPool) ([]target, error) {
	var out []target
	for i := range pools {
		pool := &pools[i]
		if pool.DeletionTimestamp != nil || pool.Status.NodeImageVersion == "" {
			continue
		}
		var props nodepool.Properties
		if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
			return nil, err
		}
		if props.PowerState != nil && deref(props.PowerState.Code) == armcontainerservice.CodeStopped {
			continue
		}
		current, err := r.Images.Resolve(ctx, pool.Status.NodeImageVersion)
		if err != nil {
			continue // an image of no known family: nothing to upgrade to
		}
		latest, err := r.Images.Latest(ctx, string(deref(props.OSSKU)))
		if err != nil {
			continue
		}
		poolChannel := ch
		if latest.Family.Windows() {
			// Windows images have no security patches of their own: on
			// SecurityPatch AKS gives Windows pools the newest image, and
			// Unmanaged (the OS's own patching) does not apply to them.
			if ch == channelUnmanaged {
				continue
			}
			poolChannel = channelNodeImage
		}
		switch poolChannel {
		case channelNodeImage:
			if current.Version.Compare(latest.Version) < 0 {
				out = append(out, target{pool: pool, from: current.Name(), to: latest})
			}
		case channelSecurityPatch, channelUnmanaged:
			// The newest release's patches, on the image the pool has.
			patched := nodeimage.SecurityPatched(current.Base(), latest.Released)
			if latest.Released.After(current.Released) && (current.Patch.IsZero() || current.Patch.Before(patched.Patch)) {
				out = append(out, target{pool: pool, from: current.Name(), to: patched})
			}
		}
	}
	return out, nil
}

// schedule advances the cluster's latest run, or starts one, and says when
// to look again.
func (r *NodeOSUpgradeReconciler) schedule(ctx context.Context, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool, w windowState, next time.Time) (time.Duration, error) {
	ch := channel(mc)
	runs := mc.Status.AutoUpgradeRuns
	last := latestOpen(runs)
	if last != nil && last.Status == runInProgress {
		return schedulerTick, r.follow(ctx, mc, last)
	}
	if ch == channelNone {
		if last != nil {
			return schedulerTick, r.endRun(ctx, mc, last, slipwayv1.OperationCanceled, "The node OS upgrade channel was set to None.")
		}
		return schedulerTick, nil
	}
	targets, err := r.targets(ctx, ch, pools)
	if err != nil {
		return 0, err
	}
	if ch == channelUnmanaged && slices.ContainsFunc(runs, func(run slipwayv1.AutoUpgradeRun) bool {
		return run.Status == slipwayv1.OperationSucceeded && sameTargets(&run, targets)
	}) {
		targets = nil // these patches are installed already
	}
	if len(targets) == 0 {
		if last != nil {
			return schedulerTick, r.endRun(ctx, mc, last, slipwayv1.OperationCanceled, "Nothing left to upgrade: the pools already run the newest image.")
		}
		return schedulerTick, nil
	}
	now := r.now()
	if last == nil || !sameTargets(last, targets) {
		if last != nil {
			last.Status, last.Message, last.EndTime = slipwayv1.OperationCanceled, "Superseded by a newer release.", &metav1.Time{Time: now}
		}
		run := slipwayv1.AutoUpgradeRun{ID: fmt.Sprintf("%s-%d", strings.ToLower(ch), now.Unix()), Channel: ch, Status: runPending, Detected: metav1.NewTime(now)}
		for _, t := range targets {
			run.Pools = append(run.Pools, slipwayv1.AutoUpgradePool{Name: t.pool.Spec.Name, From: t.from, To: t.to.Name()})
		}
		last = addRun(&mc.Status.AutoUpgradeRuns, run)
		log.FromContext(ctx).Info("Node OS upgrade found", "cluster", mc.Spec.ResourceID, "channel", ch, "pools", len(targets))
	}
	// When may it start?
	var why string
	var opens time.Time
	switch {
	case w.configured && !w.open:
		opens = next
		why = fmt.Sprintf("Waiting for the %s maintenance window", w.config)
		if next.IsZero() {
			why += ", which never opens within a year"
		}
	case !w.configured && now.Sub(last.Detected.Time) < r.Delay:
		opens = last.Detected.Add(r.Delay)
		why = fmt.Sprintf("No aksManagedNodeOSUpgradeSchedule is set: the release is applied %s after it was found", r.Delay)
	}
	if why == "" {
		if busy := clusterBusy(mc, pools); busy != "" {
			why = "Waiting for " + busy + " to finish"
			opens = now.Add(schedulerTick)
		}
	}
	if why != "" {
		return holdRun(ctx, r.Client, mc, last, why, opens)
	}
	return schedulerTick, r.start(ctx, mc, last, ch, targets)
}

func timesEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

func sameTargets(run *slipwayv1.AutoUpgradeRun, targets []target) bool {
	if len(run.Pools) != len(targets) {
		return false
	}
	for _, t := range targets {
		if !slices.ContainsFunc(run.Pools, func(p slipwayv1.AutoUpgradePool) bool { return p.Name == t.pool.Spec.Name && p.To == t.to.Name() }) {
			return false
		}
	}
	return true
}

// clusterBusy names the operation that keeps a run from starting, or "".
func clusterBusy(mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool) string {
	if a := busyWithAction(mc.Spec.Operation, mc.Status.CompletedOperation); a != "" {
		return "the cluster's " + a + " operation"
	}
	for _, p := range pools {
		if a := busyWithAction(p.Spec.Operation, p.Status.CompletedOperation); a != "" {
			return fmt.Sprintf("agent pool %s's %s operation", p.Spec.Name, a)
		}
	}
	return ""
}

func busyWithAction(op *slipwayv1.OperationRef, completed string) string {
	if busy(op, completed) {
		return op.Action
	}
	return ""
}

// start begins the run: NodeImage and SecurityPatch start each pool's
// upgrade; Unmanaged patches the nodes in place.
func (r *NodeOSUpgradeReconciler) start(ctx context.Context, mc *slipwayv1.ManagedCluster, run *slipwayv1.AutoUpgradeRun, ch string, targets []target) error {
	now := metav1.NewTime(r.now())
	run.Status, run.StartTime, run.Message, run.NextWindow = runInProgress, &now, "", nil
	if ch == channelUnmanaged {
		n, err := r.patchInPlace(ctx, mc, targets)
		if err != nil {
			return err
		}
		for i := range run.Pools {
			run.Pools[i].Status = slipwayv1.OperationSucceeded
		}
		run.Status, run.EndTime = slipwayv1.OperationSucceeded, &now
		run.Message = fmt.Sprintf("Patched %d nodes in place; each reboots when the reboot coordinator reaches it.", n)
		return r.Client.Status().Update(ctx, mc)
	}
	location := ""
	if c, err := desired(mc); err == nil {
		location = deref(c.Location)
	}
	// Record the run first: a crash between the two leaves a run that
	// follow() settles, never an upgrade nobody recorded.
	if err := r.Client.Status().Update(ctx, mc); err != nil {
		return err
	}
	// The update decoded the stored object into mc: the run is the last
	// one of the fresh slice.
	run = &mc.Status.AutoUpgradeRuns[len(mc.Status.AutoUpgradeRuns)-1]
	for _, t := range targets {
		op, err := r.StartOperation(ctx, t.pool.Spec.ResourceID, slipwayv1.ActionUpgradeNodeImage, location, false)
		if err != nil {
			return err
		}
		// Claim the cluster for it as the front door does: a cluster PUT
		// accepted since this run's busy check (which a lagging cache may
		// not show) changed the cluster, so this update conflicts; one
		// accepted after it sees this operation and is refused. Without
		// it, the PUT's pool sync would take the upgrading pool over.
		if mc.Annotations == nil {
			mc.Annotations = map[string]string{}
		}
		mc.Annotations[slipwayv1.AnnotationWriteClaim] = slipwayv1.WriteClaim(op.Name, slipwayv1.ActionUpgradeNodeImage, t.pool.Spec.Name)
		if err := r.Client.Update(ctx, mc); err != nil {
			endOperation(ctx, r.Client, op.Name, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "OperationNotAllowed", Message: "Another operation started first."})
			return fmt.Errorf("claiming cluster %s for the node OS upgrade of pool %s: %w", mc.Name, t.pool.Spec.Name, err)
		}
		run = &mc.Status.AutoUpgradeRuns[len(mc.Status.AutoUpgradeRuns)-1]
		// The run names each pool's operation before the pool is told to
		// upgrade: a crash or a conflict in between leaves an operation
		// follow() reads as it ends, never a pool upgrading that the run
		// reports as never started.
		for i := range run.Pools {
			if run.Pools[i].Name == t.pool.Spec.Name {
				run.Pools[i].OperationID, run.Pools[i].Status = op.Name, slipwayv1.OperationInProgress
			}
		}
		if err := r.Client.Status().Update(ctx, mc); err != nil {
			endOperation(ctx, r.Client, op.Name, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "Canceled", Message: "The node OS upgrade run could not record this pool's upgrade."})
			return err
		}
		run = &mc.Status.AutoUpgradeRuns[len(mc.Status.AutoUpgradeRuns)-1]
		t.pool.Spec.NodeImageTarget = t.to.Name()
		t.pool.Spec.Operation = &slipwayv1.OperationRef{ID: op.Name, Action: slipwayv1.ActionUpgradeNodeImage}
		if err := r.Client.Update(ctx, t.pool); err != nil {
			endOperation(ctx, r.Client, op.Name, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "OperationNotAllowed", Message: "Another operation started first."})
			return err
		}
		log.FromContext(ctx).Info("Node OS auto-upgrade started", "pool", t.pool.Spec.ResourceID, "to", t.to.Name(), "operation", op.Name)
	}
	return nil
}

// follow watches a started run's operations and records how it ended.
func (r *NodeOSUpgradeReconciler) follow(ctx context.Context, mc *slipwayv1.ManagedCluster, run *slipwayv1.AutoUpgradeRun) error {
	done, failed := true, 0
	changed := false
	for i := range run.Pools {
		p := &run.Pools[i]
		if p.OperationID == "" {
			// Slipway stopped before this pool's upgrade started.
			p.Status, changed = slipwayv1.OperationCanceled, true
			failed++
			continue
		}
		status, err := operationStatus(ctx, r.Client, r.Fresh, p.OperationID)
		if err != nil {
			return err
		}
		if status == slipwayv1.OperationInProgress {
			if status, err = r.handOver(ctx, mc, p); err != nil {
				return err
			}
		}
		if status != p.Status {
			p.Status, changed = status, true
		}
		switch status {
		case slipwayv1.OperationInProgress:
			done = false
		case slipwayv1.OperationSucceeded:
		default:
			failed++
		}
	}
	if !done {
		if changed {
			return r.Client.Status().Update(ctx, mc)
		}
		return nil
	}
	if failed > 0 {
		return r.endRun(ctx, mc, run, slipwayv1.OperationFailed, fmt.Sprintf("%d of %d pools did not finish their upgrade; see their operations.", failed, len(run.Pools)))
	}
	return r.endRun(ctx, mc, run, slipwayv1.OperationSucceeded, "Every pool runs the new image.")
}

// handOver finishes starting a pool's upgrade that the run recorded but
// never handed to the pool (Slipway died between the two writes): the
// pool is told now, or, if it has started something else meanwhile, the
// recorded operation ends Canceled. It returns the operation's status.
func (r *NodeOSUpgradeReconciler) handOver(ctx context.Context, mc *slipwayv1.ManagedCluster, p *slipwayv1.AutoUpgradePool) (string, error) {
	pool := &slipwayv1.AgentPool{}
	key := client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(mc.Spec.ResourceID + "/agentPools/" + p.Name)}
	// The cache answers the usual case, a pool running its upgrade; what
	// it says otherwise is checked against the API server before acting.
	if err := r.Client.Get(ctx, key, pool); err == nil && pool.Spec.Operation != nil && pool.Spec.Operation.ID == p.OperationID {
		return slipwayv1.OperationInProgress, nil
	}
	err := r.Fresh.Get(ctx, key, pool)
	if apierrors.IsNotFound(err) || err == nil && pool.DeletionTimestamp != nil {
		return slipwayv1.OperationCanceled, endOperation(ctx, r.Client, p.OperationID, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "Canceled", Message: "The agent pool is gone."})
	}
	if err != nil {
		return "", err
	}
	if pool.Spec.Operation != nil && pool.Spec.Operation.ID == p.OperationID {
		return slipwayv1.OperationInProgress, nil // handed over: the pool runs it
	}
	if busy(pool.Spec.Operation, pool.Status.CompletedOperation) {
		return slipwayv1.OperationCanceled, endOperation(ctx, r.Client, p.OperationID, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "OperationNotAllowed", Message: "Another operation started on the pool first."})
	}
	log.FromContext(ctx).Info("Handing a recorded node OS upgrade to its pool", "pool", pool.Spec.ResourceID, "operation", p.OperationID)
	pool.Spec.NodeImageTarget = p.To
	pool.Spec.Operation = &slipwayv1.OperationRef{ID: p.OperationID, Action: slipwayv1.ActionUpgradeNodeImage}
	if err := r.Client.Update(ctx, pool); err != nil {
		return "", fmt.Errorf("handing the node OS upgrade to pool %s: %w", pool.Spec.ResourceID, err)
	}
	return slipwayv1.OperationInProgress, nil
}

func (r *NodeOSUpgradeReconciler) endRun(ctx context.Context, mc *slipwayv1.ManagedCluster, run *slipwayv1.AutoUpgradeRun, status, msg string) error {
	return endRun(ctx, r.Client, mc, run, status, msg, r.now(), "Node OS upgrade run ended")
}

// patchInPlace is the Unmanaged channel: the nodes' own OS patching
// (unattended-upgrades) installs the release's patches, which leaves each
// node needing a reboot. It returns how many nodes it patched.
func (r *NodeOSUpgradeReconciler) patchInPlace(ctx context.Context, mc *slipwayv1.ManagedCluster, targets []target) (int, error) {
	hosted, err := r.Hosting.Get(mc.Status.HostedCluster)
	if err != nil {
		return 0, err
	}
	cs, err := hosted.AdminClient()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range targets {
		for _, node := range t.pool.Status.Nodes {
			// The image label stays: the node still runs the image it was
			// built from, with patches on top, as on AKS.
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, compute.RebootRequiredAnnotation, t.to.Name())
			if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				return n, fmt.Errorf("patching %s in place: %w", node, err)
			}
			n++
		}
	}
	return n, nil
}

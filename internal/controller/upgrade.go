package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/nodepods"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// The phases of a node image upgrade (AKS's rolling upgrade: surge, then
// batch by batch drain, soak, reimage; finally remove the surge nodes).
const (
	phaseSurging       = "Surging"
	phaseDraining      = "Draining"
	phaseSoaking       = "Soaking"
	phaseReimaging     = "Reimaging"
	phaseRemovingSurge = "RemovingSurge"
	phaseCanceling     = "Canceling"
	phaseSucceeded     = "Succeeded"
	phaseFailed        = "Failed"
	phaseCanceled      = "Canceled"
)

// soon requeues a pool whose next step can follow at once. (Requeue: true
// would go through the queue's exponential backoff, which grows with every
// step of a long upgrade.)
const soon = 5 * time.Millisecond

// provisioningStateOf is the pool's provisioning state after an upgrade
// that ended in a phase.
var provisioningStateOf = map[string]string{phaseSucceeded: "Succeeded", phaseFailed: "Failed", phaseCanceled: "Canceled"}

// AKS's upgrade defaults (upgradeSettings in the API reference).
const defaultDrainTimeout = 30 * time.Minute

// Node labels of the upgrade.
const (
	labelNodeImage     = "kubernetes.azure.com/node-image-version"
	labelUpgradeStatus = "kubernetes.azure.com/upgrade-status"
	// quarantined marks a node whose drain a PodDisruptionBudget blocked,
	// left cordoned (undrainableNodeBehavior Cordon).
	quarantined = "Quarantined"
)

// upgrading says whether the pool's running operation upgrades its node
// image: an upgradeNodeImageVersion, or a PUT that resumes an upgrade that
// failed part-way (the ARM layer gives such a PUT this action).
func upgrading(op *slipwayv1.OperationRef, working bool) bool {
	return working && op.Action == slipwayv1.ActionUpgradeNodeImage
}

// upgradeStarted says whether the pool's running operation has begun an
// upgrade that must wind down before it can end.
func upgradeStarted(pool *slipwayv1.AgentPool) bool {
	u := pool.Status.Upgrade
	return u != nil && pool.Spec.Operation != nil && u.OperationID == pool.Spec.Operation.ID && !terminalPhase(u.Phase)
}

func terminalPhase(p string) bool {
	return p == phaseSucceeded || p == phaseFailed || p == phaseCanceled
}

// upgradeRun is one reconcile's view of a pool being upgraded.
type upgradeRun struct {
	r        *AgentPoolReconciler
	mc       *slipwayv1.ManagedCluster
	pool     *slipwayv1.AgentPool
	props    *nodepool.Properties
	cs       kubernetes.Interface
	cluster  string
	canceled bool
	// nodes are the pool's nodes as the reconcile listed them.
	nodes map[string]*corev1.Node
}

// step advances the upgrade by one phase at most. Every phase is
// idempotent and its progress is in the pool's status, so a restart of
// Slipway anywhere resumes it.
func (u *upgradeRun) step(ctx context.Context) (ctrl.Result, error) {
	pool := u.pool
	st := pool.Status.Upgrade
	if st == nil || st.OperationID != pool.Spec.Operation.ID {
		return ctrl.Result{RequeueAfter: soon}, u.begin(ctx)
	}
	if u.canceled && st.Phase != phaseCanceling {
		st.Phase, st.PhaseStarted = phaseCanceling, metav1.Now()
		return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
	}
	switch st.Phase {
	case phaseSurging:
		return u.surge(ctx)
	case phaseDraining:
		return u.drain(ctx)
	case phaseSoaking:
		left := time.Until(st.PhaseStarted.Add(u.soak()))
		if left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
		st.Phase, st.PhaseStarted = phaseReimaging, metav1.Now()
		return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
	case phaseReimaging:
		return u.reimage(ctx)
	case phaseRemovingSurge:
		return u.removeSurge(ctx)
	case phaseCanceling:
		return u.cancel(ctx)
	case phaseSucceeded, phaseFailed, phaseCanceled:
		// Ended, but the operation's end was not recorded (a conflict or
		// a crash came between): record it again.
		return ctrl.Result{}, u.r.finish(ctx, pool, provisioningStateOf[st.Phase], pool.Status.ProvisioningError)
	}
	return ctrl.Result{}, fmt.Errorf("pool %s: unknown upgrade phase %q", pool.Spec.ResourceID, st.Phase)
}

// begin records a new upgrade. One resumed after a failure keeps the surge
// nodes it made; its quarantined nodes are tried again.
func (u *upgradeRun) begin(ctx context.Context) error {
	pool := u.pool
	prev := pool.Status.Upgrade
	now := metav1.Now()
	st := &slipwayv1.NodeImageUpgrade{OperationID: pool.Spec.Operation.ID, Target: pool.Spec.NodeImageTarget, Phase: phaseSurging, PhaseStarted: now, StartTime: now}
	if want := nodepool.DesiredVersion(pool); want != pool.Status.CurrentOrchestratorVersion {
		// A Kubernetes version upgrade also takes the nodes to the latest
		// image of their OS SKU, as AKS's does.
		latest, err := u.r.Images.Latest(ctx, string(deref(u.props.OSSKU)))
		if err != nil {
			return err
		}
		st.Target, st.KubernetesVersion = latest.Name(), want
	}
	if prev != nil && prev.Target == st.Target && prev.KubernetesVersion == st.KubernetesVersion {
		st.Surge = prev.Surge
	}
	nodes, err := u.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.azure.com/agentpool=" + pool.Spec.Name})
	if err != nil {
		return err
	}
	pool.Status.Upgrade = st
	for _, n := range nodes.Items {
		if !u.onTarget(&n) && !slices.Contains(st.Surge, n.Name) {
			st.Total++
		}
	}
	log.FromContext(ctx).Info("Upgrade starting", "pool", pool.Spec.ResourceID, "image", st.Target, "kubernetesVersion", st.KubernetesVersion, "nodes", st.Total)
	return u.save(ctx)
}

// onTarget says whether a node runs what the upgrade goes to: its image,
// and its Kubernetes release when the upgrade changes that.
func (u *upgradeRun) onTarget(n *corev1.Node) bool {
	st := u.pool.Status.Upgrade
	return n.Labels[labelNodeImage] == st.Target &&
		(st.KubernetesVersion == "" || n.Status.NodeInfo.KubeletVersion == "v"+st.KubernetesVersion)
}

// kubeVersion is the release the upgraded nodes run.
func (u *upgradeRun) kubeVersion() string {
	return cmp.Or(u.pool.Status.Upgrade.KubernetesVersion, u.pool.Status.CurrentOrchestratorVersion)
}

// target names what the nodes go to, for events.
func (u *upgradeRun) target() string {
	st := u.pool.Status.Upgrade
	if st.KubernetesVersion != "" {
		return fmt.Sprintf("Kubernetes %s with image %s", st.KubernetesVersion, st.Target)
	}
	return "image " + st.Target
}

// save stores the upgrade's progress on the pool and on its operation,
// where clients read it.
func (u *upgradeRun) save(ctx context.Context) error {
	st := u.pool.Status.Upgrade
	if err := u.r.Client.Status().Update(ctx, u.pool); err != nil {
		return err
	}
	log.FromContext(ctx).Info("Node image upgrade progress", "pool", u.pool.Spec.ResourceID, "phase", st.Phase,
		"batch", st.Batch, "surge", st.Surge, "upgraded", st.Upgraded, "total", st.Total, "quarantined", st.Quarantined)
	op := &slipwayv1.Operation{}
	if err := u.r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: st.OperationID}, op); err != nil {
		return client.IgnoreNotFound(err)
	}
	op.Status.Upgrade = st.DeepCopy()
	if st.Total > 0 && (op.Status.Status == "" || op.Status.Status == slipwayv1.OperationInProgress) {
		op.Status.PercentComplete = max(op.Status.PercentComplete, int32(90*int(st.Upgraded)/int(st.Total)))
	}
	// The operation's progress is informative: losing a race with its
	// end (or an abort) must not fail the step.
	_ = u.r.Client.Status().Update(ctx, op)
	return nil
}

// settings are the pool's upgrade settings, resolved against its size.
type settings struct {
	surge, unavailable int
	drainTimeout, soak time.Duration
	undrainable        string
}

func (u *upgradeRun) settings() settings {
	p := u.props
	size := int(deref(p.Count))
	var s settings
	us := p.UpgradeSettings
	if us == nil {
		us = &armcontainerservice.AgentPoolUpgradeSettings{}
	}
	maxSurge := deref(us.MaxSurge)
	if maxSurge == "" {
		maxSurge = nodepool.DefaultMaxSurge
	}
	var extras slipwayv1.UpgradeExtras
	if u.pool.Spec.UpgradeExtras != nil {
		extras = *u.pool.Spec.UpgradeExtras
	}
	s.surge = resolveCount(maxSurge, size)
	s.unavailable = resolveCount(extras.MaxUnavailable, size)
	if deref(p.ScaleSetPriority) == armcontainerservice.ScaleSetPrioritySpot {
		// Spot pools take no surge: nodes are cordoned and evicted in place.
		s.surge, s.unavailable = 0, max(1, s.unavailable)
	}
	if s.surge == 0 && s.unavailable == 0 {
		s.surge = 1
	}
	s.drainTimeout = drainTimeoutOf(p)
	if us.NodeSoakDurationInMinutes != nil {
		s.soak = time.Duration(*us.NodeSoakDurationInMinutes) * time.Minute
	}
	s.undrainable = extras.UndrainableNodeBehavior
	return s
}

// resolveCount reads a maxSurge or maxUnavailable value: a count, or a
// percentage of the pool's size rounded up.
func resolveCount(v string, size int) int {
	v = strings.TrimSpace(v)
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.ParseFloat(pct, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return int(math.Ceil(n * float64(size) / 100))
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func (u *upgradeRun) soak() time.Duration { return u.r.Timing.Scaled(u.settings().soak) }

// remaining lists, by instance, the pool's nodes still on another image:
// not surge nodes, not set aside, not in the current batch.
func (u *upgradeRun) remaining() []string {
	st := u.pool.Status.Upgrade
	var out []string
	for name, n := range u.nodes {
		if u.onTarget(n) || slices.Contains(st.Surge, name) || slices.Contains(st.Batch, name) ||
			slices.Contains(st.Quarantined, name) || slices.Contains(st.Skipped, name) {
			continue
		}
		out = append(out, name)
	}
	slices.SortFunc(out, func(a, b string) int {
		i, _ := nodepool.InstanceOf(a)
		j, _ := nodepool.InstanceOf(b)
		return i - j
	})
	return out
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// surge adds the surge nodes, on the new image, and waits for them.
func (u *upgradeRun) surge(ctx context.Context) (ctrl.Result, error) {
	st := u.pool.Status.Upgrade
	st.Surge = slices.DeleteFunc(st.Surge, func(n string) bool { return u.nodes[n] == nil })
	todo := len(u.remaining())
	want := min(u.settings().surge, todo)
	if len(st.Surge) < want {
		image, err := u.r.Images.Resolve(ctx, st.Target)
		if err != nil {
			return ctrl.Result{}, err
		}
		next := 0
		for name := range u.nodes {
			if i, ok := nodepool.InstanceOf(name); ok && i >= next {
				next = i + 1
			}
		}
		vms := vmsOf(u.mc, u.pool, u.props, image, u.kubeVersion())
		var surge []compute.Instance
		for ; len(st.Surge) < want; next++ {
			vm := vms(next)
			vm.ReadyAt = time.Now().Add(u.r.Timing.NodeReady(deref(u.props.OSDiskType)))
			st.Surge = append(st.Surge, vm.Name)
			surge = append(surge, vm)
		}
		// Record the names before any VM is made: a crash after the
		// creates must find them as surge nodes, not as nodes of the pool.
		st.PhaseStarted = metav1.Now()
		if err := u.save(ctx); err != nil {
			return ctrl.Result{}, err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallelNodeOps)
		for _, vm := range surge {
			g.Go(func() error {
				if err := u.r.Compute.Create(gctx, u.cluster, vm); err != nil {
					return err
				}
				u.r.event(gctx, u.cs, vm.Name, "Surge", fmt.Sprintf("Created a surge node %s with %s for the upgrade", vm.Name, u.target()))
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: u.r.Timing.NodeReady(deref(u.props.OSDiskType))}, nil
	}
	for _, name := range st.Surge {
		if n := u.nodes[name]; n == nil || !ready(n) {
			back := time.Until(st.PhaseStarted.Add(u.r.Timing.NodeReady(deref(u.props.OSDiskType))))
			return ctrl.Result{RequeueAfter: max(back, readyPoll)}, nil
		}
	}
	st.Phase, st.PhaseStarted = phaseDraining, metav1.Now()
	return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
}

// drain picks the next batch (as many nodes as there are surge nodes, plus
// maxUnavailable) and drains it through the Eviction API. A node a
// PodDisruptionBudget keeps from draining within drainTimeoutInMinutes
// fails the upgrade, or is quarantined or skipped per
// undrainableNodeBehavior.
func (u *upgradeRun) drain(ctx context.Context) (ctrl.Result, error) {
	st := u.pool.Status.Upgrade
	s := u.settings()
	if len(st.Batch) == 0 {
		todo := u.remaining()
		if len(todo) == 0 {
			st.Phase, st.PhaseStarted = phaseRemovingSurge, metav1.Now()
			return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
		}
		size := max(1, len(st.Surge)-len(st.Quarantined)+s.unavailable)
		st.Batch = todo[:min(size, len(todo))]
		st.PhaseStarted = metav1.Now()
		// Recorded before any drain: a restart finds the batch.
		if err := u.save(ctx); err != nil {
			return ctrl.Result{}, err
		}
		u.forEach(ctx, st.Batch, func(ctx context.Context, n string) error {
			u.r.event(ctx, u.cs, n, "Drain", fmt.Sprintf("Draining node %s for the upgrade to %s", n, u.target()))
			return nil
		})
	}
	timeout := batchDrainTimeout(len(st.Batch), u.r.Timing.Timeout(s.drainTimeout))
	// Time Slipway was not running does not count against the drain: its
	// control planes and the pods on the nodes were down with it.
	drainStart := u.r.since(st.PhaseStarted.Time)
	left := time.Until(drainStart.Add(timeout))
	// Past the timeout, one more short attempt tells the nodes that are
	// drained from those that are still blocked.
	attempt := min(drainAttempt, max(left, 0)+time.Second)
	blocked := make([]bool, len(st.Batch))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelNodeOps)
	for i, name := range st.Batch {
		if u.nodes[name] == nil {
			continue
		}
		g.Go(func() error {
			if err := cordonAndDrain(gctx, u.cs, name, attempt); err != nil {
				blocked[i] = true
			}
			return nil
		})
	}
	g.Wait()
	if !slices.Contains(blocked, true) {
		if d := s.soak; d > 0 {
			u.forEach(ctx, st.Batch, func(ctx context.Context, n string) error {
				u.r.event(ctx, u.cs, n, "Drain", fmt.Sprintf("Soak duration %s after draining node %s", d, n))
				return nil
			})
			st.Phase, st.PhaseStarted = phaseSoaking, metav1.Now()
			return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
		}
		st.Phase, st.PhaseStarted = phaseReimaging, metav1.Now()
		if err := u.save(ctx); err != nil {
			return ctrl.Result{}, err
		}
		return u.reimage(ctx)
	}
	if time.Until(drainStart.Add(timeout)) > 0 {
		return ctrl.Result{RequeueAfter: soon}, nil
	}
	// The drain timeout passed with nodes still holding pods.
	var stuck []string
	for i, name := range st.Batch {
		if blocked[i] && u.nodes[name] != nil {
			stuck = append(stuck, name)
		}
	}
	reason := u.drainFailure(ctx, stuck[0])
	switch s.undrainable {
	case string(undrainableCordon), string(undrainableSchedule):
		for _, name := range stuck {
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, labelUpgradeStatus, quarantined)
			msg := "quarantined: left cordoned"
			if s.undrainable == string(undrainableSchedule) {
				patch, msg = `{"spec":{"unschedulable":null}}`, "made schedulable again without an upgrade"
				st.Skipped = append(st.Skipped, name)
			} else {
				st.Quarantined = append(st.Quarantined, name)
			}
			if _, err := u.cs.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				return ctrl.Result{}, err
			}
			u.r.event(ctx, u.cs, name, "Drain", fmt.Sprintf("Node %s could not be drained within %s and was %s (undrainableNodeBehavior %s): %s", name, s.drainTimeout, msg, s.undrainable, reason))
		}
		st.Batch = slices.DeleteFunc(st.Batch, func(n string) bool { return slices.Contains(stuck, n) })
		if len(st.Batch) == 0 {
			st.PhaseStarted = metav1.Now()
		} else {
			st.Phase, st.PhaseStarted = phaseSoaking, metav1.Now()
		}
		return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
	}
	// Default: the upgrade fails here; the blocked nodes stay cordoned and a
	// later upgrade or PUT resumes where this one stopped.
	st.Batch = slices.DeleteFunc(st.Batch, func(n string) bool { return slices.Contains(stuck, n) })
	if err := u.uncordonBatch(ctx); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, u.end(ctx, phaseFailed, &slipwayv1.ErrorDetail{Code: "UpgradeFailed", Message: reason})
}

// batchDrainTimeout is how long a batch of nodes has to drain. AKS's drain
// timeout is per node; a batch wider than the pool controller's parallelism
// is drained in waves, so each wave has its own: 100 nodes at maxSurge 100%
// are two waves and get twice the timeout, where one shared deadline
// failed an upgrade that AKS's per-node timeout lets finish.
func batchDrainTimeout(nodes int, perNode time.Duration) time.Duration {
	waves := max(1, (nodes+parallelNodeOps-1)/parallelNodeOps)
	return time.Duration(waves) * perNode
}

// The undrainableNodeBehavior values (api-version 2024-07-01 and later).
type undrainableNodeBehavior string

const (
	undrainableCordon   undrainableNodeBehavior = "Cordon"
	undrainableSchedule undrainableNodeBehavior = "Schedule"
)

// drainFailure explains, in AKS's words, why a node would not drain.
func (u *upgradeRun) drainFailure(ctx context.Context, node string) string {
	return explainDrainFailure(ctx, u.cs, node, nil)
}

// explainDrainFailure explains, in AKS's words, why a node would not drain:
// the pod still on it and the PodDisruptionBudget that keeps it there, or
// else the last error the drain met.
func explainDrainFailure(ctx context.Context, cs kubernetes.Interface, node string, last error) string {
	pods, err := nodepods.List(ctx, cs, node)
	if err != nil {
		return fmt.Sprintf("Drain node %s failed: %v", node, err)
	}
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil || isDaemonSetPod(&pod) {
			continue
		}
		pdbs, err := cs.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, pdb := range pdbs.Items {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) || pdb.Status.DisruptionsAllowed > 0 {
				continue
			}
			unready := max(0, pdb.Status.ExpectedPods-pdb.Status.CurrentHealthy)
			return fmt.Sprintf("Drain node %s failed when evicting pod %s failed with Too Many Requests error. This is often caused by a restrictive Pod Disruption Budget (PDB) policy. See http://aka.ms/aks/debugdrainfailures. Original error: Cannot evict pod as it would violate the pod's disruption budget.. PDB debug info: %s/%s blocked by pdb %s with %d unready pods.",
				node, pod.Name, pod.Namespace, pod.Name, pdb.Name, unready)
		}
	}
	if last != nil && !errors.Is(last, errDrainTimeout) {
		return fmt.Sprintf("Drain node %s failed: %v. See http://aka.ms/aks/debugdrainfailures.", node, last)
	}
	return fmt.Sprintf("Drain node %s did not finish within the drain timeout. See http://aka.ms/aks/debugdrainfailures.", node)
}

func isDaemonSetPod(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

// reimage reimages the drained batch on the new image, waits for the nodes
// to come back, and uncordons them: they are the buffer for the next batch.
func (u *upgradeRun) reimage(ctx context.Context) (ctrl.Result, error) {
	st := u.pool.Status.Upgrade
	done, err := u.reimageBatch(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !done {
		// The model says when the VMs are back; no point looking sooner.
		back := time.Until(st.PhaseStarted.Add(u.r.Timing.Reimage(deref(u.props.OSDiskType))))
		return ctrl.Result{RequeueAfter: max(back, readyPoll)}, nil
	}
	if err := u.uncordonBatch(ctx); err != nil {
		return ctrl.Result{}, err
	}
	u.forEach(ctx, st.Batch, func(ctx context.Context, n string) error {
		u.r.event(ctx, u.cs, n, "Upgrade", fmt.Sprintf("Successfully reimaged node %s with %s", n, u.target()))
		return nil
	})
	st.Upgraded += int32(len(st.Batch))
	st.Batch = nil
	st.Phase, st.PhaseStarted = phaseDraining, metav1.Now()
	return ctrl.Result{RequeueAfter: soon}, u.save(ctx)
}

// readyPoll is how often an upgrade looks for nodes it waits on, once the
// timing model says they should be back.
const readyPoll = 25 * time.Millisecond

// reimageBatch reimages the batch's nodes not yet on the target image and
// reports whether all of them are back and Ready.
func (u *upgradeRun) reimageBatch(ctx context.Context) (bool, error) {
	st := u.pool.Status.Upgrade
	image, err := u.r.Images.Resolve(ctx, st.Target)
	if err != nil {
		return false, err
	}
	disk := deref(u.props.OSDiskType)
	var todo []string
	done := true
	for _, name := range st.Batch {
		n := u.nodes[name]
		switch {
		case n == nil:
		case !u.onTarget(n):
			todo = append(todo, name)
			done = false
		case !ready(n):
			done = false
		}
	}
	vms := vmsOf(u.mc, u.pool, u.props, image, u.kubeVersion())
	err = u.forEach(ctx, todo, func(ctx context.Context, name string) error {
		instance, _ := nodepool.InstanceOf(name)
		vm := vms(instance)
		vm.ReadyAt = time.Now().Add(u.r.Timing.Reimage(disk))
		if err := u.r.Compute.Reimage(ctx, u.cluster, vm); err != nil {
			return err
		}
		u.r.event(ctx, u.cs, name, "Upgrade", fmt.Sprintf("Reimaging node %s with %s", name, u.target()))
		return nil
	})
	return done, err
}

// forEach runs fn for each node, as many at once as a scale set works on.
func (u *upgradeRun) forEach(ctx context.Context, nodes []string, fn func(context.Context, string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelNodeOps)
	for _, n := range nodes {
		g.Go(func() error { return fn(gctx, n) })
	}
	return g.Wait()
}

// uncordonBatch makes the batch's nodes schedulable again.
func (u *upgradeRun) uncordonBatch(ctx context.Context) error {
	patch := fmt.Sprintf(`{"spec":{"unschedulable":null},"metadata":{"labels":{%q:null}}}`, labelUpgradeStatus)
	return u.forEach(ctx, u.pool.Status.Upgrade.Batch, func(ctx context.Context, name string) error {
		if u.nodes[name] == nil {
			return nil
		}
		if _, err := u.cs.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("uncordoning %s: %w", name, err)
		}
		return nil
	})
}

// removeSurge drains and deletes the surge nodes once every node is on the
// new image, keeping one for each quarantined node (whose capacity it
// stands in for), and ends the upgrade.
func (u *upgradeRun) removeSurge(ctx context.Context) (ctrl.Result, error) {
	st := u.pool.Status.Upgrade
	st.Surge = slices.DeleteFunc(st.Surge, func(n string) bool { return u.nodes[n] == nil })
	if extra := len(st.Surge) - len(st.Quarantined); extra > 0 {
		victims := st.Surge[len(st.Surge)-extra:]
		if blocked, err := u.r.drainAndDelete(ctx, u.cs, u.cluster, victims); err != nil || blocked {
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		st.Surge = st.Surge[:len(st.Surge)-extra]
	}
	if n := len(st.Quarantined) + len(st.Skipped); n > 0 {
		return ctrl.Result{}, u.end(ctx, phaseFailed, &slipwayv1.ErrorDetail{Code: "UpgradeFailed", Message: fmt.Sprintf(
			"%d of %d nodes could not be drained and were not upgraded (quarantined: %s; made schedulable: %s). The other nodes run %s. Fix the PodDisruptionBudgets that block them and upgrade again. See http://aka.ms/aks/debugdrainfailures.",
			n, st.Total, strings.Join(st.Quarantined, ", "), strings.Join(st.Skipped, ", "), st.Target)})
	}
	return ctrl.Result{}, u.end(ctx, phaseSucceeded, nil)
}

// cancel winds an aborted upgrade down to a consistent pool: a node being
// reimaged finishes and comes back, the batch is uncordoned, and the surge
// nodes go.
func (u *upgradeRun) cancel(ctx context.Context) (ctrl.Result, error) {
	st := u.pool.Status.Upgrade
	for _, name := range st.Batch {
		n := u.nodes[name]
		if n != nil && u.onTarget(n) && !ready(n) {
			return ctrl.Result{RequeueAfter: readyPoll}, nil
		}
	}
	if err := u.uncordonBatch(ctx); err != nil {
		return ctrl.Result{}, err
	}
	st.Batch = nil
	st.Surge = slices.DeleteFunc(st.Surge, func(n string) bool { return u.nodes[n] == nil })
	if len(st.Surge) > 0 {
		if blocked, err := u.r.drainAndDelete(ctx, u.cs, u.cluster, st.Surge); err != nil || blocked {
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		st.Surge = nil
	}
	return ctrl.Result{}, u.end(ctx, phaseCanceled, nil)
}

// end records how the upgrade ended and ends the pool's operation. The
// pool's image is the target only if every node reached it.
func (u *upgradeRun) end(ctx context.Context, phase string, e *slipwayv1.ErrorDetail) error {
	st := u.pool.Status.Upgrade
	now := metav1.Now()
	st.Phase, st.PhaseStarted, st.EndTime = phase, now, &now
	if phase == phaseSucceeded {
		u.pool.Status.NodeImageVersion = st.Target
		u.pool.Status.CurrentOrchestratorVersion = u.kubeVersion()
	}
	u.pool.Status.ProvisioningError = e // kept for a retried finish
	log.FromContext(ctx).Info("Upgrade ended", "pool", u.pool.Spec.ResourceID, "phase", phase, "upgraded", st.Upgraded, "of", st.Total)
	if err := u.save(ctx); err != nil {
		return err
	}
	return u.r.finish(ctx, u.pool, provisioningStateOf[phase], e)
}

// drainAndDelete drains nodes (in parallel, PDBs honoured) and deletes
// their VMs; it reports whether a drain is still blocked.
func (r *AgentPoolReconciler) drainAndDelete(ctx context.Context, cs kubernetes.Interface, cluster string, nodes []string) (bool, error) {
	blocked := make([]bool, len(nodes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelNodeOps)
	for i, node := range nodes {
		g.Go(func() error {
			if err := cordonAndDrain(gctx, cs, node, drainAttempt); err != nil {
				log.FromContext(ctx).Info("Drain blocked, retrying", "node", node, "err", err.Error())
				blocked[i] = true
				return nil
			}
			return r.Compute.Delete(gctx, cluster, node)
		})
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	return slices.Contains(blocked, true), nil
}

package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/timing"
)

// parallelNodeOps bounds how many VMs of one pool are created or drained at
// once, as a scale set works on several instances at a time. Each is a
// handful of requests one after another, so the bound, not the API server,
// set the pace of a large scale-in: at 16, 1,000 nodes left at 5 a second
// with two cores a third idle.
const parallelNodeOps = 64

// AgentPoolReconciler keeps a pool's nodes in its cluster: as many as its
// count, labelled and sized as AKS's.
type AgentPoolReconciler struct {
	// Started is when this process began reconciling: timeouts that a
	// restart interrupted count from then, not from before it.
	Started time.Time
	Client  client.Client
	// Fresh reads from the API server, for what the cache may not have
	// seen yet.
	Fresh   client.Reader
	Hosting Hosting
	// Placement, if set, limits this host to the clusters it runs.
	Placement Placement
	// Compute owns the VMs behind the pools.
	Compute compute.Provider
	// Timing says how long simulated VMs take to provision and boot.
	Timing timing.Model
	// SpotEvictionRate is how many evictions a Spot VM suffers per hour of
	// simulated time, on average; 0 means only the simulated ones.
	SpotEvictionRate float64
	// Images is the node image catalog: new pools get the latest image.
	Images *nodeimage.Catalog
}

// SetupWithManager registers the reconciler.
func (r *AgentPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.AgentPool{}).
		Watches(&slipwayv1.ManagedCluster{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var pools slipwayv1.AgentPoolList
			if err := mgr.GetClient().List(ctx, &pools, client.InNamespace(o.GetNamespace()), client.MatchingLabels{slipwayv1.LabelCluster: o.GetName()}); err != nil {
				return nil
			}
			var out []reconcile.Request
			for _, p := range pools.Items {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
			}
			return out
		})).
		WithOptions(perCluster(r.Placement, controller.Options{MaxConcurrentReconciles: 4})).
		Named("agentpool").
		Complete(r)
}

// Reconcile brings one pool's nodes to its spec.
func (r *AgentPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pool := &slipwayv1.AgentPool{}
	if err := r.Client.Get(ctx, req.NamespacedName, pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	mc := &slipwayv1.ManagedCluster{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: pool.Namespace, Name: pool.Spec.Cluster}, mc)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	clusterGone := err != nil || mc.DeletionTimestamp != nil
	if clusterGone {
		// The cluster controller removes everything; nothing to drain.
		return ctrl.Result{}, nil
	}
	if !runsHere(r.Placement, mc) {
		return elsewhere() // the host that runs the cluster runs its pools
	}
	op := pool.Spec.Operation
	working := busy(op, pool.Status.CompletedOperation)
	if working {
		if issued, err := finishRecordedDelete(ctx, r.Client, pool, op); issued || err != nil {
			return ctrl.Result{}, err
		}
	}
	canceled := false
	if working {
		if canceled, err = aborted(ctx, r.Client, r.Fresh, op); err != nil {
			return ctrl.Result{}, err
		}
		// An upgrade under way winds down first (see upgradeNodeImage):
		// no node is left half-reimaged or cordoned.
		if canceled && !upgradeStarted(pool) {
			if err := r.dropDeleteMachines(ctx, pool); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, r.finish(ctx, pool, "Canceled", nil)
		}
	}
	if pool.DeletionTimestamp == nil && controllerutil.AddFinalizer(pool, slipwayv1.Finalizer) {
		if err := r.Client.Update(ctx, pool); err != nil {
			return ctrl.Result{}, err
		}
	}
	hosted, err := r.Hosting.Get(mc.Status.HostedCluster)
	if errors.Is(err, hosting.ErrNotFound) || (err == nil && (!hosted.Running() || hosted.Kubelets() == nil)) {
		// The control plane is being made or started, or is stopped.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	cs, err := hosted.AdminClient()
	if err != nil {
		return ctrl.Result{}, err
	}

	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return ctrl.Result{}, fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
	}
	want := 0
	if pool.DeletionTimestamp == nil && props.Count != nil {
		want = int(*props.Count)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.azure.com/agentpool=" + pool.Spec.Name})
	if err != nil {
		return ctrl.Result{}, err
	}
	byInstance := map[int]*corev1.Node{}
	for i := range nodes.Items {
		if idx, ok := nodepool.InstanceOf(nodes.Items[i].Name); ok {
			byInstance[idx] = &nodes.Items[i]
		}
	}
	instances := make([]int, 0, len(byInstance))
	for idx := range byInstance {
		instances = append(instances, idx)
	}
	sort.Ints(instances)

	cluster := hosted.ID()
	if stopped := props.PowerState != nil && props.PowerState.Code != nil && *props.PowerState.Code == armcontainerservice.CodeStopped; stopped || len(pool.Status.Deallocated) > 0 && pool.DeletionTimestamp == nil && isPowerOp(op, working) {
		if done, err := r.setPower(ctx, pool, &props, cs, cluster, nodes.Items, !stopped); err != nil || !done {
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		if stopped {
			if working {
				return ctrl.Result{}, r.finish(ctx, pool, "Succeeded", nil)
			}
			return ctrl.Result{}, nil
		}
	}
	removed, wait, err := r.removeNamedMachines(ctx, pool, &props, cs, cluster, byInstance, canceled)
	if err != nil || wait {
		return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, err
	}
	if working && pool.Status.CompletedOperation == op.ID {
		return ctrl.Result{}, nil // removeNamedMachines ended the operation
	}
	if pool.DeletionTimestamp == nil && props.Count != nil {
		want = int(*props.Count) // an eviction may have shrunk the scale set
	}
	instances = slices.DeleteFunc(instances, func(idx int) bool { return slices.Contains(removed, byInstance[idx].Name) })
	image, err := poolImage(ctx, r.Images, pool, &props)
	if err != nil {
		return ctrl.Result{}, err
	}
	// The release the pool's nodes run. A pool first seen records it; an
	// operation that finds its orchestratorVersion elsewhere upgrades the
	// nodes there, as a node image upgrade does (and onto the latest image,
	// as AKS's version upgrades do).
	desiredVersion := nodepool.DesiredVersion(pool)
	if pool.Status.CurrentOrchestratorVersion == "" {
		pool.Status.CurrentOrchestratorVersion = desiredVersion
		if err := r.Client.Status().Update(ctx, pool); err != nil {
			return ctrl.Result{}, err
		}
	}
	versionUpgrade := working && desiredVersion != pool.Status.CurrentOrchestratorVersion
	if pool.DeletionTimestamp == nil && (upgrading(op, working) || versionUpgrade) {
		u := upgradeRun{r: r, mc: mc, pool: pool, props: &props, cs: cs, cluster: cluster, canceled: canceled, nodes: map[string]*corev1.Node{}}
		for i := range nodes.Items {
			u.nodes[nodes.Items[i].Name] = &nodes.Items[i]
		}
		return u.step(ctx)
	}
	if u := pool.Status.Upgrade; u != nil && pool.DeletionTimestamp == nil {
		want += len(u.Surge) // surge nodes kept for quarantined ones stay
	}
	// Scale in: highest instances go first, as VMSS scale-in does, each
	// cordoned and drained first (in parallel: the Eviction API keeps every
	// PodDisruptionBudget however many drains run); a deleted pool's nodes
	// go the same way.
	if len(instances) > want {
		var victims []string
		for _, idx := range instances[want:] {
			victims = append(victims, byInstance[idx].Name)
		}
		if blocked, err := r.drainAndDelete(ctx, cs, cluster, victims); err != nil || blocked {
			return ctrl.Result{RequeueAfter: 2 * time.Second}, err
		}
		instances = instances[:want]
	}
	// Scale out: new instances take the next IDs.
	next := 0
	if len(instances) > 0 {
		next = instances[len(instances)-1] + 1
	}
	if len(instances) < want {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallelNodeOps)
		vm := vmsOf(mc, pool, &props, image, pool.Status.CurrentOrchestratorVersion)
		for ; len(instances) < want; next++ {
			node := vm(next)
			node.ReadyAt = time.Now().Add(r.Timing.NodeReady(*props.OSDiskType))
			g.Go(func() error { return r.Compute.Create(gctx, cluster, node) })
			instances = append(instances, next)
		}
		if err := g.Wait(); err != nil {
			return ctrl.Result{}, err
		}
	}

	if pool.DeletionTimestamp != nil {
		controllerutil.RemoveFinalizer(pool, slipwayv1.Finalizer)
		if err := client.IgnoreNotFound(r.Client.Update(ctx, pool)); err != nil {
			return ctrl.Result{}, err
		}
		if working {
			return ctrl.Result{}, endOperation(ctx, r.Client, op.ID, slipwayv1.OperationSucceeded, nil)
		}
		return ctrl.Result{}, nil
	}

	// Observe.
	nodes, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.azure.com/agentpool=" + pool.Spec.Name})
	if err != nil {
		return ctrl.Result{}, err
	}
	var names []string
	ready := int32(len(pool.Status.Deallocated)) // deallocated machines are where they should be
	for _, n := range nodes.Items {
		names = append(names, n.Name)
		if slices.Contains(pool.Status.Deallocated, n.Name) {
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	sort.Strings(names)
	changed := strings.Join(names, ",") != strings.Join(pool.Status.Nodes, ",") || ready != pool.Status.ReadyNodes || pool.Status.NodeImageVersion != image.Name()
	pool.Status.Nodes, pool.Status.ReadyNodes, pool.Status.NodeImageVersion = names, ready, image.Name()
	if working && len(names) == want && int(ready) == want {
		return ctrl.Result{}, r.finish(ctx, pool, "Succeeded", nil)
	}
	if changed {
		if err := r.Client.Status().Update(ctx, pool); err != nil {
			return ctrl.Result{}, err
		}
	}
	if working || int(ready) != want {
		return ctrl.Result{RequeueAfter: 300 * time.Millisecond}, nil
	}
	if r.SpotEvictionRate > 0 && deref(props.ScaleSetPriority) == armcontainerservice.ScaleSetPrioritySpot {
		return ctrl.Result{RequeueAfter: spotTick}, r.evictAtRandom(ctx, pool, names)
	}
	return ctrl.Result{}, nil
}

// poolImage is the image the pool's nodes run: the one it has, or the
// latest for its OS SKU when it has none yet.
func poolImage(ctx context.Context, images *nodeimage.Catalog, pool *slipwayv1.AgentPool, props *nodepool.Properties) (nodeimage.Image, error) {
	if pool.Status.NodeImageVersion != "" {
		return images.Resolve(ctx, pool.Status.NodeImageVersion)
	}
	return images.Latest(ctx, string(deref(props.OSSKU)))
}

// vmsOf returns the pool's scale-set instances on image and a Kubernetes
// release, by instance number. The cluster's JSON is read once, not once
// per VM: a scale-out or an upgrade makes hundreds.
func vmsOf(mc *slipwayv1.ManagedCluster, pool *slipwayv1.AgentPool, props *nodepool.Properties, image nodeimage.Image, kubeVersion string) func(instance int) compute.Instance {
	var cluster struct {
		Location   string `json:"location"`
		Properties struct {
			NodeResourceGroup string `json:"nodeResourceGroup"`
		} `json:"properties"`
	}
	json.Unmarshal(mc.Spec.Resource.Raw, &cluster)
	spec := nodepool.NodeSpec{Pool: pool.Spec.Name, Hash: armid.NodeHash(mc.Spec.ResourceID, pool.Spec.Name), IPSlot: nodepool.IPSlotOf(pool),
		Cluster: cluster.Properties.NodeResourceGroup, Subscription: armid.SubscriptionOf(mc.Spec.ResourceID), Location: cluster.Location,
		Image: image, KubeVersion: kubeVersion, Properties: props}
	return func(instance int) compute.Instance {
		s := spec
		s.Instance = instance
		return s.Node()
	}
}

// spotTick is how often a Spot pool rolls the dice for random evictions.
const spotTick = 5 * time.Second

// evictAtRandom evicts each running Spot VM with the probability that an
// eviction rate of SpotEvictionRate per VM-hour gives it over one tick of
// simulated time (a Poisson process: 1 - e^(-rate*t)).
func (r *AgentPoolReconciler) evictAtRandom(ctx context.Context, pool *slipwayv1.AgentPool, nodes []string) error {
	p := evictionProbability(r.SpotEvictionRate, spotTick, r.Timing.Scale)
	var evict []string
	for _, n := range nodes {
		if !slices.Contains(pool.Status.Deallocated, n) && !slices.Contains(pool.Spec.Evictions, n) && rand.Float64() < p {
			evict = append(evict, n)
		}
	}
	if len(evict) == 0 {
		return nil
	}
	log.FromContext(ctx).Info("Evicting Spot VMs at random", "pool", pool.Spec.ResourceID, "machines", evict)
	pool.Spec.Evictions = append(pool.Spec.Evictions, evict...)
	return r.Client.Update(ctx, pool)
}

// evictionProbability is the chance that a VM evicted at rate per hour of
// simulated time is evicted within tick of wall time, at a time scale.
func evictionProbability(rate float64, tick time.Duration, scale float64) float64 {
	if rate <= 0 || scale <= 0 {
		return 0
	}
	return 1 - math.Exp(-rate*tick.Hours()/scale)
}

// since is when a timeout that began at start counts from: start, or the
// moment this process started if that was later.
func (r *AgentPoolReconciler) since(start time.Time) time.Time {
	if r.Started.After(start) {
		return r.Started
	}
	return start
}

// dropDeleteMachines forgets the machines an aborted deleteMachines had not
// removed yet: they stay, and count for the pool again.
func (r *AgentPoolReconciler) dropDeleteMachines(ctx context.Context, pool *slipwayv1.AgentPool) error {
	if len(pool.Spec.DeleteMachines) == 0 {
		return nil
	}
	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
	}
	props.Count = to.Ptr(deref(props.Count) + int32(len(pool.Spec.DeleteMachines)))
	pool.Spec.DeleteMachines = nil
	return r.savePoolSpec(ctx, pool, &props)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// finish ends the pool's part of its current operation; the operation
// itself ends here only when it is the pool's own (a cluster's operation is
// ended by the cluster controller once every pool is done).
func (r *AgentPoolReconciler) finish(ctx context.Context, pool *slipwayv1.AgentPool, state string, e *slipwayv1.ErrorDetail) error {
	op := &slipwayv1.Operation{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: pool.Spec.Operation.ID}, op); client.IgnoreNotFound(err) != nil {
		return err
	}
	if strings.EqualFold(op.Spec.ResourceID, pool.Spec.ResourceID) {
		opStatus := map[string]string{"Succeeded": slipwayv1.OperationSucceeded, "Failed": slipwayv1.OperationFailed, "Canceled": slipwayv1.OperationCanceled}[state]
		if err := endOperation(ctx, r.Client, pool.Spec.Operation.ID, opStatus, e); err != nil {
			return err
		}
	}
	pool.Status.CompletedOperation = pool.Spec.Operation.ID
	pool.Status.ProvisioningState = state
	pool.Status.ProvisioningError = e
	return r.Client.Status().Update(ctx, pool)
}

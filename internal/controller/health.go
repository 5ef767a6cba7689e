package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/health"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/simnode"
)

// IdentityChecker says whether a cluster's identity can still get a token:
// clientID is its service principal's, or "msi" for a managed identity.
type IdentityChecker interface {
	CheckIdentity(ctx context.Context, clientID, objectID string) error
}

// HealthReconciler probes every managed cluster, as Resource Health does
// for AKS, and keeps its ClusterHealth: the state now and 30 days back.
type HealthReconciler struct {
	Client   client.Client
	Hosting  Hosting
	Identity IdentityChecker
	// Interval is the time between two probes of a cluster.
	Interval time.Duration
	Policy   health.Policy
	Clock    clock.PassiveClock
	// Placement, if set, limits the probes to the clusters this host runs.
	Placement Placement
}

// serviceGrace is how long a core service may be unavailable before it
// counts: right after a create or a node's boot its pods are still being
// placed.
const serviceGrace = 10 * time.Second

// SetupWithManager registers the reconciler. It wakes on every change of
// a cluster, when an operation on one of its pools starts or ends (a node
// image upgrade shorter than the interval is still seen), and then once an
// interval.
func (r *HealthReconciler) SetupWithManager(mgr ctrl.Manager) error {
	poolOperation := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			was, now := e.ObjectOld.(*slipwayv1.AgentPool), e.ObjectNew.(*slipwayv1.AgentPool)
			return !equality.Semantic.DeepEqual(was.Spec.Operation, now.Spec.Operation) || was.Status.CompletedOperation != now.Status.CompletedOperation
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.ManagedCluster{}).
		Watches(&slipwayv1.AgentPool{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.(*slipwayv1.AgentPool).Spec.Cluster}}}
		}), builder.WithPredicates(poolOperation)).
		WithOptions(perCluster(r.Placement, controller.Options{MaxConcurrentReconciles: 4})).
		Named("health").
		Complete(r)
}

// Reconcile probes one cluster and records what it saw.
func (r *HealthReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &slipwayv1.ManagedCluster{}
	err := r.Client.Get(ctx, req.NamespacedName, mc)
	if apierrors.IsNotFound(err) || err == nil && mc.DeletionTimestamp != nil {
		// The health goes with its cluster.
		h := &slipwayv1.ClusterHealth{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, h))
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if !runsHere(r.Placement, mc) {
		return elsewhere() // probed where it runs
	}
	want, err := desired(mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	sig, events, err := r.probe(ctx, mc, want)
	if err != nil {
		return ctrl.Result{}, err
	}
	st := health.Assess(sig)
	if st.ReasonType == health.Unplanned {
		events = append(events, health.EventSpec{Key: "incident/" + st.Reason, Type: health.EventServiceIssue, Title: st.Title, Summary: st.Summary})
	}

	h := &slipwayv1.ClusterHealth{}
	err = r.Client.Get(ctx, req.NamespacedName, h)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	if !exists {
		h = &slipwayv1.ClusterHealth{
			ObjectMeta: metav1.ObjectMeta{Namespace: mc.Namespace, Name: mc.Name, Labels: map[string]string{}},
			Spec:       slipwayv1.ClusterHealthSpec{ResourceID: mc.Spec.ResourceID, Location: deref(want.Location)},
		}
		for _, l := range []string{slipwayv1.LabelSubscription, slipwayv1.LabelResourceGroup, slipwayv1.LabelCluster} {
			if v, ok := mc.Labels[l]; ok {
				h.Labels[l] = v
			}
		}
		if err := r.Client.Create(ctx, h); err != nil {
			return ctrl.Result{}, err
		}
	}
	if health.Observe(&h.Status, st, events, r.Clock.Now(), r.Policy) {
		if err := r.Client.Status().Update(ctx, h); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: r.Interval}, nil
}

// probe asks the cluster AKS's four questions. It also returns the planned
// maintenance under way, as events.
func (r *HealthReconciler) probe(ctx context.Context, mc *slipwayv1.ManagedCluster, want *armcontainerservice.ManagedCluster) (health.Signal, []health.EventSpec, error) {
	var sig health.Signal
	op := mc.Spec.Operation
	working := busy(op, mc.Status.CompletedOperation)
	if working && op.Action == "Creating" && mc.Status.PowerState == "" {
		sig.Creating = true
		return sig, nil, nil
	}
	if mc.Spec.Stopped || working && (op.Action == "Stopping" || op.Action == "Starting") {
		sig.Stopped = true
		return sig, nil, nil
	}
	hosted, err := r.Hosting.Get(mc.Name)
	if errors.Is(err, hosting.ErrNotFound) {
		sig.APIServer = errors.New("the cluster has no control plane")
		return sig, nil, nil
	}
	if err != nil {
		return sig, nil, err
	}
	// A Kubernetes version upgrade replaces the API server: said before
	// probing, so that a moment unanswered during it reads as planned.
	var upgrades []string
	var events []health.EventSpec
	clusterUpgrade := ""
	if working && op.Action == slipwayv1.ActionUpgrading {
		clusterUpgrade = op.ID
		what := "Kubernetes version upgrade of the cluster to " + desiredVersion(mc)
		upgrades = append(upgrades, what)
		events = append(events, health.EventSpec{Key: "upgrade/" + op.ID, Type: health.EventPlannedMaintenance, Title: "Kubernetes version upgrade",
			Summary: "The control plane's API server, controller manager and scheduler are replaced by the new release's, the new API server serving before the old one stops; then each node pool's nodes are upgraded within your pod disruption budgets, with surge nodes added first."})
	}
	sig, rebooting, err := ProbeCluster(ctx, hosted, r.Clock.Now())
	sig.Maintenance = upgrades
	if err != nil || sig.APIServer != nil {
		return sig, events, err
	}
	sig.Identity = r.checkIdentity(ctx, mc, want)

	// A node OS auto-upgrade run is one maintenance, whatever it does to
	// each pool (a node image upgrade, patches in place and reboots).
	ofRun := map[string]bool{}
	for _, run := range mc.Status.AutoUpgradeRuns {
		if run.Status != runInProgress {
			continue
		}
		what := "node OS auto-upgrade (" + run.Channel + " channel) of pools"
		for _, p := range run.Pools {
			what += " " + p.Name
			ofRun[p.OperationID] = true
		}
		sig.Maintenance = append(sig.Maintenance, what)
		events = append(events, health.EventSpec{Key: "autoupgrade/" + run.ID, Type: health.EventPlannedMaintenance,
			Title: "Node OS auto-upgrade", Summary: "The cluster's nodeOSUpgradeChannel (" + run.Channel + ") is applying a node OS update in its maintenance window: " + what + "."})
	}
	var pools slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return sig, nil, err
	}
	for _, p := range pools.Items {
		if busy(p.Spec.Operation, p.Status.CompletedOperation) && p.Spec.Operation.Action == slipwayv1.ActionUpgrading && p.Spec.Operation.ID != clusterUpgrade {
			what := "Kubernetes version upgrade of pool " + p.Spec.Name
			sig.Maintenance = append(sig.Maintenance, what)
			events = append(events, health.EventSpec{Key: "upgrade/" + p.Spec.Operation.ID, Type: health.EventPlannedMaintenance,
				Title: "Kubernetes version upgrade of pool " + p.Spec.Name, Summary: "The nodes of pool " + p.Spec.Name + " are being moved to a new Kubernetes version: each is cordoned, drained within your pod disruption budgets and reimaged onto the new kubelet, with surge nodes added first."})
		}
		if busy(p.Spec.Operation, p.Status.CompletedOperation) && p.Spec.Operation.Action == slipwayv1.ActionUpgradeNodeImage && !ofRun[p.Spec.Operation.ID] {
			what := "node image upgrade of pool " + p.Spec.Name
			if u := p.Spec.NodeImageTarget; u != "" {
				what += " to " + u
			}
			sig.Maintenance = append(sig.Maintenance, what)
			events = append(events, health.EventSpec{Key: "upgrade/" + p.Spec.Operation.ID, Type: health.EventPlannedMaintenance,
				Title: "Node image upgrade of pool " + p.Spec.Name, Summary: "The nodes of pool " + p.Spec.Name + " are being moved to a new node image (" + what + "): each is cordoned, drained within your pod disruption budgets and reimaged, with surge nodes added first."})
		}
	}
	if len(rebooting) > 0 {
		what := "reboot of nodes " + fmt.Sprint(rebooting)
		sig.Maintenance = append(sig.Maintenance, what)
		events = append(events, health.EventSpec{Key: "reboot", Type: health.EventPlannedMaintenance, Title: "Node reboots",
			Summary: "Nodes that need a reboot to finish OS updates are rebooted one at a time, each cordoned and drained within your pod disruption budgets first."})
	}
	return sig, events, nil
}

// ProbeCluster asks a running cluster the questions its own API server can
// answer: do the API server and the rest of the control plane answer, are
// the nodes Ready (and which are rebooting), are the core services of
// kube-system available.
func ProbeCluster(ctx context.Context, hosted *hosting.Cluster, now time.Time) (sig health.Signal, rebooting []string, err error) {
	if hh := hosted.Health(ctx); !hh.Ready {
		sig.APIServer = errors.New(hh.Message)
		return sig, nil, nil
	}
	sig.Components = hosted.ComponentHealth(ctx)
	cs, err := hosted.AdminClient()
	if err != nil {
		return sig, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if rebooting, err = probeNodes(ctx, cs, now, &sig); err != nil {
		sig.APIServer = err
		return sig, nil, nil
	}
	if err := probeServices(ctx, cs, now, &sig); err != nil {
		sig.APIServer = err
	}
	return sig, rebooting, nil
}

// probeNodes counts the nodes not Ready, leaving out those still booting,
// and returns the nodes being rebooted.
func probeNodes(ctx context.Context, cs kubernetes.Interface, now time.Time, sig *health.Signal) (rebooting []string, err error) {
	// From the API server's watch cache: a probe must stay cheap on a
	// cluster of thousands of nodes.
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if at, err := time.Parse(time.RFC3339, n.Annotations[simnode.ReadyAtAnnotation]); err == nil && now.Before(at) {
			continue // the VM is still provisioning
		}
		if n.Annotations[rebootPhaseAnnotation] != "" {
			rebooting = append(rebooting, n.Name)
		}
		sig.Nodes++
		if !ready(n) {
			sig.NotReady = append(sig.NotReady, n.Name)
		}
	}
	slices.Sort(sig.NotReady)
	slices.Sort(rebooting)
	return rebooting, nil
}

// probeServices finds the core services of kube-system (the add-ons) that
// have had no pod available for longer than serviceGrace.
func probeServices(ctx context.Context, cs kubernetes.Interface, now time.Time, sig *health.Signal) error {
	sel := metav1.ListOptions{LabelSelector: addons.ModeLabel + "=Reconcile", ResourceVersion: "0"}
	deps, err := cs.AppsV1().Deployments(metav1.NamespaceSystem).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("listing kube-system deployments: %w", err)
	}
	dss, err := cs.AppsV1().DaemonSets(metav1.NamespaceSystem).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("listing kube-system daemonsets: %w", err)
	}
	found := map[addons.Workload]bool{}
	for _, d := range deps.Items {
		found[addons.Workload{Kind: "Deployment", Name: d.Name}] = true
	}
	for _, d := range dss.Items {
		found[addons.Workload{Kind: "DaemonSet", Name: d.Name}] = true
	}
	for _, w := range addons.CoreWorkloads() {
		if !found[w] {
			if sig.Services == nil {
				sig.Services = map[string]string{}
			}
			sig.Services[w.Name] = "missing"
		}
	}
	for _, d := range deps.Items {
		if d.Status.AvailableReplicas > 0 || d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
			continue
		}
		since := d.CreationTimestamp.Time
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionFalse {
				since = c.LastTransitionTime.Time
			}
		}
		if now.Sub(since) >= serviceGrace {
			if sig.Services == nil {
				sig.Services = map[string]string{}
			}
			sig.Services[d.Name] = fmt.Sprintf("0 of %d replicas available", d.Status.Replicas)
		}
	}
	for _, d := range dss.Items {
		if d.Status.DesiredNumberScheduled == 0 || d.Status.NumberAvailable > 0 || now.Sub(d.CreationTimestamp.Time) < serviceGrace {
			continue
		}
		if sig.Services == nil {
			sig.Services = map[string]string{}
		}
		sig.Services[d.Name] = fmt.Sprintf("0 of %d pods available", d.Status.DesiredNumberScheduled)
	}
	return nil
}

// checkIdentity asks whether the cluster's identity can still get a token.
func (r *HealthReconciler) checkIdentity(ctx context.Context, mc *slipwayv1.ManagedCluster, want *armcontainerservice.ManagedCluster) error {
	if r.Identity == nil {
		return nil
	}
	clientID := "msi"
	if sp := want.Properties.ServicePrincipalProfile; sp != nil && deref(sp.ClientID) != "" {
		clientID = *sp.ClientID
	}
	return r.Identity.CheckIdentity(ctx, clientID, mc.Spec.ResourceID+"/identity")
}

package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/version"
)

// ClusterReconciler runs a managed cluster's control plane.
type ClusterReconciler struct {
	Client client.Client
	// Fresh reads from the API server, for what the cache may not have
	// seen yet.
	Fresh   client.Reader
	Hosting Hosting
	// Placement, if set, limits this host to the clusters it runs.
	Placement Placement
	// Compute owns the clusters' VMs.
	Compute compute.Provider
	// FQDN names a cluster's API server, as the ARM layer shows it.
	FQDN func(*slipwayv1.ManagedCluster) string
	// NewAgentPool builds a new pool object (the ARM layer's shape).
	NewAgentPool func(mc *slipwayv1.ManagedCluster, name string, properties []byte, op *slipwayv1.OperationRef) *slipwayv1.AgentPool

	// addonsApplied is when each cluster's add-ons were last applied, and
	// for which operation.
	addonsMu      sync.Mutex
	addonsApplied map[string]addonsRun

	// Started is when this process began: for a while after it, idle
	// control planes start after busy ones (holdStart).
	Started time.Time
}

// addonResync is how often an idle cluster's add-ons are applied again, as
// AKS's add-on manager re-applies them: a deleted CoreDNS comes back.
const addonResync = time.Minute

// SetupWithManager registers the reconciler.
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.ManagedCluster{}).
		Watches(&slipwayv1.AgentPool{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.(*slipwayv1.AgentPool).Spec.Cluster}}}
		}), builder.WithPredicates()).
		WithOptions(perCluster(r.Placement, controller.Options{MaxConcurrentReconciles: 4})).
		Named("managedcluster").
		Complete(r)
}

// Reconcile brings one cluster to its desired state.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &slipwayv1.ManagedCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.Placement != nil {
		mine, err := r.Placement.Place(ctx, mc)
		if apierrors.IsConflict(err) {
			// Another host placed it first; its write wakes this
			// controller again.
			return ctrl.Result{}, nil
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		if !mine {
			// Another host runs it. If this one did (the cluster moved
			// while this host was away), it stops here.
			r.Hosting.Release(mc.Name)
			if mc.Status.Host == "" {
				// Another host places it; soon looked at again in case
				// that host is gone.
				return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
			}
			return elsewhere()
		}
	}
	if mc.DeletionTimestamp != nil {
		return r.delete(ctx, mc)
	}
	if controllerutil.AddFinalizer(mc, slipwayv1.Finalizer) {
		if err := r.Client.Update(ctx, mc); err != nil {
			return ctrl.Result{}, err
		}
	}
	op := mc.Spec.Operation
	working := busy(op, mc.Status.CompletedOperation)
	if working && r.Fresh != nil {
		// The cache may trail this controller's own finish: a reconcile
		// queued meanwhile (a pool changed) would see the operation still
		// running and sync the pools again, writing the cluster's profile
		// over a pool PUT the front door accepted once the operation ended.
		// Work is done from the cluster as the API server has it.
		if err := r.Fresh.Get(ctx, req.NamespacedName, mc); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if mc.DeletionTimestamp != nil {
			return r.delete(ctx, mc)
		}
		op = mc.Spec.Operation
		working = busy(op, mc.Status.CompletedOperation)
	}
	if working && op.Action == slipwayv1.ActionDeleting {
		_, err := finishRecordedDelete(ctx, r.Client, mc, op)
		return ctrl.Result{}, err
	}
	if working {
		if canceled, err := aborted(ctx, r.Client, r.Fresh, op); err != nil || canceled {
			if err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, r.finish(ctx, mc, "Canceled", nil)
		}
	}

	hosted, err := r.Hosting.Adopt(ctx, mc.Name)
	if errors.Is(err, hosting.ErrNotFound) {
		if !working {
			return ctrl.Result{}, nil // created and deleted under us; nothing to run
		}
		setProgress(ctx, r.Client, op.ID, 10)
		svc, pods := networksOf(mc)
		hosted, err = r.Hosting.Create(ctx, hosting.ClusterSpec{ID: mc.Name, Name: clusterName(mc), FQDN: r.FQDN(mc), ServiceCIDR: svc, PodCIDR: pods,
			KubernetesVersion: desiredVersion(mc)})
		if err != nil && hosted == nil {
			return ctrl.Result{}, r.finish(ctx, mc, "Failed", failure("ControlPlaneProvisioningFailed", err))
		}
		if spare, ok := hosted.FromSpare(); ok && err == nil {
			log.FromContext(ctx).Info("Control plane made from a spare", "cluster", mc.Spec.ResourceID, "spare", spare)
		}
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.ensureNodeResourceGroup(ctx, mc); err != nil {
		return ctrl.Result{}, err
	}
	if mc.Status.HostedCluster != hosted.ID() {
		mc.Status.HostedCluster = hosted.ID()
		if err := r.Client.Status().Update(ctx, mc); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Power state: the control plane runs unless the user stopped it.
	if mc.Spec.Stopped {
		if hosted.Running() {
			if err := hosted.Stop(ctx); err != nil {
				return ctrl.Result{}, err
			}
		}
	} else if !hosted.Running() {
		if hold, err := r.holdStart(ctx, mc); err != nil || hold {
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		// hosting logs the start and where its time went.
		if err := hosted.Start(ctx); err != nil {
			if working {
				return ctrl.Result{}, r.finish(ctx, mc, "Failed", failure("ControlPlaneStartFailed", err))
			}
			return ctrl.Result{}, err
		}
	}
	// A version upgrade replaces the control plane's servers first; the
	// pools follow as syncPools hands them their new orchestratorVersion.
	if working && op.Action != slipwayv1.ActionCreating {
		if want, have := desiredVersion(mc), hosted.KubernetesVersion(); want != have {
			setProgress(ctx, r.Client, op.ID, 20)
			began := time.Now()
			log.FromContext(ctx).Info("Upgrading the control plane", "cluster", mc.Spec.ResourceID, "from", have, "to", want)
			if err := hosted.Upgrade(ctx, want); err != nil {
				return ctrl.Result{}, r.finish(ctx, mc, "Failed", failure("UpgradeFailed", err))
			}
			log.FromContext(ctx).Info("Control plane upgraded", "cluster", mc.Spec.ResourceID, "to", want, "took", time.Since(began).Round(time.Millisecond))
		}
	}
	power := string(armcontainerservice.CodeRunning)
	if mc.Spec.Stopped {
		power = string(armcontainerservice.CodeStopped)
	}
	if mc.Status.PowerState != power || mc.Status.CurrentKubernetesVersion != hosted.KubernetesVersion() {
		mc.Status.PowerState = power
		mc.Status.CurrentKubernetesVersion = hosted.KubernetesVersion()
		if err := r.Client.Status().Update(ctx, mc); err != nil {
			return ctrl.Result{}, err
		}
	}
	if !working {
		if mc.Spec.Stopped {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{RequeueAfter: addonResync}, r.resyncAddons(ctx, mc, hosted)
	}

	switch op.Action {
	case "Starting":
		if err := r.loseEphemeralDisks(ctx, mc, hosted); err != nil {
			return ctrl.Result{}, err
		}
	case slipwayv1.ActionCreating, slipwayv1.ActionUpdating, slipwayv1.ActionUpgrading:
		setProgress(ctx, r.Client, op.ID, 40)
		// Pools first: their VMs boot while the add-ons are applied, as a
		// scale set's do beside AKS's add-on manager.
		done, failed, err := r.syncPools(ctx, mc)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !r.addonsDone(mc.Name, op.ID) {
			began := time.Now()
			if err := r.applyAddons(ctx, mc, hosted); err != nil {
				return ctrl.Result{}, err
			}
			log.FromContext(ctx).Info("Add-ons applied", "cluster", mc.Spec.ResourceID, "took", time.Since(began).Round(time.Millisecond))
			setProgress(ctx, r.Client, op.ID, 50)
		}
		if failed != nil {
			return ctrl.Result{}, r.finish(ctx, mc, "Failed", failed)
		}
		if !done {
			return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
		}
	}
	return ctrl.Result{}, r.finish(ctx, mc, "Succeeded", nil)
}

// desiredVersion is the release the cluster's PUT asks its control plane to
// run (an x.y alias resolved to its latest patch).
func desiredVersion(mc *slipwayv1.ManagedCluster) string {
	if c, err := desired(mc); err == nil && c.Properties != nil {
		if v, ok := version.Resolve(deref(c.Properties.KubernetesVersion)); ok {
			return v
		}
	}
	return strings.TrimPrefix(version.Kubernetes, "v")
}

// networksOf is the service and pod CIDR the cluster's PUT asked for (the
// front door filled in AKS's defaults): the API server allocates Service
// addresses from the one, the simulated nodes' pods get theirs from the
// other, so the cluster is what its GET says.
func networksOf(mc *slipwayv1.ManagedCluster) (service, pods string) {
	c, err := desired(mc)
	if err != nil || c.Properties.NetworkProfile == nil {
		return "", ""
	}
	return deref(c.Properties.NetworkProfile.ServiceCidr), deref(c.Properties.NetworkProfile.PodCidr)
}

// resyncAddons applies an idle cluster's add-ons again if they were last
// applied more than addonResync ago (or never, by this process).
func (r *ClusterReconciler) resyncAddons(ctx context.Context, mc *slipwayv1.ManagedCluster, hosted *hosting.Cluster) error {
	r.addonsMu.Lock()
	last, ok := r.addonsApplied[mc.Name]
	r.addonsMu.Unlock()
	if ok && time.Since(last.at) < addonResync {
		return nil
	}
	// A frozen API server must not hold a worker.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return r.applyAddons(ctx, mc, hosted)
}

// applyAddons brings the system add-ons in the cluster's kube-system to
// what its profile says, as AKS's add-on manager does on every create and
// update.
func (r *ClusterReconciler) applyAddons(ctx context.Context, mc *slipwayv1.ManagedCluster, hosted *hosting.Cluster) error {
	c, err := desired(mc)
	if err != nil {
		return err
	}
	spec := addons.Spec{
		ServiceCIDR: hosting.DefaultServiceCIDR, PodCIDR: hosting.DefaultPodCIDR,
		APIServerFQDN: r.FQDN(mc), KubernetesVersion: "v" + hosted.KubernetesVersion(),
		DiskCSIDriver: true, FileCSIDriver: true, SnapshotController: true,
	}
	p := c.Properties
	if np := p.NetworkProfile; np != nil {
		spec.ServiceCIDR = cmp.Or(deref(np.ServiceCidr), spec.ServiceCIDR)
		spec.PodCIDR = cmp.Or(deref(np.PodCidr), spec.PodCIDR)
		spec.DNSServiceIP = deref(np.DNSServiceIP)
	}
	if sp := p.StorageProfile; sp != nil {
		if sp.DiskCSIDriver != nil && sp.DiskCSIDriver.Enabled != nil {
			spec.DiskCSIDriver = *sp.DiskCSIDriver.Enabled
		}
		if sp.FileCSIDriver != nil && sp.FileCSIDriver.Enabled != nil {
			spec.FileCSIDriver = *sp.FileCSIDriver.Enabled
		}
		if sp.SnapshotController != nil && sp.SnapshotController.Enabled != nil {
			spec.SnapshotController = *sp.SnapshotController.Enabled
		}
	}
	spec.AzurePolicy = addons.Enabled(p.AddonProfiles, addons.AzurePolicyAddon)
	if kv := addons.KeyVaultSettingsOf(p.AddonProfiles); kv.Enabled {
		spec.KeyVaultSecretsProvider, spec.SecretRotation = true, kv.Rotation
		spec.RotationPollInterval = kv.RotationPollInterval.String()
	}
	if spec.ZoneRedundant, err = r.spansZones(ctx, mc, c); err != nil {
		return err
	}
	cfg, err := hosted.RESTConfig(hosting.Admin)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := addons.Apply(ctx, dc, spec); err != nil {
		return fmt.Errorf("cluster %s: %w", mc.Spec.ResourceID, err)
	}
	run := addonsRun{at: time.Now()}
	if op := mc.Spec.Operation; busy(op, mc.Status.CompletedOperation) {
		run.operation = op.ID
	}
	r.addonsMu.Lock()
	if r.addonsApplied == nil {
		r.addonsApplied = map[string]addonsRun{}
	}
	r.addonsApplied[mc.Name] = run
	r.addonsMu.Unlock()
	return nil
}

// addonsRun is one application of a cluster's add-ons.
type addonsRun struct {
	at        time.Time
	operation string // the operation it carried out, if any
}

// addonsDone says whether the add-ons were applied for operation id. The
// spec an operation carries out is written with it, so one application
// per operation is enough; a restart applies them again.
func (r *ClusterReconciler) addonsDone(cluster, id string) bool {
	r.addonsMu.Lock()
	defer r.addonsMu.Unlock()
	return r.addonsApplied[cluster].operation == id
}

func clusterName(mc *slipwayv1.ManagedCluster) string {
	return mc.Spec.ResourceID[strings.LastIndex(mc.Spec.ResourceID, "/")+1:]
}

// profilesUnmodeled is, for each pool profile of the cluster's last PUT,
// the unmodeled properties the ARM layer kept beside it (see
// ManagedClusterSpec.Unmodeled), as the pool's own: {"properties": ...}.
func profilesUnmodeled(mc *slipwayv1.ManagedCluster) ([]*runtime.RawExtension, error) {
	if mc.Spec.Unmodeled == nil {
		return nil, nil
	}
	var u struct {
		Properties struct {
			AgentPoolProfiles []json.RawMessage `json:"agentPoolProfiles"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(mc.Spec.Unmodeled.Raw, &u); err != nil {
		return nil, fmt.Errorf("cluster %s: unmodeled properties: %w", mc.Spec.ResourceID, err)
	}
	out := make([]*runtime.RawExtension, len(u.Properties.AgentPoolProfiles))
	for i, p := range u.Properties.AgentPoolProfiles {
		if len(p) > 0 && string(p) != "null" {
			out[i] = &runtime.RawExtension{Raw: []byte(`{"properties":` + string(p) + `}`)}
		}
	}
	return out, nil
}

// syncPools creates or updates the pools the cluster's PUT listed, and
// reports whether all of them have carried out this operation.
func (r *ClusterReconciler) syncPools(ctx context.Context, mc *slipwayv1.ManagedCluster) (done bool, failed *slipwayv1.ErrorDetail, err error) {
	var desired armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mc.Spec.Resource.Raw, &desired); err != nil {
		return false, nil, err
	}
	if desired.Properties == nil {
		return true, nil, nil
	}
	var existing slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &existing, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return false, nil, err
	}
	unmodeled, err := profilesUnmodeled(mc)
	if err != nil {
		return false, nil, err
	}
	done = true
	for i, profile := range desired.Properties.AgentPoolProfiles {
		var poolUnmodeled *runtime.RawExtension
		if i < len(unmodeled) {
			poolUnmodeled = unmodeled[i]
		}
		name := *profile.Name
		profile.Name = nil
		props, err := json.Marshal(profile)
		if err != nil {
			return false, nil, err
		}
		key := client.ObjectKey{Namespace: slipwayv1.Namespace, Name: r.NewAgentPool(mc, name, nil, nil).Name}
		pool := &slipwayv1.AgentPool{}
		err = r.Client.Get(ctx, key, pool)
		switch {
		case apierrors.IsNotFound(err):
			pool = r.NewAgentPool(mc, name, props, mc.Spec.Operation)
			pool.Spec.Unmodeled = poolUnmodeled
			nodepool.SetIPSlot(pool, nodepool.FreeIPSlot(existing.Items))
			existing.Items = append(existing.Items, *pool)
			controllerutil.AddFinalizer(pool, slipwayv1.Finalizer)
			if err := r.Client.Create(ctx, pool); err != nil {
				return false, nil, err
			}
			done = false
			continue
		case err != nil:
			return false, nil, err
		}
		if pool.Spec.Operation == nil || pool.Spec.Operation.ID != mc.Spec.Operation.ID {
			pool.Spec.Properties.Raw = props
			pool.Spec.Unmodeled = poolUnmodeled
			pool.Spec.Operation = mc.Spec.Operation
			if err := r.Client.Update(ctx, pool); err != nil {
				return false, nil, err
			}
			done = false
			continue
		}
		if pool.Status.CompletedOperation != mc.Spec.Operation.ID {
			done = false
			continue
		}
		if pool.Status.ProvisioningState == "Failed" && failed == nil {
			failed = pool.Status.ProvisioningError
		}
	}
	return done, failed, nil
}

// finish ends the cluster's current operation.
func (r *ClusterReconciler) finish(ctx context.Context, mc *slipwayv1.ManagedCluster, state string, e *slipwayv1.ErrorDetail) error {
	opStatus := map[string]string{"Succeeded": slipwayv1.OperationSucceeded, "Failed": slipwayv1.OperationFailed, "Canceled": slipwayv1.OperationCanceled}[state]
	if err := endOperation(ctx, r.Client, mc.Spec.Operation.ID, opStatus, e); err != nil {
		return err
	}
	mc.Status.CompletedOperation = mc.Spec.Operation.ID
	mc.Status.ProvisioningState = state
	mc.Status.ProvisioningError = e
	return r.Client.Status().Update(ctx, mc)
}

// delete removes the control plane, then the pools, then the object.
func (r *ClusterReconciler) delete(ctx context.Context, mc *slipwayv1.ManagedCluster) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(mc, slipwayv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	r.addonsMu.Lock()
	delete(r.addonsApplied, mc.Name)
	r.addonsMu.Unlock()
	if err := r.Hosting.Delete(ctx, mc.Name); err != nil && !errors.Is(err, hosting.ErrNotFound) {
		return ctrl.Result{}, fmt.Errorf("deleting control plane of %s: %w", mc.Spec.ResourceID, err)
	}
	var pools slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return ctrl.Result{}, err
	}
	for i := range pools.Items {
		p := &pools.Items[i]
		if controllerutil.RemoveFinalizer(p, slipwayv1.Finalizer) {
			if err := r.Client.Update(ctx, p); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		}
		if err := r.Client.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
	}
	// The node resource group goes with the cluster, and everything in it
	// (the disks of its volumes); the delete ends once it is gone.
	if gone, err := r.deleteNodeResourceGroup(ctx, mc); err != nil || !gone {
		return ctrl.Result{RequeueAfter: 200 * time.Millisecond}, err
	}
	// Access granted at the cluster goes with it: a cluster made later
	// under the same name must not inherit it.
	if err := authz.DeleteAssignmentsUnder(ctx, r.Client, mc.Spec.ResourceID); err != nil {
		return ctrl.Result{}, err
	}
	// The object goes before the operation ends, so that a client that
	// sees the delete succeed never finds the cluster again. A crash in
	// between is settled by the ARM layer, which reports a delete whose
	// resource is gone as succeeded.
	controllerutil.RemoveFinalizer(mc, slipwayv1.Finalizer)
	if err := client.IgnoreNotFound(r.Client.Update(ctx, mc)); err != nil {
		return ctrl.Result{}, err
	}
	if mc.Spec.Operation != nil && mc.Spec.Operation.Action == slipwayv1.ActionDeleting {
		return ctrl.Result{}, endOperation(ctx, r.Client, mc.Spec.Operation.ID, slipwayv1.OperationSucceeded, nil)
	}
	return ctrl.Result{}, nil
}

// loseEphemeralDisks runs when a stopped cluster starts: its VMs were
// deallocated, and starting them again wipes the Ephemeral OS disks (they
// lived on the hosts the VMs left). VMs of stopped pools stay deallocated.
func (r *ClusterReconciler) loseEphemeralDisks(ctx context.Context, mc *slipwayv1.ManagedCluster, hosted *hosting.Cluster) error {
	var pools slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return err
	}
	for _, p := range pools.Items {
		var props nodepool.Properties
		if err := json.Unmarshal(p.Spec.Properties.Raw, &props); err != nil {
			return err
		}
		if props.OSDiskType == nil || *props.OSDiskType != armcontainerservice.OSDiskTypeEphemeral {
			continue
		}
		for _, node := range p.Status.Nodes {
			if slices.Contains(p.Status.Deallocated, node) {
				continue
			}
			if err := r.Compute.Start(ctx, hosted.ID(), node, *props.OSDiskType); err != nil {
				return err
			}
		}
	}
	return nil
}

// nodeResourceGroup is the cluster's node resource group: its name, and
// the subscription and location it is in.
func nodeResourceGroup(mc *slipwayv1.ManagedCluster) (sub, name, location string, err error) {
	c, err := desired(mc)
	if err != nil {
		return "", "", "", err
	}
	return armid.SubscriptionOf(mc.Spec.ResourceID), deref(c.Properties.NodeResourceGroup), deref(c.Location), nil
}

// ensureNodeResourceGroup makes the cluster's node resource group, managed
// by the cluster, as AKS does when it creates one (and for clusters made
// before Slipway kept it as a group of its own).
func (r *ClusterReconciler) ensureNodeResourceGroup(ctx context.Context, mc *slipwayv1.ManagedCluster) error {
	sub, name, location, err := nodeResourceGroup(mc)
	if err != nil || name == "" {
		return err
	}
	g := armid.NewResourceGroup(sub, name, location, mc.Spec.ResourceID)
	err = r.Client.Get(ctx, client.ObjectKeyFromObject(g), &slipwayv1.ResourceGroup{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	if err := r.Client.Create(ctx, g); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node resource group %s: %w", name, err)
	}
	return nil
}

// deleteNodeResourceGroup deletes the cluster's node resource group and
// says whether it is gone. A group of that name that another cluster
// manages, or none, is left alone.
func (r *ClusterReconciler) deleteNodeResourceGroup(ctx context.Context, mc *slipwayv1.ManagedCluster) (bool, error) {
	sub, name, _, err := nodeResourceGroup(mc)
	if err != nil || name == "" {
		return true, err
	}
	g := &slipwayv1.ResourceGroup{}
	err = r.Fresh.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(armid.ResourceGroup(sub, name))}, g)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !strings.EqualFold(g.Spec.ManagedBy, mc.Spec.ResourceID) {
		return true, nil
	}
	if g.DeletionTimestamp == nil {
		if err := r.Client.Delete(ctx, g); client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("deleting node resource group %s: %w", name, err)
		}
	}
	return false, nil
}

// spansZones says whether any of the cluster's pools spreads its nodes
// over more than one availability zone: the pools a PUT asks for, and
// those made since.
func (r *ClusterReconciler) spansZones(ctx context.Context, mc *slipwayv1.ManagedCluster, c *armcontainerservice.ManagedCluster) (bool, error) {
	for _, p := range c.Properties.AgentPoolProfiles {
		if len(p.AvailabilityZones) > 1 {
			return true, nil
		}
	}
	var pools slipwayv1.AgentPoolList
	if err := r.Client.List(ctx, &pools, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return false, err
	}
	for _, p := range pools.Items {
		var props struct {
			AvailabilityZones []string `json:"availabilityZones"`
		}
		if json.Unmarshal(p.Spec.Properties.Raw, &props) == nil && len(props.AvailabilityZones) > 1 {
			return true, nil
		}
	}
	return false, nil
}

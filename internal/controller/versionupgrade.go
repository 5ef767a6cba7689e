package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/maintenance"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/version"
)

// VersionUpgradeReconciler is the cluster auto-upgrade scheduler. It applies
// the cluster's autoUpgradeProfile.upgradeChannel (patch, stable, rapid;
// version.ChannelTarget says where each leads) inside the
// aksManagedAutoUpgradeSchedule window, or the default configuration's,
// or at once with neither, as AKS does. A run is the Upgrading operation a
// PUT of the new kubernetesVersion starts: the control plane, then every
// pool that may follow it. Each run is recorded on the cluster, as node OS
// runs are. The none and node-image channels leave the version alone
// (node-image's node image upgrades are the node OS scheduler's).
type VersionUpgradeReconciler struct {
	Client client.Client
	// Fresh reads from the API server, for what the cache may not have
	// seen yet.
	Fresh client.Reader
	// StartOperation records a new operation, as the ARM layer does.
	StartOperation func(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// The cluster auto-upgrade channels that change nothing here.
const (
	upgradeChannelNone      = "none"
	upgradeChannelNodeImage = "node-image"
)

// SetupWithManager registers the reconciler.
func (r *VersionUpgradeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&slipwayv1.ManagedCluster{}).
		Named("versionupgrade").
		Complete(r)
}

func (r *VersionUpgradeReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile looks at one cluster.
func (r *VersionUpgradeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc, pools, err := runningCluster(ctx, r.Client, req)
	if mc == nil || err != nil {
		return ctrl.Result{}, err
	}
	wait, err := r.schedule(ctx, mc, pools)
	return ctrl.Result{RequeueAfter: wait}, err
}

// upgradeChannel is the cluster's autoUpgradeProfile.upgradeChannel
// (AKS's default none).
func upgradeChannel(mc *slipwayv1.ManagedCluster) string {
	if c, err := desired(mc); err == nil && c.Properties != nil && c.Properties.AutoUpgradeProfile != nil && c.Properties.AutoUpgradeProfile.UpgradeChannel != nil {
		return string(*c.Properties.AutoUpgradeProfile.UpgradeChannel)
	}
	return upgradeChannelNone
}

// schedule advances the cluster's latest run, or starts one, and says when
// to look again.
func (r *VersionUpgradeReconciler) schedule(ctx context.Context, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool) (time.Duration, error) {
	last := latestOpen(mc.Status.VersionUpgradeRuns)
	if last != nil && last.Status == runInProgress {
		return schedulerTick, r.follow(ctx, mc, pools, last)
	}
	ch := upgradeChannel(mc)
	from := cmp.Or(mc.Status.CurrentKubernetesVersion, desiredVersion(mc))
	to, ok := version.ChannelTarget(ch, from)
	if !ok {
		if last != nil {
			return schedulerTick, r.endRun(ctx, mc, last, slipwayv1.OperationCanceled, "The cluster auto-upgrade channel was set to "+ch+".")
		}
		return schedulerTick, nil
	}
	moving := poolsToMove(pools, to)
	if to == from && len(moving) == 0 {
		if last != nil {
			return schedulerTick, r.endRun(ctx, mc, last, slipwayv1.OperationCanceled, "Nothing left to upgrade: the cluster and its pools run "+to+".")
		}
		return schedulerTick, nil
	}
	now := r.now()
	if last == nil || last.Channel != ch || last.To != to {
		if last != nil {
			last.Status, last.Message, last.EndTime = slipwayv1.OperationCanceled, "Superseded: the channel now leads to another version.", &metav1.Time{Time: now}
		}
		last = addRun(&mc.Status.VersionUpgradeRuns, slipwayv1.AutoUpgradeRun{
			ID: fmt.Sprintf("%s-%d", ch, now.Unix()), Channel: ch, Status: runPending, Detected: metav1.NewTime(now),
			From: from, To: to, Pools: moving,
		})
		log.FromContext(ctx).Info("Kubernetes auto-upgrade found", "cluster", mc.Spec.ResourceID, "channel", ch, "from", from, "to", to)
	}
	w, next := maintenanceWindow(mc, now, maintenance.AutoUpgrade, maintenance.Default)
	if w.configured && !w.open {
		why := fmt.Sprintf("Waiting for the %s maintenance window", w.config)
		if next.IsZero() {
			why += ", which never opens within a year"
		}
		return holdRun(ctx, r.Client, mc, last, why, next)
	}
	if busy := clusterBusy(mc, pools); busy != "" {
		return holdRun(ctx, r.Client, mc, last, "Waiting for "+busy+" to finish", now.Add(schedulerTick))
	}
	return schedulerTick, r.start(ctx, mc, pools, last)
}

// poolsToMove are the pools that follow the control plane to release: each
// running pool that may take it in one step. A pool further behind stays,
// as AKS's skew policy allows, until it is upgraded by hand.
func poolsToMove(pools []slipwayv1.AgentPool, release string) []slipwayv1.AutoUpgradePool {
	var out []slipwayv1.AutoUpgradePool
	for i := range pools {
		p := &pools[i]
		if p.DeletionTimestamp != nil || poolStopped(p) {
			continue
		}
		if cur := nodepool.CurrentVersion(p); cur != release && slices.Contains(version.Upgrades(cur), release) {
			out = append(out, slipwayv1.AutoUpgradePool{Name: p.Spec.Name, From: cur, To: release})
		}
	}
	return out
}

func poolStopped(p *slipwayv1.AgentPool) bool {
	var props nodepool.Properties
	if err := json.Unmarshal(p.Spec.Properties.Raw, &props); err != nil {
		return false
	}
	return props.PowerState != nil && deref(props.PowerState.Code) == armcontainerservice.CodeStopped
}

// start records the run's operation, then hands the upgrade to the
// cluster: recorded first, so a crash in between leaves an operation that
// follow() hands over or cancels, never an upgrade nobody recorded.
func (r *VersionUpgradeReconciler) start(ctx context.Context, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool, run *slipwayv1.AutoUpgradeRun) error {
	location := ""
	if c, err := desired(mc); err == nil {
		location = deref(c.Location)
	}
	op, err := r.StartOperation(ctx, mc.Spec.ResourceID, slipwayv1.ActionUpgrading, location, false)
	if err != nil {
		return err
	}
	now := metav1.NewTime(r.now())
	run.Status, run.StartTime, run.OperationID, run.Message, run.NextWindow = runInProgress, &now, op.Name, "", nil
	if err := r.Client.Status().Update(ctx, mc); err != nil {
		endOperation(ctx, r.Client, op.Name, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "Canceled", Message: "The auto-upgrade run could not be recorded."})
		return err
	}
	log.FromContext(ctx).Info("Kubernetes auto-upgrade started", "cluster", mc.Spec.ResourceID, "to", run.To, "operation", op.Name)
	return r.handOver(ctx, mc, pools, run)
}

// handOver makes the run's operation the cluster's, as a PUT of the new
// version would: the desired cluster names the new kubernetesVersion and
// each moving pool's orchestratorVersion, and the cluster controller does
// the rest. An update that conflicts (a PUT came first) is retried by
// follow(), which cancels the run if the cluster has become busy.
func (r *VersionUpgradeReconciler) handOver(ctx context.Context, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool, run *slipwayv1.AutoUpgradeRun) error {
	resource, unmodeled, err := upgradedResource(mc, pools, run)
	if err != nil {
		return err
	}
	mc.Spec.Resource.Raw, mc.Spec.Unmodeled = resource, &runtime.RawExtension{Raw: unmodeled}
	mc.Spec.Operation = &slipwayv1.OperationRef{ID: run.OperationID, Action: slipwayv1.ActionUpgrading}
	if mc.Annotations == nil {
		mc.Annotations = map[string]string{}
	}
	mc.Annotations[arm.ETagAnnotation] = arm.NewOperationID() // the resource changed
	if err := r.Client.Update(ctx, mc); err != nil {
		return fmt.Errorf("handing the auto-upgrade of cluster %s to %s over: %w", mc.Spec.ResourceID, run.To, err)
	}
	return nil
}

// upgradedResource is the cluster's desired resource and unmodeled
// properties with the run's versions, its pools as they are now (a pool
// PUT since the cluster's last PUT changed them): in the cluster's order,
// then any added on their own, by name.
func upgradedResource(mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool, run *slipwayv1.AutoUpgradeRun) (resource, unmodeled []byte, err error) {
	d, err := desired(mc)
	if err != nil {
		return nil, nil, err
	}
	if d.Properties == nil {
		d.Properties = &armcontainerservice.ManagedClusterProperties{}
	}
	d.Properties.KubernetesVersion = &run.To
	rank := map[string]int{}
	for i, p := range d.Properties.AgentPoolProfiles {
		rank[deref(p.Name)] = i - len(d.Properties.AgentPoolProfiles)
	}
	var live []*slipwayv1.AgentPool
	for i := range pools {
		if pools[i].DeletionTimestamp == nil {
			live = append(live, &pools[i])
		}
	}
	sort.SliceStable(live, func(i, j int) bool {
		ri, rj := rank[live[i].Spec.Name], rank[live[j].Spec.Name]
		if ri != rj {
			return ri < rj
		}
		return live[i].Spec.Name < live[j].Spec.Name
	})
	d.Properties.AgentPoolProfiles = nil
	var extra []json.RawMessage
	for _, p := range live {
		var profile armcontainerservice.ManagedClusterAgentPoolProfile
		if err := json.Unmarshal(p.Spec.Properties.Raw, &profile); err != nil {
			return nil, nil, fmt.Errorf("pool %s: %w", p.Spec.ResourceID, err)
		}
		profile.Name = &p.Spec.Name
		for _, m := range run.Pools {
			if m.Name == p.Spec.Name {
				profile.OrchestratorVersion = &m.To
			}
		}
		d.Properties.AgentPoolProfiles = append(d.Properties.AgentPoolProfiles, &profile)
		var u struct {
			Properties json.RawMessage `json:"properties"`
		}
		if p.Spec.Unmodeled != nil && len(p.Spec.Unmodeled.Raw) > 0 {
			if err := json.Unmarshal(p.Spec.Unmodeled.Raw, &u); err != nil {
				return nil, nil, fmt.Errorf("pool %s: unmodeled properties: %w", p.Spec.ResourceID, err)
			}
		}
		extra = append(extra, u.Properties)
	}
	doc := map[string]any{}
	if mc.Spec.Unmodeled != nil && len(mc.Spec.Unmodeled.Raw) > 0 {
		if err := json.Unmarshal(mc.Spec.Unmodeled.Raw, &doc); err != nil {
			return nil, nil, fmt.Errorf("cluster %s: unmodeled properties: %w", mc.Spec.ResourceID, err)
		}
	}
	props, _ := doc["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		doc["properties"] = props
	}
	props["agentPoolProfiles"] = extra
	if resource, err = json.Marshal(d); err != nil {
		return nil, nil, err
	}
	if unmodeled, err = json.Marshal(doc); err != nil {
		return nil, nil, err
	}
	return resource, unmodeled, nil
}

// follow watches a started run's operation and records how it ended.
func (r *VersionUpgradeReconciler) follow(ctx context.Context, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool, run *slipwayv1.AutoUpgradeRun) error {
	status, err := operationStatus(ctx, r.Client, r.Fresh, run.OperationID)
	if err != nil {
		return err
	}
	if status == slipwayv1.OperationInProgress {
		if mc.Spec.Operation != nil && mc.Spec.Operation.ID == run.OperationID {
			return nil // the cluster is carrying it out
		}
		// Recorded but never handed over (Slipway stopped in between, or
		// a PUT came first): hand it over now, unless the cluster has
		// started something else meanwhile.
		if !busy(mc.Spec.Operation, mc.Status.CompletedOperation) {
			return r.handOver(ctx, mc, pools, run)
		}
		status = slipwayv1.OperationCanceled
		if err := endOperation(ctx, r.Client, run.OperationID, status, &slipwayv1.ErrorDetail{Code: "OperationNotAllowed", Message: "Another operation started on the cluster first."}); err != nil {
			return err
		}
	}
	if status == slipwayv1.OperationSucceeded {
		return r.endRun(ctx, mc, run, status, "The cluster runs Kubernetes "+run.To+".")
	}
	return r.endRun(ctx, mc, run, status, fmt.Sprintf("The upgrade to %s ended %s; see operation %s.", run.To, status, run.OperationID))
}

func (r *VersionUpgradeReconciler) endRun(ctx context.Context, mc *slipwayv1.ManagedCluster, run *slipwayv1.AutoUpgradeRun, status, msg string) error {
	// The pools moved with the cluster's operation: they ended as it did.
	for i := range run.Pools {
		if run.Pools[i].Status == "" {
			run.Pools[i].Status = status
		}
	}
	return endRun(ctx, r.Client, mc, run, status, msg, r.now(), "Kubernetes auto-upgrade run ended")
}

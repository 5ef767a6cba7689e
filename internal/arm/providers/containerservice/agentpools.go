package containerservice

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/arm/schema"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/version"
)

func (s *Provider) lookupAgentPool(ctx context.Context, mc *slipwayv1.ManagedCluster, name string) (*slipwayv1.AgentPool, error) {
	pool := &slipwayv1.AgentPool{}
	err := s.Client().Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(mc.Spec.ResourceID + "/agentPools/" + name)}, pool)
	if apierrors.IsNotFound(err) {
		return nil, arm.NewError(http.StatusNotFound, "NotFound", "", "The agent pool %s of cluster %s was not found.", name, mc.Spec.ResourceID)
	}
	if err != nil {
		return nil, err
	}
	return pool, nil
}

// lookupPool finds the pool a request names, through its cluster.
func (s *Provider) lookupPool(ctx context.Context, p arm.Params) (*slipwayv1.ManagedCluster, *slipwayv1.AgentPool, error) {
	mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
	if err != nil {
		return nil, nil, err
	}
	pool, err := s.lookupAgentPool(ctx, mc, p["pool"])
	if err != nil {
		return mc, nil, err
	}
	return mc, pool, nil
}

// renderPoolProperties builds the properties a client sees.
func (s *Provider) renderPoolProperties(ctx context.Context, mc *slipwayv1.ManagedCluster, pool *slipwayv1.AgentPool) (*nodepool.Properties, error) {
	var p nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &p); err != nil {
		return nil, err
	}
	p.ProvisioningState = to.Ptr(s.resourceState(ctx, pool.Spec.Operation, pool.Status.CompletedOperation, pool.Status.ProvisioningState))
	p.CurrentOrchestratorVersion = to.Ptr(nodepool.CurrentVersion(pool))
	image := pool.Status.NodeImageVersion
	if image == "" {
		// Not provisioned yet: it will get the latest.
		// A stored pool always renders: a catalog problem leaves the
		// field empty rather than failing every read and list that
		// includes the pool.
		if latest, err := s.images.Latest(ctx, string(deref(p.OSSKU))); err == nil {
			image = latest.Name()
		} else {
			slog.Warn("No node image for a pool", "pool", pool.Spec.ResourceID, "err", err)
		}
	}
	if image != "" {
		p.NodeImageVersion = to.Ptr(image)
	}
	if etag := pool.Annotations[arm.ETagAnnotation]; etag != "" {
		p.ETag = to.Ptr(etag)
	}
	if p.PowerState == nil {
		p.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(armcontainerservice.CodeRunning)}
	}
	// The surge an upgrade will use, as AKS shows it; Spot pools take none.
	if deref(p.ScaleSetPriority) != armcontainerservice.ScaleSetPrioritySpot {
		if p.UpgradeSettings == nil {
			p.UpgradeSettings = &armcontainerservice.AgentPoolUpgradeSettings{}
		}
		if deref(p.UpgradeSettings.MaxSurge) == "" {
			p.UpgradeSettings.MaxSurge = to.Ptr(nodepool.DefaultMaxSurge)
		}
	}
	if p.Tags == nil {
		p.Tags = map[string]*string{}
	}
	running := len(pool.Status.Nodes) - len(pool.Status.Deallocated)
	if mc.Spec.Stopped {
		running = 0 // a stopped cluster's VMs are deallocated: no compute charge
		p.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(armcontainerservice.CodeStopped)}
	}
	p.Tags[nodepool.CostTag] = to.Ptr(nodepool.FormatCost(nodepool.HourlyCost(&p, running)))
	return &p, nil
}

func (s *Provider) renderAgentPool(ctx context.Context, mc *slipwayv1.ManagedCluster, pool *slipwayv1.AgentPool) (*agentPoolView, error) {
	props, err := s.renderPoolProperties(ctx, mc, pool)
	if err != nil {
		return nil, err
	}
	out := &armcontainerservice.AgentPool{
		ID: to.Ptr(pool.Spec.ResourceID), Name: to.Ptr(pool.Spec.Name), Type: to.Ptr(armid.AgentPoolType),
		Properties: props,
	}
	unmodeled, err := decodeRaw(pool.Spec.Unmodeled)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
	}
	return &agentPoolView{AgentPool: out, unmodeled: unmodeled, extras: pool.Spec.UpgradeExtras, upgrade: currentUpgrade(pool)}, nil
}

// currentUpgrade is the pool's upgrade progress to show: the running
// upgrade's (just accepted, if its controller has not begun it yet), else
// the last one's.
func currentUpgrade(pool *slipwayv1.AgentPool) *slipwayv1.NodeImageUpgrade {
	op, u := pool.Spec.Operation, pool.Status.Upgrade
	if busyWith(op, pool.Status.CompletedOperation) == slipwayv1.ActionUpgradeNodeImage && (u == nil || u.OperationID != op.ID) {
		return &slipwayv1.NodeImageUpgrade{OperationID: op.ID, Target: pool.Spec.NodeImageTarget, Phase: "Starting"}
	}
	return u
}

// agentPoolView is an agent pool as clients see it: the SDK's model, its
// unmodeled properties, the upgrade settings of later api-versions it acts
// on and the progress of its node image upgrade (properties.upgradeStatus,
// Slipway's own).
type agentPoolView struct {
	*armcontainerservice.AgentPool
	unmodeled any
	extras    *slipwayv1.UpgradeExtras
	upgrade   *slipwayv1.NodeImageUpgrade
}

// sdkShaped: the upgrade status is Slipway's own, returned at every
// api-version; the rest is the SDK's model when nothing else is laid over.
func (v agentPoolView) sdkShaped() bool { return v.unmodeled == nil && v.extras == nil }

func (v agentPoolView) MarshalJSON() ([]byte, error) {
	if v.unmodeled == nil && v.extras == nil && v.upgrade == nil {
		return json.Marshal(v.AgentPool)
	}
	doc, err := schema.Generic(v.AgentPool)
	if err != nil {
		return nil, err
	}
	m := doc.(map[string]any)
	schema.Overlay(m, v.unmodeled)
	props, _ := m["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		m["properties"] = props
	}
	if e := v.extras; e != nil {
		settings, _ := props["upgradeSettings"].(map[string]any)
		if settings == nil {
			settings = map[string]any{}
		}
		if e.MaxUnavailable != "" {
			settings["maxUnavailable"] = e.MaxUnavailable
		}
		if e.UndrainableNodeBehavior != "" {
			settings["undrainableNodeBehavior"] = e.UndrainableNodeBehavior
		}
		props["upgradeSettings"] = settings
	}
	if v.upgrade != nil {
		props["upgradeStatus"] = upgradeStatus(v.upgrade)
	}
	return json.Marshal(m)
}

// upgradeStatus is how a node image upgrade's progress reads in the API.
func upgradeStatus(u *slipwayv1.NodeImageUpgrade) map[string]any {
	out := map[string]any{
		"phase":                  u.Phase,
		"targetNodeImageVersion": u.Target,
		"nodesUpgraded":          u.Upgraded,
		"nodesTotal":             u.Total,
		"currentNodes":           nonNil(u.Batch),
		"surgeNodes":             nonNil(u.Surge),
		"quarantinedNodes":       nonNil(u.Quarantined),
		"skippedNodes":           nonNil(u.Skipped),
		"operationId":            u.OperationID,
	}
	if !u.StartTime.IsZero() {
		out["startTime"] = u.StartTime.UTC().Format(time.RFC3339)
	}
	if u.EndTime != nil {
		out["endTime"] = u.EndTime.UTC().Format(time.RFC3339)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Provider) listAgentPools(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	pools, err := s.poolsOf(r.Context(), mc)
	if err != nil {
		return err
	}
	value := []*agentPoolView{}
	for i := range pools {
		ap, err := s.renderAgentPool(r.Context(), mc, &pools[i])
		if err != nil {
			return err
		}
		value = append(value, ap)
	}
	return respondList(w, r, typePool, value)
}

func (s *Provider) getAgentPool(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, pool, err := s.lookupPool(r.Context(), p)
	if err != nil {
		return err
	}
	out, err := s.renderAgentPool(r.Context(), mc, pool)
	if err != nil {
		return err
	}
	return respond(w, r, http.StatusOK, typePool, out)
}

// errPoolChanged says a pool changed between a PUT's read and its write.
var errPoolChanged = errors.New("the agent pool changed meanwhile")

// putAgentPool is a pool PUT. The pool's controller writes its spec too
// (a Spot eviction's bookkeeping): a write that conflicts with one of
// those is judged again on the fresh pool, and refused only if another
// operation holds the pool by then.
func (s *Provider) putAgentPool(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if err := nodepool.ValidateName(p["pool"]); err != nil {
		return fromInvalid(err)
	}
	body, err := arm.ReadBody(r)
	if err != nil {
		return err
	}
	for range 3 {
		if err = s.applyAgentPool(w, r, p, body); !errors.Is(err, errPoolChanged) {
			return err
		}
	}
	return arm.OperationNotAllowed("Operation is not allowed: Another agentpool operation is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
}

func (s *Provider) applyAgentPool(w http.ResponseWriter, r *http.Request, p arm.Params, body []byte) error {
	ctx := r.Context()
	mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	name := p["pool"]
	var in armcontainerservice.AgentPool
	if err := arm.DecodeJSON(body, &in); err != nil {
		return err // the body's own errors, as the model reads it
	}
	doc, err := readVersioned(r, body, typePool)
	if err != nil {
		return err
	}
	existing, err := s.lookupAgentPool(ctx, mc, name)
	exists := err == nil
	if err != nil && !arm.IsNotFound(err) {
		return err
	}
	if exists {
		stored, err := storedPoolProperties(existing)
		if err != nil {
			return err
		}
		// Absent properties keep their values, as AKS keeps them: its
		// own examples stop a pool with a body of powerState alone.
		props, _ := doc["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			doc["properties"] = props
		}
		for k, v := range stored {
			if _, ok := props[k]; !ok {
				props[k] = v
			}
		}
		carry(r, doc, map[string]any{"properties": stored}, typePool)
	}
	in = armcontainerservice.AgentPool{}
	if err := decodeModel(doc, &in); err != nil {
		return err
	}
	props := in.Properties
	if props == nil {
		props = &nodepool.Properties{}
	}
	merged, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	extras, err := parseUpgradeExtras(merged, props)
	if err != nil {
		return err
	}
	unmodeled, err := encodeRaw(unmodeledOf(doc, typePool))
	if err != nil {
		return err
	}
	etag := ""
	if exists {
		etag = existing.Annotations[arm.ETagAnnotation]
	}
	if err := arm.CheckETag(r, etag, exists); err != nil {
		return err
	}
	if err := s.clusterBusy(ctx, mc); err != nil {
		return err
	}
	if mc.DeletionTimestamp != nil {
		return arm.OperationNotAllowed("Operation is not allowed: the cluster is being deleted.")
	}
	if err := nodepool.CheckVMSize(name, clusterLocation(mc), deref(props.VMSize)); err != nil {
		return fromInvalid(err)
	}
	if err := nodepool.Normalize(props); err != nil {
		return fromInvalid(err)
	}
	if err := nodepool.ValidateNameFor(name, props); err != nil {
		return fromInvalid(err)
	}
	// The pool's Kubernetes version: unset keeps a pool's own and gives a
	// new pool its control plane's.
	fromVersion := ""
	if exists {
		fromVersion = nodepool.CurrentVersion(existing)
	}
	if props.OrchestratorVersion == nil || *props.OrchestratorVersion == "" {
		props.OrchestratorVersion = to.Ptr(cmp.Or(fromVersion, clusterVersion(mc)))
	}
	toVersion, _ := version.Resolve(*props.OrchestratorVersion)
	if err := checkPoolVersion(fromVersion, toVersion, clusterVersion(mc)); err != nil {
		return err
	}
	pools, err := s.poolsOf(ctx, mc)
	if err != nil {
		return err
	}
	if exists {
		var old nodepool.Properties
		if err := json.Unmarshal(existing.Spec.Properties.Raw, &old); err != nil {
			return err
		}
		if err := nodepool.ValidateUpdate(name, &old, props); err != nil {
			return fromInvalid(err)
		}
		if *old.Mode == armcontainerservice.AgentPoolModeSystem && *props.Mode != armcontainerservice.AgentPoolModeSystem && !otherSystemPool(pools, name) {
			return arm.BadRequest("MustDefineAtLeastOneSystemPool", "agentPoolProfile.mode", "Must define at least one system pool.")
		}
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return err
	}
	action := "Creating"
	if exists {
		action = "Updating"
		var old nodepool.Properties
		json.Unmarshal(existing.Spec.Properties.Raw, &old)
		if deref(old.Count) != deref(props.Count) {
			action = "Scaling"
		}
		if toVersion != fromVersion {
			action = slipwayv1.ActionUpgrading
		}
		if was, now := powerCode(&old), powerCode(props); was != now {
			action = map[armcontainerservice.Code]string{armcontainerservice.CodeStopped: "Stopping", armcontainerservice.CodeRunning: "Starting"}[now]
		} else if u := existing.Status.Upgrade; action == "Updating" && u != nil && u.Phase == "Failed" && existing.Spec.NodeImageTarget != "" {
			// As on AKS, a PUT resumes a node image upgrade that failed
			// part-way (a drain timed out), with the settings it carries.
			action = slipwayv1.ActionUpgradeNodeImage
		}
	} else if powerCode(props) == armcontainerservice.CodeStopped {
		return arm.InvalidParameter("agentPoolProfile.powerState", "A new agent pool cannot be created stopped.")
	}
	if powerCode(props) == armcontainerservice.CodeStopped && *props.Mode == armcontainerservice.AgentPoolModeSystem && !otherRunningSystemPool(pools, name) {
		return arm.InvalidParameter("agentPoolProfile.powerState", "The agent pool %s is the cluster's last running system pool and cannot be stopped.", name)
	}
	id := mc.Spec.ResourceID + "/agentPools/" + name
	op, err := s.StartOperation(ctx, id, action, clusterLocation(mc), false)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, mc, op, name, func(mc *slipwayv1.ManagedCluster) error { return s.clusterBusy(ctx, mc) }); err != nil {
		return err
	}
	ref := &slipwayv1.OperationRef{ID: op.Name, Action: action}
	var pool *slipwayv1.AgentPool
	if exists {
		pool = existing
		pool.Spec.Properties = runtime.RawExtension{Raw: raw}
		pool.Spec.Unmodeled = unmodeled
		pool.Spec.Operation = ref
		pool.Spec.UpgradeExtras = extras
		pool.Annotations[arm.ETagAnnotation] = arm.NewOperationID()
		err = s.Client().Update(ctx, pool)
	} else {
		pool = NewAgentPoolObject(mc, name, raw, ref)
		nodepool.SetIPSlot(pool, nodepool.FreeIPSlot(pools))
		pool.Spec.Unmodeled = unmodeled
		pool.Spec.UpgradeExtras = extras
		err = s.Client().Create(ctx, pool)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		s.CancelRefused(ctx, op, "Another operation started first.")
		if apierrors.IsConflict(err) {
			return errPoolChanged // judged again on the fresh pool
		}
		return arm.OperationNotAllowed("Operation is not allowed: Another agentpool operation is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
	}
	if err != nil {
		return err
	}
	out, err := s.renderAgentPool(r.Context(), mc, pool)
	if err != nil {
		return err
	}
	s.Accepted(w, r, op, Namespace, false)
	status := http.StatusOK
	if !exists {
		status = http.StatusCreated
	}
	return respond(w, r, status, typePool, out)
}

// storedPoolProperties is a stored pool's properties in full: the modeled
// ones, the unmodeled ones laid over them, and the upgrade settings of
// later api-versions kept by pools made before Slipway stored unmodeled
// properties.
func storedPoolProperties(pool *slipwayv1.AgentPool) (map[string]any, error) {
	props, err := storedDoc(pool.Spec.Properties.Raw, nil)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
	}
	u, err := decodeRaw(pool.Spec.Unmodeled)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
	}
	schema.Overlay(props, propertiesOf(u))
	if e := pool.Spec.UpgradeExtras; e != nil {
		settings := map[string]any{}
		if e.MaxUnavailable != "" {
			settings["maxUnavailable"] = e.MaxUnavailable
		}
		if e.UndrainableNodeBehavior != "" {
			settings["undrainableNodeBehavior"] = e.UndrainableNodeBehavior
		}
		schema.Overlay(props, map[string]any{"upgradeSettings": settings})
	}
	return props, nil
}

// NewAgentPoolObject builds the management object of a new pool.
func NewAgentPoolObject(mc *slipwayv1.ManagedCluster, name string, properties []byte, op *slipwayv1.OperationRef) *slipwayv1.AgentPool {
	id := mc.Spec.ResourceID + "/agentPools/" + name
	return &slipwayv1.AgentPool{
		ObjectMeta: metav1.ObjectMeta{
			Name: armid.ObjectName(id), Namespace: slipwayv1.Namespace,
			Labels: map[string]string{
				slipwayv1.LabelSubscription:  mc.Labels[slipwayv1.LabelSubscription],
				slipwayv1.LabelResourceGroup: mc.Labels[slipwayv1.LabelResourceGroup],
				slipwayv1.LabelCluster:       mc.Name,
			},
			Annotations: map[string]string{arm.ETagAnnotation: arm.NewOperationID()},
			Finalizers:  []string{slipwayv1.Finalizer},
		},
		Spec: slipwayv1.AgentPoolSpec{ResourceID: id, Cluster: mc.Name, Name: name,
			Properties: runtime.RawExtension{Raw: properties}, Operation: op},
	}
}

// powerCode is the power state a pool's properties ask for.
func powerCode(p *nodepool.Properties) armcontainerservice.Code {
	if p.PowerState != nil && p.PowerState.Code != nil && *p.PowerState.Code == armcontainerservice.CodeStopped {
		return armcontainerservice.CodeStopped
	}
	return armcontainerservice.CodeRunning
}

func otherRunningSystemPool(pools []slipwayv1.AgentPool, except string) bool {
	for _, p := range pools {
		if p.Spec.Name == except || p.DeletionTimestamp != nil {
			continue
		}
		var props nodepool.Properties
		if json.Unmarshal(p.Spec.Properties.Raw, &props) == nil && deref(props.Mode) == armcontainerservice.AgentPoolModeSystem && powerCode(&props) == armcontainerservice.CodeRunning {
			return true
		}
	}
	return false
}

func otherSystemPool(pools []slipwayv1.AgentPool, except string) bool {
	for _, p := range pools {
		if p.Spec.Name == except || p.DeletionTimestamp != nil {
			continue
		}
		var props nodepool.Properties
		if json.Unmarshal(p.Spec.Properties.Raw, &props) == nil && deref(props.Mode) == armcontainerservice.AgentPoolModeSystem {
			return true
		}
	}
	return false
}

func (s *Provider) deleteAgentPool(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	pool, err := s.lookupAgentPool(ctx, mc, p["pool"])
	if arm.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	var op *slipwayv1.Operation
	if pool.DeletionTimestamp != nil && pool.Spec.Operation != nil && pool.Spec.Operation.Action == "Deleting" {
		op, err = s.GetOperation(ctx, pool.Spec.Operation.ID)
	} else {
		if err := s.clusterBusy(ctx, mc); err != nil {
			return err
		}
		pools, err := s.poolsOf(ctx, mc)
		if err != nil {
			return err
		}
		var props nodepool.Properties
		json.Unmarshal(pool.Spec.Properties.Raw, &props)
		if deref(props.Mode) == armcontainerservice.AgentPoolModeSystem && !otherSystemPool(pools, pool.Spec.Name) {
			return arm.BadRequest("OperationNotAllowed", "agentPoolName", "The agent pool %s is the cluster's last system pool and cannot be deleted. A cluster must have at least one system pool.", pool.Spec.Name)
		}
		op, err = s.StartOperation(ctx, pool.Spec.ResourceID, slipwayv1.ActionDeleting, clusterLocation(mc), true)
		if err != nil {
			return err
		}
		if err := s.claim(ctx, mc, op, pool.Spec.Name, func(mc *slipwayv1.ManagedCluster) error { return s.clusterBusy(ctx, mc) }); err != nil {
			return err
		}
		err = s.RecordDelete(ctx, pool, &pool.Spec.Operation, op)
	}
	if apierrors.IsConflict(err) {
		return arm.OperationNotAllowed("Operation is not allowed: the agent pool changed while it was being deleted; retry.")
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	s.Accepted(w, r, op, Namespace, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Provider) abortAgentPool(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	_, pool, err := s.lookupPool(r.Context(), p)
	if err != nil {
		return err
	}
	return s.abort(w, r, pool.Spec.Operation, pool.Status.CompletedOperation)
}

func (s *Provider) getAgentPoolUpgradeProfile(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, pool, err := s.lookupPool(r.Context(), p)
	if err != nil {
		return err
	}
	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return err
	}
	current := nodepool.CurrentVersion(pool)
	upgrades := []*armcontainerservice.AgentPoolUpgradeProfilePropertiesUpgradesItem{}
	for _, r := range poolUpgrades(current, clusterVersion(mc)) {
		upgrades = append(upgrades, &armcontainerservice.AgentPoolUpgradeProfilePropertiesUpgradesItem{KubernetesVersion: to.Ptr(r), IsPreview: to.Ptr(false)})
	}
	latest, err := s.images.Latest(r.Context(), string(deref(props.OSSKU)))
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, armcontainerservice.AgentPoolUpgradeProfile{
		ID:   to.Ptr(pool.Spec.ResourceID + "/upgradeProfiles/default"),
		Name: to.Ptr("default"),
		Type: to.Ptr(armid.AgentPoolType + "/upgradeProfiles"),
		Properties: &armcontainerservice.AgentPoolUpgradeProfileProperties{
			KubernetesVersion:      to.Ptr(current),
			OSType:                 to.Ptr(armcontainerservice.OSTypeLinux),
			Upgrades:               upgrades,
			LatestNodeImageVersion: to.Ptr(latest.Name()),
		},
	})
	return nil
}

// machineView is a machine as clients see it: the SDK's model and the
// zone its VM is in (versions after the SDK's have it).
type machineView struct {
	*armcontainerservice.Machine
	Zones []string
}

func (v machineView) sdkShaped() bool { return len(v.Zones) == 0 }

func (v machineView) MarshalJSON() ([]byte, error) {
	if v.sdkShaped() {
		return json.Marshal(v.Machine)
	}
	doc, err := schema.Generic(v.Machine)
	if err != nil {
		return nil, err
	}
	doc.(map[string]any)["zones"] = v.Zones
	return json.Marshal(doc)
}

func (s *Provider) machines(ctx context.Context, p arm.Params) (*slipwayv1.AgentPool, []machineView, error) {
	mc, pool, err := s.lookupPool(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return nil, nil, fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
	}
	var cluster struct {
		Properties struct {
			NodeResourceGroup string `json:"nodeResourceGroup"`
		} `json:"properties"`
	}
	json.Unmarshal(mc.Spec.Resource.Raw, &cluster)
	out := []machineView{}
	for _, node := range pool.Status.Nodes {
		instance, _ := nodepool.InstanceOf(node)
		spec := nodepool.NodeSpec{Pool: pool.Spec.Name, Hash: armid.NodeHash(mc.Spec.ResourceID, pool.Spec.Name), Instance: instance,
			Subscription: s.SubscriptionID(), Cluster: cluster.Properties.NodeResourceGroup, Properties: &props}
		m := machineView{Machine: &armcontainerservice.Machine{
			ID:   to.Ptr(pool.Spec.ResourceID + "/machines/" + node),
			Name: to.Ptr(node),
			Type: to.Ptr(armid.AgentPoolType + "/machines"),
			Properties: &armcontainerservice.MachineProperties{
				ResourceID: to.Ptr(spec.VMID()),
				Network: &armcontainerservice.MachineNetworkProperties{IPAddresses: []*armcontainerservice.MachineIPAddress{
					{Family: to.Ptr(armcontainerservice.IPFamilyIPv4), IP: to.Ptr(nodepool.InternalIP(nodepool.IPSlotOf(pool), instance))},
				}},
			},
		}}
		if zones := props.AvailabilityZones; len(zones) > 0 {
			m.Zones = []string{deref(zones[instance%len(zones)])} // round-robin, as the node's zone label
		}
		out = append(out, m)
	}
	return pool, out, nil
}

func (s *Provider) listMachines(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	_, ms, err := s.machines(r.Context(), p)
	if err != nil {
		return err
	}
	return respondList(w, r, "Machine", ms)
}

func (s *Provider) getMachine(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	_, ms, err := s.machines(r.Context(), p)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if strings.EqualFold(*m.Name, p["machine"]) {
			return respond(w, r, http.StatusOK, "Machine", m)
		}
	}
	return arm.NewError(http.StatusNotFound, "NotFound", "", "Machine %s was not found in agent pool %s.", p["machine"], p["pool"])
}

// deleteMachines removes named machines from a pool, draining each first;
// the pool's count goes down by as many.
func (s *Provider) deleteMachines(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	mc, pool, err := s.lookupPool(ctx, p)
	if err != nil {
		return err
	}
	var body armcontainerservice.AgentPoolDeleteMachinesParameter
	if err := arm.DecodeBody(r, &body); err != nil {
		return err
	}
	if len(body.MachineNames) == 0 {
		return arm.InvalidParameter("machineNames", "The value of parameter machineNames is invalid: name at least one machine.")
	}
	var names []string
	for _, m := range body.MachineNames {
		name := deref(m)
		if !slices.Contains(pool.Status.Nodes, name) {
			return arm.InvalidParameter("machineNames", "The value of parameter machineNames is invalid: machine %s is not in agent pool %s.", name, pool.Spec.Name)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if err := s.clusterBusy(ctx, mc); err != nil {
		return err
	}
	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return err
	}
	count := deref(props.Count) - int32(len(names))
	if *props.Mode == armcontainerservice.AgentPoolModeSystem && count < 1 {
		return arm.InvalidParameter("machineNames", "agentPoolProfile.count would be %d. A system pool needs at least one node.", count)
	}
	props.Count = to.Ptr(max(count, 0))
	raw, err := json.Marshal(&props)
	if err != nil {
		return err
	}
	op, err := s.StartOperation(ctx, pool.Spec.ResourceID, slipwayv1.ActionScaling, clusterLocation(mc), false)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, mc, op, pool.Spec.Name, func(mc *slipwayv1.ManagedCluster) error { return s.clusterBusy(ctx, mc) }); err != nil {
		return err
	}
	pool.Spec.Properties.Raw = raw
	pool.Spec.DeleteMachines = names
	pool.Spec.Operation = &slipwayv1.OperationRef{ID: op.Name, Action: slipwayv1.ActionScaling}
	return s.AcceptUpdate(w, r, pool, op, Namespace, nil)
}

// simulateEviction evicts a Spot machine, as VMSS's simulateEviction does:
// 204 at once, the eviction itself follows (notice, drain, then delete or
// deallocate per the pool's eviction policy).
func (s *Provider) simulateEviction(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	_, pool, err := s.lookupPool(ctx, p)
	if err != nil {
		return err
	}
	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return err
	}
	if deref(props.ScaleSetPriority) != armcontainerservice.ScaleSetPrioritySpot {
		return arm.BadRequest("OperationNotAllowed", "agentPoolName", "Agent pool %s is not a Spot pool: only Spot VMs can be evicted.", pool.Spec.Name)
	}
	machine := p["machine"]
	if !slices.Contains(pool.Status.Nodes, machine) {
		return arm.NewError(http.StatusNotFound, "NotFound", "", "Machine %s was not found in agent pool %s.", machine, pool.Spec.Name)
	}
	if !slices.Contains(pool.Spec.Evictions, machine) && !slices.Contains(pool.Status.Deallocated, machine) {
		pool.Spec.Evictions = append(pool.Spec.Evictions, machine)
		if err := s.Client().Update(ctx, pool); err != nil {
			if apierrors.IsConflict(err) {
				return arm.OperationNotAllowed("Operation is not allowed: the agent pool changed meanwhile; retry.")
			}
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

package containerservice

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/maintenance"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// upgradeNodeImageVersion is POST .../agentPools/{p}/upgradeNodeImageVersion:
// roll the pool's nodes to the latest image of its OS SKU, Kubernetes
// version unchanged. Other pools of the cluster may be upgrading their node
// images meanwhile: az aks upgrade --node-image-only starts them all at once.
func (s *Provider) upgradeNodeImageVersion(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	mc, pool, err := s.lookupPool(ctx, p)
	if err != nil {
		return err
	}
	if err := s.clusterBusyExcept(ctx, mc, slipwayv1.ActionUpgradeNodeImage, pool.Spec.Name); err != nil {
		return err
	}
	if a := busyWith(pool.Spec.Operation, pool.Status.CompletedOperation); a != "" {
		return arm.OperationNotAllowed("Operation is not allowed because there's an in progress agentpool operation: Another agentpool operation (%s - %s) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details", pool.Spec.Name, a)
	}
	var props nodepool.Properties
	if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
		return err
	}
	if mc.Spec.Stopped || powerCode(&props) == armcontainerservice.CodeStopped {
		return arm.OperationNotAllowed("Operation is not allowed: the agent pool %s is stopped; start it before upgrading its node image.", pool.Spec.Name)
	}
	latest, err := s.images.Latest(ctx, string(deref(props.OSSKU)))
	if err != nil {
		return arm.InvalidParameter("agentPoolProfile.osSKU", "%v", err)
	}
	op, err := s.StartOperation(ctx, pool.Spec.ResourceID, slipwayv1.ActionUpgradeNodeImage, clusterLocation(mc), false)
	if err != nil {
		return err
	}
	if err := s.claim(ctx, mc, op, pool.Spec.Name, func(mc *slipwayv1.ManagedCluster) error {
		return s.clusterBusyExcept(ctx, mc, slipwayv1.ActionUpgradeNodeImage, pool.Spec.Name)
	}); err != nil {
		return err
	}
	// The pool's controller writes the pool too (the end of the last
	// operation, a quarantine's bookkeeping): a write that conflicts with
	// one of those is made again on the fresh pool, and refused only if
	// another operation holds the pool by then.
	for attempt := 1; ; attempt++ {
		pool.Spec.NodeImageTarget = latest.Name()
		pool.Spec.Operation = &slipwayv1.OperationRef{ID: op.Name, Action: slipwayv1.ActionUpgradeNodeImage}
		err := s.Client().Update(ctx, pool)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		if attempt == 3 {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return arm.OperationNotAllowed("Operation is not allowed: Another agentpool operation is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
		}
		if err := s.Client().Get(ctx, client.ObjectKeyFromObject(pool), pool); err != nil {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return err
		}
		if a := busyWith(pool.Spec.Operation, pool.Status.CompletedOperation); a != "" {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return arm.OperationNotAllowed("Operation is not allowed because there's an in progress agentpool operation: Another agentpool operation (%s - %s) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details", pool.Spec.Name, a)
		}
	}
	out, err := s.renderAgentPool(ctx, mc, pool)
	if err != nil {
		return err
	}
	s.Accepted(w, r, op, Namespace, true)
	return respond(w, r, http.StatusAccepted, typePool, out)
}

// parseUpgradeExtras reads the upgradeSettings fields newer than the SDK's
// models from a pool's request JSON (properties.upgradeSettings), and
// validates them as AKS does.
func parseUpgradeExtras(body []byte, props *nodepool.Properties) (*slipwayv1.UpgradeExtras, error) {
	var raw struct {
		Properties struct {
			UpgradeSettings struct {
				MaxUnavailable          *string `json:"maxUnavailable"`
				UndrainableNodeBehavior *string `json:"undrainableNodeBehavior"`
			} `json:"upgradeSettings"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil // the SDK's decoding already reported what is wrong
	}
	us := raw.Properties.UpgradeSettings
	e := &slipwayv1.UpgradeExtras{MaxUnavailable: deref(us.MaxUnavailable), UndrainableNodeBehavior: deref(us.UndrainableNodeBehavior)}
	if e.MaxUnavailable != "" && !nodepool.ValidCountOrPercent(e.MaxUnavailable) {
		return nil, arm.InvalidParameter("agentPoolProfile.upgradeSettings.maxUnavailable", "The value of parameter agentPoolProfile.upgradeSettings.maxUnavailable is invalid: %q is neither a whole number nor a percentage.", e.MaxUnavailable)
	}
	switch e.UndrainableNodeBehavior {
	case "", "Cordon", "Schedule":
	default:
		return nil, arm.InvalidParameter("agentPoolProfile.upgradeSettings.undrainableNodeBehavior", "The value of parameter agentPoolProfile.upgradeSettings.undrainableNodeBehavior is invalid: %q. Allowed values are Cordon and Schedule.", e.UndrainableNodeBehavior)
	}
	if props.UpgradeSettings != nil && props.UpgradeSettings.MaxSurge != nil && *props.UpgradeSettings.MaxSurge != "" && !nodepool.ValidCountOrPercent(*props.UpgradeSettings.MaxSurge) {
		return nil, arm.InvalidParameter("agentPoolProfile.upgradeSettings.maxSurge", "The value of parameter agentPoolProfile.upgradeSettings.maxSurge is invalid: %q is neither a whole number nor a percentage.", *props.UpgradeSettings.MaxSurge)
	}
	if *e == (slipwayv1.UpgradeExtras{}) {
		return nil, nil
	}
	return e, nil
}

// nodeImageVersion is an entry of the location's node image list, in the
// shape of AKS's nodeImageVersions API (2024-10-02-preview and later).
type nodeImageVersion struct {
	FullName      string `json:"fullName"`
	OS            string `json:"os"`
	SKU           string `json:"sku"`
	Version       string `json:"version"`
	OSImage       string `json:"osImage,omitempty"`
	KernelVersion string `json:"kernelVersion,omitempty"`
	Released      string `json:"released,omitempty"`
}

func nodeImageVersionOf(img nodeimage.Image) nodeImageVersion {
	os, sku, _ := strings.Cut(img.Family.Prefix, "-")
	return nodeImageVersion{FullName: img.Name(), OS: os, SKU: sku, Version: img.Version.String(),
		OSImage: img.Family.OSImage, KernelVersion: img.Kernel, Released: img.Released.Format("2006-01-02")}
}

// listNodeImageVersions is GET .../locations/{loc}/nodeImageVersions.
func (s *Provider) listNodeImageVersions(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	value := []nodeImageVersion{}
	for _, sku := range []string{"Ubuntu2204", "Ubuntu2404", "AzureLinux3", "CBLMariner", "Windows2022", "Windows2025"} {
		f, _ := nodeimage.FamilyOf(sku)
		images, err := s.images.List(r.Context(), f)
		if err != nil {
			return err
		}
		for _, img := range images {
			value = append(value, nodeImageVersionOf(img))
		}
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

// publishNodeImage is POST .../locations/{loc}/nodeImageVersions/publish,
// Slipway's own: an operator announces that a newer image of an OS SKU came
// out (body {"osSku": "...", "version": "YYYYMM.DD.rev"}, both optional:
// Ubuntu, the next weekly release).
func (s *Provider) publishNodeImage(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	var in struct {
		OSSKU   string `json:"osSku"`
		Version string `json:"version"`
	}
	if r.ContentLength != 0 {
		if err := arm.DecodeBody(r, &in); err != nil {
			return err
		}
	}
	img, err := s.images.Publish(r.Context(), in.OSSKU, in.Version)
	switch {
	case errors.Is(err, nodeimage.ErrNotNewer):
		return arm.NewError(http.StatusConflict, "Conflict", "version", "%v", err)
	case err != nil && strings.Contains(err.Error(), "node image"):
		return arm.InvalidParameter("osSku", "%v", err)
	case err != nil:
		return err
	}
	arm.WriteJSON(w, http.StatusOK, nodeImageVersionOf(img))
	return nil
}

const maintenanceConfigurationType = "Microsoft.ContainerService/managedClusters/maintenanceConfigurations"

func renderMaintenanceConfiguration(mc *slipwayv1.ManagedCluster, c slipwayv1.MaintenanceConfiguration) (*armcontainerservice.MaintenanceConfiguration, error) {
	var props armcontainerservice.MaintenanceConfigurationProperties
	if err := json.Unmarshal(c.Properties.Raw, &props); err != nil {
		return nil, err
	}
	return &armcontainerservice.MaintenanceConfiguration{
		ID: to.Ptr(mc.Spec.ResourceID + "/maintenanceConfigurations/" + c.Name), Name: to.Ptr(c.Name),
		Type: to.Ptr(maintenanceConfigurationType), Properties: &props, SystemData: renderSystemData(c.SystemData),
	}, nil
}

func (s *Provider) listMaintenanceConfigurations(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	value := []*armcontainerservice.MaintenanceConfiguration{}
	for _, c := range mc.Spec.MaintenanceConfigurations {
		out, err := renderMaintenanceConfiguration(mc, c)
		if err != nil {
			return err
		}
		value = append(value, out)
	}
	return respondList(w, r, typeMaintenance, value)
}

func findMaintenanceConfiguration(mc *slipwayv1.ManagedCluster, name string) int {
	for i, c := range mc.Spec.MaintenanceConfigurations {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

func (s *Provider) getMaintenanceConfiguration(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	i := findMaintenanceConfiguration(mc, p["config"])
	if i < 0 {
		return arm.NewError(http.StatusNotFound, "NotFound", "", "The maintenance configuration %s of cluster %s was not found.", p["config"], mc.Spec.ResourceID)
	}
	out, err := renderMaintenanceConfiguration(mc, mc.Spec.MaintenanceConfigurations[i])
	if err != nil {
		return err
	}
	return respond(w, r, http.StatusOK, typeMaintenance, out)
}

// putMaintenanceConfiguration stores a maintenance configuration; it takes
// effect at once, with no long-running operation, as on AKS.
func (s *Provider) putMaintenanceConfiguration(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	name, ok := maintenance.CanonicalName(p["config"])
	if !ok {
		return arm.InvalidParameter("name", "The maintenance configuration name %q is not supported: use default, %s or %s.", p["config"], maintenance.AutoUpgrade, maintenance.NodeOSUpgrade)
	}
	var in armcontainerservice.MaintenanceConfiguration
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if err := maintenance.Validate(name, in.Properties); err != nil {
		var inv *maintenance.Invalid
		if errors.As(err, &inv) {
			return arm.InvalidParameter(inv.Target, "%s", inv.Message)
		}
		return err
	}
	raw, err := json.Marshal(in.Properties)
	if err != nil {
		return err
	}
	entry := slipwayv1.MaintenanceConfiguration{Name: name, Properties: runtime.RawExtension{Raw: raw}}
	created := false
	var mc *slipwayv1.ManagedCluster
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if mc, err = s.lookupCluster(ctx, p["rg"], p["cluster"]); err != nil {
			return err
		}
		if i := findMaintenanceConfiguration(mc, name); i >= 0 {
			entry.SystemData = arm.Touched(ctx, mc.Spec.MaintenanceConfigurations[i].SystemData)
			mc.Spec.MaintenanceConfigurations[i] = entry
		} else {
			entry.SystemData = arm.Touched(ctx, nil)
			mc.Spec.MaintenanceConfigurations, created = append(mc.Spec.MaintenanceConfigurations, entry), true
		}
		return s.Client().Update(ctx, mc)
	})
	if err != nil {
		return err
	}
	out, err := renderMaintenanceConfiguration(mc, entry)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return respond(w, r, status, typeMaintenance, out)
}

func (s *Provider) deleteMaintenanceConfiguration(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	found := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
		if err != nil {
			return err
		}
		i := findMaintenanceConfiguration(mc, p["config"])
		if found = i >= 0; !found {
			return nil
		}
		mc.Spec.MaintenanceConfigurations = append(mc.Spec.MaintenanceConfigurations[:i], mc.Spec.MaintenanceConfigurations[i+1:]...)
		return s.Client().Update(ctx, mc)
	})
	if err != nil {
		return err
	}
	if !found {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// listNodeOSUpgradeRuns is GET .../managedClusters/{c}/nodeOSUpgradeRuns,
// Slipway's own: what the node OS auto-upgrade scheduler found and did, so
// an upgrade that did not happen says why.
func (s *Provider) listNodeOSUpgradeRuns(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	writeRuns(w, mc, "nodeOSUpgradeRuns", mc.Status.AutoUpgradeRuns)
	return nil
}

// listKubernetesUpgradeRuns is GET
// .../managedClusters/{c}/kubernetesUpgradeRuns, Slipway's own: the runs
// of the cluster auto-upgrade channel (autoUpgradeProfile.upgradeChannel).
func (s *Provider) listKubernetesUpgradeRuns(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	writeRuns(w, mc, "kubernetesUpgradeRuns", mc.Status.VersionUpgradeRuns)
	return nil
}

// writeRuns lists an auto-upgrade scheduler's runs, newest first.
func writeRuns(w http.ResponseWriter, mc *slipwayv1.ManagedCluster, kind string, runs []slipwayv1.AutoUpgradeRun) {
	value := []map[string]any{}
	for i := len(runs) - 1; i >= 0; i-- {
		run := runs[i]
		props := map[string]any{
			"channel": run.Channel, "status": run.Status, "message": run.Message,
			"detected": run.Detected.UTC().Format(time.RFC3339), "pools": run.Pools,
		}
		for key, t := range map[string]*metav1.Time{"nextWindow": run.NextWindow, "startTime": run.StartTime, "endTime": run.EndTime} {
			if t != nil {
				props[key] = t.UTC().Format(time.RFC3339)
			}
		}
		for key, v := range map[string]string{"from": run.From, "to": run.To, "operationId": run.OperationID} {
			if v != "" {
				props[key] = v
			}
		}
		value = append(value, map[string]any{
			"id": mc.Spec.ResourceID + "/" + kind + "/" + run.ID, "name": run.ID,
			"type": "Microsoft.ContainerService/managedClusters/" + kind, "properties": props,
		})
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
}

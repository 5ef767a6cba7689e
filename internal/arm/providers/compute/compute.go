// Package compute is the Microsoft.Compute provider: managed disks, on the
// official SDK's models (armcompute). The disk service (internal/disks)
// keeps them; this package validates requests, maps the service's errors
// to Azure's codes and renders the disks. The disks the Azure Disk CSI
// driver makes for a cluster's volumes show here, in the cluster's node
// resource group, attached to the VMs that use them.
package compute

import (
	"errors"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/disks"
)

// versions: DiskRP's api-versions up to 2025-01-02, the newest stable
// (armcompute v6.4.0 sends 2024-03-02; older tools send 2019-2023 ones).
// The disk shape Slipway serves is common to all of them.
var versions = arm.DatedVersions("2025-01-02")

const (
	routeGroup    = "subscriptions/{sub}/resourceGroups/{rg}"
	routeDisk     = routeGroup + "/providers/Microsoft.Compute/disks/{disk}"
	routeSnapshot = routeGroup + "/providers/Microsoft.Compute/snapshots/{snapshot}"
)

// Provider serves Microsoft.Compute.
type Provider struct {
	*arm.Server
	disks *disks.Service
}

// Register adds the provider's routes to the core.
func Register(core *arm.Server, d *disks.Service) *Provider {
	s := &Provider{Server: core, disks: d}
	h := core.Handle
	h("GET", "subscriptions/{sub}/providers/Microsoft.Compute/disks", versions, s.listDisks)
	h("GET", routeGroup+"/providers/Microsoft.Compute/disks", versions, s.listDisks)
	h("PUT", routeDisk, versions, s.putDisk)
	h("GET", routeDisk, versions, s.getDisk)
	h("PATCH", routeDisk, versions, s.patchDisk)
	h("DELETE", routeDisk, versions, s.deleteDisk)
	h("GET", "subscriptions/{sub}/providers/Microsoft.Compute/snapshots", versions, s.listSnapshots)
	h("GET", routeGroup+"/providers/Microsoft.Compute/snapshots", versions, s.listSnapshots)
	h("PUT", routeSnapshot, versions, s.putSnapshot)
	h("GET", routeSnapshot, versions, s.getSnapshot)
	h("DELETE", routeSnapshot, versions, s.deleteSnapshot)
	return s
}

// armError maps the disk service's errors to Azure's answers.
func armError(err error, group, name string) error {
	switch {
	case errors.Is(err, disks.ErrNotFound):
		return arm.ResourceNotFound(armid.DiskType, name, group)
	case errors.Is(err, disks.ErrInvalid):
		return arm.InvalidParameter("", "%s", arm.Detail(err))
	case errors.Is(err, disks.ErrExists):
		return arm.NewError(http.StatusConflict, "Conflict", "", "%s", arm.Detail(err))
	case errors.Is(err, disks.ErrAttached):
		return arm.NewError(http.StatusConflict, "OperationNotAllowed", "", "%s", arm.Detail(err))
	}
	return err
}

func (s *Provider) diskID(p arm.Params) string {
	return armid.Disk(s.SubscriptionID(), p["rg"], p["disk"])
}

func (s *Provider) getDisk(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	d, err := s.disks.Get(r.Context(), s.diskID(p))
	if err != nil {
		return armError(err, p["rg"], p["disk"])
	}
	return s.write(w, http.StatusOK, d)
}

func (s *Provider) write(w http.ResponseWriter, status int, d *slipwayv1.Disk) error {
	out, err := disks.Render(d)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, status, out)
	return nil
}

func (s *Provider) putDisk(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	var in armcompute.Disk
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if !armid.ValidName(p["disk"], 80) {
		return arm.InvalidParameter("name", "The disk name %q is invalid: use 1 to 80 letters, digits, '_', '-' and '.', starting with a letter or digit and ending with a letter, digit or '_'.", p["disk"])
	}
	if _, err := s.WritableResourceGroup(ctx, p["rg"]); err != nil {
		return err
	}
	if in.Location != nil {
		in.Location = ptr(arm.NormalizeLocation(*in.Location))
	}
	id := s.diskID(p)
	var prev *slipwayv1.SystemData
	if old, err := s.disks.Get(ctx, id); err == nil {
		prev = old.Spec.SystemData
		id = old.Spec.ResourceID
	}
	d, _, err := s.disks.Put(ctx, id, &in, arm.Touched(ctx, prev))
	if err != nil {
		return armError(err, p["rg"], p["disk"])
	}
	// DiskRP answers a PUT with 200 (done) or 202 (running), never 201:
	// the SDK's poller accepts only those. Slipway's disks are made at
	// once.
	return s.write(w, http.StatusOK, d)
}

func (s *Provider) patchDisk(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	var in armcompute.DiskUpdate
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if _, err := s.LookupResourceGroup(ctx, p["rg"]); err != nil {
		return err
	}
	old, err := s.disks.Get(ctx, s.diskID(p))
	if err != nil {
		return armError(err, p["rg"], p["disk"])
	}
	d, err := s.disks.Update(ctx, old.Spec.ResourceID, &in, arm.Touched(ctx, old.Spec.SystemData))
	if err != nil {
		return armError(err, p["rg"], p["disk"])
	}
	return s.write(w, http.StatusOK, d)
}

func (s *Provider) deleteDisk(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	if _, err := s.LookupResourceGroup(ctx, p["rg"]); err != nil {
		return err
	}
	id := s.diskID(p)
	if _, err := s.disks.Get(ctx, id); errors.Is(err, disks.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.disks.Delete(ctx, id); err != nil {
		return armError(err, p["rg"], p["disk"])
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Provider) listDisks(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	if p["rg"] != "" {
		if _, err := s.LookupResourceGroup(ctx, p["rg"]); err != nil {
			return err
		}
	}
	list, err := s.disks.List(ctx, s.SubscriptionID(), p["rg"])
	if err != nil {
		return err
	}
	out := []*armcompute.Disk{}
	for i := range list {
		d, err := disks.Render(&list[i])
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

const snapshotType = "Microsoft.Compute/snapshots"

func (s *Provider) snapshotID(p arm.Params) string {
	return "/subscriptions/" + s.SubscriptionID() + "/resourceGroups/" + p["rg"] + "/providers/" + snapshotType + "/" + p["snapshot"]
}

func (s *Provider) getSnapshot(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	sn, err := s.disks.GetSnapshot(r.Context(), s.snapshotID(p))
	if err != nil {
		return armError(err, p["rg"], p["snapshot"])
	}
	return writeSnapshot(w, sn)
}

func writeSnapshot(w http.ResponseWriter, sn *slipwayv1.Snapshot) error {
	out, err := disks.RenderSnapshot(sn)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) putSnapshot(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armcompute.Snapshot
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if _, err := s.WritableResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	if in.Location != nil {
		in.Location = ptr(arm.NormalizeLocation(*in.Location))
	}
	sn, err := s.disks.PutSnapshot(r.Context(), s.snapshotID(p), &in)
	if err != nil {
		if errors.Is(err, disks.ErrNotFound) {
			return arm.InvalidParameter("creationData.sourceResourceId", "%s", err.Error())
		}
		return armError(err, p["rg"], p["snapshot"])
	}
	return writeSnapshot(w, sn)
}

func (s *Provider) deleteSnapshot(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	id := s.snapshotID(p)
	if _, err := s.disks.GetSnapshot(r.Context(), id); errors.Is(err, disks.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.disks.DeleteSnapshot(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Provider) listSnapshots(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if p["rg"] != "" {
		if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
			return err
		}
	}
	list, err := s.disks.ListSnapshots(r.Context(), s.SubscriptionID(), p["rg"])
	if err != nil {
		return err
	}
	out := []*armcompute.Snapshot{}
	for i := range list {
		sn, err := disks.RenderSnapshot(&list[i])
		if err != nil {
			return err
		}
		out = append(out, sn)
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func ptr[T any](v T) *T { return &v }

// Package keyvault is the Microsoft.KeyVault provider: vaults, their
// access policies, soft-deleted vaults and their purge, and name checks,
// on the official SDK's models (armkeyvault). The key vault service
// (internal/keyvault) keeps the vaults; each vault's data plane is served
// on Slipway's HTTPS port at its vaultUri.
package keyvault

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/keyvault"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.KeyVault"

// versions: every dated api-version up to 2024-11-01, the one armkeyvault
// v1.5.0 sends; az 2.45 sends 2022-07-01. The shapes served are common to
// them.
var versions = arm.DatedVersions("2024-11-01")

const (
	routeGroup  = "subscriptions/{sub}/resourceGroups/{rg}"
	routeVaults = routeGroup + "/providers/" + Namespace + "/vaults"
	// RouteVault is a vault's route.
	RouteVault   = routeVaults + "/{vault}"
	routeDeleted = "subscriptions/{sub}/providers/" + Namespace + "/locations/{location}/deletedVaults/{vault}"
)

// Provider serves Microsoft.KeyVault.
type Provider struct {
	*arm.Server
	vaults *keyvault.Service
}

// Register adds the provider's routes, and its vaults and their secrets as
// resource types (scopes role assignments can name).
func Register(core *arm.Server, vaults *keyvault.Service) *Provider {
	s := &Provider{Server: core, vaults: vaults}
	h := core.Handle
	h("GET", "subscriptions/{sub}/providers/"+Namespace+"/vaults", versions, s.listVaults)
	h("GET", "subscriptions/{sub}/resources", arm.DatedVersions("2025-04-01"), s.listResources)
	h("POST", "subscriptions/{sub}/providers/"+Namespace+"/checkNameAvailability", versions, s.checkName)
	h("GET", "subscriptions/{sub}/providers/"+Namespace+"/deletedVaults", versions, s.listDeleted)
	h("GET", routeDeleted, versions, s.getDeleted)
	h("POST", routeDeleted+"/purge", versions, s.purge)
	h("GET", routeVaults, versions, s.listVaults)
	h("PUT", RouteVault, versions, s.putVault)
	h("GET", RouteVault, versions, s.getVault)
	h("PATCH", RouteVault, versions, s.patchVault)
	h("DELETE", RouteVault, versions, s.deleteVault)
	h("PUT", RouteVault+"/accessPolicies/{kind}", versions, s.updateAccessPolicy)
	core.ResourceType(arm.ResourceType{Pattern: RouteVault, Lookup: func(ctx context.Context, p arm.Params) (*arm.Resource, error) {
		v, err := vaults.Live(ctx, p["sub"], p["rg"], p["vault"])
		if err != nil {
			return nil, armError(err)
		}
		return &arm.Resource{ID: v.Spec.ResourceID}, nil
	}})
	// A role can be assigned on one secret of an RBAC vault.
	core.ResourceType(arm.ResourceType{Pattern: RouteVault + "/secrets/{secret}", Lookup: func(ctx context.Context, p arm.Params) (*arm.Resource, error) {
		v, err := vaults.Live(ctx, p["sub"], p["rg"], p["vault"])
		if err != nil {
			return nil, armError(err)
		}
		return &arm.Resource{ID: v.Spec.ResourceID + "/secrets/" + p["secret"]}, nil
	}})
	return s
}

// armError turns the service's refusals into ARM's errors.
func armError(err error) error {
	var e *keyvault.Error
	if errors.As(err, &e) {
		return arm.NewError(e.Status, e.Code, "", "%s", e.Message)
	}
	return err
}

func (s *Provider) render(v *slipwayv1.Vault) (*armkeyvault.Vault, error) {
	out, err := s.vaults.Render(v)
	if err != nil {
		return nil, err
	}
	if sd := v.Spec.SystemData; sd != nil {
		out.SystemData = &armkeyvault.SystemData{
			CreatedBy: to.Ptr(sd.CreatedBy), CreatedByType: to.Ptr(armkeyvault.IdentityType(sd.CreatedByType)), CreatedAt: to.Ptr(sd.CreatedAt.UTC()),
			LastModifiedBy: to.Ptr(sd.LastModifiedBy), LastModifiedByType: to.Ptr(armkeyvault.IdentityType(sd.LastModifiedByType)), LastModifiedAt: to.Ptr(sd.LastModifiedAt.UTC()),
		}
	}
	return out, nil
}

func (s *Provider) live(r *http.Request, p arm.Params) (*slipwayv1.Vault, error) {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return nil, err
	}
	v, err := s.vaults.Live(r.Context(), p["sub"], p["rg"], p["vault"])
	return v, armError(err)
}

func (s *Provider) getVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	v, err := s.live(r, p)
	if err != nil {
		return err
	}
	out, err := s.render(v)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) putVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armkeyvault.VaultCreateOrUpdateParameters
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if _, err := s.WritableResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	if in.Location == nil || *in.Location == "" {
		return arm.BadRequest("LocationRequired", "location", "The location property is required for this definition.")
	}
	location := arm.NormalizeLocation(*in.Location)
	if location != s.Location() {
		return arm.BadRequest("LocationNotAvailableForResourceType", "location", "The provided location '%s' is not available for resource type '%s/vaults'. List of available regions for the resource type is '%s'.", *in.Location, Namespace, s.Location())
	}
	v, created, err := s.vaults.Put(r.Context(), p["sub"], p["rg"], location, p["vault"], &in, arm.Touched(r.Context(), nil))
	if err != nil {
		return armError(err)
	}
	out, err := s.render(v)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, out)
	return nil
}

func (s *Provider) patchVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armkeyvault.VaultPatchParameters
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	v, err := s.live(r, p)
	if err != nil {
		return err
	}
	v, err = s.vaults.Patch(r.Context(), v, &in, arm.Touched(r.Context(), v.Spec.SystemData))
	if err != nil {
		return armError(err)
	}
	out, err := s.render(v)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) deleteVault(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	v, err := s.vaults.Live(r.Context(), p["sub"], p["rg"], p["vault"])
	var e *keyvault.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		w.WriteHeader(http.StatusNoContent) // already gone: ARM's delete is idempotent
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.vaults.Delete(r.Context(), v); err != nil {
		return armError(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Provider) updateAccessPolicy(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armkeyvault.VaultAccessPolicyParameters
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return arm.BadRequest("BadRequest", "properties", "The request must have properties.accessPolicies.")
	}
	v, err := s.live(r, p)
	if err != nil {
		return err
	}
	if v, err = s.vaults.UpdateAccessPolicies(r.Context(), v, p["kind"], in.Properties.AccessPolicies); err != nil {
		return armError(err)
	}
	m, err := keyvault.Model(v)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, &armkeyvault.VaultAccessPolicyParameters{
		ID: to.Ptr(v.Spec.ResourceID + "/accessPolicies/" + strings.ToLower(p["kind"])), Name: to.Ptr(strings.ToLower(p["kind"])),
		Type: to.Ptr(keyvault.VaultType + "/accessPolicies"), Location: m.Location,
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: m.Properties.AccessPolicies},
	})
	return nil
}

func (s *Provider) listVaults(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if p["rg"] != "" {
		if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
			return err
		}
	}
	vaults, err := s.vaults.List(r.Context(), p["sub"], p["rg"])
	if err != nil {
		return err
	}
	out := []*armkeyvault.Vault{}
	for i := range vaults {
		v, err := s.render(&vaults[i])
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// typeFilter is the one filter of the generic resource list Slipway
// serves: armkeyvault lists vaults with it.
var typeFilter = regexp.MustCompile(`(?i)^\s*resourceType\s+eq\s+'([^']+)'\s*$`)

func (s *Provider) listResources(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	m := typeFilter.FindStringSubmatch(r.URL.Query().Get("$filter"))
	if m == nil || !strings.EqualFold(m[1], keyvault.VaultType) {
		return arm.BadRequest("InvalidFilterInQueryString", "$filter", "Slipway lists resources by the filter resourceType eq 'Microsoft.KeyVault/vaults' only; list other types through their providers.")
	}
	vaults, err := s.vaults.List(r.Context(), p["sub"], "")
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for i := range vaults {
		v, err := s.render(&vaults[i])
		if err != nil {
			return err
		}
		out = append(out, map[string]any{"id": v.ID, "name": v.Name, "type": v.Type, "location": v.Location, "tags": v.Tags})
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Provider) checkName(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armkeyvault.VaultCheckNameAvailabilityParameters
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return arm.BadRequest("BadRequest", "name", "The parameter name is required.")
	}
	out, err := s.vaults.NameAvailable(r.Context(), *in.Name)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) renderDeleted(v *slipwayv1.Vault) (*armkeyvault.DeletedVault, error) {
	m, err := keyvault.Model(v)
	if err != nil {
		return nil, err
	}
	name := v.Spec.ResourceID[strings.LastIndex(v.Spec.ResourceID, "/")+1:]
	loc := to.Ptr(deref(m.Location))
	return &armkeyvault.DeletedVault{
		ID:   to.Ptr("/subscriptions/" + s.SubscriptionID() + "/providers/" + Namespace + "/locations/" + *loc + "/deletedVaults/" + name),
		Name: to.Ptr(name), Type: to.Ptr(Namespace + "/deletedVaults"),
		Properties: &armkeyvault.DeletedVaultProperties{
			VaultID: to.Ptr(v.Spec.ResourceID), Location: loc, Tags: m.Tags,
			DeletionDate: to.Ptr(v.Spec.Deleted.DeletionDate.UTC()), ScheduledPurgeDate: to.Ptr(v.Spec.Deleted.ScheduledPurgeDate.UTC()),
			PurgeProtectionEnabled: to.Ptr(deref(m.Properties.EnablePurgeProtection)),
		},
	}, nil
}

func (s *Provider) listDeleted(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	vaults, err := s.vaults.Deleted(r.Context(), p["sub"])
	if err != nil {
		return err
	}
	out := []*armkeyvault.DeletedVault{}
	for i := range vaults {
		d, err := s.renderDeleted(&vaults[i])
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// deleted reads the soft-deleted vault a request names.
func (s *Provider) deleted(r *http.Request, p arm.Params) (*slipwayv1.Vault, error) {
	v, err := s.vaults.Get(r.Context(), p["vault"])
	if err != nil {
		return nil, err
	}
	if v == nil || v.Spec.Deleted == nil || !strings.HasPrefix(strings.ToLower(v.Spec.ResourceID), strings.ToLower("/subscriptions/"+p["sub"]+"/")) {
		return nil, arm.NewError(http.StatusNotFound, "ResourceNotFound", "", "The Resource '%s/deletedVaults/%s' under location '%s' was not found.", Namespace, p["vault"], p["location"])
	}
	if m, err := keyvault.Model(v); err != nil {
		return nil, err
	} else if !strings.EqualFold(deref(m.Location), arm.NormalizeLocation(p["location"])) {
		return nil, arm.NewError(http.StatusNotFound, "ResourceNotFound", "", "The Resource '%s/deletedVaults/%s' under location '%s' was not found.", Namespace, p["vault"], p["location"])
	}
	return v, nil
}

func (s *Provider) getDeleted(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	v, err := s.deleted(r, p)
	if err != nil {
		return err
	}
	out, err := s.renderDeleted(v)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) purge(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	v, err := s.deleted(r, p)
	if err != nil {
		return err
	}
	if err := s.vaults.Purge(r.Context(), v); err != nil {
		return armError(err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// Package resources is the Microsoft.Resources provider: the subscription
// and its resource groups. Deleting a group deletes what it holds, through
// the resource group controller.
package resources

import (
	"context"
	"net/http"
	"regexp"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/armid"
)

func (s *Provider) subscription() map[string]any {
	return map[string]any{
		"id":                   "/subscriptions/" + s.SubscriptionID(),
		"subscriptionId":       s.SubscriptionID(),
		"tenantId":             s.TenantID(),
		"displayName":          "Slipway Subscription",
		"state":                "Enabled",
		"authorizationSource":  "RoleBased",
		"managedByTenants":     []any{},
		"subscriptionPolicies": map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "Slipway", "spendingLimit": "Off"},
	}
}

// Namespace is the provider's namespace.
const Namespace = "Microsoft.Resources"

// newestAPIVersion is the newest Microsoft.Resources api-version; every
// dated one before it is served, since the shapes Slipway serves have not
// changed.
const newestAPIVersion = "2025-04-01"

// Provider serves Microsoft.Resources.
type Provider struct {
	*arm.Server
}

const (
	routeSubscription = "subscriptions/{sub}"
	routeGroup        = routeSubscription + "/resourceGroups/{rg}"
)

// Register adds the provider's routes and resource types to the core.
func Register(core *arm.Server) *Provider {
	s := &Provider{Server: core}
	v := arm.DatedVersions(newestAPIVersion)
	core.Handle("GET", "subscriptions", v, s.listSubscriptions)
	core.Handle("GET", routeSubscription, v, s.getSubscription)
	core.Handle("GET", routeSubscription+"/resourceGroups", v, s.listResourceGroups)
	core.Handle("PUT", routeGroup, v, s.putResourceGroup)
	core.Handle("GET", routeGroup, v, s.getResourceGroup)
	core.Handle("HEAD", routeGroup, v, s.headResourceGroup)
	core.Handle("PATCH", routeGroup, v, s.patchResourceGroup)
	core.Handle("DELETE", routeGroup, v, s.deleteResourceGroup)
	core.OperationRoutes(Namespace, v)
	core.ResourceType(arm.ResourceType{Pattern: routeGroup, Lookup: func(ctx context.Context, p arm.Params) (*arm.Resource, error) {
		g, err := s.LookupResourceGroup(ctx, p["rg"])
		if err != nil {
			return nil, err
		}
		res := &arm.Resource{ID: armid.ResourceGroup(g.Spec.SubscriptionID, g.Spec.Name), Render: func(context.Context) (any, error) { return s.renderResourceGroup(g), nil }}
		if g.Spec.Operation != nil {
			res.Operation = g.Spec.Operation.ID
		}
		return res, nil
	}})
	return s
}

// listSubscriptions lists the subscription to callers holding a role in it,
// and nothing to others, as ARM does (az login then says "No subscriptions
// found").
func (s *Provider) listSubscriptions(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	value := []any{}
	if ok, err := s.HoldsRole(r); err != nil {
		return err
	} else if ok {
		value = append(value, s.subscription())
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func (s *Provider) getSubscription(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	arm.WriteJSON(w, http.StatusOK, s.subscription())
	return nil
}

// resourceGroupName is ARM's rule for group names.
var resourceGroupName = regexp.MustCompile(`^[-\w._()]{1,90}$`)

func (s *Provider) renderResourceGroup(g *slipwayv1.ResourceGroup) map[string]any {
	state := "Succeeded"
	if g.DeletionTimestamp != nil || g.Spec.Operation != nil {
		state = "Deleting"
	}
	out := map[string]any{
		"id":         armid.ResourceGroup(g.Spec.SubscriptionID, g.Spec.Name),
		"name":       g.Spec.Name,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   g.Spec.Location,
		"properties": map[string]any{"provisioningState": state},
	}
	if g.Spec.Tags != nil {
		out["tags"] = g.Spec.Tags
	}
	if g.Spec.ManagedBy != "" {
		out["managedBy"] = g.Spec.ManagedBy
	}
	return out
}

func (s *Provider) listResourceGroups(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	var list slipwayv1.ResourceGroupList
	if err := s.Client().List(r.Context(), &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return err
	}
	value := []any{}
	for i := range list.Items {
		value = append(value, s.renderResourceGroup(&list.Items[i]))
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func (s *Provider) getResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	g, err := s.LookupResourceGroup(r.Context(), p["rg"])
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, s.renderResourceGroup(g))
	return nil
}

func (s *Provider) headResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		if e, ok := err.(*arm.Error); ok && e.Status == http.StatusNotFound {
			w.WriteHeader(http.StatusNotFound)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type resourceGroupBody struct {
	Location  string            `json:"location"`
	Tags      map[string]string `json:"tags"`
	ManagedBy string            `json:"managedBy"`
}

func (s *Provider) putResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	name := p["rg"]
	if !resourceGroupName.MatchString(name) || strings.HasSuffix(name, ".") {
		return arm.BadRequest("InvalidResourceGroup", "", "The provided resource group name '%s' has these invalid characters: it must be 1-90 characters of letters, digits, '_', '-', '.', '(' and ')', and not end in '.'.", name)
	}
	var body resourceGroupBody
	if err := arm.DecodeBody(r, &body); err != nil {
		return err
	}
	if body.Location == "" {
		return arm.BadRequest("LocationRequired", "location", "The location property is required for this definition.")
	}
	if arm.NormalizeLocation(body.Location) != s.Location() {
		return arm.BadRequest("LocationNotAvailableForResourceGroup", "location", "The provided location '%s' is not available for resource group. List of available regions is '%s'.", body.Location, s.Location())
	}
	g, err := s.LookupResourceGroup(r.Context(), name)
	status := http.StatusOK
	switch {
	case err == nil:
		if g.DeletionTimestamp != nil {
			return arm.NewError(http.StatusConflict, "ResourceGroupBeingDeleted", "", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", name)
		}
		if arm.NormalizeLocation(body.Location) != g.Spec.Location {
			return arm.NewError(http.StatusConflict, "InvalidResourceGroupLocation", "", "Invalid resource group location '%s'. The Resource group already exists in location '%s'.", body.Location, g.Spec.Location)
		}
		g.Spec.Tags, g.Spec.ManagedBy = body.Tags, body.ManagedBy
		err = s.Client().Update(r.Context(), g)
	case arm.IsNotFound(err):
		status = http.StatusCreated
		g = armid.NewResourceGroup(s.SubscriptionID(), name, arm.NormalizeLocation(body.Location), body.ManagedBy)
		g.Spec.Tags = body.Tags
		err = s.Client().Create(r.Context(), g)
	}
	if err != nil {
		return err
	}
	arm.WriteJSON(w, status, s.renderResourceGroup(g))
	return nil
}

func (s *Provider) patchResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	g, err := s.LookupResourceGroup(r.Context(), p["rg"])
	if err != nil {
		return err
	}
	var body struct {
		Tags map[string]string `json:"tags"`
	}
	if err := arm.DecodeBody(r, &body); err != nil {
		return err
	}
	if body.Tags != nil {
		g.Spec.Tags = body.Tags
	}
	if err := s.Client().Update(r.Context(), g); err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, s.renderResourceGroup(g))
	return nil
}

// deleteResourceGroup deletes the group and all it holds, as an operation
// that the resource group controller carries out.
func (s *Provider) deleteResourceGroup(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	g, err := s.LookupResourceGroup(r.Context(), p["rg"])
	if arm.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	var op *slipwayv1.Operation
	if g.Spec.Operation != nil {
		op, err = s.GetOperation(r.Context(), g.Spec.Operation.ID)
		if err == nil && g.DeletionTimestamp == nil {
			// The delete was recorded but never issued (a crash or a
			// failed call in between): issue it now.
			err = client.IgnoreNotFound(s.Client().Delete(r.Context(), g))
		}
	} else {
		op, err = s.DeleteWithOperation(r.Context(), g, &g.Spec.Operation, armid.ResourceGroup(s.SubscriptionID(), g.Spec.Name), g.Spec.Location)
	}
	if apierrors.IsConflict(err) {
		return arm.OperationNotAllowed("Operation is not allowed: the resource group changed while it was being deleted; retry.")
	}
	if err != nil {
		return err
	}
	_, loc := s.OperationURLs(r, op, Namespace)
	w.Header().Set("Location", loc)
	w.Header().Set("Retry-After", s.RetryAfter())
	w.WriteHeader(http.StatusAccepted)
	return nil
}

package authorization

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/authz"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.Authorization"

// APIVersions are the Microsoft.Authorization api-versions served.
var APIVersions = arm.DatedVersions("2022-04-01")

// Provider serves Microsoft.Authorization: role definitions and role
// assignments.
type Provider struct {
	*arm.Server
}

// Register adds role definitions and assignments at the subscription and at
// every resource type registered so far: call it after the providers whose
// resources take role assignments.
func Register(core *arm.Server) *Provider {
	s := &Provider{Server: core}
	scopes := append([]string{"subscriptions/{sub}"}, core.ResourcePatterns()...)
	for _, scope := range scopes {
		auth := scope + "/providers/Microsoft.Authorization"
		h := func(method, path string, fn arm.ScopedHandler) {
			core.Handle(method, auth+path, APIVersions, core.AtScope(scope, fn))
		}
		h("GET", "/roleAssignments", s.listRoleAssignments)
		h("GET", "/roleAssignments/{assignment}", s.getRoleAssignment)
		h("PUT", "/roleAssignments/{assignment}", s.putRoleAssignment)
		h("DELETE", "/roleAssignments/{assignment}", s.deleteRoleAssignment)
		h("GET", "/roleDefinitions", s.listRoleDefinitions)
		h("GET", "/roleDefinitions/{role}", s.getRoleDefinition)
	}
	return s
}

func (s *Provider) roleDefinitionID(_ string, r authz.Role) string {
	return "/subscriptions/" + s.SubscriptionID() + "/providers/Microsoft.Authorization/roleDefinitions/" + r.ID
}

func (s *Provider) renderRoleDefinition(r authz.Role) map[string]any {
	return map[string]any{
		"id": s.roleDefinitionID("", r), "name": r.ID, "type": "Microsoft.Authorization/roleDefinitions",
		"properties": map[string]any{
			"roleName": r.Name, "description": r.Description, "type": "BuiltInRole", "assignableScopes": []string{"/"},
			"permissions": []map[string]any{{"actions": append([]string{}, r.Actions...), "notActions": append([]string{}, r.NotActions...), "dataActions": append([]string{}, r.DataActions...), "notDataActions": []string{}}},
		},
	}
}

var roleNameFilter = regexp.MustCompile(`(?i)roleName\s+eq\s+'([^']*)'`)

func (s *Provider) listRoleDefinitions(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	want := ""
	if m := roleNameFilter.FindStringSubmatch(r.URL.Query().Get("$filter")); m != nil {
		want = m[1]
	}
	value := []map[string]any{}
	for _, role := range authz.BuiltIn {
		if want == "" || strings.EqualFold(role.Name, want) {
			value = append(value, s.renderRoleDefinition(role))
		}
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func (s *Provider) getRoleDefinition(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	role, ok := authz.RoleByID(p["role"])
	if !ok {
		return arm.NewError(http.StatusNotFound, "RoleDefinitionDoesNotExist", "", "The specified role definition with ID '%s' does not exist.", p["role"])
	}
	arm.WriteJSON(w, http.StatusOK, s.renderRoleDefinition(role))
	return nil
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func renderRoleAssignment(ra *slipwayv1.RoleAssignment) map[string]any {
	created := ra.CreationTimestamp.UTC().Format(time.RFC3339)
	return map[string]any{
		"id":   ra.Spec.Scope + "/providers/Microsoft.Authorization/roleAssignments/" + ra.Name,
		"name": ra.Name, "type": "Microsoft.Authorization/roleAssignments",
		"properties": map[string]any{
			"roleDefinitionId": ra.Spec.RoleDefinitionID, "principalId": ra.Spec.PrincipalID, "principalType": ra.Spec.PrincipalType,
			"scope": ra.Spec.Scope, "description": ra.Spec.Description, "createdOn": created, "updatedOn": created,
		},
	}
}

func (s *Provider) lookupRoleAssignment(ctx context.Context, scope, name string) (*slipwayv1.RoleAssignment, error) {
	ra := &slipwayv1.RoleAssignment{}
	err := s.Client().Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(name)}, ra)
	if apierrors.IsNotFound(err) || err == nil && !strings.EqualFold(ra.Spec.Scope, scope) {
		return nil, arm.NewError(http.StatusNotFound, "RoleAssignmentNotFound", "", "The role assignment '%s' is not found.", name)
	}
	return ra, err
}

func (s *Provider) getRoleAssignment(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	ra, err := s.lookupRoleAssignment(r.Context(), scope, p["assignment"])
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, renderRoleAssignment(ra))
	return nil
}

var principalFilter = regexp.MustCompile(`(?i)(?:principalId|assignedTo\()\s*(?:eq\s*)?'([^']*)'`)

// listRoleAssignments lists the assignments that apply at the scope (at it
// and above) and, unless $filter=atScope(), those below it; a principalId
// filter narrows them to one principal.
func (s *Provider) listRoleAssignments(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	filter := r.URL.Query().Get("$filter")
	atScope := strings.Contains(strings.ToLower(filter), "atscope()")
	principal := ""
	if m := principalFilter.FindStringSubmatch(filter); m != nil {
		principal = strings.ToLower(m[1])
	}
	var list slipwayv1.RoleAssignmentList
	opts := []client.ListOption{client.InNamespace(slipwayv1.Namespace)}
	if principal != "" {
		opts = append(opts, client.MatchingLabels{slipwayv1.LabelPrincipal: principal})
	}
	if err := s.Client().List(r.Context(), &list, opts...); err != nil {
		return err
	}
	value := []map[string]any{}
	for i := range list.Items {
		ra := &list.Items[i]
		if authz.Covers(ra.Spec.Scope, scope) || !atScope && authz.Covers(scope, ra.Spec.Scope) {
			value = append(value, renderRoleAssignment(ra))
		}
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

// putRoleAssignment grants a role: ARM's PUT of
// {properties:{roleDefinitionId, principalId, principalType}}. Assignments
// cannot be changed, only deleted and made again.
func (s *Provider) putRoleAssignment(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	ctx := r.Context()
	name := strings.ToLower(p["assignment"])
	if !guidPattern.MatchString(name) {
		return arm.BadRequest("InvalidRoleAssignmentId", "", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", p["assignment"])
	}
	var in struct {
		Properties struct {
			RoleDefinitionID string `json:"roleDefinitionId"`
			PrincipalID      string `json:"principalId"`
			PrincipalType    string `json:"principalType"`
			Description      string `json:"description"`
		} `json:"properties"`
	}
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	props := in.Properties
	role, ok := authz.RoleByID(props.RoleDefinitionID)
	if !ok {
		return arm.BadRequest("RoleDefinitionDoesNotExist", "", "The specified role definition with ID '%s' does not exist.", props.RoleDefinitionID)
	}
	if !guidPattern.MatchString(props.PrincipalID) {
		return arm.BadRequest("InvalidPrincipalId", "", "A valid principal ID must be provided for role assignment.")
	}
	if props.PrincipalType == "" {
		props.PrincipalType = "ServicePrincipal"
	}
	ra := &slipwayv1.RoleAssignment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: slipwayv1.Namespace,
			Labels: map[string]string{slipwayv1.LabelPrincipal: strings.ToLower(props.PrincipalID)}},
		Spec: slipwayv1.RoleAssignmentSpec{Scope: scope, RoleDefinitionID: s.roleDefinitionID(scope, role),
			PrincipalID: strings.ToLower(props.PrincipalID), PrincipalType: props.PrincipalType, Description: props.Description},
	}
	// The same role for the same principal at the same scope exists once.
	var existing slipwayv1.RoleAssignmentList
	if err := s.Client().List(ctx, &existing, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelPrincipal: ra.Spec.PrincipalID}); err != nil {
		return err
	}
	for _, e := range existing.Items {
		same := strings.EqualFold(e.Spec.Scope, scope) && strings.EqualFold(e.Spec.RoleDefinitionID, ra.Spec.RoleDefinitionID)
		switch {
		case e.Name == name && same:
			arm.WriteJSON(w, http.StatusCreated, renderRoleAssignment(&e))
			return nil
		case e.Name == name:
			return arm.NewError(http.StatusConflict, "RoleAssignmentUpdateNotPermitted", "", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		case same:
			return arm.NewError(http.StatusConflict, "RoleAssignmentExists", "", "The role assignment already exists. The ID of the existing role assignment is %s.", e.Name)
		}
	}
	if err := s.Client().Create(ctx, ra); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return arm.NewError(http.StatusConflict, "RoleAssignmentUpdateNotPermitted", "", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		}
		return err
	}
	arm.WriteJSON(w, http.StatusCreated, renderRoleAssignment(ra))
	return nil
}

func (s *Provider) deleteRoleAssignment(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	ra, err := s.lookupRoleAssignment(r.Context(), scope, p["assignment"])
	if arm.IsNotFound(err) || apierrors.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.Client().Delete(r.Context(), ra); client.IgnoreNotFound(err) != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, renderRoleAssignment(ra))
	return nil
}

// EnsureRoleAssignment grants role to a principal at scope unless it has
// it (the bootstrap principal's Owner role at the subscription).
func EnsureRoleAssignment(ctx context.Context, c client.Client, name, scope, principalID string, role authz.Role, subscriptionID string) error {
	ra := &slipwayv1.RoleAssignment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: slipwayv1.Namespace,
			Labels: map[string]string{slipwayv1.LabelPrincipal: strings.ToLower(principalID)}},
		Spec: slipwayv1.RoleAssignmentSpec{Scope: scope, PrincipalID: strings.ToLower(principalID), PrincipalType: "ServicePrincipal",
			RoleDefinitionID: "/subscriptions/" + subscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + role.ID,
			Description:      "The bootstrap principal owns the subscription."},
	}
	if err := c.Create(ctx, ra); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

package arm

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
	"github.com/slipway-dev/slipway/internal/authz"
)

// Route patterns of the three scopes roles apply at.
var roleScopes = []string{"subscriptions/{sub}", routeGroup, routeCluster}

const providerAuthorization = "Microsoft.Authorization"

// scopeOf is the scope a Microsoft.Authorization request addresses, once
// checked to exist.
func (s *Server) scopeOf(ctx context.Context, p params) (string, error) {
	scope := "/subscriptions/" + s.cfg.SubscriptionID
	if rg, ok := p["rg"]; ok {
		g, err := s.lookupResourceGroup(ctx, rg)
		if err != nil {
			return "", err
		}
		scope += "/resourceGroups/" + g.Spec.Name
	}
	if name, ok := p["cluster"]; ok {
		mc, err := s.lookupCluster(ctx, p["rg"], name)
		if err != nil {
			return "", err
		}
		scope = mc.Spec.ResourceID
	}
	return scope, nil
}

func (s *Server) roleDefinitionID(_ string, r authz.Role) string {
	return "/subscriptions/" + s.cfg.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + r.ID
}

func (s *Server) renderRoleDefinition(r authz.Role) map[string]any {
	return map[string]any{
		"id": s.roleDefinitionID("", r), "name": r.ID, "type": "Microsoft.Authorization/roleDefinitions",
		"properties": map[string]any{
			"roleName": r.Name, "description": r.Description, "type": "BuiltInRole", "assignableScopes": []string{"/"},
			"permissions": []map[string]any{{"actions": r.Actions, "notActions": nonNil(r.NotActions), "dataActions": []string{}, "notDataActions": []string{}}},
		},
	}
}

var roleNameFilter = regexp.MustCompile(`(?i)roleName\s+eq\s+'([^']*)'`)

func (s *Server) listRoleDefinitions(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.scopeOf(r.Context(), p); err != nil {
		return err
	}
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
	writeJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func (s *Server) getRoleDefinition(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.scopeOf(r.Context(), p); err != nil {
		return err
	}
	role, ok := authz.RoleByID(p["role"])
	if !ok {
		return newError(http.StatusNotFound, "RoleDefinitionDoesNotExist", "", "The specified role definition with ID '%s' does not exist.", p["role"])
	}
	writeJSON(w, http.StatusOK, s.renderRoleDefinition(role))
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

func (s *Server) lookupRoleAssignment(ctx context.Context, scope, name string) (*slipwayv1.RoleAssignment, error) {
	ra := &slipwayv1.RoleAssignment{}
	err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(name)}, ra)
	if apierrors.IsNotFound(err) || err == nil && !strings.EqualFold(ra.Spec.Scope, scope) {
		return nil, newError(http.StatusNotFound, "RoleAssignmentNotFound", "", "The role assignment '%s' is not found.", name)
	}
	return ra, err
}

func (s *Server) getRoleAssignment(w http.ResponseWriter, r *http.Request, p params) error {
	scope, err := s.scopeOf(r.Context(), p)
	if err != nil {
		return err
	}
	ra, err := s.lookupRoleAssignment(r.Context(), scope, p["assignment"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderRoleAssignment(ra))
	return nil
}

var principalFilter = regexp.MustCompile(`(?i)(?:principalId|assignedTo\()\s*(?:eq\s*)?'([^']*)'`)

// listRoleAssignments lists the assignments that apply at the scope (at it
// and above) and, unless $filter=atScope(), those below it; a principalId
// filter narrows them to one principal.
func (s *Server) listRoleAssignments(w http.ResponseWriter, r *http.Request, p params) error {
	scope, err := s.scopeOf(r.Context(), p)
	if err != nil {
		return err
	}
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
	if err := s.cfg.Client.List(r.Context(), &list, opts...); err != nil {
		return err
	}
	value := []map[string]any{}
	for i := range list.Items {
		ra := &list.Items[i]
		if authz.Covers(ra.Spec.Scope, scope) || !atScope && authz.Covers(scope, ra.Spec.Scope) {
			value = append(value, renderRoleAssignment(ra))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

// putRoleAssignment grants a role: ARM's PUT of
// {properties:{roleDefinitionId, principalId, principalType}}. Assignments
// cannot be changed, only deleted and made again.
func (s *Server) putRoleAssignment(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	scope, err := s.scopeOf(ctx, p)
	if err != nil {
		return err
	}
	name := strings.ToLower(p["assignment"])
	if !guidPattern.MatchString(name) {
		return badRequest("InvalidRoleAssignmentId", "", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", p["assignment"])
	}
	var in struct {
		Properties struct {
			RoleDefinitionID string `json:"roleDefinitionId"`
			PrincipalID      string `json:"principalId"`
			PrincipalType    string `json:"principalType"`
			Description      string `json:"description"`
		} `json:"properties"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	props := in.Properties
	role, ok := authz.RoleByID(props.RoleDefinitionID)
	if !ok {
		return badRequest("RoleDefinitionDoesNotExist", "", "The specified role definition with ID '%s' does not exist.", props.RoleDefinitionID)
	}
	if !guidPattern.MatchString(props.PrincipalID) {
		return badRequest("InvalidPrincipalId", "", "A valid principal ID must be provided for role assignment.")
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
	if err := s.cfg.Client.List(ctx, &existing, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelPrincipal: ra.Spec.PrincipalID}); err != nil {
		return err
	}
	for _, e := range existing.Items {
		same := strings.EqualFold(e.Spec.Scope, scope) && strings.EqualFold(e.Spec.RoleDefinitionID, ra.Spec.RoleDefinitionID)
		switch {
		case e.Name == name && same:
			writeJSON(w, http.StatusCreated, renderRoleAssignment(&e))
			return nil
		case e.Name == name:
			return newError(http.StatusConflict, "RoleAssignmentUpdateNotPermitted", "", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		case same:
			return newError(http.StatusConflict, "RoleAssignmentExists", "", "The role assignment already exists. The ID of the existing role assignment is %s.", e.Name)
		}
	}
	if err := s.cfg.Client.Create(ctx, ra); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return newError(http.StatusConflict, "RoleAssignmentUpdateNotPermitted", "", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		}
		return err
	}
	writeJSON(w, http.StatusCreated, renderRoleAssignment(ra))
	return nil
}

func (s *Server) deleteRoleAssignment(w http.ResponseWriter, r *http.Request, p params) error {
	scope, err := s.scopeOf(r.Context(), p)
	if err != nil {
		return err
	}
	ra, err := s.lookupRoleAssignment(r.Context(), scope, p["assignment"])
	if isNotFound(err) || apierrors.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.cfg.Client.Delete(r.Context(), ra); client.IgnoreNotFound(err) != nil {
		return err
	}
	writeJSON(w, http.StatusOK, renderRoleAssignment(ra))
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

// servicePrincipal is how a service principal reads in the API; the
// password only in the answer that made it.
type servicePrincipal struct {
	AppID       string `json:"appId"`
	ObjectID    string `json:"objectId"`
	DisplayName string `json:"displayName"`
	Tenant      string `json:"tenant"`
	Password    string `json:"password,omitempty"`
	// SecretHints are the first characters of each secret, as Entra shows.
	SecretHints []string `json:"secretHints"`
}

func (s *Server) renderPrincipal(sp *slipwayv1.ServicePrincipal, password string) servicePrincipal {
	out := servicePrincipal{AppID: sp.Spec.AppID, ObjectID: sp.Spec.ObjectID, DisplayName: sp.Spec.DisplayName, Tenant: s.cfg.TenantID, Password: password, SecretHints: []string{}}
	for _, h := range sp.Spec.Secrets {
		out.SecretHints = append(out.SecretHints, h.Hint+"***")
	}
	return out
}

// createServicePrincipal is POST .../providers/Slipway.Identity/servicePrincipals
// with {"displayName"}: a new principal and its first secret, shown once.
func (s *Server) createServicePrincipal(w http.ResponseWriter, r *http.Request, _ params) error {
	var in struct {
		DisplayName string `json:"displayName"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.DisplayName) == "" {
		return invalidParameter("displayName", "A service principal needs a displayName.")
	}
	sp, secret, err := s.cfg.PrincipalStore.Create(r.Context(), in.DisplayName)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.renderPrincipal(sp, secret))
	return nil
}

func (s *Server) listServicePrincipals(w http.ResponseWriter, r *http.Request, _ params) error {
	sps, err := s.cfg.PrincipalStore.List(r.Context())
	if err != nil {
		return err
	}
	value := []servicePrincipal{}
	for i := range sps {
		value = append(value, s.renderPrincipal(&sps[i], ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

// addPassword is POST .../servicePrincipals/{app}/addPassword: one more
// secret, shown once.
func (s *Server) addPassword(w http.ResponseWriter, r *http.Request, p params) error {
	sp, secret, err := s.cfg.PrincipalStore.AddSecret(r.Context(), p["app"])
	if apierrors.IsNotFound(err) {
		return newError(http.StatusNotFound, "NotFound", "", "Service principal %s was not found.", p["app"])
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.renderPrincipal(sp, secret))
	return nil
}

// rotateSigningKey is POST .../providers/Slipway.Identity/rotateSigningKey:
// tokens are signed with a new key from now on; those already issued stay
// valid until they expire.
func (s *Server) rotateSigningKey(w http.ResponseWriter, _ *http.Request, _ params) error {
	kid, err := s.cfg.Signer.Rotate()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"keyId": kid})
	return nil
}

// Package authz is Azure RBAC as ARM does it: built-in role definitions
// (actions and notActions with wildcards), role assignments of a role to a
// principal at a scope, inherited by every scope below it, and the check
// every ARM call goes through.
package authz

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Role is a role definition.
type Role struct {
	// ID is the role's GUID, the same in every Azure tenant.
	ID          string
	Name        string
	Description string
	Actions     []string
	NotActions  []string
	// DataActions are what the role may do in a data plane (a key
	// vault's secrets); control-plane actions never grant them.
	DataActions []string
}

// The built-in roles Slipway knows, with Azure's GUIDs and permissions.
var (
	Owner = Role{ID: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", Name: "Owner",
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Actions:     []string{"*"}}
	Contributor = Role{ID: "b24988ac-6180-42a0-ab88-20f7382dd24c", Name: "Contributor",
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
		NotActions: []string{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action",
			"Microsoft.Blueprint/blueprintAssignments/write", "Microsoft.Blueprint/blueprintAssignments/delete",
			// Slipway's identities stand in for Entra ID, which Azure RBAC
			// roles do not reach: only an Owner manages them here.
			"Slipway.Identity/*"}}
	Reader = Role{ID: "acdd72a7-3385-48ef-bd42-f606fba81ae7", Name: "Reader",
		Description: "View all resources, but does not allow you to make any changes.",
		Actions:     []string{"*/read"}}
	AKSClusterAdmin = Role{ID: "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8", Name: "Azure Kubernetes Service Cluster Admin Role",
		Description: "List cluster admin credential action.",
		Actions: []string{"Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
			"Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
			"Microsoft.ContainerService/managedClusters/read", "Microsoft.ContainerService/managedClusters/runcommand/action"}}
	AKSClusterUser = Role{ID: "4abbcc35-e782-43d8-92c5-2d3f1bd2253f", Name: "Azure Kubernetes Service Cluster User Role",
		Description: "List cluster user credential action.",
		Actions: []string{"Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
			"Microsoft.ContainerService/managedClusters/read"}}
	CostManagementReader = Role{ID: "72fafb9e-0641-4937-9268-a91bfd8191a3", Name: "Cost Management Reader",
		Description: "Can view cost data and configuration (e.g. budgets, exports)",
		Actions: []string{"Microsoft.Consumption/*/read", "Microsoft.CostManagement/*/read", "Microsoft.Billing/billingPeriods/read",
			"Microsoft.Resources/subscriptions/read", "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*",
			"Microsoft.Advisor/configurations/read", "Microsoft.Advisor/recommendations/read",
			"Microsoft.Management/managementGroups/read", "Microsoft.Billing/billingProperty/read"}}
)

// Key Vault's data-plane roles (azure-docs built-in-roles/security.md).
var (
	kvControl = []string{"Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.Resources/deployments/*",
		"Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*", "Microsoft.KeyVault/checkNameAvailability/read",
		"Microsoft.KeyVault/deletedVaults/read", "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"}
	KeyVaultAdministrator = Role{ID: "00482a5a-887f-4fb3-b363-3b7fe8e74483", Name: "Key Vault Administrator",
		Description: "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Actions:     kvControl, DataActions: []string{"Microsoft.KeyVault/vaults/*"}}
	KeyVaultSecretsOfficer = Role{ID: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", Name: "Key Vault Secrets Officer",
		Description: "Perform any action on the secrets of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Actions:     kvControl, DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}}
	KeyVaultSecretsUser = Role{ID: "4633458b-17de-408a-b874-0445c86b69e6", Name: "Key Vault Secrets User",
		Description: "Read secret contents. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		DataActions: []string{"Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}}
	KeyVaultReader = Role{ID: "21090545-7ca7-4776-b22c-e363652d74d2", Name: "Key Vault Reader",
		Description: "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Actions:     kvControl, DataActions: []string{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}}
	KeyVaultContributor = Role{ID: "f25e0fa2-a7c8-4377-a976-54943a77a395", Name: "Key Vault Contributor",
		Description: "Manage key vaults, but does not allow you to assign roles in Azure RBAC, and does not allow you to access secrets, keys, or certificates.",
		Actions: []string{"Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.KeyVault/*", "Microsoft.Resources/deployments/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*"},
		NotActions: []string{"Microsoft.KeyVault/locations/deletedVaults/purge/action", "Microsoft.KeyVault/hsmPools/*", "Microsoft.KeyVault/managedHsms/*"}}
)

// ResourcePolicyContributor may write policy definitions and assignments,
// which Contributor may not (its NotActions hold Microsoft.Authorization
// writes back) (azure-docs built-in-roles/management-and-governance.md).
var ResourcePolicyContributor = Role{ID: "36243c78-bf99-498c-9df9-86d9f8d28608", Name: "Resource Policy Contributor",
	Description: "Users with rights to create/modify resource policy, create support ticket and read resources/hierarchy.",
	Actions: []string{"*/read", "Microsoft.Authorization/policyassignments/*", "Microsoft.Authorization/policydefinitions/*",
		"Microsoft.Authorization/policyexemptions/*", "Microsoft.Authorization/policysetdefinitions/*", "Microsoft.PolicyInsights/*", "Microsoft.Support/*"}}

// BuiltIn lists the built-in roles.
var BuiltIn = []Role{Owner, Contributor, Reader, AKSClusterAdmin, AKSClusterUser, CostManagementReader,
	KeyVaultAdministrator, KeyVaultSecretsOfficer, KeyVaultSecretsUser, KeyVaultReader, KeyVaultContributor, ResourcePolicyContributor}

// RoleByID finds a built-in role by GUID, or by a role definition ID that
// ends in one (/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}).
func RoleByID(id string) (Role, bool) {
	guid := id[strings.LastIndex(id, "/")+1:]
	for _, r := range BuiltIn {
		if strings.EqualFold(r.ID, guid) {
			return r, true
		}
	}
	return Role{}, false
}

// RoleByName finds a built-in role by its name.
func RoleByName(name string) (Role, bool) {
	for _, r := range BuiltIn {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return Role{}, false
}

// AllowsData says whether the role grants a data action.
func (r Role) AllowsData(action string) bool {
	for _, a := range r.DataActions {
		if match(a, action) {
			return true
		}
	}
	return false
}

// Allows says whether the role grants action: an Actions pattern matches
// and no NotActions pattern does.
func (r Role) Allows(action string) bool {
	for _, n := range r.NotActions {
		if match(n, action) {
			return false
		}
	}
	for _, a := range r.Actions {
		if match(a, action) {
			return true
		}
	}
	return false
}

// match matches an action against an RBAC pattern, case-insensitively: "*"
// stands for any run of characters, as in "*/read" or
// "Microsoft.Authorization/*/Write".
func match(pattern, action string) bool {
	p, a := strings.ToLower(pattern), strings.ToLower(action)
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == a
	}
	if !strings.HasPrefix(a, parts[0]) {
		return false
	}
	a = a[len(parts[0]):]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(a, part)
		if i < 0 {
			return false
		}
		a = a[i+len(part):]
	}
	return strings.HasSuffix(a, parts[len(parts)-1])
}

// Covers says whether an assignment at scope applies at target: the same
// scope or one below it (segment-wise, case-insensitively).
func Covers(scope, target string) bool {
	s, t := normalize(scope), normalize(target)
	return s == "" || s == t || strings.HasPrefix(t, s+"/")
}

// normalize lower-cases a scope and trims its slashes; "/" is "".
func normalize(scope string) string {
	return strings.ToLower(strings.Trim(scope, "/"))
}

// Denied is an authorization failure, with what ARM's message needs.
type Denied struct {
	AppID, ObjectID, Action, Scope string
}

func (d *Denied) Error() string {
	return fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		d.AppID, d.ObjectID, d.Action, d.Scope)
}

// Authorizer checks calls against the role assignments stored in the
// management plane.
type Authorizer struct {
	Client client.Reader
}

// Assignments lists a principal's role assignments.
func (a *Authorizer) Assignments(ctx context.Context, objectID string) ([]slipwayv1.RoleAssignment, error) {
	var list slipwayv1.RoleAssignmentList
	if err := a.Client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelPrincipal: strings.ToLower(objectID)}); err != nil {
		return nil, fmt.Errorf("listing role assignments: %w", err)
	}
	return list.Items, nil
}

// Authorize returns nil if one of the principal's assignments at scope or
// above grants action, and a *Denied otherwise.
func (a *Authorizer) Authorize(ctx context.Context, appID, objectID, action, scope string) error {
	return a.authorize(ctx, appID, objectID, action, scope, Role.Allows)
}

// AuthorizeData returns nil if one of the principal's assignments at
// scope or above grants the data action, and a *Denied otherwise.
func (a *Authorizer) AuthorizeData(ctx context.Context, appID, objectID, action, scope string) error {
	return a.authorize(ctx, appID, objectID, action, scope, Role.AllowsData)
}

func (a *Authorizer) authorize(ctx context.Context, appID, objectID, action, scope string, allows func(Role, string) bool) error {
	assignments, err := a.Assignments(ctx, objectID)
	if err != nil {
		return err
	}
	for _, ra := range assignments {
		if !Covers(ra.Spec.Scope, scope) {
			continue
		}
		if role, ok := RoleByID(ra.Spec.RoleDefinitionID); ok && allows(role, action) {
			return nil
		}
	}
	return &Denied{AppID: appID, ObjectID: objectID, Action: action, Scope: scope}
}

// CanReadSomething says whether the principal holds any assignment inside
// scope or above it: ARM lists a subscription to anyone with a role in it.
func (a *Authorizer) CanReadSomething(ctx context.Context, objectID, scope string) (bool, error) {
	assignments, err := a.Assignments(ctx, objectID)
	if err != nil {
		return false, err
	}
	for _, ra := range assignments {
		if Covers(ra.Spec.Scope, scope) || Covers(scope, ra.Spec.Scope) {
			return true, nil
		}
	}
	return false, nil
}

// DeleteAssignmentsUnder deletes the role assignments at scope and below
// it, as ARM does when the resource at scope is deleted: a resource made
// later under the same name must not inherit them.
func DeleteAssignmentsUnder(ctx context.Context, c client.Client, scope string) error {
	var list slipwayv1.RoleAssignmentList
	if err := c.List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return fmt.Errorf("listing role assignments under %s: %w", scope, err)
	}
	for i := range list.Items {
		if ra := &list.Items[i]; Covers(scope, ra.Spec.Scope) {
			if err := c.Delete(ctx, ra); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting role assignment %s at %s: %w", ra.Name, ra.Spec.Scope, err)
			}
		}
	}
	return nil
}

// DeleteAssignmentsOf deletes every role assignment of a principal.
func DeleteAssignmentsOf(ctx context.Context, c client.Client, objectID string) error {
	var list slipwayv1.RoleAssignmentList
	if err := c.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelPrincipal: strings.ToLower(objectID)}); err != nil {
		return fmt.Errorf("listing role assignments of %s: %w", objectID, err)
	}
	for i := range list.Items {
		if err := c.Delete(ctx, &list.Items[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting role assignment %s: %w", list.Items[i].Name, err)
		}
	}
	return nil
}

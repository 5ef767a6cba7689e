package arm

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"
)

// canonical spells route segments as ARM spells them in actions and IDs.
var canonical = map[string]string{
	"subscriptions": "subscriptions", "resourcegroups": "resourceGroups", "providers": "providers",
	"microsoft.resources": "Microsoft.Resources", "microsoft.containerservice": "Microsoft.ContainerService",
	"microsoft.authorization": "Microsoft.Authorization", "slipway.identity": "Slipway.Identity",
	"managedclusters": "managedClusters", "agentpools": "agentPools", "machines": "machines",
	"upgradeprofiles": "upgradeProfiles", "maintenanceconfigurations": "maintenanceConfigurations",
	"roleassignments": "roleAssignments", "roledefinitions": "roleDefinitions", "serviceprincipals": "servicePrincipals",
	"locations": "locations", "operations": "operations", "operationresults": "operationResults",
	"kubernetesversions": "kubernetesVersions", "orchestrators": "orchestrators", "nodeimageversions": "nodeImageVersions",
	"nodeosupgraderuns": "nodeOSUpgradeRuns", "availableagentpoolversions": "availableAgentPoolVersions",
	"listclusteradmincredential": "listClusterAdminCredential", "listclusterusercredential": "listClusterUserCredential",
	"upgradenodeimageversion": "upgradeNodeImageVersion", "deletemachines": "deleteMachines",
	"simulateeviction": "simulateEviction", "abort": "abort", "start": "start", "stop": "stop", "publish": "publish",
	"addpassword": "addPassword",
}

func canon(seg string) string {
	if c, ok := canonical[seg]; ok {
		return c
	}
	return seg
}

// permission is the RBAC action a request needs, and the scope it needs it
// at, derived from its route as ARM derives them: the resource type path
// under its provider namespace, plus read, write, delete, or the POST's
// action; the scope is the ID of the resource addressed (or of the
// collection's parent).
func (rt route) permission(method string, p params) (action, scope string) {
	typ := "Microsoft.Resources"
	var id []string
	segs := rt.segs
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		switch {
		case seg == "subscriptions":
			typ += "/subscriptions"
		case seg == "resourcegroups":
			typ += "/resourceGroups"
		case seg == "providers" && i+1 < len(segs):
			i++
			typ = canon(segs[i])
			id = append(id, "providers", canon(segs[i]))
			continue
		case strings.HasPrefix(seg, "{"):
			id = append(id, p[strings.Trim(seg, "{}")])
			continue
		case seg == "default":
			continue // upgradeProfiles/default names the one profile
		case method == http.MethodPost && i == len(segs)-1:
			return typ + "/" + canon(seg) + "/action", scopeOfID(id)
		default:
			typ += "/" + canon(seg)
		}
		// A type segment followed by a name is part of the scope.
		if i+1 < len(segs) && strings.HasPrefix(segs[i+1], "{") {
			id = append(id, canon(seg))
		}
	}
	verb := map[string]string{http.MethodGet: "read", http.MethodHead: "read", http.MethodPut: "write", http.MethodPatch: "write", http.MethodDelete: "delete"}[method]
	return typ + "/" + verb, scopeOfID(id)
}

// scopeOfID joins ID segments, less a trailing providers/{namespace}: a
// collection's scope is its parent.
func scopeOfID(id []string) string {
	if n := len(id); n >= 2 && id[n-2] == "providers" {
		id = id[:n-2]
	}
	return "/" + strings.Join(id, "/")
}

// authorize checks that the caller may perform action at scope.
func (s *Server) authorize(ctx context.Context, action, scope string) error {
	if s.cfg.Authorizer == nil {
		return nil
	}
	c, _ := ctx.Value(claimsKey{}).(*identity.Claims)
	if c == nil {
		return newError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed.")
	}
	err := s.cfg.Authorizer.Authorize(ctx, c.AppID, c.ObjectID, action, scope)
	var denied *authz.Denied
	if errors.As(err, &denied) {
		return newError(http.StatusForbidden, "AuthorizationFailed", "", "%s", denied.Error())
	}
	return err
}

// authorizeRoute authorizes a routed request. The subscription is shown to
// anyone holding a role in it; operation status is authorized in its
// handler, against the resource the operation acts on.
func (s *Server) authorizeRoute(r *http.Request, rt *route, p params) error {
	if rt.authorizeInHandler {
		return nil
	}
	action, scope := rt.permission(r.Method, p)
	if action == "Microsoft.Resources/subscriptions/read" {
		ok, err := s.holdsRole(r)
		if err != nil || ok || scope == "/" {
			return err // the list filters itself
		}
	}
	return s.authorize(r.Context(), action, scope)
}

// holdsRole says whether the caller holds any role in the subscription.
func (s *Server) holdsRole(r *http.Request) (bool, error) {
	if s.cfg.Authorizer == nil {
		return true, nil
	}
	c, _ := r.Context().Value(claimsKey{}).(*identity.Claims)
	if c == nil {
		return false, nil
	}
	return s.cfg.Authorizer.CanReadSomething(r.Context(), c.ObjectID, "/subscriptions/"+s.cfg.SubscriptionID)
}

// readAction is the read action on the resource an ID names.
func readAction(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	typ := "Microsoft.Resources/subscriptions"
	for i := 2; i+1 < len(segs); i += 2 {
		if strings.EqualFold(segs[i], "providers") {
			typ = canon(strings.ToLower(segs[i+1]))
			continue
		}
		typ += "/" + canon(strings.ToLower(segs[i]))
	}
	return typ + "/read"
}

package arm

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"
)

// permission is the RBAC action a request needs, and the scope it needs it
// at, derived from its route as ARM derives them: the resource type path
// under its provider namespace, plus read, write, delete, or the POST's
// action; the scope is the ID of the resource addressed (or of the
// collection's parent).
func (s *Server) permission(rt *route, method string, p Params) (action, scope string) {
	typ := "Microsoft.Resources"
	var id []string
	segs := rt.segs
	// Under a provider namespace, resource types and names alternate; a
	// literal name (upgradeProfiles/default, availabilityStatuses/current)
	// names the one child of its type and is part of neither the action
	// nor, at the end of the path, the scope.
	name := false
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		switch {
		case name:
			switch {
			case strings.HasPrefix(seg, "{"):
				id = append(id, p[strings.Trim(seg, "{}")])
			case i+1 < len(segs):
				// A literal parent of further resources
				// (fileServices/default/shares/{share}) is part of
				// their IDs.
				id = append(id, seg)
			default:
				id = id[:len(id)-1] // the literal's type is not a scope either
			}
			name = false
			continue
		case seg == "providers" && i+1 < len(segs):
			i++
			typ = segs[i]
			id = append(id, "providers", segs[i])
			continue
		case method == http.MethodPost && i == len(segs)-1:
			return typ + "/" + seg + "/action", scopeOfID(id)
		}
		typ += "/" + seg
		// A type segment followed by a name is part of the scope.
		if i+1 < len(segs) {
			id = append(id, seg)
			name = true
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

// Authorize checks that the caller may perform action at scope.
func (s *Server) Authorize(ctx context.Context, action, scope string) error {
	if s.cfg.Authorizer == nil {
		return nil
	}
	c, _ := ctx.Value(claimsKey{}).(*identity.Claims)
	if c == nil {
		return NewError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed.")
	}
	err := s.cfg.Authorizer.Authorize(ctx, c.AppID, c.ObjectID, action, scope)
	var denied *authz.Denied
	if errors.As(err, &denied) {
		return NewError(http.StatusForbidden, "AuthorizationFailed", "", "%s", denied.Error())
	}
	return err
}

// authorizeRoute authorizes a routed request. The subscription is shown to
// anyone holding a role in it; operation status is authorized in its
// handler, against the resource the operation acts on.
func (s *Server) authorizeRoute(r *http.Request, rt *route, p Params) error {
	if rt.authorizeInHandler {
		return nil
	}
	action, scope := s.permission(rt, r.Method, p)
	if action == "Microsoft.Resources/subscriptions/read" {
		ok, err := s.HoldsRole(r)
		if err != nil || ok || scope == "/" {
			return err // the list filters itself
		}
	}
	return s.Authorize(r.Context(), action, scope)
}

// HoldsRole says whether the caller holds any role in the subscription.
func (s *Server) HoldsRole(r *http.Request) (bool, error) {
	if s.cfg.Authorizer == nil {
		return true, nil
	}
	c, _ := r.Context().Value(claimsKey{}).(*identity.Claims)
	if c == nil {
		return false, nil
	}
	return s.cfg.Authorizer.CanReadSomething(r.Context(), c.ObjectID, "/subscriptions/"+s.cfg.SubscriptionID)
}

// ReadAction is the read action on the resource an ID names.
func (s *Server) ReadAction(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	typ := "Microsoft.Resources/subscriptions"
	for i := 2; i+1 < len(segs); i += 2 {
		if strings.EqualFold(segs[i], "providers") {
			typ = s.canon(segs[i+1])
			continue
		}
		typ += "/" + s.canon(segs[i])
	}
	return typ + "/read"
}

// Permission is the action and scope a request of method on path needs, as
// the registered routes derive them; ok is false when no route serves it.
func (s *Server) Permission(method, path string) (action, scope string, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i := range s.routes {
		if p, matched := s.routes[i].match(segs); matched && s.routes[i].method == method {
			action, scope = s.permission(&s.routes[i], method, p)
			return action, scope, true
		}
	}
	return "", "", false
}

package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"
)

// DataAuthorizer checks a principal's RBAC data actions.
type DataAuthorizer interface {
	AuthorizeData(ctx context.Context, appID, objectID, action, scope string) error
}

// DataPlane serves each vault's data plane, https://{vault}.{suffix}{port}/,
// on Slipway's HTTPS listener: Key Vault's challenge authentication, its
// two permission models, and the secrets API.
type DataPlane struct {
	Service *Service
	// Verify checks a bearer token for one of the audiences.
	Verify func(token string, audiences ...string) (*identity.Claims, error)
	RBAC   DataAuthorizer
	// Authority is the login endpoint challenges send clients to
	// (https://host:port), and TenantID the tenant they name.
	Authority, TenantID string
}

// VaultOf says which vault a request's host names, if it is a vault's.
func (d *DataPlane) VaultOf(host string) (string, bool) {
	h := strings.ToLower(host)
	if i := strings.LastIndex(h, ":"); i > 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	name, ok := strings.CutSuffix(h, "."+strings.ToLower(d.Service.dnsSuffix))
	return name, ok && name != "" && !strings.Contains(name, ".")
}

// audiences are those a vault token may carry: the vaults' resource, and
// public Azure's, which clients that skip challenge verification ask for.
func (d *DataPlane) audiences() []string {
	return []string{d.Service.Resource(), "https://vault.azure.net"}
}

// dataError writes Key Vault's error envelope.
func dataError(w http.ResponseWriter, status int, code, inner, message string) {
	body := map[string]any{"code": code, "message": message}
	if inner != "" {
		body["innererror"] = map[string]string{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// challenge answers a request without a usable token: 401 and where to
// get one, in the exact form the SDKs parse (a space after each comma).
func (d *DataPlane) challenge(w http.ResponseWriter, message string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, strings.TrimRight(d.Authority, "/"), d.TenantID, d.Service.Resource()))
	dataError(w, http.StatusUnauthorized, "Unauthorized", "", message)
}

// ServeHTTP serves one data-plane request for the vault its host names.
func (d *DataPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vault, _ := d.VaultOf(r.Host)
	auth := r.Header.Get("Authorization")
	if auth == "" {
		d.challenge(w, "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	scheme, token, _ := strings.Cut(auth, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		d.challenge(w, "AKV10001: Unable to parse the Authorization header: only Bearer tokens are accepted.")
		return
	}
	claims, err := d.Verify(strings.TrimSpace(token), d.audiences()...)
	switch {
	case errors.Is(err, identity.ErrExpiredToken):
		d.challenge(w, "AKV10022: Invalid audience or the token has expired.")
		return
	case errors.Is(err, identity.ErrWrongAudience):
		d.challenge(w, fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found another.", d.Service.Resource()))
		return
	case err != nil:
		d.challenge(w, "AKV10046: Unable to resolve the key used for signature validation.")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		dataError(w, http.StatusBadRequest, "BadParameter", "", "The 'api-version' query parameter is missing.")
		return
	}
	ctx := r.Context()
	v, err := d.vault(ctx, vault)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	op, ok := route(r)
	if !ok {
		dataError(w, http.StatusNotFound, "NotFound", "", fmt.Sprintf("The operation %s %s is not served.", r.Method, r.URL.Path))
		return
	}
	if err := d.authorize(ctx, v, claims, op); err != nil {
		d.fail(w, r, err)
		return
	}
	secrets, err := d.Service.SecretsOf(v)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	status, body, err := op.serve(ctx, secrets, r)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	if page, ok := body.([]Item); ok {
		body = d.page(r, page)
	}
	writeJSON(w, status, body)
}

// vault is a live vault by name, or Key Vault's answer for one that is
// not there or soft deleted.
func (d *DataPlane) vault(ctx context.Context, name string) (*slipwayv1.Vault, error) {
	v, err := d.Service.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, &Error{Status: http.StatusNotFound, Code: "VaultNotFound", Message: fmt.Sprintf("Azure Key Vault '%s' was not found.", name)}
	}
	if v.Spec.Deleted != nil {
		return nil, &Error{Status: http.StatusNotFound, Code: "VaultNotFound", Message: fmt.Sprintf("Azure Key Vault '%s' has been soft deleted. Operations on this vault can be performed only after recovering it. For more information on soft delete please follow this link https://go.microsoft.com/fwlink/?linkid=2149745", name)}
	}
	return v, nil
}

// SecretFor reads a secret (its current version if version is "") as
// caller, under the vault's permission model, exactly as a GET through
// the data plane with caller's token would: what the Secrets Store
// provider does for a pod's mount, in process.
func (d *DataPlane) SecretFor(ctx context.Context, caller *identity.Claims, vault, name, version string) (*Bundle, error) {
	v, err := d.vault(ctx, vault)
	if err != nil {
		return nil, err
	}
	op := operation{permission: "get", action: secretsAction + "getSecret/action", secret: name}
	if err := d.authorize(ctx, v, caller, op); err != nil {
		return nil, err
	}
	secrets, err := d.Service.SecretsOf(v)
	if err != nil {
		return nil, err
	}
	return secrets.Get(ctx, name, version)
}

func (d *DataPlane) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if errors.As(err, &e) {
		dataError(w, e.Status, e.Code, e.Inner, e.Message)
		return
	}
	slog.Error("Key vault data plane", "method", r.Method, "path", r.URL.Path, "err", err)
	dataError(w, http.StatusInternalServerError, "InternalServerError", "", "An internal error occurred.")
}

// page answers a list a page at a time, maxresults (1-25, 25 by default)
// each, the next page's link carrying the api-version, as the SDKs
// follow it verbatim.
func (d *DataPlane) page(r *http.Request, items []Item) map[string]any {
	q := r.URL.Query()
	size, err := strconv.Atoi(q.Get("maxresults"))
	if err != nil || size < 1 || size > 25 {
		size = 25
	}
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	skip = min(max(skip, 0), len(items))
	end := min(skip+size, len(items))
	out := map[string]any{"value": items[skip:end], "nextLink": nil}
	if end < len(items) {
		q.Set("$skiptoken", strconv.Itoa(end))
		q.Set("maxresults", strconv.Itoa(size))
		out["nextLink"] = "https://" + r.Host + r.URL.Path + "?" + q.Encode()
	}
	return out
}

// operation is one data-plane call: its access-policy permission, its
// RBAC data action, the secret it acts on ("" for the vault) and how it is
// served.
type operation struct {
	permission, action, secret string
	serve                      func(ctx context.Context, x *Secrets, r *http.Request) (int, any, error)
}

const secretsAction = "Microsoft.KeyVault/vaults/secrets/"

// route maps a request to its operation.
func route(r *http.Request) (operation, bool) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	// GET /secrets/{name}/ is the current version (the SDK keeps the
	// slash of an empty version).
	if n := len(segs); n == 3 && segs[2] == "" {
		segs = segs[:2]
	}
	kind := strings.ToLower(segs[0])
	m := r.Method
	ok := func(perm, action, secret string, f func(ctx context.Context, x *Secrets, r *http.Request) (int, any, error)) (operation, bool) {
		return operation{permission: perm, action: secretsAction + action, secret: secret, serve: f}, true
	}
	switch {
	case kind == "secrets" && len(segs) == 1 && m == http.MethodGet:
		return ok("list", "readMetadata/action", "", func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			items, err := x.List(ctx)
			return http.StatusOK, items, err
		})
	case kind == "secrets" && len(segs) == 2 && strings.EqualFold(segs[1], "restore") && m == http.MethodPost:
		return ok("restore", "restore/action", "", func(ctx context.Context, x *Secrets, r *http.Request) (int, any, error) {
			var in struct{ Value string }
			if err := decode(r, &in); err != nil {
				return 0, nil, err
			}
			b, err := x.Restore(ctx, in.Value)
			return http.StatusOK, b, err
		})
	case kind == "secrets" && len(segs) == 2 && m == http.MethodPut:
		name := segs[1]
		return ok("set", "setSecret/action", name, func(ctx context.Context, x *Secrets, r *http.Request) (int, any, error) {
			var in SetParams
			if err := decode(r, &in); err != nil {
				return 0, nil, err
			}
			b, err := x.Set(ctx, name, &in)
			return http.StatusOK, b, err
		})
	case kind == "secrets" && len(segs) == 2 && m == http.MethodDelete:
		name := segs[1]
		return ok("delete", "delete", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			b, err := x.Delete(ctx, name)
			return http.StatusOK, b, err
		})
	case kind == "secrets" && len(segs) == 3 && strings.EqualFold(segs[2], "versions") && m == http.MethodGet:
		name := segs[1]
		return ok("list", "readMetadata/action", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			items, err := x.Versions(ctx, name)
			return http.StatusOK, items, err
		})
	case kind == "secrets" && len(segs) == 3 && strings.EqualFold(segs[2], "backup") && m == http.MethodPost:
		name := segs[1]
		return ok("backup", "backup/action", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			blob, err := x.Backup(ctx, name)
			return http.StatusOK, map[string]string{"value": blob}, err
		})
	case kind == "secrets" && (len(segs) == 2 || len(segs) == 3) && (m == http.MethodGet || m == http.MethodPatch):
		name, ver := segs[1], ""
		if len(segs) == 3 {
			ver = segs[2]
		}
		if m == http.MethodGet {
			return ok("get", "getSecret/action", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
				b, err := x.Get(ctx, name, ver)
				return http.StatusOK, b, err
			})
		}
		return ok("set", "update/action", name, func(ctx context.Context, x *Secrets, r *http.Request) (int, any, error) {
			var in UpdateParams
			if err := decode(r, &in); err != nil {
				return 0, nil, err
			}
			b, err := x.Update(ctx, name, ver, &in)
			return http.StatusOK, b, err
		})
	case kind == "deletedsecrets" && len(segs) == 1 && m == http.MethodGet:
		return ok("list", "readMetadata/action", "", func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			items, err := x.ListDeleted(ctx)
			return http.StatusOK, items, err
		})
	case kind == "deletedsecrets" && len(segs) == 2 && m == http.MethodGet:
		name := segs[1]
		return ok("get", "readMetadata/action", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			b, err := x.GetDeleted(ctx, name)
			return http.StatusOK, b, err
		})
	case kind == "deletedsecrets" && len(segs) == 2 && m == http.MethodDelete:
		name := segs[1]
		return ok("purge", "purge/action", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			return http.StatusNoContent, nil, x.Purge(ctx, name)
		})
	case kind == "deletedsecrets" && len(segs) == 3 && strings.EqualFold(segs[2], "recover") && m == http.MethodPost:
		name := segs[1]
		return ok("recover", "recover/action", name, func(ctx context.Context, x *Secrets, _ *http.Request) (int, any, error) {
			b, err := x.Recover(ctx, name)
			return http.StatusOK, b, err
		})
	}
	return operation{}, false
}

func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: "BadParameter", Message: "The request body is not valid JSON: " + err.Error()}
	}
	return nil
}

// authorize applies the vault's permission model: Azure RBAC data actions
// at the vault or the secret, or the vault's access policies.
func (d *DataPlane) authorize(ctx context.Context, v *slipwayv1.Vault, c *identity.Claims, op operation) error {
	m, err := Model(v)
	if err != nil {
		return err
	}
	name := v.Spec.ResourceID[strings.LastIndex(v.Spec.ResourceID, "/")+1:]
	where := fmt.Sprintf("%s;location=%s", name, deref(m.Location))
	caller := fmt.Sprintf("appid=%s;oid=%s;iss=%s", c.AppID, c.ObjectID, c.Issuer)
	if deref(m.Properties.EnableRbacAuthorization) {
		scope := v.Spec.ResourceID
		if op.secret != "" {
			scope += "/secrets/" + op.secret
		}
		err := d.RBAC.AuthorizeData(ctx, c.AppID, c.ObjectID, op.action, scope)
		var denied *authz.Denied
		if errors.As(err, &denied) {
			return &Error{Status: http.StatusForbidden, Code: "Forbidden", Inner: "ForbiddenByRbac",
				Message: fmt.Sprintf("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: %s\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: %s\r\n",
					caller, op.action, strings.ToLower(scope), where)}
		}
		return err
	}
	for _, e := range m.Properties.AccessPolicies {
		if e == nil || !strings.EqualFold(deref(e.ObjectID), c.ObjectID) || !strings.EqualFold(deref(e.TenantID), c.TenantID) {
			continue
		}
		if app := deref(e.ApplicationID); app != "" && !strings.EqualFold(app, c.AppID) {
			continue
		}
		if e.Permissions != nil && grants(e.Permissions.Secrets, op.permission) {
			return nil
		}
	}
	return &Error{Status: http.StatusForbidden, Code: "Forbidden", Inner: "AccessDenied",
		Message: fmt.Sprintf("The user, group or application '%s' does not have secrets %s permission on key vault '%s'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", caller, op.permission, where)}
}

func grants(perms []*armkeyvault.SecretPermissions, want string) bool {
	for _, p := range perms {
		if s := strings.ToLower(string(deref(p))); s == want || s == "all" {
			return true
		}
	}
	return false
}

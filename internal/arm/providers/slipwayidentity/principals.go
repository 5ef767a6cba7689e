// Package slipwayidentity is Slipway's own Slipway.Identity provider: service
// principals and their client secrets (which Entra ID's Graph API manages on
// Azure), and rotation of the token signing key. Secrets are shown once, when
// made; only salted hashes are kept.
package slipwayidentity

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/identity"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Namespace is the provider's namespace.
const Namespace = "Slipway.Identity"

// APIVersions are the api-versions served; Slipway's own provider takes any.
var APIVersions = arm.DatedVersions("2099-12-31")

// Provider serves Slipway.Identity.
type Provider struct {
	*arm.Server
	principals *identity.Store
	signer     *identity.Signer
}

// Register adds the provider's routes to the core.
func Register(core *arm.Server, principals *identity.Store, signer *identity.Signer) *Provider {
	s := &Provider{Server: core, principals: principals, signer: signer}
	base := "subscriptions/{sub}/providers/Slipway.Identity"
	v := APIVersions
	core.Handle("POST", base+"/servicePrincipals", v, s.createServicePrincipal)
	core.Handle("GET", base+"/servicePrincipals", v, s.listServicePrincipals)
	core.Handle("DELETE", base+"/servicePrincipals/{app}", v, s.deleteServicePrincipal)
	core.Handle("POST", base+"/servicePrincipals/{app}/addPassword", v, s.addPassword)
	core.Handle("POST", base+"/servicePrincipals/{app}/removePassword", v, s.removePassword)
	core.Handle("POST", base+"/rotateSigningKey", v, s.rotateSigningKey)
	return s
}

// ServicePrincipal is how a service principal reads in the API; Password
// (and the KeyID that names it) only in the answer that made it.
type ServicePrincipal struct {
	AppID       string `json:"appId"`
	ObjectID    string `json:"objectId"`
	DisplayName string `json:"displayName"`
	Tenant      string `json:"tenant"`
	Password    string `json:"password,omitempty"`
	// KeyID names the secret in Password, for removePassword.
	KeyID string `json:"keyId,omitempty"`
	// PasswordCredentials describe each secret as Graph does, without it.
	PasswordCredentials []PasswordCredential `json:"passwordCredentials"`
}

// PasswordCredential describes one secret of a principal, without it.
type PasswordCredential struct {
	KeyID       string `json:"keyId"`
	Hint        string `json:"hint"`
	EndDateTime string `json:"endDateTime,omitempty"`
}

func (s *Provider) renderPrincipal(sp *slipwayv1.ServicePrincipal, password, keyID string) ServicePrincipal {
	out := ServicePrincipal{AppID: sp.Spec.AppID, ObjectID: sp.Spec.ObjectID, DisplayName: sp.Spec.DisplayName, Tenant: s.TenantID(),
		Password: password, KeyID: keyID, PasswordCredentials: []PasswordCredential{}}
	for _, h := range sp.Spec.Secrets {
		pc := PasswordCredential{KeyID: h.KeyID, Hint: h.Hint + "***"}
		if h.Expires != nil {
			pc.EndDateTime = h.Expires.UTC().Format(time.RFC3339)
		}
		out.PasswordCredentials = append(out.PasswordCredentials, pc)
	}
	return out
}

// passwordBody is what addPassword and create take: Graph's
// {"passwordCredential":{"endDateTime"}} or a plain {"endDateTime"}.
type passwordBody struct {
	DisplayName        string `json:"displayName"`
	EndDateTime        string `json:"endDateTime"`
	PasswordCredential struct {
		EndDateTime string `json:"endDateTime"`
	} `json:"passwordCredential"`
}

func (b passwordBody) end() (time.Time, error) {
	v := b.EndDateTime
	if v == "" {
		v = b.PasswordCredential.EndDateTime
	}
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, arm.InvalidParameter("endDateTime", "The value of endDateTime is invalid: %q is not an RFC 3339 date and time.", v)
	}
	if !t.After(time.Now()) {
		return time.Time{}, arm.InvalidParameter("endDateTime", "The value of endDateTime is invalid: %s is in the past.", v)
	}
	return t, nil
}

// createServicePrincipal is POST .../providers/Slipway.Identity/servicePrincipals
// with {"displayName", "endDateTime"?}: a new principal and its first
// secret, shown once.
func (s *Provider) createServicePrincipal(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	var in passwordBody
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.DisplayName) == "" {
		return arm.InvalidParameter("displayName", "A service principal needs a displayName.")
	}
	end, err := in.end()
	if err != nil {
		return err
	}
	sp, secret, err := s.principals.Create(r.Context(), in.DisplayName, end)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusCreated, s.renderPrincipal(sp, secret, sp.Spec.Secrets[0].KeyID))
	return nil
}

func (s *Provider) listServicePrincipals(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	sps, err := s.principals.List(r.Context())
	if err != nil {
		return err
	}
	value := []ServicePrincipal{}
	for i := range sps {
		value = append(value, s.renderPrincipal(&sps[i], "", ""))
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func notFound(appID string) error {
	return arm.NewError(http.StatusNotFound, "NotFound", "", "Service principal %s was not found.", appID)
}

// addPassword is POST .../servicePrincipals/{app}/addPassword: one more
// secret, shown once.
func (s *Provider) addPassword(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in passwordBody
	if body, err := arm.ReadBody(r); err != nil {
		return err
	} else if strings.TrimSpace(string(body)) != "" {
		if err := arm.DecodeJSON(body, &in); err != nil {
			return err
		}
	}
	end, err := in.end()
	if err != nil {
		return err
	}
	sp, secret, keyID, err := s.principals.AddSecret(r.Context(), p["app"], end)
	if errors.Is(err, identity.ErrNotFound) {
		return notFound(p["app"])
	}
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, s.renderPrincipal(sp, secret, keyID))
	return nil
}

// removePassword is POST .../servicePrincipals/{app}/removePassword with
// {"keyId"}, as Graph's: the secret is revoked at once.
func (s *Provider) removePassword(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in struct {
		KeyID string `json:"keyId"`
	}
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if in.KeyID == "" {
		return arm.InvalidParameter("keyId", "Name the secret to remove by its keyId.")
	}
	sp, err := s.principals.RemoveSecret(r.Context(), p["app"], in.KeyID)
	if errors.Is(err, identity.ErrNotFound) {
		return arm.NewError(http.StatusNotFound, "NotFound", "", "Service principal %s has no secret with keyId %s.", p["app"], in.KeyID)
	}
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, s.renderPrincipal(sp, "", ""))
	return nil
}

// deleteServicePrincipal deletes a principal, its secrets and its role
// assignments. A principal cannot delete itself. (The bootstrap principal
// can be deleted by another Owner; serve makes it again on its next start.)
func (s *Provider) deleteServicePrincipal(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if c := arm.Caller(r.Context()); c != nil && strings.EqualFold(c.AppID, p["app"]) {
		return arm.BadRequest("OperationNotAllowed", "appId", "A service principal cannot delete itself.")
	}
	sp, err := s.principals.Delete(r.Context(), p["app"])
	if errors.Is(err, identity.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := authz.DeleteAssignmentsOf(r.Context(), s.Client(), sp.Spec.ObjectID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// rotateSigningKey is POST .../providers/Slipway.Identity/rotateSigningKey:
// tokens are signed with a new key from now on; those already issued stay
// valid until they expire, and the old key signs nothing more.
func (s *Provider) rotateSigningKey(w http.ResponseWriter, _ *http.Request, _ arm.Params) error {
	kid, err := s.signer.Rotate()
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, map[string]string{"keyId": kid})
	return nil
}

// Package storage is the Microsoft.Storage provider: storage accounts, their
// keys and their file shares, on the official SDK's models (armstorage).
// The storage-account service (internal/storageaccounts) keeps them; the
// shares the Azure Files CSI driver makes for a cluster's volumes show
// here, in accounts of the cluster's node resource group.
package storage

import (
	"errors"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
)

// versions: every dated api-version up to 2025-06-01; armstorage v1.8.1
// sends 2024-01-01 and az 2.45 2022-09-01. The shapes served are common
// to them.
var versions = arm.DatedVersions("2025-06-01")

const (
	routeGroup    = "subscriptions/{sub}/resourceGroups/{rg}"
	routeAccounts = routeGroup + "/providers/Microsoft.Storage/storageAccounts"
	routeAccount  = routeAccounts + "/{account}"
	routeShares   = routeAccount + "/fileServices/default/shares"
	routeShare    = routeShares + "/{share}"
)

// Provider serves Microsoft.Storage.
type Provider struct {
	*arm.Server
	accounts *storageaccounts.Service
}

// Register adds the provider's routes to the core.
func Register(core *arm.Server, accounts *storageaccounts.Service) *Provider {
	s := &Provider{Server: core, accounts: accounts}
	h := core.Handle
	h("GET", "subscriptions/{sub}/providers/Microsoft.Storage/storageAccounts", versions, s.listAccounts)
	h("POST", "subscriptions/{sub}/providers/Microsoft.Storage/checkNameAvailability", versions, s.checkName)
	h("GET", routeAccounts, versions, s.listAccounts)
	h("PUT", routeAccount, versions, s.putAccount)
	h("GET", routeAccount, versions, s.getAccount)
	h("DELETE", routeAccount, versions, s.deleteAccount)
	h("POST", routeAccount+"/listKeys", versions, s.listKeys)
	h("GET", routeShares, versions, s.listShares)
	h("PUT", routeShare, versions, s.putShare)
	h("PATCH", routeShare, versions, s.putShare)
	h("GET", routeShare, versions, s.getShare)
	h("DELETE", routeShare, versions, s.deleteShare)
	return s
}

// armError maps the service's errors to Storage's answers.
func armError(err error, typ, name, group string) error {
	switch {
	case errors.Is(err, storageaccounts.ErrNotFound):
		return arm.ResourceNotFound(typ, name, group)
	case errors.Is(err, storageaccounts.ErrInvalid):
		return arm.InvalidParameter("", "%s", arm.Detail(err))
	case errors.Is(err, storageaccounts.ErrNameTaken):
		return arm.NewError(http.StatusConflict, "StorageAccountAlreadyTaken", "", "%s", arm.Detail(err))
	case errors.Is(err, storageaccounts.ErrConflict):
		return arm.NewError(http.StatusConflict, "Conflict", "", "%s", arm.Detail(err))
	}
	return err
}

const accountType = "Microsoft.Storage/storageAccounts"

func (s *Provider) accountID(p arm.Params) string {
	return storageaccounts.AccountID(s.SubscriptionID(), p["rg"], p["account"])
}

// account reads the account a request names, its group first.
func (s *Provider) account(r *http.Request, p arm.Params) (*slipwayv1.StorageAccount, error) {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return nil, err
	}
	a, err := s.accounts.GetAccount(r.Context(), s.accountID(p))
	if err != nil {
		return nil, armError(err, accountType, p["account"], p["rg"])
	}
	return a, nil
}

func (s *Provider) getAccount(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	a, err := s.account(r, p)
	if err != nil {
		return err
	}
	out, err := storageaccounts.RenderAccount(a)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) putAccount(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armstorage.AccountCreateParameters
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if _, err := s.WritableResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	if in.Location != nil {
		in.Location = to.Ptr(arm.NormalizeLocation(*in.Location))
	}
	a, err := s.accounts.PutAccount(r.Context(), s.accountID(p), &in)
	if err != nil {
		return armError(err, accountType, p["account"], p["rg"])
	}
	out, err := storageaccounts.RenderAccount(a)
	if err != nil {
		return err
	}
	// Storage answers a create with 200 (done) or 202 (running); the
	// SDK's poller takes either. Slipway's accounts are made at once.
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) deleteAccount(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
		return err
	}
	id := s.accountID(p)
	if _, err := s.accounts.GetAccount(r.Context(), id); errors.Is(err, storageaccounts.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.accounts.DeleteAccount(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Provider) listAccounts(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if p["rg"] != "" {
		if _, err := s.LookupResourceGroup(r.Context(), p["rg"]); err != nil {
			return err
		}
	}
	list, err := s.accounts.ListAccounts(r.Context(), s.SubscriptionID(), p["rg"])
	if err != nil {
		return err
	}
	out := []*armstorage.Account{}
	for i := range list {
		a, err := storageaccounts.RenderAccount(&list[i])
		if err != nil {
			return err
		}
		out = append(out, a)
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Provider) listKeys(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	a, err := s.account(r, p)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, armstorage.AccountListKeysResult{Keys: storageaccounts.Keys(a)})
	return nil
}

func (s *Provider) checkName(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	var in armstorage.AccountCheckNameAvailabilityParameters
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return arm.InvalidParameter("name", "name is required")
	}
	ok, reason, err := s.accounts.NameAvailable(r.Context(), *in.Name)
	if err != nil {
		return err
	}
	out := armstorage.CheckNameAvailabilityResult{NameAvailable: &ok}
	switch reason {
	case "AccountNameInvalid":
		out.Reason = to.Ptr(armstorage.ReasonAccountNameInvalid)
		out.Message = to.Ptr(*in.Name + " is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.")
	case "AlreadyExists":
		out.Reason = to.Ptr(armstorage.ReasonAlreadyExists)
		out.Message = to.Ptr("The storage account named " + *in.Name + " is already taken.")
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Provider) listShares(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	a, err := s.account(r, p)
	if err != nil {
		return err
	}
	id := a.Spec.ResourceID
	list, err := s.accounts.ListShares(r.Context(), id)
	if err != nil {
		return err
	}
	out := []*armstorage.FileShareItem{}
	for i := range list {
		sh, err := storageaccounts.RenderShare(&list[i])
		if err != nil {
			return err
		}
		out = append(out, &armstorage.FileShareItem{ID: sh.ID, Name: sh.Name, Type: sh.Type, Etag: sh.Etag, Properties: sh.FileShareProperties})
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (s *Provider) getShare(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	a, err := s.account(r, p)
	if err != nil {
		return err
	}
	id := a.Spec.ResourceID
	sh, err := s.accounts.GetShare(r.Context(), id, p["share"])
	if err != nil {
		return armError(err, "Microsoft.Storage/storageAccounts/fileServices/shares", p["share"], p["rg"])
	}
	out, err := storageaccounts.RenderShare(sh)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

// putShare creates or updates a share (PUT), or updates one (PATCH).
func (s *Provider) putShare(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var in armstorage.FileShare
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	a, err := s.account(r, p)
	if err != nil {
		return err
	}
	id := a.Spec.ResourceID
	if r.Method == http.MethodPatch {
		if _, err := s.accounts.GetShare(r.Context(), id, p["share"]); err != nil {
			return armError(err, "Microsoft.Storage/storageAccounts/fileServices/shares", p["share"], p["rg"])
		}
	}
	sh, created, err := s.accounts.PutShare(r.Context(), id, p["share"], in.FileShareProperties)
	if err != nil {
		return armError(err, "Microsoft.Storage/storageAccounts/fileServices/shares", p["share"], p["rg"])
	}
	out, err := storageaccounts.RenderShare(sh)
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

func (s *Provider) deleteShare(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	a, err := s.account(r, p)
	if err != nil {
		return err
	}
	id := a.Spec.ResourceID
	if _, err := s.accounts.GetShare(r.Context(), id, p["share"]); errors.Is(err, storageaccounts.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.accounts.DeleteShare(r.Context(), id, p["share"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

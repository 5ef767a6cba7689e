// Package keyvault is Slipway's Azure Key Vault: vaults (their names
// global, soft-deleted, recovered, purged) and their secrets, sealed at
// rest, as ARM's Microsoft.KeyVault provider and each vault's data plane
// reach them. Both go through this service, so a vault's rules live in one
// place.
package keyvault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// VaultType is the vaults' ARM type.
const VaultType = "Microsoft.KeyVault/vaults"

// Error is a refusal, with the status and codes Key Vault answers it with
// (Inner is the data plane's innererror code).
type Error struct {
	Status               int
	Code, Inner, Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func fail(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Service is the key vault service over the management plane.
type Service struct {
	client *store
	sealer *Sealer
	// DNSSuffix is the vaults' DNS suffix ("vault.slipway.test"), and
	// Port the port their URIs carry (":8443", or "" for 443).
	dnsSuffix, port string
	now             func() time.Time
}

// New returns the service, writing through c and reading objects through
// cache (c when nil); vaults are addressed at
// https://{name}.{dnsSuffix}{port}/.
func New(c client.Client, cache client.Reader, sealer *Sealer, dnsSuffix, port string) *Service {
	return &Service{client: newStore(c, cache), sealer: sealer, dnsSuffix: dnsSuffix, port: port, now: time.Now}
}

// VaultURI is a vault's data-plane URI.
func (s *Service) VaultURI(name string) string {
	return "https://" + strings.ToLower(name) + "." + s.dnsSuffix + s.port + "/"
}

// Resource is the audience of the vaults' tokens, and the resource their
// challenges name: https://{dnsSuffix}{port}.
func (s *Service) Resource() string { return "https://" + s.dnsSuffix + s.port }

func objectName(vault string) string { return "kv-" + strings.ToLower(vault) }

// namePattern is Key Vault's rule: 3-24 letters, digits and hyphens,
// starting with a letter, ending with a letter or digit, no "--".
var namePattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

// ValidName says whether name may name a vault.
func ValidName(name string) bool {
	return namePattern.MatchString(name) && !strings.Contains(name, "--")
}

func invalidName(name string) *Error {
	return fail(http.StatusBadRequest, "VaultNameNotValid", "The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens. Follow this link for more information: https://go.microsoft.com/fwlink/?linkid=2147742", name)
}

// Get reads a vault by name, live or soft-deleted, purging it first if
// its retention has run out; nil if there is none.
func (s *Service) Get(ctx context.Context, name string) (*slipwayv1.Vault, error) {
	v := &slipwayv1.Vault{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: objectName(name)}, v)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if v.Spec.Deleted != nil && !s.now().Before(v.Spec.Deleted.ScheduledPurgeDate.Time) {
		// Past its retention: purged, as Key Vault purges it then.
		if err := s.purge(ctx, v); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return v, nil
}

// Live reads a vault that is not deleted, by its ARM ID's parts.
func (s *Service) Live(ctx context.Context, sub, group, name string) (*slipwayv1.Vault, error) {
	v, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if v == nil || v.Spec.Deleted != nil || !sameGroup(v.Spec.ResourceID, sub, group) {
		return nil, fail(http.StatusNotFound, "ResourceNotFound", "The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", VaultType, name, group)
	}
	return v, nil
}

func sameGroup(id, sub, group string) bool {
	s, g, ok := armid.GroupOf(id)
	return ok && strings.EqualFold(s, sub) && strings.EqualFold(g, group)
}

// Model is the vault as stored (armkeyvault's Vault, less read-only
// fields).
func Model(v *slipwayv1.Vault) (*armkeyvault.Vault, error) {
	var m armkeyvault.Vault
	if err := json.Unmarshal(v.Spec.Resource.Raw, &m); err != nil {
		return nil, fmt.Errorf("stored vault %s: %w", v.Spec.ResourceID, err)
	}
	if m.Properties == nil {
		m.Properties = &armkeyvault.VaultProperties{}
	}
	return &m, nil
}

// Render is the vault as ARM shows it.
func (s *Service) Render(v *slipwayv1.Vault) (*armkeyvault.Vault, error) {
	m, err := Model(v)
	if err != nil {
		return nil, err
	}
	name := v.Spec.ResourceID[strings.LastIndex(v.Spec.ResourceID, "/")+1:]
	m.ID, m.Name, m.Type = to.Ptr(v.Spec.ResourceID), to.Ptr(name), to.Ptr(VaultType)
	m.Properties.VaultURI = to.Ptr(s.VaultURI(name))
	m.Properties.ProvisioningState = to.Ptr(armkeyvault.VaultProvisioningStateSucceeded)
	m.Properties.CreateMode = nil
	if m.Tags == nil {
		m.Tags = map[string]*string{}
	}
	return m, nil
}

// Put creates, updates or recovers a vault. It reports whether the vault
// is new (or recovered).
func (s *Service) Put(ctx context.Context, sub, group, location, name string, in *armkeyvault.VaultCreateOrUpdateParameters, sd *slipwayv1.SystemData) (*slipwayv1.Vault, bool, error) {
	if !ValidName(name) {
		return nil, false, invalidName(name)
	}
	if in.Properties == nil {
		return nil, false, fail(http.StatusBadRequest, "BadRequest", "The request must have properties.")
	}
	p := in.Properties
	recover := p.CreateMode != nil && strings.EqualFold(string(*p.CreateMode), string(armkeyvault.CreateModeRecover))
	existing, err := s.Get(ctx, name)
	if err != nil {
		return nil, false, err
	}
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, VaultType, name)
	switch {
	case existing != nil && existing.Spec.Deleted != nil && !recover:
		return nil, false, fail(http.StatusConflict, "ConflictError", "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault. Follow this link https://go.microsoft.com/fwlink/?linkid=2149745 for more information on soft delete.")
	case existing != nil && existing.Spec.Deleted != nil:
		if !sameGroup(existing.Spec.ResourceID, sub, group) {
			return nil, false, fail(http.StatusConflict, "ConflictError", "The soft-deleted vault '%s' was in another resource group: it can only be recovered there.", name)
		}
		return s.recover(ctx, existing, in, sd)
	case recover:
		return nil, false, fail(http.StatusNotFound, "SoftDeletedVaultDoesNotExist", "A soft deleted vault with the given name does not exist. Ensure that the name for the vault that is being attempted to recover is in a recoverable state. For more information on soft delete please follow this link https://go.microsoft.com/fwlink/?linkid=2149745")
	case existing != nil && !strings.EqualFold(existing.Spec.ResourceID, id):
		return nil, false, fail(http.StatusConflict, "VaultAlreadyExists", "The vault name '%s' is already in use. Vault names are globally unique so it is possible that the name is already taken. If you are sure that the vault name was not taken then it is possible that a vault with the same name was recently deleted but not purged after being placed in a recoverable state. If the vault is in a recoverable state then the vault will need to be purged before reusing the name. For more information on VaultAlreadyExists, soft delete and purging a vault follow this link https://go.microsoft.com/fwlink/?linkid=2147740.", name)
	}
	var old *armkeyvault.Vault
	if existing != nil {
		if old, err = Model(existing); err != nil {
			return nil, false, err
		}
	}
	m, err := normalize(location, in.Tags, p, old)
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		v := &slipwayv1.Vault{
			ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: objectName(name), Labels: map[string]string{
				slipwayv1.LabelSubscription: armid.Label(sub), slipwayv1.LabelResourceGroup: armid.Label(group),
			}},
			Spec: slipwayv1.VaultSpec{ResourceID: id, Resource: raw(m), SystemData: sd},
		}
		if err := s.client.Create(ctx, v); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, false, fail(http.StatusConflict, "ConflictError", "There was a conflict while trying to create the vault '%s': another operation on it is in progress.", name)
			}
			return nil, false, fmt.Errorf("creating vault %s: %w", name, err)
		}
		return v, true, nil
	}
	existing.Spec.Resource = raw(m)
	if sd != nil && existing.Spec.SystemData != nil {
		sd.CreatedBy, sd.CreatedByType, sd.CreatedAt = existing.Spec.SystemData.CreatedBy, existing.Spec.SystemData.CreatedByType, existing.Spec.SystemData.CreatedAt
	}
	existing.Spec.SystemData = sd
	if err := s.client.Update(ctx, existing); err != nil {
		if apierrors.IsConflict(err) {
			return nil, false, fail(http.StatusConflict, "ConflictError", "There was a conflict while trying to update the vault '%s': another operation on it is in progress.", name)
		}
		return nil, false, fmt.Errorf("updating vault %s: %w", name, err)
	}
	return existing, false, nil
}

// recover brings a soft-deleted vault back with its secrets, its
// properties those it had (a recover's body only needs location and
// properties' tenant and SKU).
func (s *Service) recover(ctx context.Context, v *slipwayv1.Vault, in *armkeyvault.VaultCreateOrUpdateParameters, sd *slipwayv1.SystemData) (*slipwayv1.Vault, bool, error) {
	v.Spec.Deleted = nil
	if in.Tags != nil {
		m, err := Model(v)
		if err != nil {
			return nil, false, err
		}
		m.Tags = in.Tags
		v.Spec.Resource = raw(m)
	}
	if sd != nil {
		v.Spec.SystemData = sd
	}
	if err := s.client.Update(ctx, v); err != nil {
		return nil, false, fmt.Errorf("recovering vault %s: %w", v.Spec.ResourceID, err)
	}
	return v, true, nil
}

// normalize applies Key Vault's defaults and rules to a vault's
// properties, against the vault's current ones (nil for a new vault).
func normalize(location string, tags map[string]*string, p *armkeyvault.VaultProperties, old *armkeyvault.Vault) (*armkeyvault.Vault, error) {
	if p.TenantID == nil || *p.TenantID == "" {
		return nil, fail(http.StatusBadRequest, "BadRequest", "The parameter properties.tenantId is required.")
	}
	if p.SKU == nil || p.SKU.Name == nil {
		return nil, fail(http.StatusBadRequest, "BadRequest", "The parameter properties.sku is required.")
	}
	if n := strings.ToLower(string(*p.SKU.Name)); n != "standard" && n != "premium" {
		return nil, fail(http.StatusBadRequest, "SkuNotSupported", "The SKU '%s' is not supported. Supported SKUs are standard and premium.", *p.SKU.Name)
	}
	p.SKU.Name = to.Ptr(armkeyvault.SKUName(strings.ToLower(string(*p.SKU.Name))))
	if p.SKU.Family == nil || *p.SKU.Family == "" {
		p.SKU.Family = to.Ptr(armkeyvault.SKUFamilyA)
	}
	if *p.SKU.Family != armkeyvault.SKUFamilyA {
		return nil, fail(http.StatusBadRequest, "BadRequest", "The parameter properties.sku.family is invalid: '%s'. The only family is A.", *p.SKU.Family)
	}
	var was *armkeyvault.VaultProperties
	if old != nil {
		was = old.Properties
	}
	if p.EnableSoftDelete == nil {
		p.EnableSoftDelete = to.Ptr(true)
	}
	if was != nil && deref(was.EnableSoftDelete) && !*p.EnableSoftDelete {
		return nil, fail(http.StatusBadRequest, "BadRequest", "The property \"enableSoftDelete\" has been set to true for this vault. Once set to true, it cannot be reverted to false.")
	}
	if p.SoftDeleteRetentionInDays == nil {
		p.SoftDeleteRetentionInDays = to.Ptr[int32](90)
		if was != nil && was.SoftDeleteRetentionInDays != nil {
			p.SoftDeleteRetentionInDays = was.SoftDeleteRetentionInDays
		}
	}
	if d := *p.SoftDeleteRetentionInDays; d < 7 || d > 90 {
		return nil, fail(http.StatusBadRequest, "BadRequest", "The value of property softDeleteRetentionInDays is invalid: %d. It must be between 7 and 90.", d)
	}
	if was != nil && deref(was.EnablePurgeProtection) && p.EnablePurgeProtection != nil && !*p.EnablePurgeProtection {
		return nil, fail(http.StatusBadRequest, "BadRequest", "The property \"enablePurgeProtection\" has been set to true for this vault. Once enabled, it cannot be disabled.")
	}
	if p.EnablePurgeProtection != nil && !*p.EnablePurgeProtection && (was == nil || !deref(was.EnablePurgeProtection)) {
		// Purge protection is on or absent: false is not a value it takes.
		p.EnablePurgeProtection = nil
	}
	if was != nil && deref(was.EnablePurgeProtection) {
		p.EnablePurgeProtection = to.Ptr(true)
	}
	if p.EnableRbacAuthorization == nil {
		p.EnableRbacAuthorization = to.Ptr(was != nil && deref(was.EnableRbacAuthorization))
	}
	for _, b := range []**bool{&p.EnabledForDeployment, &p.EnabledForDiskEncryption, &p.EnabledForTemplateDeployment} {
		if *b == nil {
			*b = to.Ptr(false)
		}
	}
	if p.PublicNetworkAccess == nil {
		p.PublicNetworkAccess = to.Ptr("Enabled")
	}
	if p.AccessPolicies == nil {
		p.AccessPolicies = []*armkeyvault.AccessPolicyEntry{}
	}
	if err := checkPolicies(p.AccessPolicies); err != nil {
		return nil, err
	}
	p.VaultURI, p.ProvisioningState, p.CreateMode, p.HsmPoolResourceID, p.PrivateEndpointConnections = nil, nil, nil, nil, nil
	return &armkeyvault.Vault{Location: to.Ptr(location), Tags: tags, Properties: p}, nil
}

// checkPolicies refuses access policies Key Vault refuses.
func checkPolicies(ps []*armkeyvault.AccessPolicyEntry) error {
	if len(ps) > 1024 {
		return fail(http.StatusBadRequest, "BadRequest", "A vault can have at most 1024 access policies.")
	}
	for _, e := range ps {
		if e == nil || e.TenantID == nil || e.ObjectID == nil || e.Permissions == nil {
			return fail(http.StatusBadRequest, "BadRequest", "An access policy entry needs tenantId, objectId and permissions.")
		}
	}
	return nil
}

// Patch updates a live vault's tags and the properties the patch sets.
func (s *Service) Patch(ctx context.Context, v *slipwayv1.Vault, in *armkeyvault.VaultPatchParameters, sd *slipwayv1.SystemData) (*slipwayv1.Vault, error) {
	m, err := Model(v)
	if err != nil {
		return nil, err
	}
	cur := *m.Properties
	if pp := in.Properties; pp != nil {
		merged := cur
		if pp.TenantID != nil {
			merged.TenantID = pp.TenantID
		}
		if pp.SKU != nil {
			merged.SKU = pp.SKU
		}
		if pp.AccessPolicies != nil {
			merged.AccessPolicies = pp.AccessPolicies
		}
		for _, f := range []struct{ to, from **bool }{
			{&merged.EnablePurgeProtection, &pp.EnablePurgeProtection}, {&merged.EnableRbacAuthorization, &pp.EnableRbacAuthorization},
			{&merged.EnableSoftDelete, &pp.EnableSoftDelete}, {&merged.EnabledForDeployment, &pp.EnabledForDeployment},
			{&merged.EnabledForDiskEncryption, &pp.EnabledForDiskEncryption}, {&merged.EnabledForTemplateDeployment, &pp.EnabledForTemplateDeployment},
		} {
			if *f.from != nil {
				*f.to = *f.from
			}
		}
		if pp.NetworkACLs != nil {
			merged.NetworkACLs = pp.NetworkACLs
		}
		if pp.PublicNetworkAccess != nil {
			merged.PublicNetworkAccess = pp.PublicNetworkAccess
		}
		if pp.SoftDeleteRetentionInDays != nil {
			merged.SoftDeleteRetentionInDays = pp.SoftDeleteRetentionInDays
		}
		cur = merged
	}
	tags := m.Tags
	if in.Tags != nil {
		tags = in.Tags
	}
	n, err := normalize(deref(m.Location), tags, &cur, m)
	if err != nil {
		return nil, err
	}
	v.Spec.Resource = raw(n)
	if sd != nil && v.Spec.SystemData != nil {
		sd.CreatedBy, sd.CreatedByType, sd.CreatedAt = v.Spec.SystemData.CreatedBy, v.Spec.SystemData.CreatedByType, v.Spec.SystemData.CreatedAt
		v.Spec.SystemData = sd
	}
	if err := s.client.Update(ctx, v); err != nil {
		if apierrors.IsConflict(err) {
			return nil, fail(http.StatusConflict, "ConflictError", "There was a conflict while trying to update the vault: another operation on it is in progress.")
		}
		return nil, err
	}
	return v, nil
}

// UpdateAccessPolicies adds, replaces or removes access policies.
func (s *Service) UpdateAccessPolicies(ctx context.Context, v *slipwayv1.Vault, kind string, entries []*armkeyvault.AccessPolicyEntry) (*slipwayv1.Vault, error) {
	m, err := Model(v)
	if err != nil {
		return nil, err
	}
	if err := checkPolicies(entries); err != nil {
		return nil, err
	}
	same := func(a, b *armkeyvault.AccessPolicyEntry) bool {
		return strings.EqualFold(deref(a.ObjectID), deref(b.ObjectID)) && strings.EqualFold(deref(a.TenantID), deref(b.TenantID)) &&
			strings.EqualFold(deref(a.ApplicationID), deref(b.ApplicationID))
	}
	ps := m.Properties.AccessPolicies
	switch strings.ToLower(kind) {
	case "replace":
		ps = entries
	case "add":
		for _, e := range entries {
			merged := false
			for _, p := range ps {
				if same(p, e) {
					p.Permissions = mergePermissions(p.Permissions, e.Permissions, true)
					merged = true
				}
			}
			if !merged {
				ps = append(ps, e)
			}
		}
	case "remove":
		var kept []*armkeyvault.AccessPolicyEntry
		for _, p := range ps {
			for _, e := range entries {
				if same(p, e) {
					p.Permissions = mergePermissions(p.Permissions, e.Permissions, false)
				}
			}
			if !emptyPermissions(p.Permissions) {
				kept = append(kept, p)
			}
		}
		ps = kept
	default:
		return nil, fail(http.StatusBadRequest, "BadRequest", "The operation kind '%s' is invalid. Valid kinds are add, replace and remove.", kind)
	}
	if ps == nil {
		ps = []*armkeyvault.AccessPolicyEntry{}
	}
	m.Properties.AccessPolicies = ps
	v.Spec.Resource = raw(m)
	if err := s.client.Update(ctx, v); err != nil {
		return nil, err
	}
	return v, nil
}

// mergePermissions adds b's permissions to a's, or takes them away.
func mergePermissions(a, b *armkeyvault.Permissions, add bool) *armkeyvault.Permissions {
	if a == nil {
		a = &armkeyvault.Permissions{}
	}
	if b == nil {
		return a
	}
	merge := func(x []*string, y []*string) []*string {
		set := map[string]bool{}
		var order []string
		for _, p := range x {
			if !set[strings.ToLower(deref(p))] {
				order = append(order, strings.ToLower(deref(p)))
			}
			set[strings.ToLower(deref(p))] = true
		}
		for _, p := range y {
			k := strings.ToLower(deref(p))
			if add && !set[k] {
				order = append(order, k)
			}
			set[k] = add
		}
		var out []*string
		for _, k := range order {
			if set[k] {
				out = append(out, to.Ptr(k))
			}
		}
		return out
	}
	return &armkeyvault.Permissions{
		Secrets:      mergeTyped(a.Secrets, b.Secrets, merge),
		Keys:         mergeTyped(a.Keys, b.Keys, merge),
		Certificates: mergeTyped(a.Certificates, b.Certificates, merge),
		Storage:      mergeTyped(a.Storage, b.Storage, merge),
	}
}

func mergeTyped[T ~string](a, b []*T, merge func(x, y []*string) []*string) []*T {
	conv := func(in []*T) []*string {
		out := make([]*string, len(in))
		for i, p := range in {
			out[i] = to.Ptr(string(deref(p)))
		}
		return out
	}
	var out []*T
	for _, p := range merge(conv(a), conv(b)) {
		out = append(out, to.Ptr(T(*p)))
	}
	return out
}

func emptyPermissions(p *armkeyvault.Permissions) bool {
	return p == nil || len(p.Secrets)+len(p.Keys)+len(p.Certificates)+len(p.Storage) == 0
}

// Delete deletes a live vault: soft-deleted, with its secrets, for its
// retention, or gone at once if soft delete is off.
func (s *Service) Delete(ctx context.Context, v *slipwayv1.Vault) error {
	m, err := Model(v)
	if err != nil {
		return err
	}
	if !deref(m.Properties.EnableSoftDelete) {
		return s.purge(ctx, v)
	}
	now := s.now().UTC().Truncate(time.Second)
	days := int(deref(m.Properties.SoftDeleteRetentionInDays))
	v.Spec.Deleted = &slipwayv1.Deletion{DeletionDate: metav1.NewTime(now), ScheduledPurgeDate: metav1.NewTime(now.AddDate(0, 0, days))}
	if err := s.client.Update(ctx, v); err != nil {
		return fmt.Errorf("deleting vault %s: %w", v.Spec.ResourceID, err)
	}
	return nil
}

// Deleted lists a subscription's soft-deleted vaults, or reads one.
func (s *Service) Deleted(ctx context.Context, sub string) ([]slipwayv1.Vault, error) {
	var list slipwayv1.VaultList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub)}); err != nil {
		return nil, err
	}
	var out []slipwayv1.Vault
	for _, v := range list.Items {
		if v.Spec.Deleted != nil && s.now().Before(v.Spec.Deleted.ScheduledPurgeDate.Time) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// List lists the live vaults of a subscription, or of a group in it.
func (s *Service) List(ctx context.Context, sub, group string) ([]slipwayv1.Vault, error) {
	labels := client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub)}
	if group != "" {
		labels[slipwayv1.LabelResourceGroup] = armid.Label(group)
	}
	var list slipwayv1.VaultList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), labels); err != nil {
		return nil, err
	}
	var out []slipwayv1.Vault
	for _, v := range list.Items {
		if v.Spec.Deleted == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Purge removes a soft-deleted vault for good, unless purge protection
// holds it until its scheduled purge date.
func (s *Service) Purge(ctx context.Context, v *slipwayv1.Vault) error {
	m, err := Model(v)
	if err != nil {
		return err
	}
	if deref(m.Properties.EnablePurgeProtection) {
		return fail(http.StatusConflict, "MethodNotAllowed", "Operation 'DeletedVaultPurge' is not allowed. The vault '%s' has purge protection enabled: it is purged on %s.", deref(m.Name), v.Spec.Deleted.ScheduledPurgeDate.UTC().Format(time.RFC3339))
	}
	return s.purge(ctx, v)
}

// purge deletes the vault and its secrets.
func (s *Service) purge(ctx context.Context, v *slipwayv1.Vault) error {
	vault := strings.TrimPrefix(v.Name, "kv-")
	if err := s.client.DeleteAllOf(ctx, &slipwayv1.VaultSecret{}, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelVault: vault}); err != nil {
		return fmt.Errorf("purging the secrets of vault %s: %w", vault, err)
	}
	if err := s.client.Delete(ctx, v); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("purging vault %s: %w", vault, err)
	}
	return nil
}

// NameAvailable answers checkNameAvailability: a name is taken by a live
// vault or a soft-deleted one, anywhere.
func (s *Service) NameAvailable(ctx context.Context, name string) (*armkeyvault.CheckNameAvailabilityResult, error) {
	if !ValidName(name) {
		return &armkeyvault.CheckNameAvailabilityResult{NameAvailable: to.Ptr(false), Reason: to.Ptr(armkeyvault.ReasonAccountNameInvalid),
			Message: to.Ptr(invalidName(name).Message)}, nil
	}
	v, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if v != nil {
		return &armkeyvault.CheckNameAvailabilityResult{NameAvailable: to.Ptr(false), Reason: to.Ptr(armkeyvault.ReasonAlreadyExists),
			Message: to.Ptr(fmt.Sprintf("The vault name '%s' is already in use.", name))}, nil
	}
	return &armkeyvault.CheckNameAvailabilityResult{NameAvailable: to.Ptr(true)}, nil
}

func raw(v any) runtime.RawExtension {
	b, _ := json.Marshal(v)
	return runtime.RawExtension{Raw: b}
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// DeleteGroup soft-deletes the vaults of a resource group being deleted,
// as Azure does: they stay recoverable for their retention.
func (s *Service) DeleteGroup(ctx context.Context, sub, group string) error {
	vaults, err := s.List(ctx, sub, group)
	if err != nil {
		return err
	}
	for i := range vaults {
		if err := s.Delete(ctx, &vaults[i]); err != nil {
			return err
		}
	}
	return nil
}

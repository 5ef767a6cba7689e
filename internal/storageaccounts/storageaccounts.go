// Package storageaccounts is Slipway's storage-account service:
// Microsoft.Storage/storageAccounts and their file shares, as Azure keeps
// them. The Storage provider serves it through ARM and the Azure Files CSI
// driver makes its shares through it, so a cluster's ReadWriteMany
// volumes are shares a user can see and read with the storage SDK.
// Accounts and shares are objects in the management plane.
package storageaccounts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// Errors the service answers with; callers map them to ARM's codes or
// CSI's.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid request")
	// ErrNameTaken refuses an account name another account holds: names
	// are global, as they are DNS names.
	ErrNameTaken = errors.New("storage account name is taken")
	// ErrConflict refuses a change Azure refuses on an existing object.
	ErrConflict = errors.New("conflict")
)

// Labels that index accounts and shares.
const (
	labelAccountName = "slipway.dev/storage-account-name"
	labelAccount     = "slipway.dev/storage-account"
)

// Share quota limits in GiB: a standard share is up to 5 TiB unless the
// account has large file shares; premium shares up to 100 TiB.
const (
	maxQuotaGiB      = 102400
	maxQuotaStandard = 5120
	minQuotaPremium  = 100
)

var (
	accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	shareName   = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)
)

// Service keeps storage accounts and file shares.
type Service struct {
	client client.Client
	now    func() time.Time
}

// New returns the service over the management plane's client.
func New(c client.Client) *Service { return &Service{client: c, now: time.Now} }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// AccountID is a storage account's ARM ID.
func AccountID(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s", sub, group, name)
}

// ShareID is a file share's ARM ID.
func ShareID(accountID, share string) string {
	return accountID + "/fileServices/default/shares/" + share
}

// GetAccount returns an account by its ID.
func (s *Service) GetAccount(ctx context.Context, id string) (*slipwayv1.StorageAccount, error) {
	a := &slipwayv1.StorageAccount{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id)}, a)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: storage account %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading storage account %s: %w", id, err)
	}
	return a, nil
}

// ListAccounts returns the accounts of a subscription, or of one of its
// groups if group is not empty.
func (s *Service) ListAccounts(ctx context.Context, sub, group string) ([]slipwayv1.StorageAccount, error) {
	labels := client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub)}
	if group != "" {
		labels[slipwayv1.LabelResourceGroup] = armid.Label(group)
	}
	var list slipwayv1.StorageAccountList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), labels); err != nil {
		return nil, fmt.Errorf("listing storage accounts: %w", err)
	}
	return list.Items, nil
}

// NameAvailable says whether an account name may be used.
func (s *Service) NameAvailable(ctx context.Context, name string) (bool, string, error) {
	if !accountName.MatchString(name) {
		return false, "AccountNameInvalid", nil
	}
	var list slipwayv1.StorageAccountList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{labelAccountName: name}); err != nil {
		return false, "", fmt.Errorf("listing storage accounts: %w", err)
	}
	if len(list.Items) > 0 {
		return false, "AlreadyExists", nil
	}
	return true, "", nil
}

// Account is an account as stored.
func Account(a *slipwayv1.StorageAccount) (*armstorage.Account, error) {
	m := &armstorage.Account{}
	if err := json.Unmarshal(a.Spec.Resource.Raw, m); err != nil {
		return nil, fmt.Errorf("storage account %s: stored model: %w", a.Spec.ResourceID, err)
	}
	if m.Properties == nil {
		m.Properties = &armstorage.AccountProperties{}
	}
	return m, nil
}

// PutAccount creates an account or updates its tags and properties, as a
// PUT of AccountCreateParameters does.
func (s *Service) PutAccount(ctx context.Context, id string, in *armstorage.AccountCreateParameters) (*slipwayv1.StorageAccount, error) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) != 8 {
		return nil, invalid("%q is not a storage account's resource ID", id)
	}
	sub, group, name := segs[1], segs[3], segs[7]
	if !accountName.MatchString(name) {
		return nil, invalid("%s is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.", name)
	}
	if in.Location == nil || *in.Location == "" {
		return nil, invalid("location is required")
	}
	if in.SKU == nil || in.SKU.Name == nil {
		return nil, invalid("sku.name is required")
	}
	if !slices.Contains(armstorage.PossibleSKUNameValues(), *in.SKU.Name) {
		return nil, invalid("sku.name %q is not one of %v", *in.SKU.Name, armstorage.PossibleSKUNameValues())
	}
	if in.Kind == nil {
		return nil, invalid("kind is required")
	}
	if !slices.Contains(armstorage.PossibleKindValues(), *in.Kind) {
		return nil, invalid("kind %q is not one of %v", *in.Kind, armstorage.PossibleKindValues())
	}
	premium := strings.HasPrefix(string(*in.SKU.Name), "Premium")
	if *in.Kind == armstorage.KindFileStorage && !premium {
		return nil, invalid("a FileStorage account needs a Premium SKU, not %s", *in.SKU.Name)
	}
	model := &armstorage.Account{Location: in.Location, Kind: in.Kind, SKU: &armstorage.SKU{Name: in.SKU.Name}, Tags: in.Tags, Properties: accountProperties(in.Properties)}
	old, err := s.GetAccount(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if old != nil {
		prev, err := Account(old)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(*prev.Location, *in.Location) {
			return nil, fmt.Errorf("%w: the storage account %s is in %s; its location cannot change", ErrConflict, name, *prev.Location)
		}
		old.Spec.Resource = raw(model)
		if err := s.client.Update(ctx, old); err != nil {
			return nil, fmt.Errorf("updating storage account %s: %w", id, err)
		}
		return old, nil
	}
	if ok, _, err := s.NameAvailable(ctx, name); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: The storage account named %s is already taken.", ErrNameTaken, name)
	}
	a := &slipwayv1.StorageAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id), Labels: map[string]string{
			slipwayv1.LabelSubscription: armid.Label(sub), slipwayv1.LabelResourceGroup: armid.Label(group), labelAccountName: name,
		}},
		Spec: slipwayv1.StorageAccountSpec{ResourceID: id, Resource: raw(model), Keys: []string{newKey(), newKey()}, TimeCreated: metav1.NewTime(s.now())},
	}
	if err := s.client.Create(ctx, a); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return s.GetAccount(ctx, id)
		}
		return nil, fmt.Errorf("creating storage account %s: %w", id, err)
	}
	return a, nil
}

// accountProperties keeps the writable properties of a create.
func accountProperties(p *armstorage.AccountPropertiesCreateParameters) *armstorage.AccountProperties {
	out := &armstorage.AccountProperties{}
	if p == nil {
		return out
	}
	out.AccessTier, out.AllowBlobPublicAccess, out.EnableHTTPSTrafficOnly = p.AccessTier, p.AllowBlobPublicAccess, p.EnableHTTPSTrafficOnly
	out.LargeFileSharesState, out.MinimumTLSVersion, out.PublicNetworkAccess = p.LargeFileSharesState, p.MinimumTLSVersion, p.PublicNetworkAccess
	out.IsHnsEnabled, out.EnableNfsV3, out.AllowSharedKeyAccess = p.IsHnsEnabled, p.EnableNfsV3, p.AllowSharedKeyAccess
	return out
}

// RenderAccount is an account as ARM returns it.
func RenderAccount(a *slipwayv1.StorageAccount) (*armstorage.Account, error) {
	m, err := Account(a)
	if err != nil {
		return nil, err
	}
	segs := strings.Split(strings.Trim(a.Spec.ResourceID, "/"), "/")
	name := segs[len(segs)-1]
	m.ID, m.Name, m.Type = &a.Spec.ResourceID, &name, to.Ptr("Microsoft.Storage/storageAccounts")
	sku := *m.SKU.Name
	m.SKU.Tier = to.Ptr(armstorage.SKUTierStandard)
	if strings.HasPrefix(string(sku), "Premium") {
		m.SKU.Tier = to.Ptr(armstorage.SKUTierPremium)
	}
	p := m.Properties
	p.ProvisioningState = to.Ptr(armstorage.ProvisioningStateSucceeded)
	p.CreationTime = to.Ptr(a.Spec.TimeCreated.UTC())
	p.PrimaryLocation = m.Location
	p.StatusOfPrimary = to.Ptr(armstorage.AccountStatusAvailable)
	p.PrimaryEndpoints = &armstorage.Endpoints{File: to.Ptr("https://" + name + ".file.core.windows.net/")}
	if *m.Kind != armstorage.KindFileStorage {
		e := p.PrimaryEndpoints
		e.Blob, e.Queue, e.Table, e.Dfs, e.Web = to.Ptr("https://"+name+".blob.core.windows.net/"), to.Ptr("https://"+name+".queue.core.windows.net/"),
			to.Ptr("https://"+name+".table.core.windows.net/"), to.Ptr("https://"+name+".dfs.core.windows.net/"), to.Ptr("https://"+name+".z13.web.core.windows.net/")
	}
	if p.EnableHTTPSTrafficOnly == nil {
		p.EnableHTTPSTrafficOnly = to.Ptr(true)
	}
	if p.MinimumTLSVersion == nil {
		p.MinimumTLSVersion = to.Ptr(armstorage.MinimumTLSVersionTLS12)
	}
	if p.AccessTier == nil && *m.Kind == armstorage.KindStorageV2 {
		p.AccessTier = to.Ptr(armstorage.AccessTierHot)
	}
	return m, nil
}

// Keys returns an account's access keys.
func Keys(a *slipwayv1.StorageAccount) []*armstorage.AccountKey {
	var out []*armstorage.AccountKey
	for i, k := range a.Spec.Keys {
		out = append(out, &armstorage.AccountKey{KeyName: to.Ptr(fmt.Sprintf("key%d", i+1)), Value: to.Ptr(k),
			Permissions: to.Ptr(armstorage.KeyPermissionFull), CreationTime: to.Ptr(a.Spec.TimeCreated.UTC())})
	}
	return out
}

// DeleteAccount deletes an account and its shares; one that is gone is
// not an error.
func (s *Service) DeleteAccount(ctx context.Context, id string) error {
	shares, err := s.ListShares(ctx, id)
	if err != nil {
		return err
	}
	for i := range shares {
		if err := s.client.Delete(ctx, &shares[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting share %s: %w", shares[i].Spec.ResourceID, err)
		}
	}
	a := &slipwayv1.StorageAccount{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id)}}
	if err := s.client.Delete(ctx, a); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting storage account %s: %w", id, err)
	}
	return nil
}

// DeleteGroup deletes every account of a resource group.
func (s *Service) DeleteGroup(ctx context.Context, sub, group string) error {
	list, err := s.ListAccounts(ctx, sub, group)
	if err != nil {
		return err
	}
	for _, a := range list {
		if err := s.DeleteAccount(ctx, a.Spec.ResourceID); err != nil {
			return err
		}
	}
	return nil
}

// GetShare returns a share of an account.
func (s *Service) GetShare(ctx context.Context, accountID, name string) (*slipwayv1.FileShare, error) {
	sh := &slipwayv1.FileShare{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(ShareID(accountID, name))}, sh)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: share %s of %s", ErrNotFound, name, accountID)
	}
	if err != nil {
		return nil, fmt.Errorf("reading share %s: %w", name, err)
	}
	return sh, nil
}

// ListShares lists an account's shares.
func (s *Service) ListShares(ctx context.Context, accountID string) ([]slipwayv1.FileShare, error) {
	var list slipwayv1.FileShareList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{labelAccount: armid.Label(accountID)}); err != nil {
		return nil, fmt.Errorf("listing shares of %s: %w", accountID, err)
	}
	return list.Items, nil
}

// Share is a share's properties as stored.
func Share(sh *slipwayv1.FileShare) (*armstorage.FileShareProperties, error) {
	p := &armstorage.FileShareProperties{}
	if err := json.Unmarshal(sh.Spec.Properties.Raw, p); err != nil {
		return nil, fmt.Errorf("share %s: stored model: %w", sh.Spec.ResourceID, err)
	}
	return p, nil
}

// PutShare creates a share or updates it; the bool says it was created.
func (s *Service) PutShare(ctx context.Context, accountID, name string, in *armstorage.FileShareProperties) (*slipwayv1.FileShare, bool, error) {
	if !shareName.MatchString(name) {
		return nil, false, invalid("The specified share name %q is invalid: use 3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit.", name)
	}
	a, err := s.GetAccount(ctx, accountID)
	if err != nil {
		return nil, false, err
	}
	acct, err := Account(a)
	if err != nil {
		return nil, false, err
	}
	if in == nil {
		in = &armstorage.FileShareProperties{}
	}
	premium := strings.HasPrefix(string(*acct.SKU.Name), "Premium")
	old, err := s.GetShare(ctx, accountID, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	if old != nil {
		prev, err := Share(old)
		if err != nil {
			return nil, false, err
		}
		if in.EnabledProtocols != nil && *in.EnabledProtocols != *prev.EnabledProtocols {
			return nil, false, invalid("enabledProtocols cannot change after the share is made")
		}
		in.EnabledProtocols = prev.EnabledProtocols
		if in.ShareQuota == nil {
			in.ShareQuota = prev.ShareQuota
		}
	} else {
		if in.EnabledProtocols == nil {
			in.EnabledProtocols = to.Ptr(armstorage.EnabledProtocolsSMB)
		}
		if *in.EnabledProtocols == armstorage.EnabledProtocolsNFS && *acct.Kind != armstorage.KindFileStorage {
			return nil, false, invalid("NFS shares need a FileStorage (premium) account")
		}
		if in.ShareQuota == nil {
			in.ShareQuota = to.Ptr[int32](maxQuotaStandard)
			if premium {
				in.ShareQuota = to.Ptr[int32](minQuotaPremium)
			}
		}
	}
	limit := int32(maxQuotaStandard)
	if premium || (acct.Properties.LargeFileSharesState != nil && *acct.Properties.LargeFileSharesState == armstorage.LargeFileSharesStateEnabled) {
		limit = maxQuotaGiB
	}
	if q := *in.ShareQuota; q < 1 || q > limit || (premium && q < minQuotaPremium) {
		low := int32(1)
		if premium {
			low = minQuotaPremium
		}
		return nil, false, invalid("shareQuota %d is out of range: this account's shares are %d to %d GiB", q, low, limit)
	}
	if in.AccessTier == nil {
		in.AccessTier = to.Ptr(armstorage.ShareAccessTierTransactionOptimized)
		if premium {
			in.AccessTier = to.Ptr(armstorage.ShareAccessTierPremium)
		}
	}
	stored := *in
	stored.LastModifiedTime, stored.ShareUsageBytes, stored.Deleted, stored.DeletedTime, stored.Version = nil, nil, nil, nil, nil
	if old != nil {
		old.Spec.Properties = raw(&stored)
		old.Spec.LastModified = metav1.NewTime(s.now())
		if err := s.client.Update(ctx, old); err != nil {
			return nil, false, fmt.Errorf("updating share %s: %w", name, err)
		}
		return old, false, nil
	}
	segs := strings.Split(strings.Trim(accountID, "/"), "/")
	id := ShareID(a.Spec.ResourceID, name)
	sh := &slipwayv1.FileShare{
		ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id), Labels: map[string]string{
			slipwayv1.LabelSubscription: armid.Label(segs[1]), slipwayv1.LabelResourceGroup: armid.Label(segs[3]), labelAccount: armid.Label(accountID),
		}},
		Spec: slipwayv1.FileShareSpec{ResourceID: id, Account: a.Spec.ResourceID, Properties: raw(&stored), LastModified: metav1.NewTime(s.now())},
	}
	if err := s.client.Create(ctx, sh); err != nil {
		if apierrors.IsAlreadyExists(err) {
			got, gerr := s.GetShare(ctx, accountID, name)
			return got, false, gerr
		}
		return nil, false, fmt.Errorf("creating share %s: %w", name, err)
	}
	return sh, true, nil
}

// DeleteShare deletes a share; one that is gone is not an error.
func (s *Service) DeleteShare(ctx context.Context, accountID, name string) error {
	sh := &slipwayv1.FileShare{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(ShareID(accountID, name))}}
	if err := s.client.Delete(ctx, sh); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting share %s: %w", name, err)
	}
	return nil
}

// RenderShare is a share as ARM returns it.
func RenderShare(sh *slipwayv1.FileShare) (*armstorage.FileShare, error) {
	p, err := Share(sh)
	if err != nil {
		return nil, err
	}
	name := sh.Spec.ResourceID[strings.LastIndex(sh.Spec.ResourceID, "/")+1:]
	p.LastModifiedTime = to.Ptr(sh.Spec.LastModified.UTC())
	p.ShareUsageBytes = to.Ptr[int64](0)
	return &armstorage.FileShare{
		ID: &sh.Spec.ResourceID, Name: &name, Type: to.Ptr("Microsoft.Storage/storageAccounts/fileServices/shares"),
		Etag: to.Ptr(fmt.Sprintf("\"0x%X\"", sh.Spec.LastModified.UnixNano())), FileShareProperties: p,
	}, nil
}

func raw(v any) runtime.RawExtension {
	data, _ := json.Marshal(v) // SDK models always marshal
	return runtime.RawExtension{Raw: data}
}

// newKey is a random account key, in Azure's shape (64 bytes, base64).
func newKey() string {
	var b [64]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

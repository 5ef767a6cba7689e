// Package azurefile is Slipway's Azure Files CSI driver, file.csi.azure.com:
// the CSI Identity, Controller and Node services over Slipway's storage
// accounts and file shares. It follows the upstream driver
// (kubernetes-sigs/azurefile-csi-driver) where a user or a tool can see it:
// volume IDs "{group}#{account}#{share}###{secretNamespace}", shares in an
// account of the node resource group that the driver made and reuses, the
// account key in a Secret, the size rules of standard and premium shares,
// every access mode a share allows (ReadWriteMany included), no attach.
package azurefile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/csi/plugin"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
)

// DriverName is the driver's CSI name.
const DriverName = "file.csi.azure.com"

// Version is the upstream release whose behaviour the driver follows.
const Version = "v1.33.0"

// Accounts is the storage-account service the driver makes shares through.
type Accounts interface {
	ListAccounts(ctx context.Context, sub, group string) ([]slipwayv1.StorageAccount, error)
	GetAccount(ctx context.Context, id string) (*slipwayv1.StorageAccount, error)
	PutAccount(ctx context.Context, id string, in *armstorage.AccountCreateParameters) (*slipwayv1.StorageAccount, error)
	GetShare(ctx context.Context, accountID, name string) (*slipwayv1.FileShare, error)
	PutShare(ctx context.Context, accountID, name string, in *armstorage.FileShareProperties) (*slipwayv1.FileShare, bool, error)
	DeleteShare(ctx context.Context, accountID, name string) error
}

// Config says where the driver makes shares.
type Config struct {
	// Subscription, ResourceGroup and Location are where new accounts
	// go: the cluster's node resource group, unless a class names another.
	Subscription, ResourceGroup, Location string
	// NodeID is the node the node service runs for.
	NodeID string
	// StoreKey, if set, keeps an account's key where pods' mounts find it
	// (the Secret azure-storage-account-{account}-secret, as upstream's
	// storeAccountKey does).
	StoreKey func(ctx context.Context, namespace, name, account, key string) error
}

// Driver serves the CSI services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	*plugin.Node

	accounts Accounts
	cfg      Config
}

// New returns a driver.
func New(a Accounts, cfg Config) *Driver {
	drv := &Driver{accounts: a, cfg: cfg}
	drv.Node = plugin.NewNode(func(ctx context.Context, id string) (int64, error) {
		_, _, props, err := drv.share(ctx, id)
		if err != nil {
			return 0, err
		}
		return int64(*props.ShareQuota) * gib, nil
	}, false)
	return drv
}

// Sizes of shares, in GiB: a claim of no size gets the default; a premium
// share is at least 100 GiB, and a larger share is made rather than the
// claim refused, as upstream does.
const (
	defaultQuotaGiB = 100
	minPremiumGiB   = 100
	gib             = int64(1) << 30
)

// The tag that marks the accounts the driver made and may put shares in.
const (
	createdByTag   = "k8s-azure-created-by"
	createdByValue = "azure"
)

// GetPluginInfo implements csi.IdentityServer.
func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: DriverName, VendorVersion: Version}, nil
}

// GetPluginCapabilities implements csi.IdentityServer.
func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}},
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

// Probe implements csi.IdentityServer.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// ControllerGetCapabilities implements csi.ControllerServer: no publish,
// since a share is mounted over the network, not attached.
func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return plugin.ControllerCapabilities(
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	), nil
}

func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range caps {
		if c.GetBlock() != nil {
			return status.Error(codes.InvalidArgument, "block volume capability not supported")
		}
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "a volume capability must be a mount")
		}
		if c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_UNKNOWN {
			return status.Error(codes.InvalidArgument, "an access mode is required")
		}
	}
	return nil
}

// params are the StorageClass parameters the driver understands.
type params struct {
	sku                           armstorage.SKUName
	protocol                      armstorage.EnabledProtocols
	shareName, account            string
	group, sub, location          string
	secretName, secretNamespace   string
	storeKey                      bool
	accessTier                    *armstorage.ShareAccessTier
	largeShares                   bool
	tags                          map[string]*string
	pvcName, pvcNamespace, pvName string
	rootSquash                    *armstorage.RootSquashType
}

// knownParams are accepted; those mapped to nothing change nothing in a
// simulated share (mount tuning, network and account options).
var knownParams = map[string]bool{
	"skuname": true, "storageaccounttype": true, "protocol": true, "sharename": true, "sharenameprefix": true,
	"storageaccount": true, "resourcegroup": true, "subscriptionid": true, "location": true, "foldername": true,
	"createfolderifnotexist": true, "shareaccesstier": true, "accountaccesstier": true, "enablelargefileshares": true,
	"allowblobpublicaccess": true, "requireinfraencryption": true, "networkendpointtype": true,
	"disabledeleteretentionpolicy": true, "enablemultichannel": true, "publicnetworkaccess": true,
	"storeaccountkey": true, "secretname": true, "secretnamespace": true, "usedataplaneapi": true,
	"rootsquashtype": true, "mountpermissions": true, "fsgroupchangepolicy": true, "provisionediops": true,
	"provisionedbandwidth": true, "matchtags": true, "accountquota": true, "tags": true, "tagvaluedelimiter": true,
	"csi.storage.k8s.io/pvc/name": true, "csi.storage.k8s.io/pvc/namespace": true, "csi.storage.k8s.io/pv/name": true,
}

func (d *Driver) parseParams(in map[string]string) (*params, error) {
	p := &params{sku: armstorage.SKUNameStandardLRS, protocol: armstorage.EnabledProtocolsSMB,
		group: d.cfg.ResourceGroup, sub: d.cfg.Subscription, location: d.cfg.Location, storeKey: true, tags: map[string]*string{}}
	delim := ","
	if v, ok := plugin.Param(in, "tagValueDelimiter"); ok && v != "" {
		delim = v
	}
	for k, v := range in {
		key := strings.ToLower(k)
		if !knownParams[key] {
			return nil, status.Errorf(codes.InvalidArgument, "invalid parameter %q in storage class", k)
		}
		switch key {
		case "skuname", "storageaccounttype":
			found := false
			for _, s := range armstorage.PossibleSKUNameValues() {
				if strings.EqualFold(string(s), v) {
					p.sku, found = s, true
				}
			}
			if !found {
				return nil, status.Errorf(codes.InvalidArgument, "invalid skuName value: %s, as Azure only supports %v", v, armstorage.PossibleSKUNameValues())
			}
		case "protocol":
			switch strings.ToLower(v) {
			case "smb":
				p.protocol = armstorage.EnabledProtocolsSMB
			case "nfs":
				p.protocol = armstorage.EnabledProtocolsNFS
			default:
				return nil, status.Errorf(codes.InvalidArgument, "protocol(%s) is not supported, supported protocol list: [smb nfs]", v)
			}
		case "sharename":
			p.shareName = v
		case "storageaccount":
			p.account = v
		case "resourcegroup":
			if v != "" {
				p.group = v
			}
		case "subscriptionid":
			if v != "" {
				p.sub = v
			}
		case "location":
			if v != "" {
				p.location = v
			}
		case "secretname":
			p.secretName = v
		case "secretnamespace":
			p.secretNamespace = v
		case "storeaccountkey":
			p.storeKey = !strings.EqualFold(v, "false")
		case "shareaccesstier":
			for _, t := range armstorage.PossibleShareAccessTierValues() {
				if strings.EqualFold(string(t), v) {
					p.accessTier = to.Ptr(t)
				}
			}
			if p.accessTier == nil {
				return nil, status.Errorf(codes.InvalidArgument, "shareAccessTier(%s) is not supported, supported ShareAccessTier list: %v", v, armstorage.PossibleShareAccessTierValues())
			}
		case "enablelargefileshares":
			p.largeShares = strings.EqualFold(v, "true")
		case "rootsquashtype":
			for _, t := range armstorage.PossibleRootSquashTypeValues() {
				if strings.EqualFold(string(t), v) {
					p.rootSquash = to.Ptr(t)
				}
			}
			if p.rootSquash == nil {
				return nil, status.Errorf(codes.InvalidArgument, "rootSquashType(%s) is not supported, supported RootSquashType list: %v", v, armstorage.PossibleRootSquashTypeValues())
			}
		case "tags":
			if err := plugin.Tags(v, delim, p.tags); err != nil {
				return nil, err
			}
		case "csi.storage.k8s.io/pvc/name":
			p.pvcName = v
		case "csi.storage.k8s.io/pvc/namespace":
			p.pvcNamespace = v
		case "csi.storage.k8s.io/pv/name":
			p.pvName = v
		}
	}
	if p.protocol == armstorage.EnabledProtocolsNFS && !premium(p.sku) {
		return nil, status.Errorf(codes.InvalidArgument, "NFS protocol is only supported on premium storage, not %s", p.sku)
	}
	if p.secretNamespace == "" {
		p.secretNamespace = p.pvcNamespace
	}
	if p.secretNamespace == "" {
		p.secretNamespace = "default"
	}
	return p, nil
}

func premium(sku armstorage.SKUName) bool { return strings.HasPrefix(string(sku), "Premium") }

var shareChars = regexp.MustCompile(`[^a-z0-9-]+`)

// shareNameFor is the share name of a CSI volume name: lower-cased, other
// characters made hyphens, at most 63 characters.
func shareNameFor(name string) string {
	s := shareChars.ReplaceAllString(strings.ToLower(name), "-")
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	if len(s) > 63 {
		s = s[:63]
	}
	s = strings.Trim(s, "-")
	for len(s) < 3 {
		s += "0"
	}
	return s
}

// volumeID is upstream's ID of a share: group, account, share, no VHD,
// no UUID, the secret's namespace.
func volumeID(group, account, share, secretNamespace string) string {
	return strings.Join([]string{group, account, share, "", "", secretNamespace}, "#")
}

// parseVolumeID splits a volume ID; ok is false for anything else.
func parseVolumeID(id string) (group, account, share, secretNamespace string, ok bool) {
	segs := strings.Split(id, "#")
	if len(segs) < 3 || segs[0] == "" || segs[1] == "" || segs[2] == "" {
		return "", "", "", "", false
	}
	if len(segs) > 5 {
		secretNamespace = segs[5]
	}
	return segs[0], segs[1], segs[2], secretNamespace, true
}

func (d *Driver) accountID(group, account string) string {
	return storageaccounts.AccountID(d.cfg.Subscription, group, account)
}

// CreateVolume implements csi.ControllerServer: it makes a share, in an
// account of the driver's with the class's SKU (made if there is none).
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume content sources are not supported by this driver yet")
	}
	p, err := d.parseParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	required, limit := req.GetCapacityRange().GetRequiredBytes(), req.GetCapacityRange().GetLimitBytes()
	if required < 0 || limit < 0 {
		return nil, status.Error(codes.InvalidArgument, "capacity range must not be negative")
	}
	quota := (required + gib - 1) / gib
	if quota == 0 {
		quota = defaultQuotaGiB
	}
	if premium(p.sku) && quota < minPremiumGiB {
		quota = minPremiumGiB
	}
	if limit > 0 && quota*gib > limit {
		return nil, status.Errorf(codes.OutOfRange, "a share of %d GiB is over the limit of %d bytes", quota, limit)
	}
	share := p.shareName
	if share == "" {
		share = shareNameFor(req.GetName())
	}
	accountID, err := d.ensureAccount(ctx, p)
	if err != nil {
		return nil, err
	}
	if existing, err := d.accounts.GetShare(ctx, accountID, share); err == nil {
		props, err := storageaccounts.Share(existing)
		if err != nil {
			return nil, err
		}
		if int64(*props.ShareQuota) < quota {
			return nil, status.Errorf(codes.AlreadyExists, "request file share(%s) already exists, but its capacity %d is smaller than %d", share, *props.ShareQuota, quota)
		}
		quota = int64(*props.ShareQuota)
	} else if !errors.Is(err, storageaccounts.ErrNotFound) {
		return nil, grpcError(err)
	} else {
		props := &armstorage.FileShareProperties{ShareQuota: to.Ptr(int32(quota)), EnabledProtocols: to.Ptr(p.protocol), AccessTier: p.accessTier,
			RootSquash: p.rootSquash, Metadata: map[string]*string{"createdBy": to.Ptr(DriverName)}}
		if p.pvcName != "" {
			props.Metadata["pvcName"], props.Metadata["pvcNamespace"], props.Metadata["pvName"] = &p.pvcName, &p.pvcNamespace, &p.pvName
		}
		if _, _, err := d.accounts.PutShare(ctx, accountID, share, props); err != nil {
			return nil, grpcError(err)
		}
	}
	account := accountID[strings.LastIndex(accountID, "/")+1:]
	if p.storeKey && d.cfg.StoreKey != nil {
		a, err := d.accounts.GetAccount(ctx, accountID)
		if err != nil {
			return nil, grpcError(err)
		}
		name := p.secretName
		if name == "" {
			name = "azure-storage-account-" + account + "-secret"
		}
		if err := d.cfg.StoreKey(ctx, p.secretNamespace, name, account, a.Spec.Keys[0]); err != nil {
			return nil, status.Errorf(codes.Internal, "storing the key of %s: %v", account, err)
		}
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      volumeID(p.group, account, share, p.secretNamespace),
		CapacityBytes: quota * gib,
		VolumeContext: map[string]string{"skuname": string(p.sku), "storageaccount": account, "sharename": share, "protocol": strings.ToLower(string(p.protocol))},
	}}, nil
}

// ensureAccount finds the account a new share goes in: the class's, or
// one the driver made with the same SKU and kind, or a new one.
func (d *Driver) ensureAccount(ctx context.Context, p *params) (string, error) {
	if p.account != "" {
		a, err := d.accounts.GetAccount(ctx, d.accountID(p.group, p.account))
		if err != nil {
			return "", grpcError(err)
		}
		return a.Spec.ResourceID, nil
	}
	kind := armstorage.KindStorageV2
	if premium(p.sku) {
		kind = armstorage.KindFileStorage
	}
	list, err := d.accounts.ListAccounts(ctx, p.sub, p.group)
	if err != nil {
		return "", grpcError(err)
	}
	for i := range list {
		m, err := storageaccounts.Account(&list[i])
		if err != nil {
			continue
		}
		if *m.SKU.Name == p.sku && *m.Kind == kind && m.Tags[createdByTag] != nil && *m.Tags[createdByTag] == createdByValue {
			return list[i].Spec.ResourceID, nil
		}
	}
	var b [11]byte
	rand.Read(b[:])
	name := "f" + hex.EncodeToString(b[:]) // 23 characters, as AKS's
	tags := map[string]*string{createdByTag: to.Ptr(createdByValue)}
	for k, v := range p.tags {
		tags[k] = v
	}
	in := &armstorage.AccountCreateParameters{Location: to.Ptr(p.location), Kind: to.Ptr(kind), SKU: &armstorage.SKU{Name: to.Ptr(p.sku)}, Tags: tags,
		Properties: &armstorage.AccountPropertiesCreateParameters{EnableHTTPSTrafficOnly: to.Ptr(p.protocol != armstorage.EnabledProtocolsNFS)}}
	if p.largeShares {
		in.Properties.LargeFileSharesState = to.Ptr(armstorage.LargeFileSharesStateEnabled)
	}
	a, err := d.accounts.PutAccount(ctx, storageaccounts.AccountID(p.sub, p.group, name), in)
	if err != nil {
		return "", grpcError(err)
	}
	return a.Spec.ResourceID, nil
}

func grpcError(err error) error {
	switch {
	case errors.Is(err, storageaccounts.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, storageaccounts.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, storageaccounts.ErrNameTaken), errors.Is(err, storageaccounts.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// share reads the share a volume ID names.
func (d *Driver) share(ctx context.Context, id string) (accountID, share string, props *armstorage.FileShareProperties, err error) {
	group, account, share, _, ok := parseVolumeID(id)
	if !ok {
		return "", "", nil, status.Errorf(codes.NotFound, "volume %s not found", id)
	}
	accountID = d.accountID(group, account)
	sh, err := d.accounts.GetShare(ctx, accountID, share)
	if err != nil {
		return "", "", nil, grpcError(err)
	}
	props, err = storageaccounts.Share(sh)
	if err != nil {
		return "", "", nil, err
	}
	return accountID, share, props, nil
}

// DeleteVolume implements csi.ControllerServer.
func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	group, account, share, _, ok := parseVolumeID(id)
	if !ok {
		return &csi.DeleteVolumeResponse{}, nil // not ours, so gone
	}
	if err := d.accounts.DeleteShare(ctx, d.accountID(group, account), share); err != nil {
		return nil, grpcError(err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// ValidateVolumeCapabilities implements csi.ControllerServer.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	if _, _, _, err := d.share(ctx, req.GetVolumeId()); err != nil {
		return nil, err
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

// ControllerExpandVolume implements csi.ControllerServer: the share's
// quota grows; mounts see it at once, with no node step.
func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if req.GetCapacityRange() == nil {
		return nil, status.Error(codes.InvalidArgument, "capacity range is required")
	}
	accountID, share, props, err := d.share(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	quota := (req.GetCapacityRange().GetRequiredBytes() + gib - 1) / gib
	if quota > int64(*props.ShareQuota) {
		props.ShareQuota = to.Ptr(int32(quota))
		if _, _, err := d.accounts.PutShare(ctx, accountID, share, props); err != nil {
			if errors.Is(err, storageaccounts.ErrInvalid) {
				return nil, status.Error(codes.OutOfRange, err.Error())
			}
			return nil, grpcError(err)
		}
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: int64(*props.ShareQuota) * gib, NodeExpansionRequired: false}, nil
}

// NodeGetInfo implements csi.NodeServer.
func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID}, nil
}

// NodeGetCapabilities implements csi.NodeServer.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return plugin.NodeCapabilities(
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	), nil
}

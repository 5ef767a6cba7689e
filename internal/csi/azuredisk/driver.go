// Package azuredisk is Slipway's Azure Disk CSI driver, disk.csi.azure.com:
// the CSI Identity, Controller and Node services over Slipway's managed
// disks. It follows the upstream driver (kubernetes-sigs/azuredisk-csi-driver)
// where a user or a tool can see it: volume IDs are the disks' ARM IDs,
// StorageClass parameters and their errors, topology keys, the LUN in the
// publish context, the attach limit of the VM size. Where the CSI spec and
// upstream differ, it follows the spec (OUT_OF_RANGE for an impossible
// size, RESOURCE_EXHAUSTED at the attach limit, unpublish from every node
// when no node is named).
//
// Slipway runs the controller service in-process for its clusters; the
// node service keeps its state in memory and on the paths the CO gives it,
// as there is no real block device behind a simulated VM.
package azuredisk

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/csi/plugin"
	"github.com/slipway-dev/slipway/internal/disks"
)

// DriverName is the driver's CSI name.
const DriverName = "disk.csi.azure.com"

// TopologyKey is the driver's topology segment: "<region>-<zone>" for a
// zonal disk or node, "" for a regional one.
const TopologyKey = "topology.disk.csi.azure.com/zone"

// Version is the upstream release whose behaviour the driver follows.
const Version = "v1.33.0"

// Disks is the disk service the driver provisions and attaches through.
type Disks interface {
	Get(ctx context.Context, id string) (*slipwayv1.Disk, error)
	Put(ctx context.Context, id string, in *armcompute.Disk, sd *slipwayv1.SystemData) (*slipwayv1.Disk, bool, error)
	Delete(ctx context.Context, id string) error
	Resize(ctx context.Context, id string, sizeGB int32) (int32, error)
	Attach(ctx context.Context, id string, vm disks.VM) (int32, error)
	Detach(ctx context.Context, id, vmID string) error
	GetSnapshot(ctx context.Context, id string) (*slipwayv1.Snapshot, error)
	PutSnapshot(ctx context.Context, id string, in *armcompute.Snapshot) (*slipwayv1.Snapshot, error)
	DeleteSnapshot(ctx context.Context, id string) error
	ListSnapshots(ctx context.Context, sub, group string) ([]slipwayv1.Snapshot, error)
}

// VMs finds the VM behind a node.
type VMs interface {
	// VM returns the node's VM and its zone ("" outside zones); an error
	// wrapping ErrNoVM when the node has none.
	VM(ctx context.Context, node string) (vm disks.VM, zone string, err error)
}

// ErrNoVM says a node has no VM.
var ErrNoVM = errors.New("no such VM")

// Config says where the driver makes disks and how long attaching takes.
type Config struct {
	// Subscription, ResourceGroup and Location are where new disks go: the
	// cluster's node resource group, unless a class names another group.
	Subscription, ResourceGroup, Location string
	// NodeID is the node the node service runs for ("" for a controller
	// alone).
	NodeID string
	// AttachDelay and DetachDelay are how long the VM's update takes.
	AttachDelay, DetachDelay time.Duration
}

// Driver serves the CSI services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	*plugin.Node

	disks Disks
	vms   VMs
	cfg   Config

	// locks makes concurrent calls for one volume answer ABORTED, as
	// the spec asks, rather than interleave.
	locks sync.Map
}

// New returns a driver.
func New(d Disks, vms VMs, cfg Config) *Driver {
	drv := &Driver{disks: d, vms: vms, cfg: cfg}
	drv.Node = plugin.NewNode(drv.capacity, true)
	return drv
}

// capacity is a disk's size in bytes, for the node service.
func (d *Driver) capacity(ctx context.Context, id string) (int64, error) {
	disk, err := d.disks.Get(ctx, id)
	if err != nil {
		return 0, grpcError(err)
	}
	m, err := disks.Model(disk)
	if err != nil {
		return 0, err
	}
	return int64(*m.Properties.DiskSizeGB) * gib, nil
}

func (d *Driver) lock(id string) (func(), error) {
	if _, busy := d.locks.LoadOrStore(strings.ToLower(id), struct{}{}); busy {
		return nil, status.Errorf(codes.Aborted, "an operation on volume %s is already in progress", id)
	}
	return func() { d.locks.Delete(strings.ToLower(id)) }, nil
}

// GetPluginInfo implements csi.IdentityServer.
func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: DriverName, VendorVersion: Version}, nil
}

// GetPluginCapabilities implements csi.IdentityServer.
func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	svc := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		svc(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		svc(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

// Probe implements csi.IdentityServer.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// ControllerGetCapabilities implements csi.ControllerServer.
func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return plugin.ControllerCapabilities(
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
	), nil
}

// checkCapabilities accepts what a disk can be: one node's, as a mounted
// filesystem or a raw block device.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range caps {
		if c.GetBlock() == nil && c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "a volume capability must name an access type, block or mount")
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		default:
			return status.Errorf(codes.InvalidArgument, "access mode %s is not supported: an Azure disk attaches to one node at a time", c.GetAccessMode().GetMode())
		}
	}
	return nil
}

// params are the StorageClass parameters the driver understands.
type params struct {
	sku                       armcompute.DiskStorageAccountTypes
	cachingMode, fsType       string
	group, sub, location      string
	tags                      map[string]*string
	networkAccessPolicy       string
	publicNetworkAccess       string
	iops, mbps                *int64
	maxShares                 *int32
	diskEncryptionSet, encTyp string
}

// knownParams are accepted; those mapped to nothing change nothing in a
// simulated disk (attach-time tuning, deprecated keys).
var knownParams = map[string]bool{
	"skuname": true, "storageaccounttype": true, "kind": true, "cachingmode": true, "fstype": true,
	"csi.storage.k8s.io/fstype": true, "resourcegroup": true, "subscriptionid": true, "location": true,
	"tags": true, "networkaccesspolicy": true, "publicnetworkaccess": true, "diskaccessid": true,
	"diskiopsreadwrite": true, "diskmbpsreadwrite": true, "logicalsectorsize": true, "maxshares": true,
	"diskencryptionsetid": true, "diskencryptiontype": true, "writeacceleratorenabled": true,
	"enablebursting": true, "enableperformanceplus": true, "perfprofile": true, "zoned": true,
	"enableasyncattach": true, "attachdiskinitialdelay": true, "diskname": true, "tagvaluedelimiter": true,
	"csi.storage.k8s.io/pvc/name": true, "csi.storage.k8s.io/pvc/namespace": true, "csi.storage.k8s.io/pv/name": true,
}

func (d *Driver) parseParams(in map[string]string) (*params, error) {
	p := &params{sku: armcompute.DiskStorageAccountTypesStandardSSDLRS, cachingMode: "ReadOnly", fsType: "ext4",
		group: d.cfg.ResourceGroup, sub: d.cfg.Subscription, location: d.cfg.Location,
		tags: map[string]*string{"k8s-azure-created-by": to.Ptr("kubernetes-azure-dd")}, networkAccessPolicy: "DenyAll", publicNetworkAccess: "Disabled"}
	delim := ","
	if v, ok := plugin.Param(in, "tagValueDelimiter"); ok && v != "" {
		delim = v
	}
	for k, v := range in {
		key := strings.ToLower(k)
		if !knownParams[key] {
			return nil, status.Errorf(codes.InvalidArgument, "invalid parameter %s in storage class", k)
		}
		switch key {
		case "skuname", "storageaccounttype":
			sku, ok := normalizeSKU(v)
			if !ok {
				return nil, status.Errorf(codes.InvalidArgument, "azureDisk - %s is not supported sku/storageaccounttype. Supported values are %v", v, armcompute.PossibleDiskStorageAccountTypesValues())
			}
			p.sku = sku
		case "kind":
			if v != "" && !strings.EqualFold(v, "managed") {
				return nil, status.Errorf(codes.InvalidArgument, "invalid kind %q: only managed disks are supported", v)
			}
		case "cachingmode":
			switch strings.ToLower(v) {
			case "none", "readonly", "readwrite":
				p.cachingMode = v
			default:
				return nil, status.Errorf(codes.InvalidArgument, "azureDisk - %s is not supported cachingmode. Supported values are [None ReadOnly ReadWrite]", v)
			}
		case "fstype", "csi.storage.k8s.io/fstype":
			p.fsType = strings.ToLower(v)
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
		case "tags":
			if err := plugin.Tags(v, delim, p.tags); err != nil {
				return nil, err
			}
		case "networkaccesspolicy":
			p.networkAccessPolicy = v
		case "publicnetworkaccess":
			p.publicNetworkAccess = v
		case "diskiopsreadwrite", "diskmbpsreadwrite":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return nil, status.Errorf(codes.InvalidArgument, "%s %q is not a positive integer", k, v)
			}
			if key == "diskiopsreadwrite" {
				p.iops = &n
			} else {
				p.mbps = &n
			}
		case "maxshares":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, status.Errorf(codes.InvalidArgument, "parse %s failed with error: maxShares must be a positive integer", v)
			}
			p.maxShares = to.Ptr(int32(n))
		case "diskencryptionsetid":
			p.diskEncryptionSet = v
		case "diskencryptiontype":
			p.encTyp = v
		case "csi.storage.k8s.io/pvc/name":
			p.tags["kubernetes.io-created-for-pvc-name"] = to.Ptr(v)
		case "csi.storage.k8s.io/pvc/namespace":
			p.tags["kubernetes.io-created-for-pvc-namespace"] = to.Ptr(v)
		case "csi.storage.k8s.io/pv/name":
			p.tags["kubernetes.io-created-for-pv-name"] = to.Ptr(v)
		}
	}
	ultra := p.sku == armcompute.DiskStorageAccountTypesUltraSSDLRS || p.sku == armcompute.DiskStorageAccountTypesPremiumV2LRS
	if ultra && !strings.EqualFold(p.cachingMode, "None") {
		if _, set := plugin.Param(in, "cachingmode"); set {
			return nil, status.Errorf(codes.InvalidArgument, "cachingMode %s is not supported for %s", p.cachingMode, p.sku)
		}
		p.cachingMode = "None"
	}
	if (p.iops != nil || p.mbps != nil) && !ultra {
		return nil, status.Errorf(codes.InvalidArgument, "diskIOPSReadWrite and diskMBpsReadWrite are only for UltraSSD_LRS and PremiumV2_LRS, not %s", p.sku)
	}
	return p, nil
}

func normalizeSKU(v string) (armcompute.DiskStorageAccountTypes, bool) {
	if v == "" {
		return armcompute.DiskStorageAccountTypesStandardSSDLRS, true
	}
	for _, s := range armcompute.PossibleDiskStorageAccountTypesValues() {
		if strings.EqualFold(string(s), v) {
			return s, true
		}
	}
	return "", false
}

func zrs(sku armcompute.DiskStorageAccountTypes) bool { return strings.HasSuffix(string(sku), "_ZRS") }

const gib = int64(1) << 30

// sizeGiB is the disk size a capacity range asks for: required bytes
// rounded up to whole GiB, at least 1 GiB, within the limit.
func sizeGiB(r *csi.CapacityRange) (int32, error) {
	required, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	if required < 0 || limit < 0 {
		return 0, status.Error(codes.InvalidArgument, "capacity range must not be negative")
	}
	size := max((required+gib-1)/gib, 1)
	if limit > 0 && size*gib > limit {
		if required > limit {
			return 0, status.Errorf(codes.InvalidArgument, "required bytes %d are more than the limit %d", required, limit)
		}
		return 0, status.Errorf(codes.OutOfRange, "a disk is sized in whole GiB: %d GiB is over the limit of %d bytes", size, limit)
	}
	if size > 65536 {
		return 0, status.Errorf(codes.OutOfRange, "a managed disk is at most 65536 GiB, not %d", size)
	}
	return int32(size), nil
}

// diskName is the ARM name of the disk for a CSI volume name: the name
// itself if Azure allows it, else a stable name derived from it.
func diskName(name string) string {
	if len(name) > 80 {
		name = name[:80]
	}
	if armid.ValidName(name, 80) {
		return name
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("pvc-disk-%016x", h.Sum64())
}

// zoneOf picks the zone of a new disk from the topology the CO asks for:
// preferred first, then requisite. It returns the topology segment value
// ("<region>-<zone>" or "").
func zoneOf(req *csi.TopologyRequirement) (string, bool) {
	for _, list := range [][]*csi.Topology{req.GetPreferred(), req.GetRequisite()} {
		for _, t := range list {
			if v, ok := t.GetSegments()[TopologyKey]; ok {
				return v, true
			}
		}
	}
	return "", false
}

// zoneNumber is the Azure zone ("1") of a segment value ("eastus-1").
func zoneNumber(segment string) string {
	if i := strings.LastIndex(segment, "-"); i >= 0 {
		return segment[i+1:]
	}
	return segment
}

// CreateVolume implements csi.ControllerServer: it makes a managed disk.
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name is required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	p, err := d.parseParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	size, err := sizeGiB(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	name := diskName(req.GetName())
	unlock, err := d.lock(name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	id := armid.Disk(p.sub, p.group, name)

	disk := &armcompute.Disk{
		Location: to.Ptr(p.location),
		SKU:      &armcompute.DiskSKU{Name: to.Ptr(p.sku)},
		Tags:     p.tags,
		Properties: &armcompute.DiskProperties{
			CreationData:        &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionEmpty)},
			DiskSizeGB:          &size,
			NetworkAccessPolicy: to.Ptr(armcompute.NetworkAccessPolicy(p.networkAccessPolicy)),
			PublicNetworkAccess: to.Ptr(armcompute.PublicNetworkAccess(p.publicNetworkAccess)),
			DiskIOPSReadWrite:   p.iops,
			DiskMBpsReadWrite:   p.mbps,
			MaxShares:           p.maxShares,
		},
	}
	if p.diskEncryptionSet != "" {
		typ := armcompute.EncryptionTypeEncryptionAtRestWithCustomerKey
		if p.encTyp != "" {
			typ = armcompute.EncryptionType(p.encTyp)
		}
		disk.Properties.Encryption = &armcompute.Encryption{DiskEncryptionSetID: &p.diskEncryptionSet, Type: &typ}
	}
	segment, zonal := zoneOf(req.GetAccessibilityRequirements())
	if zonal && segment != "" && !zrs(p.sku) {
		disk.Zones = []*string{to.Ptr(zoneNumber(segment))}
	}
	var source *csi.VolumeContentSource
	if src := req.GetVolumeContentSource(); src != nil {
		var srcID string
		if snap := src.GetSnapshot(); snap != nil {
			srcID = snap.GetSnapshotId()
			if _, ok := parseSnapshotID(srcID); !ok {
				return nil, status.Errorf(codes.NotFound, "source snapshot %s not found", srcID)
			}
			sn, err := d.disks.GetSnapshot(ctx, srcID)
			if err != nil {
				return nil, grpcError(err)
			}
			m, err := disks.SnapshotModel(sn)
			if err != nil {
				return nil, err
			}
			if *m.Properties.DiskSizeGB > size {
				return nil, status.Errorf(codes.InvalidArgument, "the snapshot is %d GiB, more than the %d GiB asked for", *m.Properties.DiskSizeGB, size)
			}
		} else {
			srcID = src.GetVolume().GetVolumeId()
			if _, _, _, ok := armid.ParseDisk(srcID); !ok {
				return nil, status.Errorf(codes.NotFound, "source volume %s not found", srcID)
			}
			if _, err := d.disks.Get(ctx, srcID); err != nil {
				return nil, grpcError(err)
			}
		}
		disk.Properties.CreationData = &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionCopy), SourceResourceID: &srcID}
		source = src
	}

	if existing, err := d.disks.Get(ctx, id); err == nil {
		m, err := disks.Model(existing)
		if err != nil {
			return nil, err
		}
		if got := *m.Properties.DiskSizeGB; got != size {
			return nil, status.Errorf(codes.AlreadyExists, "the disk %s exists with %d GiB, not %d GiB", name, got, size)
		}
		return d.volume(existing.Spec.ResourceID, size, p, m.Zones, source), nil
	} else if !errors.Is(err, disks.ErrNotFound) {
		return nil, grpcError(err)
	}
	made, _, err := d.disks.Put(ctx, id, disk, nil)
	if err != nil {
		return nil, grpcError(err)
	}
	m, err := disks.Model(made)
	if err != nil {
		return nil, err
	}
	return d.volume(made.Spec.ResourceID, *m.Properties.DiskSizeGB, p, m.Zones, source), nil
}

func (d *Driver) volume(id string, size int32, p *params, zones []*string, source *csi.VolumeContentSource) *csi.CreateVolumeResponse {
	v := &csi.Volume{
		VolumeId:      id,
		CapacityBytes: int64(size) * gib,
		VolumeContext: map[string]string{
			"skuname": string(p.sku), "cachingmode": p.cachingMode, "fstype": p.fsType,
			"requestedsizegib": strconv.Itoa(int(size)),
		},
		ContentSource: source,
	}
	switch {
	case len(zones) > 0:
		v.AccessibleTopology = []*csi.Topology{{Segments: map[string]string{TopologyKey: p.location + "-" + *zones[0]}}}
	case zrs(p.sku):
		// A zone-redundant disk attaches in every zone of its region.
		for _, z := range []string{"1", "2", "3"} {
			v.AccessibleTopology = append(v.AccessibleTopology, &csi.Topology{Segments: map[string]string{TopologyKey: p.location + "-" + z}})
		}
		v.AccessibleTopology = append(v.AccessibleTopology, &csi.Topology{Segments: map[string]string{TopologyKey: ""}})
	default:
		v.AccessibleTopology = []*csi.Topology{{Segments: map[string]string{TopologyKey: ""}}}
	}
	return &csi.CreateVolumeResponse{Volume: v}
}

// grpcError maps the disk service's errors to CSI's codes.
func grpcError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, disks.ErrNotFound), errors.Is(err, ErrNoVM):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, disks.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, disks.ErrAttached), errors.Is(err, disks.ErrAttachedElsewhere):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, disks.ErrTooManyDisks):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// DeleteVolume implements csi.ControllerServer.
func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if _, _, _, ok := armid.ParseDisk(id); !ok {
		return &csi.DeleteVolumeResponse{}, nil // not ours, so gone
	}
	unlock, err := d.lock(id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := d.disks.Delete(ctx, id); err != nil {
		return nil, grpcError(err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// ControllerPublishVolume implements csi.ControllerServer: it attaches the
// disk to the node's VM.
func (d *Driver) ControllerPublishVolume(ctx context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case node == "":
		return nil, status.Error(codes.InvalidArgument, "node ID is required")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	if _, _, _, ok := armid.ParseDisk(id); !ok {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", id)
	}
	disk, err := d.disks.Get(ctx, id)
	if err != nil {
		return nil, grpcError(err)
	}
	vm, _, err := d.vms.VM(ctx, node)
	if err != nil {
		return nil, grpcError(err)
	}
	if disk.Status.ManagedBy != "" && strings.EqualFold(disk.Status.ManagedBy, vm.ID) && disk.Status.LUN != nil {
		return publishContext(*disk.Status.LUN), nil
	}
	lun, err := d.disks.Attach(ctx, id, vm)
	if err != nil {
		return nil, grpcError(err)
	}
	if err := sleep(ctx, d.cfg.AttachDelay); err != nil {
		return nil, grpcError(err)
	}
	return publishContext(lun), nil
}

func publishContext(lun int32) *csi.ControllerPublishVolumeResponse {
	return &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{"LUN": strconv.Itoa(int(lun))}}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ControllerUnpublishVolume implements csi.ControllerServer: it detaches
// the disk from the node's VM, or from any VM when no node is named.
func (d *Driver) ControllerUnpublishVolume(ctx context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if _, _, _, ok := armid.ParseDisk(id); !ok {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	disk, err := d.disks.Get(ctx, id)
	if errors.Is(err, disks.ErrNotFound) {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	if err != nil {
		return nil, grpcError(err)
	}
	vmID := ""
	if node != "" {
		if !strings.EqualFold(disk.Status.Node, node) {
			return &csi.ControllerUnpublishVolumeResponse{}, nil // not attached there
		}
		vmID = disk.Status.ManagedBy
	}
	if disk.Status.ManagedBy == "" {
		return &csi.ControllerUnpublishVolumeResponse{}, nil
	}
	if err := sleep(ctx, d.cfg.DetachDelay); err != nil {
		return nil, grpcError(err)
	}
	if err := d.disks.Detach(ctx, id, vmID); err != nil {
		return nil, grpcError(err)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// ValidateVolumeCapabilities implements csi.ControllerServer.
func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	if _, _, _, ok := armid.ParseDisk(id); !ok {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", id)
	}
	if _, err := d.disks.Get(ctx, id); err != nil {
		return nil, grpcError(err)
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

// ControllerExpandVolume implements csi.ControllerServer: it grows the
// disk; the filesystem on it grows on the node.
func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	}
	if req.GetCapacityRange() == nil {
		return nil, status.Error(codes.InvalidArgument, "capacity range is required")
	}
	size, err := sizeGiB(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	if _, _, _, ok := armid.ParseDisk(id); !ok {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", id)
	}
	got, err := d.disks.Resize(ctx, id, size)
	if err != nil {
		return nil, grpcError(err)
	}
	block := req.GetVolumeCapability().GetBlock() != nil
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: int64(got) * gib, NodeExpansionRequired: !block}, nil
}

// NodeGetInfo implements csi.NodeServer.
func (d *Driver) NodeGetInfo(ctx context.Context, _ *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	vm, zone, err := d.vms.VM(ctx, d.cfg.NodeID)
	if err != nil {
		return nil, grpcError(err)
	}
	return &csi.NodeGetInfoResponse{
		NodeId:             d.cfg.NodeID,
		MaxVolumesPerNode:  int64(vm.MaxDataDisks),
		AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: zone}},
	}, nil
}

// NodeGetCapabilities implements csi.NodeServer.
func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return plugin.NodeCapabilities(
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	), nil
}

// NodeExpandVolume implements csi.NodeServer: the filesystem takes the
// disk's new size.
func (d *Driver) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" || req.GetVolumePath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID and volume path are required")
	}
	size, err := d.capacity(ctx, id)
	if err != nil {
		return nil, err
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}

// parseSnapshotID checks a snapshot's ARM ID and returns its group.
func parseSnapshotID(id string) (group string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(id, "/"), "/")
	if len(segs) != 8 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[5], "Microsoft.Compute") || !strings.EqualFold(segs[6], "snapshots") {
		return "", false
	}
	return segs[3], true
}

// knownSnapshotParams are the VolumeSnapshotClass parameters accepted.
var knownSnapshotParams = map[string]bool{
	"incremental": true, "resourcegroup": true, "subscriptionid": true, "location": true, "tags": true,
	"dataaccessauthmode": true, "networkaccesspolicy": true, "publicnetworkaccess": true, "instantaccessdurationminutes": true,
	"csi.storage.k8s.io/volumesnapshot/name": true, "csi.storage.k8s.io/volumesnapshot/namespace": true,
	"csi.storage.k8s.io/volumesnapshotcontent/name": true,
}

// CreateSnapshot implements csi.ControllerServer: an incremental snapshot
// of the disk, in the disk's group unless the class names another.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot name is required")
	}
	srcID := req.GetSourceVolumeId()
	if srcID == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume ID is required")
	}
	sub, group, _, ok := armid.ParseDisk(srcID)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "source volume %s not found", srcID)
	}
	tags := map[string]*string{"k8s-azure-created-by": to.Ptr("kubernetes-azure-dd"), "source_volume_id": to.Ptr(srcID)}
	incremental := true
	for k, v := range req.GetParameters() {
		key := strings.ToLower(k)
		if !knownSnapshotParams[key] {
			return nil, status.Errorf(codes.InvalidArgument, "invalid parameter %s in VolumeSnapshotClass", k)
		}
		switch key {
		case "incremental":
			incremental = !strings.EqualFold(v, "false")
		case "resourcegroup":
			if v != "" {
				group = v
			}
		case "subscriptionid":
			if v != "" {
				sub = v
			}
		case "csi.storage.k8s.io/volumesnapshot/name":
			tags["kubernetes.io-created-for-volumesnapshot-name"] = to.Ptr(v)
		case "csi.storage.k8s.io/volumesnapshot/namespace":
			tags["kubernetes.io-created-for-volumesnapshot-namespace"] = to.Ptr(v)
		case "csi.storage.k8s.io/volumesnapshotcontent/name":
			tags["kubernetes.io-created-for-volumesnapshotcontent-name"] = to.Ptr(v)
		}
	}
	name := diskName(req.GetName())
	unlock, err := d.lock("snapshot/" + name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	id := "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Compute/snapshots/" + name
	sn, err := d.disks.PutSnapshot(ctx, id, &armcompute.Snapshot{
		Location: to.Ptr(d.cfg.Location), Tags: tags,
		Properties: &armcompute.SnapshotProperties{Incremental: &incremental,
			CreationData: &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionCopy), SourceResourceID: &srcID}},
	})
	if errors.Is(err, disks.ErrExists) {
		return nil, status.Error(codes.AlreadyExists, err.Error())
	}
	if err != nil {
		return nil, grpcError(err)
	}
	out, err := csiSnapshot(sn)
	if err != nil {
		return nil, err
	}
	return &csi.CreateSnapshotResponse{Snapshot: out}, nil
}

func csiSnapshot(sn *slipwayv1.Snapshot) (*csi.Snapshot, error) {
	m, err := disks.SnapshotModel(sn)
	if err != nil {
		return nil, err
	}
	return &csi.Snapshot{
		SnapshotId: sn.Spec.ResourceID, SourceVolumeId: *m.Properties.CreationData.SourceResourceID,
		SizeBytes: int64(*m.Properties.DiskSizeGB) * gib, CreationTime: timestamppb.New(sn.Spec.TimeCreated.Time), ReadyToUse: true,
	}, nil
}

// DeleteSnapshot implements csi.ControllerServer.
func (d *Driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot ID is required")
	}
	if _, ok := parseSnapshotID(id); !ok {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err := d.disks.DeleteSnapshot(ctx, id); err != nil {
		return nil, grpcError(err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots implements csi.ControllerServer: the snapshots of the
// driver's group, or the one asked for, or those of one disk; pages by
// index.
func (d *Driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	var list []slipwayv1.Snapshot
	if id := req.GetSnapshotId(); id != "" {
		if _, ok := parseSnapshotID(id); !ok {
			return &csi.ListSnapshotsResponse{}, nil
		}
		sn, err := d.disks.GetSnapshot(ctx, id)
		if errors.Is(err, disks.ErrNotFound) {
			return &csi.ListSnapshotsResponse{}, nil
		}
		if err != nil {
			return nil, grpcError(err)
		}
		list = append(list, *sn)
	} else {
		all, err := d.disks.ListSnapshots(ctx, d.cfg.Subscription, "")
		if err != nil {
			return nil, grpcError(err)
		}
		list = all
	}
	slices.SortFunc(list, func(a, b slipwayv1.Snapshot) int { return strings.Compare(a.Spec.ResourceID, b.Spec.ResourceID) })
	var entries []*csi.ListSnapshotsResponse_Entry
	for i := range list {
		s, err := csiSnapshot(&list[i])
		if err != nil {
			return nil, err
		}
		if src := req.GetSourceVolumeId(); src != "" && !strings.EqualFold(src, s.SourceVolumeId) {
			continue
		}
		entries = append(entries, &csi.ListSnapshotsResponse_Entry{Snapshot: s})
	}
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(entries) {
			return nil, status.Errorf(codes.Aborted, "starting token %q is not valid", tok)
		}
		start = n
	}
	end := len(entries)
	if m := int(req.GetMaxEntries()); m > 0 && start+m < end {
		end = start + m
	}
	resp := &csi.ListSnapshotsResponse{Entries: entries[start:end]}
	if end < len(entries) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}

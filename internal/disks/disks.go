// Package disks is Slipway's managed-disk service: Microsoft.Compute/disks
// as Azure keeps them, and their attachment to VMs. The Compute provider
// serves it through ARM and the Azure Disk CSI driver provisions, attaches
// and detaches through it, so the rules (a disk on one VM at a time, a LUN
// free on that VM, the size's data-disk limit, no deleting an attached
// disk) live in one place and ARM always shows what the clusters see.
//
// Disks are Disk objects in the management plane. Attachments to one VM
// are serialised in this process, which is what keeps two attaches from
// taking the same LUN or passing the limit together.
package disks

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// Errors the service answers with; callers map them to ARM's codes or
// CSI's.
var (
	ErrNotFound = errors.New("disk not found")
	// ErrInvalid is a request Azure would refuse as invalid.
	ErrInvalid = errors.New("invalid disk request")
	// ErrAttached refuses an operation on a disk attached to a VM.
	ErrAttached = errors.New("disk is attached")
	// ErrAttachedElsewhere refuses attaching a disk that another VM holds.
	ErrAttachedElsewhere = errors.New("disk is attached to another VM")
	// ErrTooManyDisks refuses an attach past the VM size's limit.
	ErrTooManyDisks = errors.New("too many data disks")
	// ErrExists refuses making a disk under a name in use with other
	// properties.
	ErrExists = errors.New("disk exists")
)

// LabelVM indexes disks by the VM they are attached to.
const LabelVM = "slipway.dev/vm"

// A simulated disk has no blocks; what a workload writes on it is a
// marker, as the OS disk's is (compute.OSDiskMarkerAnnotation), kept
// with the disk itself (DiskSpec.Content).
const (
	// MarkerAnnotation on a running pod is what it writes on each disk
	// it mounts read-write.
	MarkerAnnotation = "slipway.dev/data-disk-marker"
	// ContentsAnnotation on a pod is what it found on its disks when
	// they were mounted: a JSON object from volume name to marker ("" for
	// a disk nothing was written on).
	ContentsAnnotation = "slipway.dev/data-disk-contents"
)

// Size limits of managed disks, in GiB.
const (
	maxSizeGB      = 32767
	maxSizeGBUltra = 65536
)

// SKUs a managed disk may have.
var skus = []armcompute.DiskStorageAccountTypes{
	armcompute.DiskStorageAccountTypesStandardLRS, armcompute.DiskStorageAccountTypesPremiumLRS,
	armcompute.DiskStorageAccountTypesStandardSSDLRS, armcompute.DiskStorageAccountTypesUltraSSDLRS,
	armcompute.DiskStorageAccountTypesPremiumZRS, armcompute.DiskStorageAccountTypesStandardSSDZRS,
	armcompute.DiskStorageAccountTypesPremiumV2LRS,
}

// Service keeps the managed disks.
type Service struct {
	client client.Client
	now    func() time.Time

	mu  sync.Mutex
	vms map[string]*sync.Mutex // per VM ID, lower-cased
}

// New returns the service over the management plane's client.
func New(c client.Client) *Service {
	return &Service{client: c, now: time.Now, vms: map[string]*sync.Mutex{}}
}

func (s *Service) vmLock(vmID string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(vmID)
	m := s.vms[key]
	if m == nil {
		m = &sync.Mutex{}
		s.vms[key] = m
	}
	return m
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Get returns a disk by its ID.
func (s *Service) Get(ctx context.Context, id string) (*slipwayv1.Disk, error) {
	d := &slipwayv1.Disk{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id)}, d)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading disk %s: %w", id, err)
	}
	return d, nil
}

// List returns the disks of a subscription, or of one of its groups if
// group is not empty.
func (s *Service) List(ctx context.Context, sub, group string) ([]slipwayv1.Disk, error) {
	labels := client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub)}
	if group != "" {
		labels[slipwayv1.LabelResourceGroup] = armid.Label(group)
	}
	var list slipwayv1.DiskList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), labels); err != nil {
		return nil, fmt.Errorf("listing disks: %w", err)
	}
	return list.Items, nil
}

// Model is a disk as stored: what the user wrote, read-only fields left
// out.
func Model(d *slipwayv1.Disk) (*armcompute.Disk, error) {
	m := &armcompute.Disk{}
	if err := json.Unmarshal(d.Spec.Resource.Raw, m); err != nil {
		return nil, fmt.Errorf("disk %s: stored model: %w", d.Spec.ResourceID, err)
	}
	if m.Properties == nil {
		m.Properties = &armcompute.DiskProperties{}
	}
	return m, nil
}

// Put creates a disk, or updates one as a PUT replaces it. The returned
// bool says whether it was created.
func (s *Service) Put(ctx context.Context, id string, in *armcompute.Disk, sd *slipwayv1.SystemData) (*slipwayv1.Disk, bool, error) {
	sub, group, _, ok := armid.ParseDisk(id)
	if !ok {
		return nil, false, invalid("%q is not a disk's resource ID", id)
	}
	old, err := s.Get(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	if old == nil {
		content, err := s.validateNew(ctx, in)
		if err != nil {
			return nil, false, err
		}
		d, err := s.create(ctx, id, sub, group, in, sd, content)
		return d, true, err
	}
	prev, err := Model(old)
	if err != nil {
		return nil, false, err
	}
	if err := validateUpdate(prev, in, old.Status.ManagedBy != ""); err != nil {
		return nil, false, err
	}
	// Creation data and location never change after the disk is made.
	in.Location, in.Properties.CreationData = prev.Location, prev.Properties.CreationData
	if in.Properties.DiskSizeGB == nil {
		in.Properties.DiskSizeGB = prev.Properties.DiskSizeGB
	}
	old.Spec.Resource = raw(stripped(in))
	old.Spec.SystemData = sd
	if err := s.client.Update(ctx, old); err != nil {
		return nil, false, fmt.Errorf("updating disk %s: %w", id, err)
	}
	return old, false, nil
}

// Update applies a PATCH (armcompute.DiskUpdate) to a disk.
func (s *Service) Update(ctx context.Context, id string, patch *armcompute.DiskUpdate, sd *slipwayv1.SystemData) (*slipwayv1.Disk, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	m, err := Model(d)
	if err != nil {
		return nil, err
	}
	next := *m
	props := *m.Properties
	next.Properties = &props
	if patch.Tags != nil {
		next.Tags = patch.Tags
	}
	if patch.SKU != nil {
		next.SKU = patch.SKU
	}
	if p := patch.Properties; p != nil {
		if p.DiskSizeGB != nil {
			props.DiskSizeGB = p.DiskSizeGB
		}
		if p.NetworkAccessPolicy != nil {
			props.NetworkAccessPolicy = p.NetworkAccessPolicy
		}
		if p.PublicNetworkAccess != nil {
			props.PublicNetworkAccess = p.PublicNetworkAccess
		}
		if p.DiskIOPSReadWrite != nil {
			props.DiskIOPSReadWrite = p.DiskIOPSReadWrite
		}
		if p.DiskMBpsReadWrite != nil {
			props.DiskMBpsReadWrite = p.DiskMBpsReadWrite
		}
		if p.MaxShares != nil {
			props.MaxShares = p.MaxShares
		}
	}
	if err := validateUpdate(m, &next, d.Status.ManagedBy != ""); err != nil {
		return nil, err
	}
	d.Spec.Resource = raw(stripped(&next))
	if sd != nil {
		d.Spec.SystemData = sd
	}
	if err := s.client.Update(ctx, d); err != nil {
		return nil, fmt.Errorf("updating disk %s: %w", id, err)
	}
	return d, nil
}

// Resize grows a disk to at least sizeGB and returns its size; a disk
// already that large is left alone, as the CSI driver's expand does.
func (s *Service) Resize(ctx context.Context, id string, sizeGB int32) (int32, error) {
	d, err := s.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	m, err := Model(d)
	if err != nil {
		return 0, err
	}
	if cur := to32(m.Properties.DiskSizeGB); cur >= sizeGB {
		return cur, nil
	}
	_, err = s.Update(ctx, id, &armcompute.DiskUpdate{Properties: &armcompute.DiskUpdateProperties{DiskSizeGB: &sizeGB}}, nil)
	return sizeGB, err
}

func to32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func (s *Service) create(ctx context.Context, id, sub, group string, in *armcompute.Disk, sd *slipwayv1.SystemData, content string) (*slipwayv1.Disk, error) {
	d := &slipwayv1.Disk{
		ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id), Labels: map[string]string{
			slipwayv1.LabelSubscription:  armid.Label(sub),
			slipwayv1.LabelResourceGroup: armid.Label(group),
		}},
		Spec: slipwayv1.DiskSpec{ResourceID: id, Resource: raw(stripped(in)), UniqueID: newGUID(), TimeCreated: metav1.NewTime(s.now()), SystemData: sd, Content: content},
	}
	if err := s.client.Create(ctx, d); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Made by a concurrent PUT a moment ago: ARM would have
			// serialised the two; the second is an update.
			return s.Get(ctx, id)
		}
		return nil, fmt.Errorf("creating disk %s: %w", id, err)
	}
	return d, nil
}

// validateNew applies Azure's rules to a new disk and fills in what Azure
// defaults. It returns what the new disk holds: a copy's source's content.
func (s *Service) validateNew(ctx context.Context, in *armcompute.Disk) (content string, err error) {
	if in.Location == nil || *in.Location == "" {
		return "", invalid("location is required")
	}
	if in.Properties == nil || in.Properties.CreationData == nil || in.Properties.CreationData.CreateOption == nil {
		return "", invalid("properties.creationData.createOption is required")
	}
	if in.SKU == nil || in.SKU.Name == nil {
		in.SKU = &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypesStandardLRS)}
	}
	if !slices.Contains(skus, *in.SKU.Name) {
		return "", invalid("sku.name %q is not one of %v", *in.SKU.Name, skus)
	}
	cd := in.Properties.CreationData
	switch *cd.CreateOption {
	case armcompute.DiskCreateOptionEmpty:
		if in.Properties.DiskSizeGB == nil {
			return "", invalid("properties.diskSizeGB is required for an empty disk")
		}
	case armcompute.DiskCreateOptionCopy:
		if cd.SourceResourceID == nil {
			return "", invalid("properties.creationData.sourceResourceId is required to copy a disk")
		}
		src, err := s.source(ctx, *cd.SourceResourceID)
		if err != nil {
			return "", err
		}
		if in.Properties.DiskSizeGB == nil {
			in.Properties.DiskSizeGB = &src.sizeGB
		} else if *in.Properties.DiskSizeGB < src.sizeGB {
			return "", invalid("properties.diskSizeGB %d is smaller than the source disk's %d GB", *in.Properties.DiskSizeGB, src.sizeGB)
		}
		cd.SourceUniqueID = &src.uniqueID
		content = src.content
	default:
		return "", invalid("createOption %q is not supported by Slipway; use Empty or Copy", *cd.CreateOption)
	}
	return content, checkSize(in)
}

// copySource is what a copy needs of its source.
type copySource struct {
	sizeGB            int32
	uniqueID, content string
}

// source is what a disk is copied from: a disk or a snapshot.
func (s *Service) source(ctx context.Context, id string) (copySource, error) {
	if strings.Contains(strings.ToLower(id), "/providers/microsoft.compute/snapshots/") {
		sn, err := s.GetSnapshot(ctx, id)
		if err != nil {
			return copySource{}, err
		}
		m, err := SnapshotModel(sn)
		if err != nil {
			return copySource{}, err
		}
		return copySource{to32(m.Properties.DiskSizeGB), sn.Spec.UniqueID, sn.Spec.Content}, nil
	}
	src, err := s.Get(ctx, id)
	if err != nil {
		return copySource{}, err
	}
	m, err := Model(src)
	if err != nil {
		return copySource{}, err
	}
	return copySource{to32(m.Properties.DiskSizeGB), src.Spec.UniqueID, src.Spec.Content}, nil
}

// Write records what a pod wrote on a disk (see MarkerAnnotation).
func (s *Service) Write(ctx context.Context, id, content string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if d.Spec.Content == content {
			return nil
		}
		d.Spec.Content = content
		return s.client.Update(ctx, d)
	})
}

func checkSize(in *armcompute.Disk) error {
	size := to32(in.Properties.DiskSizeGB)
	limit := int32(maxSizeGB)
	if n := *in.SKU.Name; n == armcompute.DiskStorageAccountTypesUltraSSDLRS || n == armcompute.DiskStorageAccountTypesPremiumV2LRS {
		limit = maxSizeGBUltra
	}
	if size < 1 || size > limit {
		return invalid("properties.diskSizeGB %d is out of range: a %s disk is 1 to %d GB", size, *in.SKU.Name, limit)
	}
	return nil
}

// validateUpdate checks a change of a disk: it may grow, never shrink, and
// keeps its zones.
func validateUpdate(prev, next *armcompute.Disk, attached bool) error {
	if next.Properties == nil {
		next.Properties = &armcompute.DiskProperties{}
	}
	if next.SKU == nil {
		next.SKU = prev.SKU
	}
	if !slices.Contains(skus, *next.SKU.Name) {
		return invalid("sku.name %q is not one of %v", *next.SKU.Name, skus)
	}
	if next.Properties.DiskSizeGB == nil {
		next.Properties.DiskSizeGB = prev.Properties.DiskSizeGB
	}
	if to32(next.Properties.DiskSizeGB) < to32(prev.Properties.DiskSizeGB) {
		return invalid("Disk size can only be increased: %d GB is smaller than the disk's %d GB", *next.Properties.DiskSizeGB, to32(prev.Properties.DiskSizeGB))
	}
	if next.Zones == nil {
		next.Zones = prev.Zones
	}
	if !slices.Equal(zones(next.Zones), zones(prev.Zones)) {
		return invalid("Changing property 'zones' is not allowed")
	}
	if *next.SKU.Name != *prev.SKU.Name && attached {
		return fmt.Errorf("%w: the disk's SKU can only be changed while it is detached", ErrAttached)
	}
	return checkSize(next)
}

func zones(z []*string) []string {
	var out []string
	for _, s := range z {
		out = append(out, *s)
	}
	return out
}

// Delete deletes a disk; an attached disk cannot be deleted, and deleting
// a disk that is gone is not an error.
func (s *Service) Delete(ctx context.Context, id string) error {
	d, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.Status.ManagedBy != "" {
		return fmt.Errorf("%w: Disk %s is attached to VM %s.", ErrAttached, d.Spec.ResourceID, d.Status.ManagedBy)
	}
	// The precondition makes a concurrent attach lose: the delete then
	// fails on a stale version rather than removing an attached disk.
	err = s.client.Delete(ctx, d, client.Preconditions{ResourceVersion: &d.ResourceVersion})
	if apierrors.IsConflict(err) {
		return s.Delete(ctx, id)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting disk %s: %w", id, err)
	}
	return nil
}

// DeleteGroup deletes every disk and snapshot of a resource group,
// attached or not: the group is going, with the VMs they are attached to.
func (s *Service) DeleteGroup(ctx context.Context, sub, group string) error {
	snapshots, err := s.ListSnapshots(ctx, sub, group)
	if err != nil {
		return err
	}
	for i := range snapshots {
		if err := s.client.Delete(ctx, &snapshots[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting snapshot %s: %w", snapshots[i].Spec.ResourceID, err)
		}
	}
	list, err := s.List(ctx, sub, group)
	if err != nil {
		return err
	}
	for i := range list {
		if err := s.client.Delete(ctx, &list[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting disk %s: %w", list[i].Spec.ResourceID, err)
		}
	}
	return nil
}

// VM is the machine a disk is attached to.
type VM struct {
	// ID is the VM's ARM ID.
	ID string
	// Node is its Kubernetes node's name.
	Node string
	// MaxDataDisks is its size's data-disk limit.
	MaxDataDisks int
}

// Attach attaches a disk to a VM and returns its LUN there. Attaching a
// disk to the VM that holds it returns its LUN again.
func (s *Service) Attach(ctx context.Context, id string, vm VM) (int32, error) {
	lock := s.vmLock(vm.ID)
	lock.Lock()
	defer lock.Unlock()
	d, err := s.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	if d.Status.ManagedBy != "" {
		if strings.EqualFold(d.Status.ManagedBy, vm.ID) && d.Status.LUN != nil {
			return *d.Status.LUN, nil
		}
		return 0, fmt.Errorf("%w: disk %s is attached to VM %s (node %s)", ErrAttachedElsewhere, d.Spec.ResourceID, d.Status.ManagedBy, d.Status.Node)
	}
	attached, err := s.attachedTo(ctx, vm.ID)
	if err != nil {
		return 0, err
	}
	if len(attached) >= vm.MaxDataDisks {
		return 0, fmt.Errorf("%w: The maximum number of data disks allowed to be attached to a VM of this size is %d.", ErrTooManyDisks, vm.MaxDataDisks)
	}
	lun := freeLUN(attached)
	now := metav1.NewTime(s.now())
	d.Status = slipwayv1.DiskStatus{ManagedBy: vm.ID, Node: vm.Node, LUN: &lun, OwnershipUpdated: &now}
	if err := s.setStatus(ctx, d, vm.ID); err != nil {
		return 0, err
	}
	return lun, nil
}

// freeLUN is the lowest LUN no attached disk uses.
func freeLUN(attached []slipwayv1.Disk) int32 {
	used := map[int32]bool{}
	for _, d := range attached {
		if d.Status.LUN != nil {
			used[*d.Status.LUN] = true
		}
	}
	for lun := int32(0); lun < math.MaxInt32; lun++ {
		if !used[lun] {
			return lun
		}
	}
	return 0
}

// Detach detaches a disk from a VM; empty vmID detaches it from whatever
// holds it. A disk that is gone or attached elsewhere is detached from
// the VM already.
func (s *Service) Detach(ctx context.Context, id, vmID string) error {
	d, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.Status.ManagedBy == "" || (vmID != "" && !strings.EqualFold(d.Status.ManagedBy, vmID)) {
		return nil
	}
	lock := s.vmLock(d.Status.ManagedBy)
	lock.Lock()
	defer lock.Unlock()
	now := metav1.NewTime(s.now())
	d.Status = slipwayv1.DiskStatus{OwnershipUpdated: &now}
	return s.setStatus(ctx, d, "")
}

// AttachedTo lists the disks attached to a VM.
func (s *Service) AttachedTo(ctx context.Context, vmID string) ([]slipwayv1.Disk, error) {
	return s.attachedTo(ctx, vmID)
}

func (s *Service) attachedTo(ctx context.Context, vmID string) ([]slipwayv1.Disk, error) {
	var list slipwayv1.DiskList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{LabelVM: armid.Label(vmID)}); err != nil {
		return nil, fmt.Errorf("listing disks of VM %s: %w", vmID, err)
	}
	// The label is written just before the status; only disks whose
	// status names the VM hold a LUN on it.
	out := list.Items[:0]
	for _, d := range list.Items {
		if strings.EqualFold(d.Status.ManagedBy, vmID) {
			out = append(out, d)
		}
	}
	return out, nil
}

// setStatus records an attachment: the VM label first (so that a VM's
// disks can be listed), then the status.
func (s *Service) setStatus(ctx context.Context, d *slipwayv1.Disk, vmID string) error {
	status := d.Status
	want := ""
	if vmID != "" {
		want = armid.Label(vmID)
	}
	if d.Labels[LabelVM] != want {
		if want == "" {
			delete(d.Labels, LabelVM)
		} else {
			d.Labels[LabelVM] = want
		}
		if err := s.client.Update(ctx, d); err != nil {
			return fmt.Errorf("attaching disk %s: %w", d.Spec.ResourceID, err)
		}
	}
	d.Status = status
	if err := s.client.Status().Update(ctx, d); err != nil {
		return fmt.Errorf("attaching disk %s: %w", d.Spec.ResourceID, err)
	}
	return nil
}

// Render is a disk as ARM returns it, read-only fields included.
func Render(d *slipwayv1.Disk) (*armcompute.Disk, error) {
	m, err := Model(d)
	if err != nil {
		return nil, err
	}
	_, _, name, _ := armid.ParseDisk(d.Spec.ResourceID)
	m.ID, m.Name, m.Type = &d.Spec.ResourceID, &name, to.Ptr(armid.DiskType)
	p := m.Properties
	size := to32(p.DiskSizeGB)
	p.DiskSizeBytes = to.Ptr(int64(size) << 30)
	p.ProvisioningState = to.Ptr("Succeeded")
	p.TimeCreated = to.Ptr(d.Spec.TimeCreated.UTC())
	p.UniqueID = to.Ptr(d.Spec.UniqueID)
	if p.Encryption == nil {
		p.Encryption = &armcompute.Encryption{Type: to.Ptr(armcompute.EncryptionTypeEncryptionAtRestWithPlatformKey)}
	}
	if p.NetworkAccessPolicy == nil {
		p.NetworkAccessPolicy = to.Ptr(armcompute.NetworkAccessPolicyAllowAll)
	}
	if p.PublicNetworkAccess == nil {
		p.PublicNetworkAccess = to.Ptr(armcompute.PublicNetworkAccessEnabled)
	}
	sku := *m.SKU.Name
	m.SKU.Tier = to.Ptr(skuTier(sku))
	if p.Tier == nil && (strings.HasPrefix(string(sku), "Premium_") || strings.HasPrefix(string(sku), "StandardSSD_") || sku == armcompute.DiskStorageAccountTypesStandardLRS) {
		p.Tier = to.Ptr(performanceTier(sku, size))
	}
	if p.DiskIOPSReadWrite == nil {
		iops, mbps := performance(sku, size)
		p.DiskIOPSReadWrite, p.DiskMBpsReadWrite = &iops, &mbps
	}
	p.DiskState = to.Ptr(armcompute.DiskStateUnattached)
	if d.Status.ManagedBy != "" {
		p.DiskState = to.Ptr(armcompute.DiskStateAttached)
		m.ManagedBy = to.Ptr(d.Status.ManagedBy)
	}
	if d.Status.OwnershipUpdated != nil {
		p.LastOwnershipUpdateTime = to.Ptr(d.Status.OwnershipUpdated.UTC())
	}
	return m, nil
}

func skuTier(sku armcompute.DiskStorageAccountTypes) string {
	switch {
	case strings.HasPrefix(string(sku), "Premium"), sku == armcompute.DiskStorageAccountTypesUltraSSDLRS:
		return "Premium"
	}
	return "Standard"
}

// performanceTier is the disk's size class, as Azure names it: P for
// Premium SSD, E for Standard SSD, S for Standard HDD.
func performanceTier(sku armcompute.DiskStorageAccountTypes, sizeGB int32) string {
	prefix := "S"
	switch {
	case strings.HasPrefix(string(sku), "Premium"):
		prefix = "P"
	case strings.HasPrefix(string(sku), "StandardSSD"):
		prefix = "E"
	}
	tiers := []struct {
		max  int32
		name string
	}{{4, "1"}, {8, "2"}, {16, "3"}, {32, "4"}, {64, "6"}, {128, "10"}, {256, "15"}, {512, "20"}, {1024, "30"}, {2048, "40"}, {4096, "50"}, {8192, "60"}, {16384, "70"}, {32767, "80"}}
	for _, t := range tiers {
		if sizeGB <= t.max {
			if prefix == "S" && t.max < 32 {
				return "S4" // Standard HDD starts at S4
			}
			return prefix + t.name
		}
	}
	return prefix + "80"
}

// performance is the provisioned IOPS and MB/s Azure gives a disk of a
// SKU and size (Premium SSD scales with size; the others have a floor).
func performance(sku armcompute.DiskStorageAccountTypes, sizeGB int32) (int64, int64) {
	switch {
	case sku == armcompute.DiskStorageAccountTypesUltraSSDLRS, sku == armcompute.DiskStorageAccountTypesPremiumV2LRS:
		return 3000, 125
	case strings.HasPrefix(string(sku), "Premium"):
		switch {
		case sizeGB <= 32:
			return 120, 25
		case sizeGB <= 128:
			return 500, 100
		case sizeGB <= 512:
			return 2300, 150
		}
		return 5000, 200
	case strings.HasPrefix(string(sku), "StandardSSD"):
		return 500, 60
	}
	return 500, 60
}

// stripped is a disk without its read-only fields, as stored.
func stripped(in *armcompute.Disk) *armcompute.Disk {
	out := *in
	out.ID, out.Name, out.Type, out.ManagedBy, out.ManagedByExtended = nil, nil, nil, nil, nil
	if in.Properties != nil {
		p := *in.Properties
		p.DiskSizeBytes, p.DiskState, p.ProvisioningState, p.TimeCreated, p.UniqueID = nil, nil, nil, nil, nil
		p.LastOwnershipUpdateTime, p.ShareInfo, p.PropertyUpdatesInProgress = nil, nil, nil
		out.Properties = &p
	}
	return &out
}

func raw(v any) runtime.RawExtension {
	data, _ := json.Marshal(v) // SDK models always marshal
	return runtime.RawExtension{Raw: data}
}

// newGUID is a random GUID, as Azure gives each disk.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

package disks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// GetSnapshot returns a snapshot by its ID.
func (s *Service) GetSnapshot(ctx context.Context, id string) (*slipwayv1.Snapshot, error) {
	sn := &slipwayv1.Snapshot{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id)}, sn)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("reading snapshot %s: %w", id, err)
	}
	return sn, nil
}

// ListSnapshots returns the snapshots of a subscription, or of one of its
// groups if group is not empty.
func (s *Service) ListSnapshots(ctx context.Context, sub, group string) ([]slipwayv1.Snapshot, error) {
	labels := client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub)}
	if group != "" {
		labels[slipwayv1.LabelResourceGroup] = armid.Label(group)
	}
	var list slipwayv1.SnapshotList
	if err := s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), labels); err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	return list.Items, nil
}

// SnapshotModel is a snapshot as stored.
func SnapshotModel(sn *slipwayv1.Snapshot) (*armcompute.Snapshot, error) {
	m := &armcompute.Snapshot{}
	if err := json.Unmarshal(sn.Spec.Resource.Raw, m); err != nil {
		return nil, fmt.Errorf("snapshot %s: stored model: %w", sn.Spec.ResourceID, err)
	}
	if m.Properties == nil {
		m.Properties = &armcompute.SnapshotProperties{}
	}
	return m, nil
}

// PutSnapshot makes a snapshot of a disk (creationData Copy of a disk's
// ID). A snapshot is made once: a PUT of an existing one may change its
// tags only.
func (s *Service) PutSnapshot(ctx context.Context, id string, in *armcompute.Snapshot) (*slipwayv1.Snapshot, error) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) != 8 || !armid.ValidName(segs[7], 80) {
		return nil, invalid("%q is not a valid snapshot ID", id)
	}
	if old, err := s.GetSnapshot(ctx, id); err == nil {
		m, err := SnapshotModel(old)
		if err != nil {
			return nil, err
		}
		if in.Properties != nil && in.Properties.CreationData != nil && in.Properties.CreationData.SourceResourceID != nil &&
			!strings.EqualFold(*in.Properties.CreationData.SourceResourceID, *m.Properties.CreationData.SourceResourceID) {
			return nil, fmt.Errorf("%w: snapshot %s exists with another source", ErrExists, segs[7])
		}
		m.Tags = in.Tags
		old.Spec.Resource = raw(m)
		if err := s.client.Update(ctx, old); err != nil {
			return nil, fmt.Errorf("updating snapshot %s: %w", id, err)
		}
		return old, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if in.Location == nil || *in.Location == "" {
		return nil, invalid("location is required")
	}
	if in.Properties == nil || in.Properties.CreationData == nil || in.Properties.CreationData.SourceResourceID == nil ||
		in.Properties.CreationData.CreateOption == nil || *in.Properties.CreationData.CreateOption != armcompute.DiskCreateOptionCopy {
		return nil, invalid("Slipway makes snapshots of managed disks: creationData must be createOption Copy with a disk's sourceResourceId")
	}
	src, err := s.Get(ctx, *in.Properties.CreationData.SourceResourceID)
	if err != nil {
		return nil, err
	}
	disk, err := Model(src)
	if err != nil {
		return nil, err
	}
	m := &armcompute.Snapshot{
		Location: in.Location, Tags: in.Tags,
		SKU: &armcompute.SnapshotSKU{Name: to.Ptr(armcompute.SnapshotStorageAccountTypesStandardLRS)},
		Properties: &armcompute.SnapshotProperties{
			CreationData: &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionCopy),
				SourceResourceID: &src.Spec.ResourceID, SourceUniqueID: &src.Spec.UniqueID},
			DiskSizeGB:  disk.Properties.DiskSizeGB,
			Incremental: in.Properties.Incremental,
		},
	}
	if in.SKU != nil && in.SKU.Name != nil {
		m.SKU.Name = in.SKU.Name
	}
	sn := &slipwayv1.Snapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id), Labels: map[string]string{
			slipwayv1.LabelSubscription: armid.Label(segs[1]), slipwayv1.LabelResourceGroup: armid.Label(segs[3]),
		}},
		Spec: slipwayv1.SnapshotSpec{ResourceID: id, Resource: raw(m), UniqueID: newGUID(), TimeCreated: metav1.NewTime(s.now()), Content: src.Spec.Content},
	}
	if err := s.client.Create(ctx, sn); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return s.GetSnapshot(ctx, id)
		}
		return nil, fmt.Errorf("creating snapshot %s: %w", id, err)
	}
	return sn, nil
}

// DeleteSnapshot deletes a snapshot; one that is gone is not an error.
func (s *Service) DeleteSnapshot(ctx context.Context, id string) error {
	sn := &slipwayv1.Snapshot{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(id)}}
	if err := s.client.Delete(ctx, sn); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting snapshot %s: %w", id, err)
	}
	return nil
}

// RenderSnapshot is a snapshot as ARM returns it.
func RenderSnapshot(sn *slipwayv1.Snapshot) (*armcompute.Snapshot, error) {
	m, err := SnapshotModel(sn)
	if err != nil {
		return nil, err
	}
	name := sn.Spec.ResourceID[strings.LastIndex(sn.Spec.ResourceID, "/")+1:]
	m.ID, m.Name, m.Type = &sn.Spec.ResourceID, &name, to.Ptr("Microsoft.Compute/snapshots")
	p := m.Properties
	p.DiskSizeBytes = to.Ptr(int64(to32(p.DiskSizeGB)) << 30)
	p.ProvisioningState = to.Ptr("Succeeded")
	p.CompletionPercent = to.Ptr[float32](100)
	p.TimeCreated = to.Ptr(sn.Spec.TimeCreated.UTC())
	p.UniqueID = &sn.Spec.UniqueID
	p.DiskState = to.Ptr(armcompute.DiskStateUnattached)
	p.NetworkAccessPolicy = to.Ptr(armcompute.NetworkAccessPolicyAllowAll)
	return m, nil
}

package storage

import (
	"context"
	"fmt"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"

	"github.com/slipway-dev/slipway/internal/csi/azuredisk"
)

// What external-attacher writes on the VolumeAttachments it handles, which
// tools and people read.
const (
	attacherFinalizer = "external-attacher/disk-csi-azure-com"
	nodeIDAnnotation  = "csi.alpha.kubernetes.io/node-id"
	// volumeHandleAnnotation keeps the disk a VolumeAttachment attached,
	// so it can be detached after its PersistentVolume is gone.
	volumeHandleAnnotation = "slipway.dev/volume-handle"
)

// attacher carries out the VolumeAttachments of the disk driver that the
// attach/detach controller creates and deletes: ControllerPublishVolume
// and ControllerUnpublishVolume, and the result in the object's status.
// It does what external-attacher's csi_handler does; that module needs
// newer Kubernetes, gRPC and OpenTelemetry libraries than the 1.36
// components built into Slipway's binary, so it is not linked in.
type attacher struct {
	driver *azuredisk.Driver
	client kubernetes.Interface
	vas    storagelisters.VolumeAttachmentLister
	pvs    corelisters.PersistentVolumeLister
}

// sync handles one VolumeAttachment.
func (a *attacher) sync(ctx context.Context, name string) error {
	va, err := a.vas.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if va.Spec.Attacher != azuredisk.DriverName {
		return nil
	}
	if va.DeletionTimestamp != nil {
		return a.detach(ctx, va)
	}
	if va.Status.Attached {
		return nil
	}
	return a.attach(ctx, va)
}

func (a *attacher) attach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if va.Spec.Source.PersistentVolumeName == nil {
		return a.attachFailed(ctx, va, fmt.Errorf("inline volumes are not supported by %s", azuredisk.DriverName), 3)
	}
	pv, err := a.pvs.Get(*va.Spec.Source.PersistentVolumeName)
	if err != nil {
		return fmt.Errorf("reading volume %s: %w", *va.Spec.Source.PersistentVolumeName, err)
	}
	if pv.Spec.CSI == nil {
		return a.attachFailed(ctx, va, fmt.Errorf("volume %s is not a CSI volume", pv.Name), 3)
	}
	handle := pv.Spec.CSI.VolumeHandle
	// Finalizer and annotations first: a detach must find what to
	// detach even if this process dies right after the attach.
	if !slices.Contains(va.Finalizers, attacherFinalizer) || va.Annotations[nodeIDAnnotation] != va.Spec.NodeName || va.Annotations[volumeHandleAnnotation] != handle {
		va = va.DeepCopy()
		if !slices.Contains(va.Finalizers, attacherFinalizer) {
			va.Finalizers = append(va.Finalizers, attacherFinalizer)
		}
		if va.Annotations == nil {
			va.Annotations = map[string]string{}
		}
		va.Annotations[nodeIDAnnotation] = va.Spec.NodeName
		va.Annotations[volumeHandleAnnotation] = handle
		if va, err = a.client.StorageV1().VolumeAttachments().Update(ctx, va, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("marking %s: %w", va.Name, err)
		}
	}
	readOnly := pv.Spec.CSI.ReadOnly
	caps := capabilities(pv.Spec.AccessModes, pv.Spec.VolumeMode != nil && *pv.Spec.VolumeMode == corev1.PersistentVolumeBlock, pv.Spec.CSI.FSType, pv.Spec.MountOptions)
	var cap *csi.VolumeCapability
	if len(caps) > 0 {
		cap = caps[0]
	}
	resp, err := a.driver.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{
		VolumeId: handle, NodeId: va.Spec.NodeName, VolumeCapability: cap, Readonly: readOnly, VolumeContext: pv.Spec.CSI.VolumeAttributes,
	})
	if err != nil {
		return a.attachFailed(ctx, va, err, int32(status.Code(err)))
	}
	va = va.DeepCopy()
	va.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: resp.GetPublishContext()}
	if _, err := a.client.StorageV1().VolumeAttachments().UpdateStatus(ctx, va, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("recording attach of %s: %w", va.Name, err)
	}
	return nil
}

// attachFailed records why an attach failed, with the CSI code
// (KEP-4876's errorCode), and returns the error so the attach is retried
// with back-off.
func (a *attacher) attachFailed(ctx context.Context, va *storagev1.VolumeAttachment, cause error, code int32) error {
	va = va.DeepCopy()
	va.Status.AttachError = &storagev1.VolumeError{Time: metav1.Now(), Message: cause.Error(), ErrorCode: &code}
	if _, err := a.client.StorageV1().VolumeAttachments().UpdateStatus(ctx, va, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("recording attach error of %s: %w", va.Name, err)
	}
	return fmt.Errorf("attaching %s: %w", va.Name, cause)
}

func (a *attacher) detach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if !slices.Contains(va.Finalizers, attacherFinalizer) {
		return nil
	}
	handle := va.Annotations[volumeHandleAnnotation]
	if handle == "" && va.Spec.Source.PersistentVolumeName != nil {
		if pv, err := a.pvs.Get(*va.Spec.Source.PersistentVolumeName); err == nil && pv.Spec.CSI != nil {
			handle = pv.Spec.CSI.VolumeHandle
		}
	}
	if handle != "" {
		node := va.Annotations[nodeIDAnnotation]
		if node == "" {
			node = va.Spec.NodeName
		}
		if _, err := a.driver.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: handle, NodeId: node}); err != nil {
			va = va.DeepCopy()
			va.Status.DetachError = &storagev1.VolumeError{Time: metav1.Now(), Message: err.Error()}
			if _, uerr := a.client.StorageV1().VolumeAttachments().UpdateStatus(ctx, va, metav1.UpdateOptions{}); uerr != nil && !apierrors.IsNotFound(uerr) {
				return uerr
			}
			return fmt.Errorf("detaching %s: %w", va.Name, err)
		}
	}
	va = va.DeepCopy()
	va.Status.Attached = false
	va.Status.AttachmentMetadata = nil
	va.Status.DetachError = nil
	if va, err := a.client.StorageV1().VolumeAttachments().UpdateStatus(ctx, va, metav1.UpdateOptions{}); err == nil {
		va.Finalizers = slices.DeleteFunc(va.Finalizers, func(f string) bool { return f == attacherFinalizer })
		_, err = a.client.StorageV1().VolumeAttachments().Update(ctx, va, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

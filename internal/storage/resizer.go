package storage

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// resizer grows the disks of claims whose request grew, as
// external-resizer does (that module is not on the module proxy): the
// disk through ControllerExpandVolume, then the volume, then the claim's
// status. The filesystem step that the kubelet would run on the node is
// immediate on a simulated node, so a resize ends as soon as the disk has
// grown, whether or not a pod uses it.
type resizer struct {
	// drivers are the controllers of the drivers it resizes for, by name.
	drivers map[string]csi.ControllerServer
	client  kubernetes.Interface
	pvcs    corelisters.PersistentVolumeClaimLister
	pvs     corelisters.PersistentVolumeLister
	events  record.EventRecorder
}

func (r *resizer) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := r.pvcs.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		return nil
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pvc.Status.Capacity[corev1.ResourceStorage]
	if want.Cmp(have) <= 0 {
		return nil
	}
	pv, err := r.pvs.Get(pvc.Spec.VolumeName)
	if err != nil {
		return fmt.Errorf("reading volume of %s: %w", key, err)
	}
	// A CSI volume is the resizer's of its driver; the expand controller
	// names the resizer in an annotation only for migrated in-tree volumes.
	if pv.Spec.CSI == nil {
		return nil
	}
	driver := r.drivers[pv.Spec.CSI.Driver]
	if driver == nil {
		return nil
	}
	if err := r.patchStatus(ctx, pvc, map[string]any{
		"conditions":                []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimResizing, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
		"allocatedResources":        corev1.ResourceList{corev1.ResourceStorage: want},
		"allocatedResourceStatuses": map[string]string{string(corev1.ResourceStorage): string(corev1.PersistentVolumeClaimControllerResizeInProgress)},
	}); err != nil {
		return err
	}
	r.events.Eventf(pvc, corev1.EventTypeNormal, "Resizing", "External resizer is resizing volume %s", pv.Name)
	block := pv.Spec.VolumeMode != nil && *pv.Spec.VolumeMode == corev1.PersistentVolumeBlock
	caps := capabilities(pv.Spec.AccessModes, block, pv.Spec.CSI.FSType, pv.Spec.MountOptions)
	var cap *csi.VolumeCapability
	if len(caps) > 0 {
		cap = caps[0]
	}
	resp, err := driver.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{
		VolumeId: pv.Spec.CSI.VolumeHandle, CapacityRange: &csi.CapacityRange{RequiredBytes: want.Value()}, VolumeCapability: cap,
	})
	if err != nil {
		state := corev1.PersistentVolumeClaimControllerResizeInProgress
		if c := status.Code(err); c == codes.InvalidArgument || c == codes.OutOfRange {
			// Final: the user may lower the request again
			// (RecoverVolumeExpansionFailure).
			state = corev1.PersistentVolumeClaimControllerResizeInfeasible
		}
		r.events.Eventf(pvc, corev1.EventTypeWarning, "VolumeResizeFailed", "resize volume %q by resizer %q failed: %v", pv.Name, pv.Spec.CSI.Driver, err)
		perr := r.patchStatus(ctx, pvc, map[string]any{
			"conditions": []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimControllerResizeError, Status: corev1.ConditionTrue,
				LastTransitionTime: metav1.Now(), Message: err.Error()}},
			"allocatedResourceStatuses": map[string]string{string(corev1.ResourceStorage): string(state)},
		})
		if state == corev1.PersistentVolumeClaimControllerResizeInfeasible {
			return perr
		}
		return fmt.Errorf("expanding %s: %w", key, err)
	}
	size := *resourceBytes(resp.GetCapacityBytes())
	pvPatch, _ := json.Marshal(map[string]any{"spec": map[string]any{"capacity": corev1.ResourceList{corev1.ResourceStorage: size}}})
	if _, err := r.client.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, types.MergePatchType, pvPatch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("growing volume %s: %w", pv.Name, err)
	}
	// The node's filesystem resize (NodeExpandVolume), where the driver
	// needs one, is immediate here; a share needs none.
	if err := r.patchStatus(ctx, pvc, map[string]any{
		"capacity":                  corev1.ResourceList{corev1.ResourceStorage: size},
		"conditions":                nil,
		"allocatedResourceStatuses": nil,
	}); err != nil {
		return err
	}
	r.events.Eventf(pvc, corev1.EventTypeNormal, "VolumeResizeSuccessful", "Resize volume succeeded")
	return nil
}

func (r *resizer) patchStatus(ctx context.Context, pvc *corev1.PersistentVolumeClaim, fields map[string]any) error {
	patch, _ := json.Marshal(map[string]any{"status": fields})
	_, err := r.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating status of claim %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return nil
}

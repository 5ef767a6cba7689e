package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// provisioning is what external-provisioner's controller does around a
// driver's CreateVolume and DeleteVolume: it watches the claims that name
// one of the cluster's provisioners, makes each a volume and its
// PersistentVolume, and reclaims the released volumes of Delete classes.
//
// Slipway carried sig-storage-lib-external-provisioner for this, but its
// constructor registers types in client-go's process-wide scheme each time
// it runs, and serve builds two per cluster while other clusters' clients
// decode with that scheme: a concurrent map write that killed serve
// (TestCrashRecovery, at a restart that started many clusters at once).
// It also adds an index to the claims informer it is given and exits the
// process if one is there. So this is its claim and volume loop, kept to
// what a CSI driver needs.
type provisioning struct {
	client  kubernetes.Interface
	pvcs    corelisters.PersistentVolumeClaimLister
	pvs     corelisters.PersistentVolumeLister
	classes storagelisters.StorageClassLister
	// byName are the cluster's provisioners.
	byName map[string]*provisioner
}

// The annotations and finalizer of dynamic provisioning, as Kubernetes and
// external-provisioner spell them.
const (
	annStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	annBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode           = "volume.kubernetes.io/selected-node"
	annProvisionedBy          = "pv.kubernetes.io/provisioned-by"
	// finalizerPV keeps a provisioned volume's object until its disk or
	// share is deleted, as external-provisioner does from Kubernetes 1.31
	// (HonorPVReclaimPolicy): deleting a bound PV then deletes its disk.
	finalizerPV = "external-provisioner.volume.kubernetes.io/finalizer"
)

// syncClaim provisions the volume of one claim (namespace/name), if it is
// one of ours and ready to be provisioned.
func (p *provisioning) syncClaim(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := p.pvcs.PersistentVolumeClaims(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil {
		return nil
	}
	named := pvc.Annotations[annStorageProvisioner]
	if named == "" {
		named = pvc.Annotations[annBetaStorageProvisioner]
	}
	prov := p.byName[named]
	className := ptr.Deref(pvc.Spec.StorageClassName, "")
	if prov == nil || className == "" {
		return nil
	}
	class, err := p.classes.Get(className)
	if apierrors.IsNotFound(err) {
		return nil // the persistent volume controller reports a missing class
	}
	if err != nil {
		return err
	}
	if class.Provisioner != prov.name {
		return nil
	}
	selected := pvc.Annotations[annSelectedNode]
	if selected == "" && class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		return nil // the scheduler picks a node first
	}
	pvName := "pvc-" + string(pvc.UID)
	if _, err := p.pvs.Get(pvName); err == nil {
		return nil // made; the persistent volume controller binds it
	}

	prov.events.Eventf(pvc, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim %q", key)
	pv, state, err := prov.Provision(ctx, provisionOptions{class: class, pvName: pvName, pvc: pvc, selectedNode: selected})
	if err != nil {
		prov.events.Eventf(pvc, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume with StorageClass %q: %v", class.Name, err)
		if state == provisioningReschedule && selected != "" {
			// The node cannot have the volume: let the scheduler pick again.
			patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, annSelectedNode)
			if _, perr := p.client.CoreV1().PersistentVolumeClaims(namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); perr != nil && !apierrors.IsNotFound(perr) {
				return errors.Join(err, perr)
			}
		}
		return err
	}
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
		Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion}
	pv.Spec.StorageClassName = class.Name
	if pv.Annotations == nil {
		pv.Annotations = map[string]string{}
	}
	pv.Annotations[annProvisionedBy] = prov.name
	pv.Finalizers = append(pv.Finalizers, finalizerPV)
	if _, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		// The volume exists: the retry's CreateVolume finds it by name.
		return fmt.Errorf("saving volume %s of claim %s: %w", pvName, key, err)
	}
	prov.events.Eventf(pvc, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pvName)
	return nil
}

// syncVolume reclaims one of our volumes: a released volume of a Delete
// class, or one whose object is being deleted, loses its disk or share,
// then its object.
func (p *provisioning) syncVolume(ctx context.Context, name string) error {
	pv, err := p.pvs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	prov := p.byName[pv.Annotations[annProvisionedBy]]
	if prov == nil {
		return nil
	}
	// A deleted volume still bound to its claim stays (pv-protection) until
	// the claim lets go: its disk is in use.
	deleting := pv.DeletionTimestamp != nil && slices.Contains(pv.Finalizers, finalizerPV) && pv.Status.Phase != corev1.VolumeBound
	released := pv.DeletionTimestamp == nil && pv.Status.Phase == corev1.VolumeReleased
	if !deleting && !released {
		return nil
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		if deleting {
			return p.release(ctx, pv)
		}
		return nil // Retain: the user's to reclaim
	}
	if err := prov.Delete(ctx, pv); err != nil {
		prov.events.Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "%v", err)
		return err
	}
	if err := p.release(ctx, pv); err != nil {
		return err
	}
	if deleting {
		return nil
	}
	err = p.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting volume %s: %w", pv.Name, err)
	}
	return nil
}

// release removes the provisioner's finalizer from a volume.
func (p *provisioning) release(ctx context.Context, pv *corev1.PersistentVolume) error {
	i := slices.Index(pv.Finalizers, finalizerPV)
	if i < 0 {
		return nil
	}
	// A JSON patch that tests the finalizer is where it was read, so a
	// concurrent change of the list is not overwritten.
	patch := fmt.Sprintf(`[{"op":"test","path":"/metadata/finalizers/%d","value":%q},{"op":"remove","path":"/metadata/finalizers/%d"}]`, i, finalizerPV, i)
	_, err := p.client.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("releasing volume %s: %w", pv.Name, err)
	}
	return nil
}

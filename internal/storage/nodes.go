package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/csi/azuredisk"
	"github.com/slipway-dev/slipway/internal/csi/azurefile"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/simnode"
	"github.com/slipway-dev/slipway/internal/vmsize"
)

// nodePlugin does for each simulated node what the kubelet and the disk
// driver's node DaemonSet do on a real one: it registers the driver in the
// node's CSINode (node ID, topology key, attach limit), and reports the
// driver's volumes a running pod has mounted in node.status.volumesInUse,
// which is how the attach/detach controller knows a disk may be detached.
type nodePlugin struct {
	client kubernetes.Interface
	nodes  corelisters.NodeLister
	pvcs   corelisters.PersistentVolumeClaimLister
	pvs    corelisters.PersistentVolumeLister
	// byNode indexes pods and VolumeAttachments by node name: a node's
	// sync reads its own, not the cluster's.
	pods, vas cache.Indexer

	// disks keeps what pods write on their disks.
	disks diskContents

	diskEnabled, fileEnabled func() bool
}

// diskContents reads and writes what is on a disk.
type diskContents interface {
	Get(ctx context.Context, id string) (*slipwayv1.Disk, error)
	Write(ctx context.Context, id, content string) error
}

// nodeIDsAnnotation is the kubelet's record of each CSI driver's node ID.
const nodeIDsAnnotation = "csi.volume.kubernetes.io/nodeid"

// uniqueName is how the attach/detach controller and the kubelet name a
// CSI volume in node status.
func uniqueName(handle string) corev1.UniqueVolumeName {
	return corev1.UniqueVolumeName("kubernetes.io/csi/" + azuredisk.DriverName + "^" + handle)
}

func (n *nodePlugin) sync(ctx context.Context, name string) error {
	node, err := n.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := n.registerDrivers(ctx, node); err != nil {
		return err
	}
	attached, err := n.attachedTo(node.Name)
	if err != nil {
		return err
	}
	if err := n.reportInUse(ctx, node, attached); err != nil {
		return err
	}
	return n.mountVolumes(ctx, node, attached)
}

// claimName is the claim behind a pod's volume: its own, or the one the
// ephemeral volume controller makes for a generic ephemeral volume.
func claimName(pod *corev1.Pod, vol corev1.Volume) string {
	switch {
	case vol.PersistentVolumeClaim != nil:
		return vol.PersistentVolumeClaim.ClaimName
	case vol.Ephemeral != nil:
		return pod.Name + "-" + vol.Name
	}
	return ""
}

// mountVolumes does a kubelet's part for the pods on the node that have
// claims. A pod whose claims' volumes are all ready is marked with
// simnode.VolumesMountedAnnotation, which lets KWOK start it (a kubelet
// starts no container before the pod's volumes are mounted, nor mounts a
// disk before it is attached to the node; a volume of another kind, a
// share or a local or NFS volume, mounts at once), and with what it finds
// on its disks (disks.ContentsAnnotation). A running pod's
// disks.MarkerAnnotation is written on its read-write disks.
func (n *nodePlugin) mountVolumes(ctx context.Context, node *corev1.Node, attached map[string]string) error {
	pods, err := n.pods.ByIndex(byNode, node.Name)
	if err != nil {
		return err
	}
	for _, obj := range pods {
		pod := obj.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			continue
		}
		mounted := pod.Annotations[simnode.VolumesMountedAnnotation] == "true"
		marker, writes := pod.Annotations[disks.MarkerAnnotation]
		if (mounted && (!writes || pod.Status.Phase != corev1.PodRunning)) || (!mounted && pod.Status.Phase != corev1.PodPending) {
			continue
		}
		vols, ready := n.podDisks(pod, attached)
		if !ready {
			continue
		}
		if mounted {
			for _, v := range vols {
				if !v.readOnly {
					if err := n.disks.Write(ctx, v.handle, marker); err != nil && !errors.Is(err, disks.ErrNotFound) {
						return fmt.Errorf("writing on the disk of pod %s/%s: %w", pod.Namespace, pod.Name, err)
					}
				}
			}
		}
		annotations := map[string]string{}
		if !mounted {
			annotations[simnode.VolumesMountedAnnotation] = "true"
		}
		if len(vols) > 0 {
			contents := map[string]string{}
			for _, v := range vols {
				d, err := n.disks.Get(ctx, v.handle)
				if err != nil {
					return fmt.Errorf("mounting the volumes of pod %s/%s: %w", pod.Namespace, pod.Name, err)
				}
				contents[v.volume] = d.Spec.Content
			}
			data, _ := json.Marshal(contents)
			if pod.Annotations[disks.ContentsAnnotation] != string(data) {
				annotations[disks.ContentsAnnotation] = string(data)
			}
		}
		if len(annotations) == 0 {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
		if _, err := n.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("mounting the volumes of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

// podDisk is a pod's volume on an Azure disk.
type podDisk struct {
	volume, handle string
	readOnly       bool
}

// podDisks returns a pod's disk volumes, and whether all its claims'
// volumes can be mounted: each claim bound, each disk attached (in
// attached, by PV name).
func (n *nodePlugin) podDisks(pod *corev1.Pod, attached map[string]string) ([]podDisk, bool) {
	var out []podDisk
	claims := 0
	for _, vol := range pod.Spec.Volumes {
		name := claimName(pod, vol)
		if name == "" {
			continue
		}
		claims++
		pvc, err := n.pvcs.PersistentVolumeClaims(pod.Namespace).Get(name)
		if err != nil || pvc.Spec.VolumeName == "" {
			return nil, false
		}
		pv, err := n.pvs.Get(pvc.Spec.VolumeName)
		if err != nil {
			return nil, false
		}
		if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != azuredisk.DriverName {
			continue
		}
		if _, ok := attached[pv.Name]; !ok {
			return nil, false
		}
		readOnly := pv.Spec.CSI.ReadOnly || (vol.PersistentVolumeClaim != nil && vol.PersistentVolumeClaim.ReadOnly)
		out = append(out, podDisk{volume: vol.Name, handle: pv.Spec.CSI.VolumeHandle, readOnly: readOnly})
	}
	return out, claims > 0
}

// attachedTo maps the PVs whose disks are attached to the node to their
// volume handles.
func (n *nodePlugin) attachedTo(node string) (map[string]string, error) {
	vas, err := n.vas.ByIndex(byNode, node)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, obj := range vas {
		va := obj.(*storagev1.VolumeAttachment)
		if va.Spec.Attacher == azuredisk.DriverName && va.Status.Attached && va.Spec.Source.PersistentVolumeName != nil {
			if pv, err := n.pvs.Get(*va.Spec.Source.PersistentVolumeName); err == nil && pv.Spec.CSI != nil {
				out[pv.Name] = pv.Spec.CSI.VolumeHandle
			}
		}
	}
	return out, nil
}

// registerDrivers writes the node's CSINode and node-ID annotation, as the
// kubelet does when a driver's node plugin registers: the disk driver with
// its topology key and the VM size's attach limit, the file driver with
// neither (a share is reachable from every node and takes no slot).
func (n *nodePlugin) registerDrivers(ctx context.Context, node *corev1.Node) error {
	var want []storagev1.CSINodeDriver
	if n.diskEnabled() {
		size, ok := vmsize.Lookup(node.Labels[corev1.LabelInstanceTypeStable])
		limit := int32(vmsize.DefaultMaxDataDisks)
		if ok && size.MaxDataDisks > 0 {
			limit = int32(size.MaxDataDisks)
		}
		want = append(want, storagev1.CSINodeDriver{
			Name: azuredisk.DriverName, NodeID: node.Name, TopologyKeys: []string{azuredisk.TopologyKey},
			Allocatable: &storagev1.VolumeNodeResources{Count: ptr.To(limit)},
		})
	}
	if n.fileEnabled() {
		want = append(want, storagev1.CSINodeDriver{Name: azurefile.DriverName, NodeID: node.Name})
	}
	if len(want) == 0 {
		return nil
	}
	csiNode, err := n.client.StorageV1().CSINodes().Get(ctx, node.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		csiNode = &storagev1.CSINode{
			ObjectMeta: metav1.ObjectMeta{Name: node.Name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
			}}},
			Spec: storagev1.CSINodeSpec{Drivers: want},
		}
		if _, err := n.client.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("registering CSI drivers on node %s: %w", node.Name, err)
		}
	case err != nil:
		return fmt.Errorf("reading CSINode %s: %w", node.Name, err)
	default:
		changed := false
		for _, d := range want {
			if !slices.ContainsFunc(csiNode.Spec.Drivers, func(have storagev1.CSINodeDriver) bool { return have.Name == d.Name }) {
				csiNode.Spec.Drivers = append(csiNode.Spec.Drivers, d)
				changed = true
			}
		}
		if changed {
			if _, err := n.client.StorageV1().CSINodes().Update(ctx, csiNode, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("registering CSI drivers on node %s: %w", node.Name, err)
			}
		}
	}
	ids := map[string]string{}
	if v := node.Annotations[nodeIDsAnnotation]; v != "" {
		json.Unmarshal([]byte(v), &ids)
	}
	changed := false
	for _, d := range want {
		if ids[d.Name] != node.Name {
			ids[d.Name], changed = node.Name, true
		}
	}
	if !changed {
		return nil
	}
	value, _ := json.Marshal(ids)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{nodeIDsAnnotation: string(value)}}})
	if _, err := n.client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("annotating node %s: %w", node.Name, err)
	}
	return nil
}

// reportInUse sets node.status.volumesInUse to the driver's volumes that
// are attached to the node and used by a pod that still runs there: the
// kubelet would have them mounted. Other drivers' entries are kept.
func (n *nodePlugin) reportInUse(ctx context.Context, node *corev1.Node, attached map[string]string) error {
	var inUse []corev1.UniqueVolumeName
	for _, v := range node.Status.VolumesInUse {
		if !strings.HasPrefix(string(v), "kubernetes.io/csi/"+azuredisk.DriverName+"^") {
			inUse = append(inUse, v)
		}
	}
	if len(attached) > 0 {
		pods, err := n.pods.ByIndex(byNode, node.Name)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, obj := range pods {
			pod := obj.(*corev1.Pod)
			if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			for _, vol := range pod.Spec.Volumes {
				if vol.PersistentVolumeClaim == nil {
					continue
				}
				pvc, err := n.pvcs.PersistentVolumeClaims(pod.Namespace).Get(vol.PersistentVolumeClaim.ClaimName)
				if err != nil || pvc.Spec.VolumeName == "" {
					continue
				}
				if handle, ok := attached[pvc.Spec.VolumeName]; ok && !seen[handle] {
					seen[handle] = true
					inUse = append(inUse, uniqueName(handle))
				}
			}
		}
	}
	slices.Sort(inUse)
	current := slices.Clone(node.Status.VolumesInUse)
	slices.Sort(current)
	if slices.Equal(inUse, current) {
		return nil
	}
	if inUse == nil {
		inUse = []corev1.UniqueVolumeName{}
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"volumesInUse": inUse}})
	if _, err := n.client.CoreV1().Nodes().PatchStatus(ctx, node.Name, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reporting volumes in use on node %s: %w", node.Name, err)
	}
	return nil
}

// vms finds a node's VM from its Node object: the scale-set VM its provider
// ID names, its size's data-disk limit and its zone.
type vms struct {
	nodes corelisters.NodeLister
}

func (v vms) VM(_ context.Context, name string) (disks.VM, string, error) {
	node, err := v.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return disks.VM{}, "", fmt.Errorf("node %s: %w", name, azuredisk.ErrNoVM)
	}
	if err != nil {
		return disks.VM{}, "", err
	}
	id, ok := strings.CutPrefix(node.Spec.ProviderID, "azure://")
	if !ok {
		return disks.VM{}, "", fmt.Errorf("node %s has no Azure VM (provider ID %q): %w", name, node.Spec.ProviderID, azuredisk.ErrNoVM)
	}
	limit := vmsize.DefaultMaxDataDisks
	if size, ok := vmsize.Lookup(node.Labels[corev1.LabelInstanceTypeStable]); ok && size.MaxDataDisks > 0 {
		limit = size.MaxDataDisks
	}
	return disks.VM{ID: id, Node: name, MaxDataDisks: limit}, node.Labels[azuredisk.TopologyKey], nil
}

// byNode is the index of pods and VolumeAttachments by their node.
const byNode = "node"

// nodeIndexers index pods and VolumeAttachments by node name.
var nodeIndexers = cache.Indexers{byNode: func(obj any) ([]string, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return []string{o.Spec.NodeName}, nil
	case *storagev1.VolumeAttachment:
		return []string{o.Spec.NodeName}, nil
	}
	return nil, nil
}}

package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// provisioner is what external-provisioner does for one CSI driver: a
// StorageClass and a claim become a CreateVolume call, and its volume a
// PersistentVolume; a reclaimed volume a DeleteVolume call. The claim and
// volume loops around it are in provisioning.go.
type provisioner struct {
	// name is the driver's, and the provisioner's.
	name   string
	driver csi.ControllerServer
	client kubernetes.Interface
	// topologyKey is the driver's topology segment; empty for a driver
	// whose volumes are reachable from every node.
	topologyKey string
	// defaultFSType is the filesystem of a mounted volume whose class
	// names none; empty leaves it to the driver.
	defaultFSType string
	// block says whether the driver's volumes can be raw block devices.
	block bool
	// snapshots reads the VolumeSnapshots a claim is restored from; nil
	// for a driver without snapshots.
	snapshots snapshotclient.Interface
	// events records on claims and volumes as the provisioner.
	events  record.EventRecorder
	enabled func() bool
	// disabled is the error a claim gets while the driver is off.
	disabled string
}

// provisionOptions is what a claim's volume is made from.
type provisionOptions struct {
	class        *storagev1.StorageClass
	pvName       string
	pvc          *corev1.PersistentVolumeClaim
	selectedNode string // the scheduler's pick, for WaitForFirstConsumer
}

// provisioningState says what a failed Provision leaves.
type provisioningState int

const (
	// provisioningFinished: nothing was made; retrying the same request
	// fails the same way until something changes.
	provisioningFinished provisioningState = iota
	// provisioningInBackground: the volume may still be being made.
	provisioningInBackground
	// provisioningNoChange: nothing happened; try again.
	provisioningNoChange
	// provisioningReschedule: the selected node cannot have the volume.
	provisioningReschedule
)

// Parameters of a class that are the provisioner's, not the driver's.
const (
	paramFSType    = "csi.storage.k8s.io/fstype"
	paramPrefixCSI = "csi.storage.k8s.io/"
)

// Provision makes a claim's volume and returns its PersistentVolume (claim
// reference and provisioner's annotations left to the caller).
func (p *provisioner) Provision(ctx context.Context, opts provisionOptions) (*corev1.PersistentVolume, provisioningState, error) {
	if !p.enabled() {
		return nil, provisioningFinished, errors.New(p.disabled)
	}
	pvc, class := opts.pvc, opts.class
	params := map[string]string{}
	fsType := ""
	for k, v := range class.Parameters {
		switch {
		case strings.EqualFold(k, paramFSType), strings.EqualFold(k, "fstype"):
			fsType = strings.ToLower(v)
		case strings.HasPrefix(strings.ToLower(k), paramPrefixCSI):
			// Secret references and the like: the provisioner's keys.
			continue
		default:
			params[k] = v
		}
	}
	// What external-provisioner's --extra-create-metadata passes on; the
	// driver tags the disk with it.
	params["csi.storage.k8s.io/pvc/name"] = pvc.Name
	params["csi.storage.k8s.io/pvc/namespace"] = pvc.Namespace
	params["csi.storage.k8s.io/pv/name"] = opts.pvName

	block := pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock
	if block && !p.block {
		return nil, provisioningFinished, fmt.Errorf("%s does not make raw block volumes: set the claim's volumeMode to Filesystem", p.name)
	}
	caps := capabilities(pvc.Spec.AccessModes, block, fsType, class.MountOptions)
	storage := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	req := &csi.CreateVolumeRequest{
		Name:               opts.pvName,
		CapacityRange:      &csi.CapacityRange{RequiredBytes: storage.Value()},
		VolumeCapabilities: caps,
		Parameters:         params,
	}
	if lim, ok := pvc.Spec.Resources.Limits[corev1.ResourceStorage]; ok {
		req.CapacityRange.LimitBytes = lim.Value()
	}
	if opts.selectedNode != "" && p.topologyKey != "" {
		// Strict topology, as AKS runs external-provisioner: the disk goes
		// in the zone of the node the scheduler picked.
		node, err := p.client.CoreV1().Nodes().Get(ctx, opts.selectedNode, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, provisioningReschedule, fmt.Errorf("selected node %s is gone", opts.selectedNode)
		}
		if err != nil {
			return nil, provisioningNoChange, fmt.Errorf("reading selected node %s: %w", opts.selectedNode, err)
		}
		t := &csi.Topology{Segments: map[string]string{p.topologyKey: node.Labels[p.topologyKey]}}
		req.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{t}, Preferred: []*csi.Topology{t}}
	}
	if src := pvc.Spec.DataSource; src != nil {
		group := ""
		if src.APIGroup != nil {
			group = *src.APIGroup
		}
		switch {
		case src.Kind == "PersistentVolumeClaim" && group == "":
			handle, err := p.sourceVolume(ctx, pvc.Namespace, src.Name)
			if err != nil {
				return nil, provisioningFinished, err
			}
			req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: handle}}}
		case src.Kind == "VolumeSnapshot" && group == "snapshot.storage.k8s.io" && p.snapshots != nil:
			handle, err := snapshotHandle(ctx, p.snapshots, pvc.Namespace, src.Name)
			if err != nil {
				// Not ready yet, most likely: try again.
				return nil, provisioningNoChange, err
			}
			req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: handle}}}
		default:
			return nil, provisioningFinished, fmt.Errorf("%s cannot make a volume from a %s", p.name, src.Kind)
		}
	}

	resp, err := p.driver.CreateVolume(ctx, req)
	if err != nil {
		return nil, stateOf(err), fmt.Errorf("creating the disk for %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	v := resp.GetVolume()
	if fsType == "" && !block {
		fsType = p.defaultFSType
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.pvName},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes:                   pvc.Spec.AccessModes,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: *class.ReclaimPolicy,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: *resourceBytes(v.GetCapacityBytes())},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver: p.name, VolumeHandle: v.GetVolumeId(), FSType: fsType, VolumeAttributes: v.GetVolumeContext(),
			}},
			NodeAffinity: nodeAffinity(v.GetAccessibleTopology()),
		},
	}
	return pv, provisioningFinished, nil
}

// sourceVolume is the disk behind a claim a new claim clones.
func (p *provisioner) sourceVolume(ctx context.Context, namespace, name string) (string, error) {
	src, err := p.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading source claim %s/%s: %w", namespace, name, err)
	}
	if src.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("source claim %s/%s is not bound", namespace, name)
	}
	pv, err := p.client.CoreV1().PersistentVolumes().Get(ctx, src.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading source volume %s: %w", src.Spec.VolumeName, err)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != p.name {
		return "", fmt.Errorf("source claim %s/%s is not a volume of %s", namespace, name, p.name)
	}
	return pv.Spec.CSI.VolumeHandle, nil
}

// provisioningState says whether a failed CreateVolume may still be
// making the disk: only an answer that the request itself is wrong is
// final.
func stateOf(err error) provisioningState {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.AlreadyExists, codes.OutOfRange, codes.NotFound, codes.FailedPrecondition:
		return provisioningFinished
	case codes.ResourceExhausted:
		// No capacity where the node is (a zone without the SKU): another
		// node may do.
		return provisioningReschedule
	}
	return provisioningInBackground
}

// capabilities is the CSI form of a claim's access modes.
func capabilities(modes []corev1.PersistentVolumeAccessMode, block bool, fsType string, mountOptions []string) []*csi.VolumeCapability {
	var out []*csi.VolumeCapability
	for _, m := range modes {
		c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: accessMode(m)}}
		if block {
			c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		} else {
			c.AccessType = &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType, MountFlags: mountOptions}}
		}
		out = append(out, c)
	}
	return out
}

func accessMode(m corev1.PersistentVolumeAccessMode) csi.VolumeCapability_AccessMode_Mode {
	switch m {
	case corev1.ReadWriteOnce:
		return csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	case corev1.ReadOnlyMany:
		return csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
	case corev1.ReadWriteMany:
		return csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	case corev1.ReadWriteOncePod:
		return csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	}
	return csi.VolumeCapability_AccessMode_UNKNOWN
}

// nodeAffinity pins a volume to the topology it is reachable from.
func nodeAffinity(topology []*csi.Topology) *corev1.VolumeNodeAffinity {
	if len(topology) == 0 {
		return nil
	}
	var terms []corev1.NodeSelectorTerm
	for _, t := range topology {
		var exprs []corev1.NodeSelectorRequirement
		for k, v := range t.GetSegments() {
			exprs = append(exprs, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{v}})
		}
		terms = append(terms, corev1.NodeSelectorTerm{MatchExpressions: exprs})
	}
	return &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: terms}}
}

// Delete deletes a reclaimed volume's disk or share (a disk once it is
// detached). A volume that is not the driver's is left alone.
func (p *provisioner) Delete(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != p.name {
		return nil
	}
	_, err := p.driver.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: pv.Spec.CSI.VolumeHandle})
	if err != nil {
		return fmt.Errorf("deleting volume %s: %w", pv.Spec.CSI.VolumeHandle, err)
	}
	return nil
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`
// +kubebuilder:printcolumn:name="ManagedBy",type=string,JSONPath=`.status.managedBy`

// Disk is a managed disk (Microsoft.Compute/disks): a data disk that the
// Azure Disk CSI driver provisions for a PersistentVolumeClaim, or that a
// user makes through ARM. Its name is armid.ObjectName of its ID. The disk
// service (internal/disks) owns it: ARM and the CSI driver both go through
// that service, so a disk's attachment is decided in one place.
type Disk struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DiskSpec   `json:"spec"`
	Status DiskStatus `json:"status,omitempty"`
}

// DiskSpec is the disk as written through ARM.
type DiskSpec struct {
	// ResourceID is the disk's ARM ID, as spelled when it was created.
	ResourceID string `json:"resourceID"`
	// Resource is the ARM Disk (the SDK's JSON) as last written, read-only
	// fields left out: location, tags, zones, sku and the writable
	// properties.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource runtime.RawExtension `json:"resource"`
	// UniqueID and TimeCreated are fixed when the disk is made.
	UniqueID    string      `json:"uniqueID"`
	TimeCreated metav1.Time `json:"timeCreated"`
	SystemData  *SystemData `json:"systemData,omitempty"`
	// Content stands for what is written on the disk: the marker a pod
	// last wrote to it (disks.MarkerAnnotation). It stays with the disk
	// through detaches, attaches, node upgrades and cluster stops, and
	// snapshots and copies carry it.
	Content string `json:"content,omitempty"`
}

// DiskStatus is the disk's attachment.
type DiskStatus struct {
	// ManagedBy is the ARM ID of the VM the disk is attached to; empty
	// when it is attached to none.
	ManagedBy string `json:"managedBy,omitempty"`
	// Node is the Kubernetes node of that VM.
	Node string `json:"node,omitempty"`
	// LUN is the disk's logical unit on that VM.
	LUN *int32 `json:"lun,omitempty"`
	// OwnershipUpdated is when ManagedBy last changed.
	OwnershipUpdated *metav1.Time `json:"ownershipUpdated,omitempty"`
}

// +kubebuilder:object:root=true

// DiskList is a list of Disks.
type DiskList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Disk `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`

// Snapshot is a managed disk snapshot (Microsoft.Compute/snapshots): what
// the Azure Disk CSI driver makes of a VolumeSnapshot, and a new disk can
// be made from. Its name is armid.ObjectName of its ID; the disk service
// owns it.
type Snapshot struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec SnapshotSpec `json:"spec"`
}

// SnapshotSpec is the snapshot as made.
type SnapshotSpec struct {
	// ResourceID is the snapshot's ARM ID, as spelled when it was created.
	ResourceID string `json:"resourceID"`
	// Resource is the ARM Snapshot (the SDK's JSON), read-only fields left
	// out; its creationData names the source disk.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource    runtime.RawExtension `json:"resource"`
	UniqueID    string               `json:"uniqueID"`
	TimeCreated metav1.Time          `json:"timeCreated"`
	// Content is the source disk's Content when the snapshot was taken.
	Content string `json:"content,omitempty"`
}

// +kubebuilder:object:root=true

// SnapshotList is a list of Snapshots.
type SnapshotList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Snapshot `json:"items"`
}

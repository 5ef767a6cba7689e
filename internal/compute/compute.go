// Package compute is the seam between node pools and the machines behind
// them. A Provider owns VMs: it creates, deletes, deallocates and starts the
// instances of a pool's scale set, each of which runs a node of its cluster.
// The node-pool controllers talk only to this interface; the sim provider
// simulates the VMs with KWOK, and a provider of real machines can come later.
package compute

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
)

// Instance is a VM of a scale set, with the node it registers when booted.
type Instance struct {
	// Name is the VM's and its node's name.
	Name string
	// OSDisk is where the OS disk lives; it decides what survives a
	// deallocation.
	OSDisk armcontainerservice.OSDiskType
	// ReadyAt is when the VM has provisioned and booted and its node is
	// Ready.
	ReadyAt time.Time

	// The node the VM's kubelet registers.
	Labels      map[string]string
	Annotations map[string]string
	Taints      []corev1.Taint
	Capacity    corev1.ResourceList
	Allocatable corev1.ResourceList
	NodeInfo    corev1.NodeSystemInfo
	ProviderID  string
	InternalIP  string
}

// Provider owns the VMs of every cluster's pools. cluster names the cluster
// (its hosted control plane) the VMs join.
type Provider interface {
	// Create provisions a VM; its node joins the cluster once booted.
	// Creating a VM that exists is not an error (a restart redoes creates).
	Create(ctx context.Context, cluster string, vm Instance) error
	// Delete deletes a VM and its node. Deleting a VM that is gone is not
	// an error.
	Delete(ctx context.Context, cluster, name string) error
	// Deallocate stops a VM and releases its host; its node stays,
	// NotReady, with reason.
	Deallocate(ctx context.Context, cluster, name, reason string) error
	// Start starts a deallocated VM on a new host: an Ephemeral OS disk
	// comes back empty, a Managed one as it was.
	Start(ctx context.Context, cluster, name string, disk armcontainerservice.OSDiskType) error
	// Reimage gives a VM a fresh OS disk from vm's image (labels and node
	// info) and boots it; its node keeps its name and stays NotReady until
	// vm.ReadyAt. Nothing on the old OS disk survives.
	Reimage(ctx context.Context, cluster string, vm Instance) error
	// Reboot restarts a VM; its node is NotReady until readyAt. The OS disk
	// keeps its contents, less the reboot-required marker: the reboot
	// applies the patches that set it.
	Reboot(ctx context.Context, cluster, name string, readyAt time.Time) error
}

// OSDiskMarkerAnnotation stands for what is on a node's OS disk: a workload
// or an in-place patch writes it there (as a node annotation), and it lasts
// exactly as long as the disk's contents would.
const OSDiskMarkerAnnotation = "slipway.dev/os-disk-marker"

// RebootRequiredAnnotation stands for /var/run/reboot-required on a node's
// OS disk: in-place OS patching (the Unmanaged upgrade channel) writes it,
// and a reboot or a reimage clears it.
const RebootRequiredAnnotation = "slipway.dev/reboot-required"

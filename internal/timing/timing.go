// Package timing models how long VM operations take, in real-world terms,
// scaled for the simulation: --time-scale 1 gives real durations, the default
// makes a new node Ready in about a second and a half so that a quick start
// feels immediate, and tests run faster still.
package timing

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

// Real-world durations. Provisioning and boot are what an AKS node takes from
// the scale set's instance create to a Ready node (about two to three
// minutes); an Ephemeral OS disk is a local copy of the image rather than a
// remote disk, so the VM provisions and boots faster, and reimages much
// faster (AKS's documentation for ephemeral OS disks: "faster node scaling
// and cluster upgrades").
const (
	ProvisionManaged   = 90 * time.Second
	ProvisionEphemeral = 60 * time.Second
	BootManaged        = 45 * time.Second
	BootEphemeral      = 30 * time.Second
	ReimageManaged     = 120 * time.Second
	ReimageEphemeral   = 45 * time.Second
)

// A managed data disk's attach and detach: the VM's update that adds or
// removes it from storageProfile.dataDisks. Azure's take tens of seconds
// (the Azure Disk CSI driver's logs show attach operations of 30 s to
// minutes: kubernetes-sigs/azuredisk-csi-driver#269, Azure/AKS#2936).
const (
	AttachDisk = 30 * time.Second
	DetachDisk = 20 * time.Second
)

// DefaultScale is --time-scale's default: a Managed node is Ready in 1.35 s,
// an Ephemeral one in 0.9 s.
const DefaultScale = 0.01

// Model scales the real-world durations.
type Model struct {
	// Scale multiplies every duration; 1 is real time.
	Scale float64
}

func (m Model) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * m.Scale)
}

func ephemeral(t armcontainerservice.OSDiskType) bool {
	return t == armcontainerservice.OSDiskTypeEphemeral
}

// NodeReady is how long a new VM takes from create to a Ready node.
func (m Model) NodeReady(disk armcontainerservice.OSDiskType) time.Duration {
	if ephemeral(disk) {
		return m.scaled(ProvisionEphemeral + BootEphemeral)
	}
	return m.scaled(ProvisionManaged + BootManaged)
}

// Reimage is how long a VM takes to reimage and boot again.
func (m Model) Reimage(disk armcontainerservice.OSDiskType) time.Duration {
	if ephemeral(disk) {
		return m.scaled(ReimageEphemeral + BootEphemeral)
	}
	return m.scaled(ReimageManaged + BootManaged)
}

// Reboot is how long a VM takes to restart: its boot alone.
func (m Model) Reboot(disk armcontainerservice.OSDiskType) time.Duration {
	if ephemeral(disk) {
		return m.scaled(BootEphemeral)
	}
	return m.scaled(BootManaged)
}

// Scaled scales a real-world duration (a soak, a Spot eviction's notice) to
// the simulation's clock.
func (m Model) Scaled(d time.Duration) time.Duration { return m.scaled(d) }

// MinTimeout is the least a timeout on the real Kubernetes components is
// scaled down to.
const MinTimeout = 30 * time.Second

// Timeout scales a timeout on work the real Kubernetes components do, like
// a drain's (AKS's drainTimeoutInMinutes): an evicted pod is replaced,
// scheduled and made Ready by the cluster's own controllers, which run in
// real time at any --time-scale. Scaled like any duration, AKS's 30 minutes
// would be 9 s at the tests' scale, shorter than a busy machine can take to
// replace a pod, and the drain would fail where AKS's succeeds. So it is
// scaled, but never below MinTimeout (or the timeout itself, if shorter).
func (m Model) Timeout(d time.Duration) time.Duration {
	return max(m.scaled(d), min(d, MinTimeout))
}

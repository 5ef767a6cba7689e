package containerservice

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

func TestDefaultStorageProfile(t *testing.T) {
	state := func(p *armcontainerservice.ManagedClusterProperties) [4]bool {
		sp := p.StorageProfile
		return [4]bool{*sp.DiskCSIDriver.Enabled, *sp.FileCSIDriver.Enabled, *sp.SnapshotController.Enabled, *sp.BlobCSIDriver.Enabled}
	}
	// A create without a profile gets AKS's defaults.
	created := &armcontainerservice.ManagedClusterProperties{}
	defaultStorageProfile(created, nil)
	if got := state(created); got != [4]bool{true, true, true, false} {
		t.Errorf("defaults %v, want disk, file, snapshots on and blob off", got)
	}
	// az aks create --disable-disk-driver.
	noDisk := &armcontainerservice.ManagedClusterProperties{StorageProfile: &armcontainerservice.ManagedClusterStorageProfile{
		DiskCSIDriver: &armcontainerservice.ManagedClusterStorageProfileDiskCSIDriver{Enabled: to.Ptr(false)}}}
	defaultStorageProfile(noDisk, nil)
	if got := state(noDisk); got != [4]bool{false, true, true, false} {
		t.Errorf("with the disk driver disabled: %v", got)
	}
	// An update that leaves the profile out keeps what the cluster has.
	old := &armcontainerservice.ManagedCluster{Properties: noDisk}
	update := &armcontainerservice.ManagedClusterProperties{}
	defaultStorageProfile(update, old)
	if got := state(update); got != [4]bool{false, true, true, false} {
		t.Errorf("an update without a profile: %v, want the disk driver still off", got)
	}
}

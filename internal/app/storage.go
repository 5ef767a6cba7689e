package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/storage"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
	"github.com/slipway-dev/slipway/internal/timing"
)

// clusterStorage starts each running cluster's storage controllers, with
// the disks of its node resource group (hosting.Options.Companion).
type clusterStorage struct {
	// client reads through the manager's cache: the drivers' switches
	// are asked at every provisioning and node sync.
	client   client.Reader
	disks    *disks.Service
	accounts *storageaccounts.Service
	timing   timing.Model
}

func (s clusterStorage) start(ctx context.Context, c *hosting.Cluster) (func(), error) {
	mc, err := s.cluster(ctx, c.ID())
	if err != nil {
		return nil, err
	}
	cfg, err := c.RESTConfig(hosting.Admin)
	if err != nil {
		return nil, err
	}
	p := mc.Properties
	st, err := storage.Start(ctx, storage.Options{
		Config: cfg, Disks: s.disks, Accounts: s.accounts, Timing: s.timing,
		Subscription: armid.SubscriptionOf(*mc.ID), NodeResourceGroup: *p.NodeResourceGroup, Location: *mc.Location,
		DiskDriverEnabled: func() bool { disk, _ := s.drivers(c.ID()); return disk },
		FileDriverEnabled: func() bool { _, file := s.drivers(c.ID()); return file },
	})
	if err != nil {
		return nil, err
	}
	return st.Stop, nil
}

func (s clusterStorage) cluster(ctx context.Context, name string) (*armcontainerservice.ManagedCluster, error) {
	return storedCluster(ctx, s.client, name)
}

// storedCluster reads a hosted cluster's ManagedCluster as its last PUT
// left it.
func storedCluster(ctx context.Context, c client.Reader, name string) (*armcontainerservice.ManagedCluster, error) {
	mc := &slipwayv1.ManagedCluster{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: name}, mc); err != nil {
		return nil, fmt.Errorf("reading the cluster of %s: %w", name, err)
	}
	return decodeCluster(mc)
}

// decodeCluster is a stored cluster's ARM resource, with its ID.
func decodeCluster(mc *slipwayv1.ManagedCluster) (*armcontainerservice.ManagedCluster, error) {
	var out armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mc.Spec.Resource.Raw, &out); err != nil {
		return nil, fmt.Errorf("stored cluster %s: %w", mc.Spec.ResourceID, err)
	}
	if out.Properties == nil || out.Properties.NodeResourceGroup == nil || out.Location == nil {
		return nil, fmt.Errorf("stored cluster %s has no node resource group or location", mc.Spec.ResourceID)
	}
	out.ID = &mc.Spec.ResourceID
	return &out, nil
}

// drivers are the disk and file drivers' switches in a cluster's
// storageProfile: on unless set off (the front door fills the profile in
// on every PUT); off if the cluster cannot be read.
func (s clusterStorage) drivers(name string) (disk, file bool) {
	mc, err := s.cluster(context.Background(), name)
	if err != nil {
		return false, false
	}
	disk, file = true, true
	if sp := mc.Properties.StorageProfile; sp != nil {
		if sp.DiskCSIDriver != nil && sp.DiskCSIDriver.Enabled != nil {
			disk = *sp.DiskCSIDriver.Enabled
		}
		if sp.FileCSIDriver != nil && sp.FileCSIDriver.Enabled != nil {
			file = *sp.FileCSIDriver.Enabled
		}
	}
	return disk, file
}

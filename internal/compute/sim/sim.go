// Package sim is the compute provider of simulated VMs: each VM is a node of
// its cluster kept alive by the cluster's embedded KWOK controllers
// (internal/simnode).
package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/simnode"
)

// Clusters finds hosted clusters.
type Clusters interface {
	Get(id string) (*hosting.Cluster, error)
}

// Provider simulates VMs on the clusters' embedded KWOK.
type Provider struct {
	Clusters Clusters
}

var _ compute.Provider = (*Provider)(nil)

// ErrNotRunning says the cluster's control plane is not running, so its VMs
// cannot be reached.
var ErrNotRunning = errors.New("the cluster's control plane is not running")

func (p *Provider) kubelets(cluster string) (*hosting.Cluster, *simnode.Kubelets, error) {
	c, err := p.Clusters.Get(cluster)
	if err != nil {
		return nil, nil, err
	}
	k := c.Kubelets()
	if k == nil {
		return nil, nil, fmt.Errorf("cluster %s: %w", cluster, ErrNotRunning)
	}
	return c, k, nil
}

// Create registers the VM's node, Ready once its boot is done.
func (p *Provider) Create(ctx context.Context, cluster string, vm compute.Instance) error {
	_, k, err := p.kubelets(cluster)
	if err != nil {
		return err
	}
	err = k.Register(ctx, simnode.Node{
		Name: vm.Name, Labels: vm.Labels, Annotations: vm.Annotations, Taints: vm.Taints, Capacity: vm.Capacity, Allocatable: vm.Allocatable,
		NodeInfo: vm.NodeInfo, ProviderID: vm.ProviderID, InternalIP: vm.InternalIP, ReadyAt: vm.ReadyAt,
	})
	// Creating a VM is idempotent, as a scale set's PUT of an instance is:
	// a controller that recorded a VM, made it and died before it could
	// record that, makes it again after a restart.
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Delete removes the VM's node.
func (p *Provider) Delete(ctx context.Context, cluster, name string) error {
	_, k, err := p.kubelets(cluster)
	if err != nil {
		return err
	}
	return k.Remove(ctx, name)
}

// Deallocate makes the node NotReady: nothing runs on a deallocated VM.
func (p *Provider) Deallocate(ctx context.Context, cluster, name, reason string) error {
	_, k, err := p.kubelets(cluster)
	if err != nil {
		return err
	}
	return k.SetNotReady(ctx, name, "VMDeallocated", reason)
}

// Start makes the node Ready again, and wipes an Ephemeral OS disk: it lived
// on the host the VM left.
func (p *Provider) Start(ctx context.Context, cluster, name string, disk armcontainerservice.OSDiskType) error {
	c, k, err := p.kubelets(cluster)
	if err != nil {
		return err
	}
	if disk == armcontainerservice.OSDiskTypeEphemeral {
		cs, err := c.AdminClient()
		if err != nil {
			return err
		}
		wipe := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, compute.OSDiskMarkerAnnotation)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(wipe), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
	}
	return k.SetReady(ctx, name)
}

// Reimage boots the node on a fresh OS disk: the image's labels and node
// info, and none of the old disk's markers.
func (p *Provider) Reimage(ctx context.Context, cluster string, vm compute.Instance) error {
	_, k, err := p.kubelets(cluster)
	if err != nil {
		return err
	}
	wiped := map[string]*string{compute.OSDiskMarkerAnnotation: nil, compute.RebootRequiredAnnotation: nil}
	return k.Boot(ctx, vm.Name, vm.ReadyAt, vm.Labels, wiped, &vm.NodeInfo)
}

// Reboot boots the node again on the same OS disk.
func (p *Provider) Reboot(ctx context.Context, cluster, name string, readyAt time.Time) error {
	_, k, err := p.kubelets(cluster)
	if err != nil {
		return err
	}
	return k.Boot(ctx, name, readyAt, nil, map[string]*string{compute.RebootRequiredAnnotation: nil}, nil)
}

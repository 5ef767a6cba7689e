package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/autoscaler"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// CapacityTag on a Spot pool set to "none" says Azure has no Spot capacity
// for it: the autoscaler's scale-ups of the pool fail as Azure's would
// (AllocationFailed), and it falls back to other pools. Slipway's own tag,
// for rehearsing the fallback.
const CapacityTag = "slipway.dev/spot-capacity"

// AutoscaledPools is the cluster autoscaler's view of one cluster's pools:
// it reads them from the management plane and changes their counts, as
// AKS's autoscaler changes its scale sets' capacity and the pool's count
// follows. The pool controller does the rest.
type AutoscaledPools struct {
	Client client.Client
	Images *nodeimage.Catalog
	// Cluster is the ManagedCluster object's name.
	Cluster string
}

var _ autoscaler.Cluster = (*AutoscaledPools)(nil)

// Pools implements autoscaler.Cluster.
func (a *AutoscaledPools) Pools(ctx context.Context) ([]autoscaler.Pool, *autoscaler.Profile, error) {
	mc := &slipwayv1.ManagedCluster{}
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: a.Cluster}, mc); err != nil {
		return nil, nil, err
	}
	c, err := desired(mc)
	if err != nil {
		return nil, nil, err
	}
	var profile *autoscaler.Profile
	if c.Properties != nil {
		profile = c.Properties.AutoScalerProfile
	}
	var list slipwayv1.AgentPoolList
	if err := a.Client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return nil, nil, err
	}
	var out []autoscaler.Pool
	for i := range list.Items {
		pool := &list.Items[i]
		var props nodepool.Properties
		if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
			return nil, nil, fmt.Errorf("pool %s: %w", pool.Spec.ResourceID, err)
		}
		stopped := props.PowerState != nil && deref(props.PowerState.Code) == armcontainerservice.CodeStopped
		p := autoscaler.Pool{
			Name:     pool.Spec.Name,
			ScaleSet: armid.ScaleSet(mc.Spec.ResourceID, pool.Spec.Name),
			Enabled:  deref(props.EnableAutoScaling),
			Min:      int(deref(props.MinCount)), Max: int(deref(props.MaxCount)),
			Count: int(deref(props.Count)),
			Busy:  busy(pool.Spec.Operation, pool.Status.CompletedOperation) || pool.DeletionTimestamp != nil || stopped || mc.Spec.Stopped || len(pool.Spec.DeleteMachines) > 0,
		}
		if deref(props.ScaleSetPriority) == armcontainerservice.ScaleSetPrioritySpot && strings.EqualFold(deref(props.Tags[CapacityTag]), "none") {
			p.NoCapacity = fmt.Sprintf("AllocationFailed: Allocation failed. We do not have sufficient capacity for the requested VM size %s in this region (Spot).", deref(props.VMSize))
		}
		image, err := poolImage(ctx, a.Images, pool, &props)
		if err != nil {
			return nil, nil, err
		}
		p.Template = templateNode(vmsOf(mc, pool, &props, image, nodepool.CurrentVersion(pool))(0))
		out = append(out, p)
	}
	return out, profile, nil
}

// templateNode is the node a VM registers, as the autoscaler's template.
func templateNode(vm compute.Instance) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: vm.Name, Labels: vm.Labels, Annotations: vm.Annotations},
		Spec:       corev1.NodeSpec{Taints: vm.Taints, ProviderID: vm.ProviderID},
		Status: corev1.NodeStatus{Capacity: vm.Capacity, Allocatable: vm.Allocatable, NodeInfo: vm.NodeInfo,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

// errPoolMoved says a pool is not as the autoscaler last saw it.
var errPoolMoved = errors.New("the pool changed since the autoscaler looked")

// update changes one pool's properties and spec, if it is free.
func (a *AutoscaledPools) update(ctx context.Context, name string, change func(*slipwayv1.AgentPool, *nodepool.Properties) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var list slipwayv1.AgentPoolList
		if err := a.Client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: a.Cluster}); err != nil {
			return err
		}
		i := slices.IndexFunc(list.Items, func(p slipwayv1.AgentPool) bool { return p.Spec.Name == name })
		if i < 0 {
			return fmt.Errorf("pool %s: %w", name, errPoolMoved)
		}
		pool := &list.Items[i]
		if busy(pool.Spec.Operation, pool.Status.CompletedOperation) || pool.DeletionTimestamp != nil {
			return fmt.Errorf("pool %s has an operation in progress: %w", name, errPoolMoved)
		}
		var props nodepool.Properties
		if err := json.Unmarshal(pool.Spec.Properties.Raw, &props); err != nil {
			return err
		}
		if !deref(props.EnableAutoScaling) {
			return fmt.Errorf("pool %s no longer autoscales: %w", name, errPoolMoved)
		}
		if err := change(pool, &props); err != nil {
			return err
		}
		raw, err := json.Marshal(&props)
		if err != nil {
			return err
		}
		pool.Spec.Properties.Raw = raw
		return a.Client.Update(ctx, pool)
	})
}

// Resize implements autoscaler.Cluster.
func (a *AutoscaledPools) Resize(ctx context.Context, name string, from, count int) error {
	return a.update(ctx, name, func(_ *slipwayv1.AgentPool, props *nodepool.Properties) error {
		if int(deref(props.Count)) != from {
			return fmt.Errorf("pool %s has %d nodes, not %d: %w", name, deref(props.Count), from, errPoolMoved)
		}
		props.Count = to.Ptr(int32(count))
		return nil
	})
}

// RemoveNode implements autoscaler.Cluster: the machine goes as
// deleteMachines removes one, the count down by one.
func (a *AutoscaledPools) RemoveNode(ctx context.Context, name, node string) error {
	return a.update(ctx, name, func(pool *slipwayv1.AgentPool, props *nodepool.Properties) error {
		if !slices.Contains(pool.Status.Nodes, node) {
			return fmt.Errorf("node %s is not in pool %s: %w", node, name, errPoolMoved)
		}
		props.Count = to.Ptr(max(deref(props.Count)-1, 0))
		pool.Spec.DeleteMachines = append(pool.Spec.DeleteMachines, node)
		return nil
	})
}

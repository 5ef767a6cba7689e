package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/log"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// EvictionNoticeAnnotation is set on a Spot node when its eviction is
// announced, with the time of the notice, as Azure's Scheduled Events
// Preempt notice would be seen on the VM.
const EvictionNoticeAnnotation = "slipway.dev/eviction-notice"

// removeNamedMachines carries out deleteMachines and simulated Spot
// evictions: each named machine is drained (Eviction API, PDBs honoured),
// then deleted, or deallocated for a Spot pool with the Deallocate policy.
// It returns the machines it removed, and whether a drain is still blocked.
func (r *AgentPoolReconciler) removeNamedMachines(ctx context.Context, pool *slipwayv1.AgentPool, props *nodepool.Properties, cs kubernetes.Interface, cluster string, byInstance map[int]*corev1.Node) (removed []string, blocked bool, err error) {
	if len(pool.Spec.DeleteMachines) == 0 && len(pool.Spec.Evictions) == 0 {
		return nil, false, nil
	}
	exists := func(name string) bool {
		for _, n := range byInstance {
			if n.Name == name {
				return true
			}
		}
		return false
	}
	deallocate := props.ScaleSetEvictionPolicy != nil && *props.ScaleSetEvictionPolicy == armcontainerservice.ScaleSetEvictionPolicyDeallocate
	for _, name := range pool.Spec.Evictions {
		if !exists(name) || slices.Contains(pool.Status.Deallocated, name) {
			continue
		}
		notice := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, EvictionNoticeAnnotation, time.Now().UTC().Format(time.RFC3339))
		if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(notice), metav1.PatchOptions{}); err != nil {
			return removed, false, err
		}
		nodeEvent(ctx, cs, name, corev1.EventTypeWarning, "Preempt", "Spot VM is being evicted: Azure needs the capacity back")
		if err := cordonAndDrain(ctx, cs, name, drainAttempt); err != nil {
			log.FromContext(ctx).Info("Eviction drain blocked, retrying", "node", name, "err", err.Error())
			return removed, true, nil
		}
		if deallocate {
			if err := r.Compute.Deallocate(ctx, cluster, name, "the Spot VM was evicted and deallocated"); err != nil {
				return removed, false, err
			}
			pool.Status.Deallocated = append(pool.Status.Deallocated, name)
			if err := r.Client.Status().Update(ctx, pool); err != nil {
				return removed, false, err
			}
			continue
		}
		if err := r.Compute.Delete(ctx, cluster, name); err != nil {
			return removed, false, err
		}
		removed = append(removed, name)
		// The scale set lost the instance: its capacity goes down by one,
		// and so does the pool's count.
		if c := *props.Count; c > 0 {
			props.Count = &[]int32{c - 1}[0]
		}
	}
	for _, name := range pool.Spec.DeleteMachines {
		if !exists(name) {
			continue
		}
		if err := cordonAndDrain(ctx, cs, name, drainAttempt); err != nil {
			log.FromContext(ctx).Info("Drain blocked, retrying", "node", name, "err", err.Error())
			return removed, true, nil
		}
		if err := r.Compute.Delete(ctx, cluster, name); err != nil {
			return removed, false, err
		}
		removed = append(removed, name)
		pool.Status.Deallocated = slices.DeleteFunc(pool.Status.Deallocated, func(n string) bool { return n == name })
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return removed, false, err
	}
	status := pool.Status.DeepCopy()
	pool.Spec.Properties.Raw = raw
	pool.Spec.Evictions, pool.Spec.DeleteMachines = nil, nil
	if err := r.Client.Update(ctx, pool); err != nil {
		return removed, false, err
	}
	pool.Status = *status
	return removed, false, r.Client.Status().Update(ctx, pool)
}

// event records a normal Kubernetes event about a node in its cluster.
func (r *AgentPoolReconciler) event(ctx context.Context, cs kubernetes.Interface, node, reason, message string) {
	nodeEvent(ctx, cs, node, corev1.EventTypeNormal, reason, message)
}

// nodeEvent records a Kubernetes event about a node, as AKS's node
// operations do (reasons Surge, Drain, Upgrade, Reboot, Preempt). Events are
// best effort: one lost must not fail the operation.
func nodeEvent(ctx context.Context, cs kubernetes.Interface, node, eventType, reason, message string) {
	now := metav1.Now()
	_, _ = cs.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: node + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node), APIVersion: "v1"},
		Reason:         reason, Message: message, Type: eventType,
		Source:         corev1.EventSource{Component: "slipway"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{})
}

// isPowerOp says whether the pool's running operation starts or stops it.
func isPowerOp(op *slipwayv1.OperationRef, working bool) bool {
	return working && (op.Action == "Starting" || op.Action == "Stopping")
}

// setPower deallocates every VM of a stopped pool (drained first, node left
// NotReady and cordoned) or starts the deallocated ones of a running pool
// (through the compute provider: an Ephemeral OS disk comes back empty),
// uncordoning their nodes. It reports whether the pool is in the asked state.
func (r *AgentPoolReconciler) setPower(ctx context.Context, pool *slipwayv1.AgentPool, props *nodepool.Properties, cs kubernetes.Interface, cluster string, nodes []corev1.Node, running bool) (bool, error) {
	changed := false
	for _, n := range nodes {
		deallocated := slices.Contains(pool.Status.Deallocated, n.Name)
		switch {
		case !running && !deallocated:
			if err := cordonAndDrain(ctx, cs, n.Name, drainAttempt); err != nil {
				log.FromContext(ctx).Info("Drain blocked, retrying", "node", n.Name, "err", err.Error())
				return false, nil
			}
			if err := r.Compute.Deallocate(ctx, cluster, n.Name, "the agent pool was stopped"); err != nil {
				return false, err
			}
			pool.Status.Deallocated = append(pool.Status.Deallocated, n.Name)
			changed = true
		case running && deallocated:
			if err := r.Compute.Start(ctx, cluster, n.Name, deref(props.OSDiskType)); err != nil {
				return false, err
			}
			uncordon := fmt.Sprintf(`{"spec":{"unschedulable":null},"metadata":{"annotations":{%q:null}}}`, EvictionNoticeAnnotation)
			if _, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(uncordon), metav1.PatchOptions{}); err != nil {
				return false, err
			}
			pool.Status.Deallocated = slices.DeleteFunc(pool.Status.Deallocated, func(s string) bool { return s == n.Name })
			changed = true
		}
	}
	if changed {
		if err := r.Client.Status().Update(ctx, pool); err != nil {
			return false, err
		}
	}
	return true, nil
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/nodepods"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// EvictionNoticeAnnotation is set on a Spot node when its eviction is
// announced, with the time of the notice, as Azure's Scheduled Events
// Preempt notice would be seen on the VM.
const EvictionNoticeAnnotation = "slipway.dev/eviction-notice"

// spotEvictionNotice is how long Azure gives a Spot VM between its
// eviction notice (Scheduled Events' Preempt) and taking it away, whatever
// runs on it; scaled by the timing model like every VM duration.
const spotEvictionNotice = 30 * time.Second

// removeNamedMachines carries out deleteMachines and simulated Spot
// evictions. A Spot eviction drains (Eviction API, PDBs honoured) for at
// most the notice Azure gives, then the VM goes whatever still runs on it:
// deleted, or deallocated under the Deallocate policy. deleteMachines
// drains each machine within the pool's drain timeout, then deletes it; a
// drain that a PodDisruptionBudget blocks past that fails the operation
// and gives the pool its count back. Intent is recorded before any VM is
// deleted, so a crash or a conflicting write never loses the count.
// It returns the machines it removed, and whether to come back later.
func (r *AgentPoolReconciler) removeNamedMachines(ctx context.Context, pool *slipwayv1.AgentPool, props *nodepool.Properties, cs kubernetes.Interface, cluster string, byInstance map[int]*corev1.Node, canceled bool) (removed []string, wait bool, err error) {
	if len(pool.Spec.DeleteMachines) == 0 && len(pool.Spec.Evictions) == 0 {
		return nil, false, nil
	}
	node := func(name string) *corev1.Node {
		for _, n := range byInstance {
			if n.Name == name {
				return n
			}
		}
		return nil
	}
	deallocate := deref(props.ScaleSetEvictionPolicy) == armcontainerservice.ScaleSetEvictionPolicyDeallocate
	for _, name := range slices.Clone(pool.Spec.Evictions) {
		n := node(name)
		if n == nil || slices.Contains(pool.Status.Deallocated, name) {
			continue
		}
		noticed, err := r.evictionNotice(ctx, cs, n)
		if err != nil {
			return removed, false, err
		}
		grace := r.Timing.Scaled(spotEvictionNotice) - time.Since(noticed)
		if grace > 0 {
			if err := cordonAndDrain(ctx, cs, name, min(grace, drainAttempt)); err != nil {
				log.FromContext(ctx).Info("Draining an evicted Spot VM", "node", name, "err", err.Error())
				return removed, true, nil
			}
		} else {
			// Azure takes the VM back now; what still runs on it goes
			// with it, PodDisruptionBudget or not. Nothing new lands on it.
			cordon := []byte(`{"spec":{"unschedulable":true}}`)
			if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, cordon, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return removed, false, fmt.Errorf("cordoning evicted node %s: %w", name, err)
			}
			nodeEvent(ctx, cs, name, corev1.EventTypeWarning, "Preempt", "Spot VM evicted at the end of its notice with pods still on it")
		}
		if deallocate {
			if err := r.Compute.Deallocate(ctx, cluster, name, "the Spot VM was evicted and deallocated"); err != nil {
				return removed, false, err
			}
			if err := deletePodsOn(ctx, cs, name); err != nil {
				return removed, false, err
			}
			pool.Status.Deallocated = append(pool.Status.Deallocated, name)
			if err := r.Client.Status().Update(ctx, pool); err != nil {
				return removed, false, err
			}
			continue
		}
		// The scale set loses the instance: the pool's count goes down by
		// one. That is recorded first, with the machine moved to the ones
		// to delete, so the delete below is redone, not lost, if anything
		// stops it.
		if c := deref(props.Count); c > 0 {
			props.Count = to.Ptr(c - 1)
		}
		pool.Spec.Evictions = slices.DeleteFunc(pool.Spec.Evictions, func(e string) bool { return e == name })
		pool.Spec.DeleteMachines = append(pool.Spec.DeleteMachines, name)
		if err := r.savePoolSpec(ctx, pool, props); err != nil {
			return removed, false, err
		}
		if err := r.Compute.Delete(ctx, cluster, name); err != nil {
			return removed, false, err
		}
		if err := deletePodsOn(ctx, cs, name); err != nil {
			return removed, false, err
		}
		removed = append(removed, name)
	}
	var pending []string
	for _, name := range pool.Spec.DeleteMachines {
		if node(name) == nil || slices.Contains(removed, name) {
			continue
		}
		if canceled {
			pending = append(pending, name)
			continue
		}
		if err := cordonAndDrain(ctx, cs, name, drainAttempt); err != nil {
			started, serr := r.operationStart(ctx, pool)
			if serr != nil {
				return removed, false, serr
			}
			if time.Since(started) < r.Timing.Timeout(drainTimeoutOf(props)) {
				log.FromContext(ctx).Info("Drain blocked, retrying", "node", name, "err", err.Error())
				return removed, true, nil
			}
			// Out of time: the machines not yet deleted stay, the pool
			// gets their count back, and the operation fails saying why.
			reason := explainDrainFailure(ctx, cs, name, err)
			for _, rest := range pool.Spec.DeleteMachines {
				if node(rest) != nil && !slices.Contains(removed, rest) {
					pending = append(pending, rest)
				}
			}
			props.Count = to.Ptr(deref(props.Count) + int32(len(pending)))
			pool.Spec.DeleteMachines = nil
			if err := r.savePoolSpec(ctx, pool, props); err != nil {
				return removed, false, err
			}
			return removed, false, r.finish(ctx, pool, "Failed", &slipwayv1.ErrorDetail{Code: "DrainFailed", Message: reason})
		}
		if err := r.Compute.Delete(ctx, cluster, name); err != nil {
			return removed, false, err
		}
		removed = append(removed, name)
		pool.Status.Deallocated = slices.DeleteFunc(pool.Status.Deallocated, func(n string) bool { return n == name })
	}
	if canceled && len(pending) > 0 {
		// An abort stops a deleteMachines: the machines left stay, and
		// count for the pool again.
		props.Count = to.Ptr(deref(props.Count) + int32(len(pending)))
	}
	pool.Spec.Evictions = slices.DeleteFunc(pool.Spec.Evictions, func(e string) bool { return node(e) == nil || slices.Contains(pool.Status.Deallocated, e) })
	pool.Spec.DeleteMachines = nil
	if err := r.savePoolSpec(ctx, pool, props); err != nil {
		return removed, false, err
	}
	return removed, false, r.Client.Status().Update(ctx, pool)
}

// savePoolSpec writes a pool's properties and spec. The status in memory
// survives it (an update answers with the stored status), so a status
// write may follow.
func (r *AgentPoolReconciler) savePoolSpec(ctx context.Context, pool *slipwayv1.AgentPool, props *nodepool.Properties) error {
	raw, err := json.Marshal(props)
	if err != nil {
		return err
	}
	pool.Spec.Properties.Raw = raw
	status := pool.Status.DeepCopy()
	if err := r.Client.Update(ctx, pool); err != nil {
		return fmt.Errorf("recording pool %s: %w", pool.Spec.ResourceID, err)
	}
	pool.Status = *status
	return nil
}

// evictionNotice announces a Spot eviction on its node (once) and returns
// when it was announced: the notice is kept on the node, so a restart does
// not give the VM a new grace period.
func (r *AgentPoolReconciler) evictionNotice(ctx context.Context, cs kubernetes.Interface, n *corev1.Node) (time.Time, error) {
	if at, err := time.Parse(time.RFC3339Nano, n.Annotations[EvictionNoticeAnnotation]); err == nil {
		return at, nil
	}
	now := time.Now().UTC()
	notice := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, EvictionNoticeAnnotation, now.Format(time.RFC3339Nano))
	if _, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(notice), metav1.PatchOptions{}); err != nil {
		return time.Time{}, fmt.Errorf("announcing the eviction of %s: %w", n.Name, err)
	}
	nodeEvent(ctx, cs, n.Name, corev1.EventTypeWarning, "Preempt", "Spot VM is being evicted: Azure needs the capacity back")
	return now, nil
}

// deletePodsOn deletes what still runs on a node whose VM is gone, as the
// node lifecycle controller would once the node's grace ran out: nothing
// stays bound to a machine that no longer runs it.
func deletePodsOn(ctx context.Context, cs kubernetes.Interface, node string) error {
	return nodepods.DeleteAll(ctx, cs, node)
}

// operationStart is when the pool's running operation started, from the
// operation itself, so a timeout counts across restarts (though not the
// time Slipway was down).
func (r *AgentPoolReconciler) operationStart(ctx context.Context, pool *slipwayv1.AgentPool) (time.Time, error) {
	op := &slipwayv1.Operation{}
	if pool.Spec.Operation == nil {
		return time.Now(), nil
	}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: pool.Spec.Operation.ID}, op); err != nil {
		if apierrors.IsNotFound(err) {
			return time.Now(), nil
		}
		return time.Time{}, err
	}
	if !op.Status.StartTime.IsZero() {
		return r.since(op.Status.StartTime.Time), nil
	}
	return r.since(op.CreationTimestamp.Time), nil
}

// drainTimeoutOf is the pool's drainTimeoutInMinutes, or AKS's default.
func drainTimeoutOf(props *nodepool.Properties) time.Duration {
	if us := props.UpgradeSettings; us != nil && us.DrainTimeoutInMinutes != nil && *us.DrainTimeoutInMinutes > 0 {
		return time.Duration(*us.DrainTimeoutInMinutes) * time.Minute
	}
	return defaultDrainTimeout
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
	return working && (op.Action == slipwayv1.ActionStarting || op.Action == slipwayv1.ActionStopping)
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
				started, serr := r.operationStart(ctx, pool)
				if serr != nil {
					return false, serr
				}
				if time.Since(started) < r.Timing.Timeout(drainTimeoutOf(props)) {
					log.FromContext(ctx).Info("Drain blocked, retrying", "node", n.Name, "err", err.Error())
					return false, nil
				}
				// The stop failed: the pool runs on (its stopped VMs
				// start again), and the operation says why.
				reason := explainDrainFailure(ctx, cs, n.Name, err)
				props.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(armcontainerservice.CodeRunning)}
				if err := r.savePoolSpec(ctx, pool, props); err != nil {
					return false, err
				}
				if err := r.Client.Status().Update(ctx, pool); err != nil && !apierrors.IsConflict(err) {
					return false, err
				}
				return false, r.finish(ctx, pool, "Failed", &slipwayv1.ErrorDetail{Code: "DrainFailed", Message: reason})
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

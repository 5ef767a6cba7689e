package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/log"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/simnode"
)

// Reboot coordination, as kured does it for AKS nodes patched in place: a
// node whose OS disk says it needs a reboot takes a cluster-wide lock (a
// Lease in kube-system, one per concurrent reboot, where kured annotates its
// DaemonSet), is cordoned and drained through the Eviction API, reboots,
// comes back Ready, is uncordoned, and releases the lock. New reboots start
// only inside the node OS maintenance window; a lock held by a node that is
// gone is released.
const (
	rebootLockPrefix = "slipway-reboot-"
	// rebootPhaseAnnotation records where a node's reboot is: draining,
	// then rebooting.
	rebootPhaseAnnotation = "slipway.dev/reboot-phase"
	phaseRebootDraining   = "draining"
	phaseRebooting        = "rebooting"
)

// coordinateReboots advances the reboots of one cluster and says when to
// look again.
func (r *NodeOSUpgradeReconciler) coordinateReboots(ctx context.Context, mc *slipwayv1.ManagedCluster, w windowState) (time.Duration, error) {
	hosted, err := r.Hosting.Get(mc.Status.HostedCluster)
	if err != nil || !hosted.Running() {
		return schedulerTick, nil
	}
	cs, err := hosted.AdminClient()
	if err != nil {
		return schedulerTick, err
	}
	// Candidates come from the API server's watch cache (resourceVersion
	// 0): a consistent LIST of every node, every tick, of every cluster,
	// would go to the datastore, which on the shared datastore cannot be
	// served from the cache. Nothing is decided on the cached copies:
	// the lock holder and a candidate are each read again (current) before
	// they are acted on.
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return schedulerTick, err
	}
	var needing []string
	for i := range list.Items {
		n := &list.Items[i]
		if _, ok := n.Annotations[compute.RebootRequiredAnnotation]; ok && !lockedElsewhere(n) {
			needing = append(needing, n.Name)
		}
	}
	slices.Sort(needing)
	leases := cs.CoordinationV1().Leases(metav1.NamespaceSystem)
	wait := schedulerTick
	var held []string
	for slot := range max(1, r.RebootConcurrency) {
		name := fmt.Sprintf("%s%d", rebootLockPrefix, slot)
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lease, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem}}, metav1.CreateOptions{})
		}
		if err != nil {
			return schedulerTick, err
		}
		holder := deref(lease.Spec.HolderIdentity)
		var node *corev1.Node
		if holder != "" {
			node, err = currentNode(ctx, cs, holder)
			if err != nil {
				return schedulerTick, err
			}
			if node == nil {
				log.FromContext(ctx).Info("Releasing the reboot lock of a node that is gone", "cluster", mc.Spec.ResourceID, "node", holder)
				if err := setHolder(ctx, cs, lease, ""); err != nil {
					return schedulerTick, err
				}
				holder = ""
			}
		}
		if holder == "" {
			if w.configured && !w.open {
				continue // no new reboots outside the window
			}
			if node, err = nextToReboot(ctx, cs, needing, held); err != nil {
				return schedulerTick, err
			}
			if node == nil {
				continue
			}
			holder = node.Name
			if err := setHolder(ctx, cs, lease, holder); err != nil {
				return schedulerTick, err
			}
			r.event(ctx, cs, holder, "Reboot", fmt.Sprintf("Node %s needs a reboot to finish installing OS patches; it took reboot lock %s", holder, name))
		}
		held = append(held, holder)
		done, err := r.rebootStep(ctx, cs, mc, node)
		if err != nil {
			return schedulerTick, err
		}
		if done {
			if err := setHolder(ctx, cs, lease, ""); err != nil {
				return schedulerTick, err
			}
		}
		wait = 200 * time.Millisecond
	}
	return wait, nil
}

// nextToReboot returns the first of the candidates, current from the API
// server, that is neither held by a lock this tick nor mid-reboot and
// still needs its reboot; nil when none does.
func nextToReboot(ctx context.Context, cs kubernetes.Interface, candidates, held []string) (*corev1.Node, error) {
	for _, name := range candidates {
		if slices.Contains(held, name) {
			continue
		}
		n, err := currentNode(ctx, cs, name)
		if err != nil {
			return nil, err
		}
		if n == nil || lockedElsewhere(n) {
			continue
		}
		if _, ok := n.Annotations[compute.RebootRequiredAnnotation]; ok {
			return n, nil
		}
	}
	return nil, nil
}

// currentNode reads a node from etcd (not the watch cache); nil if it is
// gone.
func currentNode(ctx context.Context, cs kubernetes.Interface, name string) (*corev1.Node, error) {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return n, err
}

// lockedElsewhere says a node is mid-reboot under some lock.
func lockedElsewhere(n *corev1.Node) bool {
	return n.Annotations[rebootPhaseAnnotation] != ""
}

func setHolder(ctx context.Context, cs kubernetes.Interface, lease *coordinationv1.Lease, holder string) error {
	if holder == "" {
		lease.Spec.HolderIdentity, lease.Spec.AcquireTime = nil, nil
	} else {
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity, lease.Spec.AcquireTime = &holder, &now
	}
	_, err := cs.CoordinationV1().Leases(lease.Namespace).Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// rebootStep advances one node's reboot and reports whether it is over.
func (r *NodeOSUpgradeReconciler) rebootStep(ctx context.Context, cs kubernetes.Interface, mc *slipwayv1.ManagedCluster, n *corev1.Node) (bool, error) {
	setPhase := func(phase string) error {
		v := "null"
		if phase != "" {
			v = fmt.Sprintf("%q", phase)
		}
		_, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, rebootPhaseAnnotation, v)), metav1.PatchOptions{})
		return err
	}
	switch n.Annotations[rebootPhaseAnnotation] {
	case "":
		if _, ok := n.Annotations[compute.RebootRequiredAnnotation]; !ok {
			return true, nil // rebooted meanwhile (a reimage clears the marker)
		}
		r.event(ctx, cs, n.Name, "Drain", fmt.Sprintf("Draining node %s before its reboot", n.Name))
		return false, setPhase(phaseRebootDraining)
	case phaseRebootDraining:
		if err := cordonAndDrain(ctx, cs, n.Name, drainAttempt); err != nil {
			log.FromContext(ctx).Info("Drain before reboot blocked, retrying", "node", n.Name, "err", err.Error())
			return false, nil
		}
		if err := setPhase(phaseRebooting); err != nil {
			return false, err
		}
		return false, r.reboot(ctx, mc, n)
	case phaseRebooting:
		if _, ok := n.Annotations[compute.RebootRequiredAnnotation]; ok {
			return false, r.reboot(ctx, mc, n) // a crash came between the two
		}
		readyAt, _ := time.Parse(time.RFC3339Nano, n.Annotations[simnode.ReadyAtAnnotation])
		if !ready(n) || time.Now().Before(readyAt) {
			return false, nil
		}
		if _, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"unschedulable":null},"metadata":{"annotations":{%q:null}}}`, rebootPhaseAnnotation)), metav1.PatchOptions{}); err != nil {
			return false, err
		}
		r.event(ctx, cs, n.Name, "Reboot", fmt.Sprintf("Node %s rebooted and is schedulable again", n.Name))
		return true, nil
	}
	return false, fmt.Errorf("node %s: unknown reboot phase %q", n.Name, n.Annotations[rebootPhaseAnnotation])
}

func (r *NodeOSUpgradeReconciler) reboot(ctx context.Context, mc *slipwayv1.ManagedCluster, n *corev1.Node) error {
	disk := armcontainerservice.OSDiskTypeManaged
	if n.Labels["kubernetes.azure.com/storageprofile"] == "ephemeral" {
		disk = armcontainerservice.OSDiskTypeEphemeral
	}
	hosted, err := r.Hosting.Get(mc.Status.HostedCluster)
	if err != nil {
		return err
	}
	cs, err := hosted.AdminClient()
	if err != nil {
		return err
	}
	r.event(ctx, cs, n.Name, "Reboot", fmt.Sprintf("Rebooting node %s", n.Name))
	return r.Compute.Reboot(ctx, hosted.ID(), n.Name, time.Now().Add(r.Timing.Reboot(disk)))
}

// event records a Kubernetes event about a node.
func (r *NodeOSUpgradeReconciler) event(ctx context.Context, cs kubernetes.Interface, node, reason, message string) {
	nodeEvent(ctx, cs, node, corev1.EventTypeNormal, reason, message)
}

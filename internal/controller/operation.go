// Package controller holds Slipway's reconcilers: they carry out what the ARM
// front door records in the management objects (create, update, scale, stop,
// start, delete) against the hosting layer and the simulated nodes, and end
// the operations clients poll.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/hosting"
)

// Hosting is what the controllers need of the hosting layer.
type Hosting interface {
	Get(id string) (*hosting.Cluster, error)
	// Adopt is Get for the cluster controller, which starts control
	// planes: a cluster that moved here from another host is taken from
	// the shared registry.
	Adopt(ctx context.Context, id string) (*hosting.Cluster, error)
	// Release stops a cluster that moved to another host and forgets it.
	Release(id string)
	Create(ctx context.Context, spec hosting.ClusterSpec) (*hosting.Cluster, error)
	Delete(ctx context.Context, id string) error
}

// Placement says which host runs a cluster's control plane when several
// share the management plane (internal/fleet). A nil Placement means this
// host runs every cluster.
type Placement interface {
	// Place places mc on a host if none runs it yet, and reports whether
	// this host does.
	Place(ctx context.Context, mc *slipwayv1.ManagedCluster) (mine bool, err error)
	// Mine reports whether this host runs mc.
	Mine(mc *slipwayv1.ManagedCluster) bool
}

// elsewhereRecheck is how often a host looks again at a cluster another
// host runs, or that it may not run while fenced: the cluster may have come
// back to it with no change of its own to wake the controllers.
const elsewhereRecheck = time.Minute

// elsewhere is the result for a cluster this host does not run.
func elsewhere() (ctrl.Result, error) { return ctrl.Result{RequeueAfter: elsewhereRecheck}, nil }

// runsHere reports whether the per-cluster controllers of this host act on
// mc: the ones of the host that runs it, and no other's.
func runsHere(p Placement, mc *slipwayv1.ManagedCluster) bool { return p == nil || p.Mine(mc) }

// perCluster completes the options of a controller of per-cluster work:
// with hosts sharing the management plane every host runs it for its own
// clusters, where otherwise the leader alone runs every controller.
func perCluster(p Placement, o controller.Options) controller.Options {
	if p != nil {
		o.NeedLeaderElection = ptr.To(false)
	}
	return o
}

// adminClientOf is an admin client of a hosted cluster's control plane;
// ok is false while there is none yet (its control plane is being made).
func adminClientOf(h Hosting, id string) (cs kubernetes.Interface, ok bool, err error) {
	hosted, err := h.Get(id)
	if errors.Is(err, hosting.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	cs, err = hosted.AdminClient()
	return cs, err == nil, err
}

// operationStatus returns an operation's status; a missing operation counts
// as canceled, so nothing waits on it forever. The cache may not have seen
// an operation the front door has just written (the operation and its
// resource are watched separately, with no order between them), so a miss
// in c is confirmed by fresh, a read from the API server, before anything
// is concluded from it.
func operationStatus(ctx context.Context, c client.Client, fresh client.Reader, id string) (string, error) {
	op := &slipwayv1.Operation{}
	err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: id}, op)
	if apierrors.IsNotFound(err) && fresh != nil {
		err = fresh.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: id}, op)
	}
	if apierrors.IsNotFound(err) {
		return slipwayv1.OperationCanceled, nil
	}
	if err != nil {
		return "", err
	}
	if op.Status.Status == "" {
		return slipwayv1.OperationInProgress, nil
	}
	return op.Status.Status, nil
}

// finishRecordedDelete issues the delete of an object whose spec records a
// Deleting operation but that is not being deleted: the front door writes
// the operation and then deletes, and a crash or a failed call between the
// two must not leave the operation running for ever.
func finishRecordedDelete(ctx context.Context, c client.Client, obj client.Object, ref *slipwayv1.OperationRef) (bool, error) {
	if ref == nil || ref.Action != slipwayv1.ActionDeleting || obj.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return true, fmt.Errorf("issuing the recorded delete of %s: %w", obj.GetName(), err)
	}
	return true, nil
}

// endOperation records how an operation ended, unless it already has (an
// abort ends it first).
func endOperation(ctx context.Context, c client.Client, id, status string, e *slipwayv1.ErrorDetail) error {
	// Retried on conflict: the operation's progress is written by the same
	// controller, and a cached read may trail that write.
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		op := &slipwayv1.Operation{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: id}, op); err != nil {
			return client.IgnoreNotFound(err)
		}
		if op.Status.Status != "" && op.Status.Status != slipwayv1.OperationInProgress {
			return nil
		}
		now := metav1.Now()
		op.Status.Status, op.Status.EndTime, op.Status.Error, op.Status.PercentComplete = status, &now, e, 100
		if op.Status.StartTime.IsZero() {
			op.Status.StartTime = op.CreationTimestamp
		}
		if err := c.Status().Update(ctx, op); err != nil {
			return err
		}
		// Creation timestamps are whole seconds; the log's own clock
		// places the end, so a figure read from the log is good to a second.
		log.FromContext(ctx).Info("Operation ended", "operation", id, "status", status, "took", now.Sub(op.Status.StartTime.Time).Round(time.Millisecond))
		return nil
	})
	if err != nil {
		return fmt.Errorf("ending operation %s: %w", id, err)
	}
	return nil
}

// setProgress records percentComplete on a running operation.
func setProgress(ctx context.Context, c client.Client, id string, percent int32) {
	op := &slipwayv1.Operation{}
	if c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: id}, op) != nil {
		return
	}
	if op.Status.Status != "" && op.Status.Status != slipwayv1.OperationInProgress || op.Status.PercentComplete >= percent {
		return
	}
	op.Status.PercentComplete = percent
	_ = c.Status().Update(ctx, op)
}

func busy(ref *slipwayv1.OperationRef, completed string) bool {
	return ref != nil && ref.ID != completed
}

// aborted reports whether the running operation ref was canceled (by an
// abort, or lost), so its controller stops at this safe point.
func aborted(ctx context.Context, c client.Client, fresh client.Reader, ref *slipwayv1.OperationRef) (bool, error) {
	status, err := operationStatus(ctx, c, fresh, ref.ID)
	return status == slipwayv1.OperationCanceled, err
}

// failure turns an error into the ARM error an operation ends with.
func failure(code string, err error) *slipwayv1.ErrorDetail {
	return &slipwayv1.ErrorDetail{Code: code, Message: err.Error()}
}

// desired is the cluster as its last PUT asked for it, in ARM's shape.
func desired(mc *slipwayv1.ManagedCluster) (*armcontainerservice.ManagedCluster, error) {
	var c armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mc.Spec.Resource.Raw, &c); err != nil {
		return nil, fmt.Errorf("stored cluster %s: %w", mc.Spec.ResourceID, err)
	}
	if c.Properties == nil {
		c.Properties = &armcontainerservice.ManagedClusterProperties{}
	}
	return &c, nil
}

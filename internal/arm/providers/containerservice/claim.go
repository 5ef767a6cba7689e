package containerservice

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
)

// Writes to a cluster and to its pools are serialised through the cluster's
// management object, so that two of them racing cannot both be accepted
// (AKS answers the second with 409). A write that starts an operation on a
// pool first records its operation on the cluster, as an annotation,
// through an update conditional on the cluster's resourceVersion it read
// before its busy check; a concurrent writer's update then conflicts, and
// it checks again. Every busy check reads the claim, so a pool operation is
// seen from the moment it is claimed, before its pool is written. It holds
// across many Slipway hosts because the management plane's optimistic
// concurrency does the serialising, not a lock in one process. The node OS
// scheduler claims the same way (slipwayv1.AnnotationWriteClaim).
const claimAnnotation = slipwayv1.AnnotationWriteClaim

// claimAttempts bounds the retries of a claim whose update conflicted with
// a write that turned out not to be a competing operation (a status update
// of the cluster's controller).
const claimAttempts = 5

// claim records op (on pool, or on the cluster when pool is "") on mc.
// recheck runs the busy check again on a fresher copy after a conflict.
func (s *Provider) claim(ctx context.Context, mc *slipwayv1.ManagedCluster, op *slipwayv1.Operation, pool string, recheck func(*slipwayv1.ManagedCluster) error) error {
	for attempt := 1; ; attempt++ {
		if mc.Annotations == nil {
			mc.Annotations = map[string]string{}
		}
		mc.Annotations[claimAnnotation] = slipwayv1.WriteClaim(op.Name, op.Spec.Action, pool)
		err := s.Client().Update(ctx, mc)
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == claimAttempts {
			s.CancelRefused(ctx, op, "Another operation started first.")
			if apierrors.IsConflict(err) {
				return arm.AnotherOperationInProgress()
			}
			return err
		}
		if err := s.Client().Get(ctx, client.ObjectKeyFromObject(mc), mc); err != nil {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return err
		}
		if mc.DeletionTimestamp != nil {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return arm.OperationNotAllowed("Operation is not allowed: the cluster is being deleted.")
		}
		if err := recheck(mc); err != nil {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return err
		}
	}
}

// claimBusy returns the action and pool of the operation claimed on mc if
// it is still running and is not mc's own current operation.
func (s *Provider) claimBusy(ctx context.Context, mc *slipwayv1.ManagedCluster) (action, pool string, err error) {
	fields := strings.Fields(mc.Annotations[claimAnnotation])
	if len(fields) < 2 {
		return "", "", nil
	}
	id := fields[0]
	if mc.Spec.Operation != nil && mc.Spec.Operation.ID == id {
		return "", "", nil // the cluster's own operation: checked from its spec
	}
	op, err := s.GetOperation(ctx, id)
	if arm.IsNotFound(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	if st := op.Status.Status; st != "" && st != slipwayv1.OperationInProgress {
		return "", "", nil
	}
	if len(fields) > 2 {
		pool = fields[2]
	}
	return fields[1], pool, nil
}

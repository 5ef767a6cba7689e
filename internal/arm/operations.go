package arm

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// newOperationID returns a GUID, as ARM operation IDs are.
func newOperationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// startOperation records a new operation. It is written before the resource
// that names it, so a crash in between leaves only an orphan operation (which
// ends Failed), never a resource waiting on an operation that does not exist.
func (s *Server) startOperation(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error) {
	op := &slipwayv1.Operation{
		ObjectMeta: metav1.ObjectMeta{Name: newOperationID(), Namespace: slipwayv1.Namespace},
		Spec: slipwayv1.OperationSpec{
			SubscriptionID: s.cfg.SubscriptionID, Location: location,
			ResourceID: resourceID, Action: action, Deletes: deletes,
		},
	}
	if err := s.cfg.Client.Create(ctx, op); err != nil {
		return nil, fmt.Errorf("recording operation: %w", err)
	}
	op.Status = slipwayv1.OperationStatus{Status: slipwayv1.OperationInProgress, StartTime: metav1.Now()}
	if err := s.cfg.Client.Status().Update(ctx, op); err != nil {
		return nil, fmt.Errorf("recording operation: %w", err)
	}
	return op, nil
}

// finishOperation ends an operation the front door can finish itself.
func (s *Server) finishOperation(ctx context.Context, op *slipwayv1.Operation, status string, e *slipwayv1.ErrorDetail) error {
	now := metav1.Now()
	op.Status.Status, op.Status.EndTime, op.Status.Error, op.Status.PercentComplete = status, &now, e, 100
	return s.cfg.Client.Status().Update(ctx, op)
}

// operationURLs are the Azure-AsyncOperation and Location URLs of an
// operation, with the api-version of the request that started it.
func (s *Server) operationURLs(r *http.Request, op *slipwayv1.Operation, provider string) (async, location string) {
	base := fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s", s.cfg.BaseURL, s.cfg.SubscriptionID, provider, op.Spec.Location)
	q := "?api-version=" + url.QueryEscape(r.URL.Query().Get("api-version"))
	return base + "/operations/" + op.Name + q, base + "/operationresults/" + op.Name + q
}

// accepted writes the headers of a started long-running operation.
func (s *Server) accepted(w http.ResponseWriter, r *http.Request, op *slipwayv1.Operation, provider string, withLocation bool) {
	async, loc := s.operationURLs(r, op, provider)
	w.Header().Set("Azure-AsyncOperation", async)
	if withLocation {
		w.Header().Set("Location", loc)
	}
	w.Header().Set("Retry-After", s.retryAfter())
}

func (s *Server) retryAfter() string {
	return strconv.Itoa(max(1, int(s.cfg.RetryAfter/time.Second)))
}

func (s *Server) getOperation(ctx context.Context, id string) (*slipwayv1.Operation, error) {
	op := &slipwayv1.Operation{}
	err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(id)}, op)
	if apierrors.IsNotFound(err) {
		return nil, newError(http.StatusNotFound, "NotFound", "", "Operation %s was not found.", id)
	}
	if err != nil {
		return nil, err
	}
	return op, nil
}

// orphanAfter is how long an operation may run without its resource naming
// it before it is settled as failed: the front door writes the resource
// right after the operation, so only a crash in between leaves one behind.
const orphanAfter = 30 * time.Second

// settle ends an operation whose outcome follows from its resource alone: a
// delete whose resource is gone succeeded; an operation its resource no
// longer names (superseded, or never written because of a crash) is over.
// This keeps every operation terminal even when Slipway died at the worst
// moment.
func (s *Server) settle(ctx context.Context, op *slipwayv1.Operation) error {
	if op.Status.Status != "" && op.Status.Status != slipwayv1.OperationInProgress {
		return nil
	}
	if !op.Spec.Deletes && time.Since(op.CreationTimestamp.Time) <= orphanAfter {
		return nil // nothing to settle yet: spare every poll the lookups
	}
	current, err := s.currentOperation(ctx, op.Spec.ResourceID)
	switch {
	case isNotFound(err) && op.Spec.Deletes:
		return s.finishOperation(ctx, op, slipwayv1.OperationSucceeded, nil)
	case isNotFound(err) && time.Since(op.CreationTimestamp.Time) > orphanAfter:
		return s.finishOperation(ctx, op, slipwayv1.OperationFailed, &slipwayv1.ErrorDetail{Code: "ResourceNotFound", Message: "The resource of this operation no longer exists."})
	case err != nil:
		if isNotFound(err) {
			return nil
		}
		return err
	case current != op.Name && time.Since(op.CreationTimestamp.Time) > orphanAfter:
		return s.finishOperation(ctx, op, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "Canceled", Message: "Another operation on the resource took over from this one."})
	}
	return nil
}

// currentOperation returns the ID of the operation a resource names.
func (s *Server) currentOperation(ctx context.Context, id string) (string, error) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	var ref *slipwayv1.OperationRef
	switch len(segs) {
	case 4:
		g, err := s.lookupResourceGroup(ctx, segs[3])
		if err != nil {
			return "", err
		}
		ref = g.Spec.Operation
	case 8, 10:
		mc, err := s.lookupCluster(ctx, segs[3], segs[7])
		if err != nil {
			return "", err
		}
		ref = mc.Spec.Operation
		if len(segs) == 10 {
			pool, err := s.lookupAgentPool(ctx, mc, segs[9])
			if err != nil {
				return "", err
			}
			ref = pool.Spec.Operation
		}
	default:
		return "", fmt.Errorf("operation on unknown resource %s", id)
	}
	if ref == nil {
		return "", nil
	}
	return ref.ID, nil
}

// getOperationStatus is the Azure-AsyncOperation URL.
func (s *Server) getOperationStatus(w http.ResponseWriter, r *http.Request, p params) error {
	op, err := s.getOperation(r.Context(), p["op"])
	if err != nil {
		return err
	}
	if err := s.authorize(r.Context(), readAction(op.Spec.ResourceID), op.Spec.ResourceID); err != nil {
		return err
	}
	if err := s.settle(r.Context(), op); err != nil {
		return err
	}
	status := op.Status.Status
	if status == "" {
		status = slipwayv1.OperationInProgress
	}
	body := map[string]any{
		"id":              strings.TrimPrefix(strings.SplitN(r.URL.String(), "?", 2)[0], s.cfg.BaseURL),
		"name":            op.Name,
		"status":          status,
		"percentComplete": op.Status.PercentComplete,
		"resourceId":      op.Spec.ResourceID,
	}
	if !op.Status.StartTime.IsZero() {
		body["startTime"] = op.Status.StartTime.UTC().Format(time.RFC3339Nano)
	}
	if op.Status.EndTime != nil {
		body["endTime"] = op.Status.EndTime.UTC().Format(time.RFC3339Nano)
	}
	if op.Status.Error != nil {
		body["error"] = op.Status.Error
	}
	if op.Status.Upgrade != nil {
		body["properties"] = map[string]any{"upgradeStatus": upgradeStatus(op.Status.Upgrade)}
	}
	if status == slipwayv1.OperationInProgress {
		w.Header().Set("Retry-After", s.retryAfter())
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// getOperationResult is the Location URL: 202 while the operation runs,
// then the resource (200), nothing for a delete (204), or the error.
func (s *Server) getOperationResult(w http.ResponseWriter, r *http.Request, p params) error {
	op, err := s.getOperation(r.Context(), p["op"])
	if err != nil {
		return err
	}
	if err := s.authorize(r.Context(), readAction(op.Spec.ResourceID), op.Spec.ResourceID); err != nil {
		return err
	}
	if err := s.settle(r.Context(), op); err != nil {
		return err
	}
	switch op.Status.Status {
	case "", slipwayv1.OperationInProgress:
		_, loc := s.operationURLs(r, op, providerFromURL(r.URL.Path))
		w.Header().Set("Location", loc)
		w.Header().Set("Retry-After", s.retryAfter())
		w.WriteHeader(http.StatusAccepted)
		return nil
	case slipwayv1.OperationSucceeded:
		if op.Spec.Deletes {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		body, err := s.renderByID(r.Context(), op.Spec.ResourceID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	default:
		e := op.Status.Error
		if e == nil {
			e = &slipwayv1.ErrorDetail{Code: op.Status.Status, Message: "The operation ended " + op.Status.Status + "."}
		}
		return &Error{Status: http.StatusBadRequest, Code: e.Code, Message: e.Message, Target: e.Target}
	}
}

func providerFromURL(path string) string {
	if strings.Contains(strings.ToLower(path), "/microsoft.resources/") {
		return providerResources
	}
	return providerContainerService
}

// StartOperation records a new operation for a controller that starts one
// itself (a resource group deleting its clusters).
func (s *Server) StartOperation(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error) {
	return s.startOperation(ctx, resourceID, action, location, deletes)
}

// acceptUpdate stores obj, whose spec now names op, and answers 202 with the
// operation's URLs. A concurrent change to obj means another operation got
// there first: 409, as AKS answers.
func (s *Server) acceptUpdate(w http.ResponseWriter, r *http.Request, obj client.Object, op *slipwayv1.Operation) error {
	if err := s.cfg.Client.Update(r.Context(), obj); err != nil {
		if apierrors.IsConflict(err) {
			s.finishOperation(r.Context(), op, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "OperationNotAllowed", Message: "Another operation started first."})
			return operationNotAllowed("Operation is not allowed: Another operation is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
		}
		return err
	}
	s.accepted(w, r, op, providerContainerService, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

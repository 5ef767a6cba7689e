package arm

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// NewOperationID returns a GUID, as ARM operation IDs are (and eTags).
func NewOperationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// StartOperation records a new operation. It is written before the resource
// that names it, so a crash in between leaves only an orphan operation (which
// ends Failed), never a resource waiting on an operation that does not exist.
func (s *Server) StartOperation(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error) {
	op := &slipwayv1.Operation{
		ObjectMeta: metav1.ObjectMeta{Name: NewOperationID(), Namespace: slipwayv1.Namespace},
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

// FinishOperation ends an operation the front door can finish itself,
// unless something else (its controller, an abort) ended it first: then op
// is refreshed to how it ended. Conflicts with a concurrent progress write
// are retried, never answered as a 500.
func (s *Server) FinishOperation(ctx context.Context, op *slipwayv1.Operation, status string, e *slipwayv1.ErrorDetail) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if op.Status.Status != "" && op.Status.Status != slipwayv1.OperationInProgress {
			return nil
		}
		now := metav1.Now()
		op.Status.Status, op.Status.EndTime, op.Status.Error, op.Status.PercentComplete = status, &now, e, 100
		err := s.cfg.Client.Status().Update(ctx, op)
		if apierrors.IsConflict(err) {
			if gerr := s.cfg.Client.Get(ctx, client.ObjectKeyFromObject(op), op); gerr != nil {
				return gerr
			}
		}
		return err
	})
}

// OperationURLs are the Azure-AsyncOperation and Location URLs of an
// operation, with the api-version of the request that started it.
func (s *Server) OperationURLs(r *http.Request, op *slipwayv1.Operation, provider string) (async, location string) {
	base := fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s", s.cfg.BaseURL, s.cfg.SubscriptionID, provider, op.Spec.Location)
	q := "?api-version=" + url.QueryEscape(APIVersion(r))
	return base + "/operations/" + op.Name + q, base + "/operationresults/" + op.Name + q
}

// Accepted writes the headers of a started long-running operation.
func (s *Server) Accepted(w http.ResponseWriter, r *http.Request, op *slipwayv1.Operation, provider string, withLocation bool) {
	async, loc := s.OperationURLs(r, op, provider)
	w.Header().Set("Azure-AsyncOperation", async)
	if withLocation {
		w.Header().Set("Location", loc)
	}
	w.Header().Set("Retry-After", s.RetryAfter())
}

// RetryAfter is the Retry-After header of running operations.
func (s *Server) RetryAfter() string {
	return strconv.Itoa(max(1, int(s.cfg.RetryAfter/time.Second)))
}

// GetOperation reads an operation by its ID.
func (s *Server) GetOperation(ctx context.Context, id string) (*slipwayv1.Operation, error) {
	op := &slipwayv1.Operation{}
	err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(id)}, op)
	if apierrors.IsNotFound(err) {
		return nil, NewError(http.StatusNotFound, "NotFound", "", "Operation %s was not found.", id)
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
	res, err := s.Lookup(ctx, op.Spec.ResourceID)
	switch {
	case IsNotFound(err) && op.Spec.Deletes:
		return s.FinishOperation(ctx, op, slipwayv1.OperationSucceeded, nil)
	case IsNotFound(err) && time.Since(op.CreationTimestamp.Time) > orphanAfter:
		return s.FinishOperation(ctx, op, slipwayv1.OperationFailed, &slipwayv1.ErrorDetail{Code: "ResourceNotFound", Message: "The resource of this operation no longer exists."})
	case err != nil:
		if IsNotFound(err) {
			return nil
		}
		return err
	case res.Operation != op.Name && time.Since(op.CreationTimestamp.Time) > orphanAfter:
		return s.FinishOperation(ctx, op, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "Canceled", Message: "Another operation on the resource took over from this one."})
	}
	return nil
}

// A ResourceType is a kind of resource a provider serves, as the core needs
// to know it to answer the operations that act on it.
type ResourceType struct {
	// Pattern is the route of one resource, spelled as ARM spells it.
	Pattern string
	// Lookup finds the resource the pattern's parameters name: a 404
	// *Error when it does not exist.
	Lookup func(ctx context.Context, p Params) (*Resource, error)
	// OperationProperties, if set, gives the properties an operation
	// status shows for an operation on such a resource (an upgrade's
	// progress), or nil.
	OperationProperties func(op *slipwayv1.Operation) any
}

// Resource is what the core knows of one resource.
type Resource struct {
	// ID is the resource's ID as it was created.
	ID string
	// Operation is the ID of the operation the resource names, or "".
	Operation string
	// Render returns the resource as a GET shows it.
	Render func(ctx context.Context) (any, error)
}

// ResourceType registers a kind of resource operations can act on.
func (s *Server) ResourceType(t ResourceType) {
	s.types = append(s.types, registeredType{ResourceType: t, route: route{segs: s.learn(t.Pattern)}})
}

// registeredType is a ResourceType with its pattern split once.
type registeredType struct {
	ResourceType
	route route
}

// ResourcePatterns are the route patterns of every registered resource
// type, in registration order: the scopes extension resources (role
// assignments) attach to.
func (s *Server) ResourcePatterns() []string {
	var out []string
	for _, t := range s.types {
		out = append(out, t.Pattern)
	}
	return out
}

// typeOf is the registered type of the resource an ARM ID names, with the
// ID's parameters.
func (s *Server) typeOf(id string) (*ResourceType, Params) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	for i := range s.types {
		if p, ok := s.types[i].route.match(segs); ok {
			return &s.types[i].ResourceType, p
		}
	}
	return nil, nil
}

// ScopeOf is the scope an extension resource's route addresses (pattern,
// the scope part of its route, filled in from p), checked to exist: the
// subscription, or a resource of a registered type by its ID as created.
func (s *Server) ScopeOf(ctx context.Context, pattern string, p Params) (string, error) {
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") {
			segs[i] = p[strings.Trim(seg, "{}")]
		}
	}
	if len(segs) <= 2 {
		return "/subscriptions/" + s.SubscriptionID(), nil
	}
	res, err := s.Lookup(ctx, "/"+strings.Join(segs, "/"))
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// ScopedHandler serves an extension resource's request at a scope that
// exists (ScopeOf).
type ScopedHandler func(w http.ResponseWriter, r *http.Request, p Params, scope string) error

// AtScope serves an extension resource's route: it resolves the scope the
// request addresses (pattern, the scope part of the route) and calls h
// with it, or answers 404 if it does not exist.
func (s *Server) AtScope(pattern string, h ScopedHandler) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p Params) error {
		scope, err := s.ScopeOf(r.Context(), pattern, p)
		if err != nil {
			return err
		}
		return h(w, r, p, scope)
	}
}

// Lookup finds the resource an ARM ID names through the provider that
// registered its type: a 404 *Error when it does not exist.
func (s *Server) Lookup(ctx context.Context, id string) (*Resource, error) {
	t, p := s.typeOf(id)
	if t == nil {
		return nil, fmt.Errorf("no provider serves resource %s", id)
	}
	return t.Lookup(ctx, p)
}

// CancelRefused ends an operation recorded for a request that was then
// refused (another operation got there first), saying why.
func (s *Server) CancelRefused(ctx context.Context, op *slipwayv1.Operation, message string) {
	if err := s.FinishOperation(ctx, op, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "OperationNotAllowed", Message: message}); err != nil {
		slog.Warn("Ending a refused operation", "operation", op.Name, "err", err)
	}
}

// OperationRoutes registers the operation status (Azure-AsyncOperation)
// and result (Location) routes of a provider namespace.
func (s *Server) OperationRoutes(namespace string, versions APIVersions) {
	base := "subscriptions/{sub}/providers/" + namespace + "/locations/{loc}/"
	s.Handle("GET", base+"operations/{op}", versions, s.getOperationStatus, AuthorizeInHandler)
	s.Handle("GET", base+"operationresults/{op}", versions, func(w http.ResponseWriter, r *http.Request, p Params) error {
		return s.getOperationResult(w, r, p, namespace)
	}, AuthorizeInHandler)
}

// getOperationStatus is the Azure-AsyncOperation URL.
func (s *Server) getOperationStatus(w http.ResponseWriter, r *http.Request, p Params) error {
	op, err := s.GetOperation(r.Context(), p["op"])
	if err != nil {
		return err
	}
	if err := s.Authorize(r.Context(), s.ReadAction(op.Spec.ResourceID), op.Spec.ResourceID); err != nil {
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
	if t, _ := s.typeOf(op.Spec.ResourceID); t != nil && t.OperationProperties != nil {
		if props := t.OperationProperties(op); props != nil {
			body["properties"] = props
		}
	}
	if status == slipwayv1.OperationInProgress {
		w.Header().Set("Retry-After", s.RetryAfter())
	}
	WriteJSON(w, http.StatusOK, body)
	return nil
}

// getOperationResult is the Location URL: 202 while the operation runs,
// then the resource (200), nothing for a delete (204), or the error.
func (s *Server) getOperationResult(w http.ResponseWriter, r *http.Request, p Params, namespace string) error {
	op, err := s.GetOperation(r.Context(), p["op"])
	if err != nil {
		return err
	}
	if err := s.Authorize(r.Context(), s.ReadAction(op.Spec.ResourceID), op.Spec.ResourceID); err != nil {
		return err
	}
	if err := s.settle(r.Context(), op); err != nil {
		return err
	}
	switch op.Status.Status {
	case "", slipwayv1.OperationInProgress:
		_, loc := s.OperationURLs(r, op, namespace)
		w.Header().Set("Location", loc)
		w.Header().Set("Retry-After", s.RetryAfter())
		w.WriteHeader(http.StatusAccepted)
		return nil
	case slipwayv1.OperationSucceeded:
		if op.Spec.Deletes {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		res, err := s.Lookup(r.Context(), op.Spec.ResourceID)
		if err != nil {
			return err
		}
		body, err := res.Render(r.Context())
		if err != nil {
			return err
		}
		WriteJSON(w, http.StatusOK, body)
		return nil
	default:
		e := op.Status.Error
		if e == nil {
			e = &slipwayv1.ErrorDetail{Code: op.Status.Status, Message: "The operation ended " + op.Status.Status + "."}
		}
		return &Error{Status: http.StatusBadRequest, Code: e.Code, Message: e.Message, Target: e.Target}
	}
}

// updateAttempts bounds AcceptUpdate's retries of an update that conflicted
// with a write that was not another operation (a controller's status).
const updateAttempts = 5

// AcceptUpdate stores obj, whose spec apply makes name op, and answers 202
// with the operation's URLs. A concurrent change to obj conflicts: with
// apply nil, that means another operation got there first (409, as AKS
// answers); otherwise obj is read again and apply, which checks again that
// nothing else runs, is redone on it, as a controller's status write is
// not a competing operation.
func (s *Server) AcceptUpdate(w http.ResponseWriter, r *http.Request, obj client.Object, op *slipwayv1.Operation, namespace string, apply func() error) error {
	ctx := r.Context()
	for attempt := 1; ; attempt++ {
		if apply != nil {
			if err := apply(); err != nil {
				s.CancelRefused(ctx, op, "Another operation started first.")
				return err
			}
		}
		err := s.cfg.Client.Update(ctx, obj)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		if apply == nil || attempt == updateAttempts {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return AnotherOperationInProgress()
		}
		if err := s.cfg.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			s.CancelRefused(ctx, op, "Another operation started first.")
			return err
		}
	}
	s.Accepted(w, r, op, namespace, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// DeleteWithOperation records a delete operation on obj, then deletes obj;
// its controller's finalizer carries the delete out and ends the operation.
// Should the process die between the two writes, the controller finds the
// Deleting operation on an object not being deleted and deletes it itself.
func (s *Server) DeleteWithOperation(ctx context.Context, obj client.Object, ref **slipwayv1.OperationRef, resourceID, location string) (*slipwayv1.Operation, error) {
	op, err := s.StartOperation(ctx, resourceID, slipwayv1.ActionDeleting, location, true)
	if err != nil {
		return nil, err
	}
	return op, s.RecordDelete(ctx, obj, ref, op)
}

// RecordDelete records a started delete operation on obj, then deletes
// obj (see DeleteWithOperation). ref points into obj. A conflict is read
// again and retried, as AcceptUpdate's are: the caller has already decided
// the delete may go ahead, and what changed is a controller's write (an
// operation's end, seen a moment late by the read cache the caller looked
// obj up in), not a competing delete. A delete that did compete, or
// conflicts that go on, refuse this one.
func (s *Server) RecordDelete(ctx context.Context, obj client.Object, ref **slipwayv1.OperationRef, op *slipwayv1.Operation) error {
	for attempt := 1; ; attempt++ {
		*ref = &slipwayv1.OperationRef{ID: op.Name, Action: slipwayv1.ActionDeleting}
		err := s.cfg.Client.Update(ctx, obj)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || attempt == updateAttempts {
			s.CancelRefused(ctx, op, "The resource changed while the delete was recorded.")
			return err
		}
		if gerr := s.cfg.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); gerr != nil || obj.GetDeletionTimestamp() != nil {
			s.CancelRefused(ctx, op, "The resource changed while the delete was recorded.")
			if gerr != nil {
				return gerr
			}
			return err
		}
	}
	return client.IgnoreNotFound(s.cfg.Client.Delete(ctx, obj))
}

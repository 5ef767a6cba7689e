package arm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

func (s *Server) subscription() map[string]any {
	return map[string]any{
		"id":                   "/subscriptions/" + s.cfg.SubscriptionID,
		"subscriptionId":       s.cfg.SubscriptionID,
		"tenantId":             s.cfg.TenantID,
		"displayName":          "Slipway Subscription",
		"state":                "Enabled",
		"authorizationSource":  "RoleBased",
		"managedByTenants":     []any{},
		"subscriptionPolicies": map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "Slipway", "spendingLimit": "Off"},
	}
}

// listSubscriptions lists the subscription to callers holding a role in it,
// and nothing to others, as ARM does (az login then says "No subscriptions
// found").
func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, _ params) error {
	value := []any{}
	if ok, err := s.holdsRole(r); err != nil {
		return err
	} else if ok {
		value = append(value, s.subscription())
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request, _ params) error {
	writeJSON(w, http.StatusOK, s.subscription())
	return nil
}

// resourceGroupName is ARM's rule for group names.
var resourceGroupName = regexp.MustCompile(`^[-\w._()]{1,90}$`)

func (s *Server) lookupResourceGroup(ctx context.Context, name string) (*slipwayv1.ResourceGroup, error) {
	g := &slipwayv1.ResourceGroup{}
	err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(armid.ResourceGroup(s.cfg.SubscriptionID, name))}, g)
	if apierrors.IsNotFound(err) {
		return nil, resourceGroupNotFound(name)
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (s *Server) renderResourceGroup(g *slipwayv1.ResourceGroup) map[string]any {
	state := "Succeeded"
	if g.DeletionTimestamp != nil || g.Spec.Operation != nil {
		state = "Deleting"
	}
	out := map[string]any{
		"id":         armid.ResourceGroup(g.Spec.SubscriptionID, g.Spec.Name),
		"name":       g.Spec.Name,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   g.Spec.Location,
		"properties": map[string]any{"provisioningState": state},
	}
	if g.Spec.Tags != nil {
		out["tags"] = g.Spec.Tags
	}
	if g.Spec.ManagedBy != "" {
		out["managedBy"] = g.Spec.ManagedBy
	}
	return out
}

func (s *Server) listResourceGroups(w http.ResponseWriter, r *http.Request, _ params) error {
	var list slipwayv1.ResourceGroupList
	if err := s.cfg.Client.List(r.Context(), &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return err
	}
	value := []any{}
	for i := range list.Items {
		value = append(value, s.renderResourceGroup(&list.Items[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

func (s *Server) getResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	g, err := s.lookupResourceGroup(r.Context(), p["rg"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.renderResourceGroup(g))
	return nil
}

func (s *Server) headResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	if _, err := s.lookupResourceGroup(r.Context(), p["rg"]); err != nil {
		if e, ok := err.(*Error); ok && e.Status == http.StatusNotFound {
			w.WriteHeader(http.StatusNotFound)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type resourceGroupBody struct {
	Location  string            `json:"location"`
	Tags      map[string]string `json:"tags"`
	ManagedBy string            `json:"managedBy"`
}

func (s *Server) putResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	name := p["rg"]
	if !resourceGroupName.MatchString(name) || strings.HasSuffix(name, ".") {
		return badRequest("InvalidResourceGroup", "", "The provided resource group name '%s' has these invalid characters: it must be 1-90 characters of letters, digits, '_', '-', '.', '(' and ')', and not end in '.'.", name)
	}
	var body resourceGroupBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Location == "" {
		return badRequest("LocationRequired", "location", "The location property is required for this definition.")
	}
	g, err := s.lookupResourceGroup(r.Context(), name)
	status := http.StatusOK
	switch {
	case err == nil:
		if g.DeletionTimestamp != nil {
			return newError(http.StatusConflict, "ResourceGroupBeingDeleted", "", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", name)
		}
		if normalizeLocation(body.Location) != g.Spec.Location {
			return newError(http.StatusConflict, "InvalidResourceGroupLocation", "", "Invalid resource group location '%s'. The Resource group already exists in location '%s'.", body.Location, g.Spec.Location)
		}
		g.Spec.Tags, g.Spec.ManagedBy = body.Tags, body.ManagedBy
		err = s.cfg.Client.Update(r.Context(), g)
	case isNotFound(err):
		status = http.StatusCreated
		g = &slipwayv1.ResourceGroup{
			ObjectMeta: metav1.ObjectMeta{
				Name: armid.ObjectName(armid.ResourceGroup(s.cfg.SubscriptionID, name)), Namespace: slipwayv1.Namespace,
				Labels:     map[string]string{slipwayv1.LabelSubscription: armid.Label(s.cfg.SubscriptionID)},
				Finalizers: []string{slipwayv1.Finalizer},
			},
			Spec: slipwayv1.ResourceGroupSpec{SubscriptionID: s.cfg.SubscriptionID, Name: name,
				Location: normalizeLocation(body.Location), Tags: body.Tags, ManagedBy: body.ManagedBy},
		}
		err = s.cfg.Client.Create(r.Context(), g)
	}
	if err != nil {
		return err
	}
	writeJSON(w, status, s.renderResourceGroup(g))
	return nil
}

func (s *Server) patchResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	g, err := s.lookupResourceGroup(r.Context(), p["rg"])
	if err != nil {
		return err
	}
	var body struct {
		Tags map[string]string `json:"tags"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Tags != nil {
		g.Spec.Tags = body.Tags
	}
	if err := s.cfg.Client.Update(r.Context(), g); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.renderResourceGroup(g))
	return nil
}

// deleteResourceGroup deletes the group and all it holds, as an operation
// that the resource group controller carries out.
func (s *Server) deleteResourceGroup(w http.ResponseWriter, r *http.Request, p params) error {
	g, err := s.lookupResourceGroup(r.Context(), p["rg"])
	if isNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	var op *slipwayv1.Operation
	if g.Spec.Operation != nil {
		op, err = s.getOperation(r.Context(), g.Spec.Operation.ID)
	} else {
		op, err = s.deleteWithOperation(r.Context(), g, &g.Spec.Operation, armid.ResourceGroup(s.cfg.SubscriptionID, g.Spec.Name), g.Spec.Location)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	_, loc := s.operationURLs(r, op, providerResources)
	w.Header().Set("Location", loc)
	w.Header().Set("Retry-After", s.retryAfter())
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// renderByID renders the resource an operation acted on.
func (s *Server) renderByID(ctx context.Context, id string) (any, error) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	switch {
	case len(segs) == 4:
		g, err := s.lookupResourceGroup(ctx, segs[3])
		if err != nil {
			return nil, err
		}
		return s.renderResourceGroup(g), nil
	case len(segs) == 8:
		mc, err := s.lookupCluster(ctx, segs[3], segs[7])
		if err != nil {
			return nil, err
		}
		return s.renderCluster(ctx, mc)
	case len(segs) == 10:
		mc, err := s.lookupCluster(ctx, segs[3], segs[7])
		if err != nil {
			return nil, err
		}
		pool, err := s.lookupAgentPool(ctx, mc, segs[9])
		if err != nil {
			return nil, err
		}
		return s.renderAgentPool(ctx, mc, pool)
	}
	return nil, fmt.Errorf("cannot render resource %s", id)
}

func normalizeLocation(l string) string {
	return strings.ToLower(strings.ReplaceAll(l, " ", ""))
}

func isNotFound(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Status == http.StatusNotFound
}

// maxBody bounds request bodies; the largest AKS bodies are a few KB.
const maxBody = 4 << 20

// decodeBody decodes a JSON request body into v. Errors name the field, as
// the SDK models' own unmarshalling reports them.
func decodeBody(r *http.Request, v any) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeJSON(data, v)
}

// readBody reads a request body, bounded.
func readBody(r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("InvalidRequestContent", "", "The request content could not be read: %v", err)
	}
	if len(data) > maxBody {
		return nil, badRequest("RequestContentTooLarge", "", "The request content is larger than %d bytes.", maxBody)
	}
	return data, nil
}

func decodeJSON(data []byte, v any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return badRequest("InvalidRequestContent", "", "The request content was invalid and could not be deserialized: the body is empty.")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return badRequest("InvalidRequestContent", "", "The request content was invalid and could not be deserialized: %s", describeJSONError(err))
	}
	return nil
}

func describeJSONError(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at byte %d: %v", e.Offset, e)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("property '%s' must be of type %s, not %s", e.Field, e.Type, e.Value)
	}
	// The SDK's models unmarshal field by field and say where in their
	// message: "... struct field Properties: ... struct field Count: json:
	// cannot unmarshal string into Go value of type int32".
	msg := err.Error()
	fields := sdkField.FindAllStringSubmatch(msg, -1)
	if len(fields) == 0 {
		return msg
	}
	var path []string
	for _, f := range fields {
		path = append(path, lowerFirst(f[1]))
	}
	return fmt.Sprintf("property '%s': %s", strings.Join(path, "."), strings.TrimPrefix(msg[strings.LastIndex(msg, ": ")+2:], "json: "))
}

var sdkField = regexp.MustCompile(`struct field (\w+)`)

// lowerFirst turns a Go field name into its JSON name as the SDK spells
// most of them (AgentPoolProfiles -> agentPoolProfiles, VMSize -> vmSize).
func lowerFirst(s string) string {
	i := 0
	for i < len(s) && s[i] >= 'A' && s[i] <= 'Z' {
		i++
	}
	switch {
	case i == 0:
		return s
	case i == 1 || i == len(s):
		return strings.ToLower(s[:i]) + s[i:]
	default:
		return strings.ToLower(s[:i-1]) + s[i-1:]
	}
}

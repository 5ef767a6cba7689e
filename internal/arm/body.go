package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// NormalizeLocation spells a location as ARM stores it ("West Europe" ->
// "westeurope").
func NormalizeLocation(l string) string {
	return strings.ToLower(strings.ReplaceAll(l, " ", ""))
}

// LookupResourceGroup reads a resource group. Groups are ARM's own
// containers: every provider's resources live in one, so the core reads
// them; the Microsoft.Resources provider writes them.
func (s *Server) LookupResourceGroup(ctx context.Context, name string) (*slipwayv1.ResourceGroup, error) {
	g := &slipwayv1.ResourceGroup{}
	err := s.cfg.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(armid.ResourceGroup(s.cfg.SubscriptionID, name))}, g)
	if apierrors.IsNotFound(err) {
		return nil, ResourceGroupNotFound(name)
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// WritableResourceGroup reads a resource group that a new resource may be
// put in: one being deleted refuses it, as ARM does, so a cluster cannot be
// created behind the delete and outlive its group.
func (s *Server) WritableResourceGroup(ctx context.Context, name string) (*slipwayv1.ResourceGroup, error) {
	g, err := s.LookupResourceGroup(ctx, name)
	if err != nil {
		return nil, err
	}
	if g.DeletionTimestamp != nil || g.Spec.Operation != nil {
		return nil, NewError(http.StatusConflict, "ResourceGroupBeingDeleted", "", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Spec.Name)
	}
	return g, nil
}

// maxBody bounds request bodies; the largest AKS bodies are a few KB. A
// body under the bound may still be too large to store (etcd's limit is
// 1.5 MiB): WriteError answers that as a 400 too.
const maxBody = 4 << 20

// maxStored bounds the body of a write that stores what it is sent (PUT,
// PATCH): past it the object, with the metadata the management API server
// adds, cannot fit etcd's 1.5 MiB. Such a body is refused at once rather
// than sent to the API server, which would spend seconds of CPU on it
// (a field-by-field ownership record of 150,000 tags took it past its own
// 34 s timeout on a loaded machine) before etcd refused it.
const maxStored = 1 << 20

// tooLarge says whether a management plane write failed for its size.
func tooLarge(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code == http.StatusRequestEntityTooLarge {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "request is too large")
}

// DecodeBody decodes a JSON request body into v. Errors name the field, as
// the SDK models' own unmarshalling reports them.
func DecodeBody(r *http.Request, v any) error {
	data, err := ReadBody(r)
	if err != nil {
		return err
	}
	return DecodeJSON(data, v)
}

// ReadBody reads a request body, bounded, refusing media types other than
// JSON as ARM does.
func ReadBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json") && mt != "text/json") {
			return nil, NewError(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "", "The content media type '%s' is not supported. Only 'application/json' is supported.", ct)
		}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, BadRequest("InvalidRequestContent", "", "The request content could not be read: %v", err)
	}
	if len(data) > maxBody {
		return nil, NewError(http.StatusRequestEntityTooLarge, "RequestContentTooLarge", "", "The request content is larger than %d bytes.", maxBody)
	}
	if len(data) > maxStored && (r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		return nil, BadRequest("RequestContentTooLarge", "", "The request content is too large to be stored.")
	}
	return data, nil
}

// DecodeJSON decodes a request body already read.
func DecodeJSON(data []byte, v any) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return BadRequest("InvalidRequestContent", "", "The request content was invalid and could not be deserialized: the body is empty.")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return BadRequest("InvalidRequestContent", "", "The request content was invalid and could not be deserialized: %s", describeJSONError(err))
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

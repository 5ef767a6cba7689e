package containerservice

import (
	"encoding/json"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/arm/providers/containerservice/apischema"
	"github.com/slipway-dev/slipway/internal/arm/schema"
)

// The api-versions' shapes. Slipway's code works on the SDK's models (one
// api-version); a request is read as its own api-version defines it, and a
// response written so. What a version defines beyond the SDK's models is
// kept beside the modeled resource as Unmodeled JSON and returned as given:
// stored, not simulated.
const (
	typeCluster     = "ManagedCluster"
	typePool        = "AgentPool"
	typeProfile     = "ManagedClusterAgentPoolProfile"
	typeMaintenance = "MaintenanceConfiguration"
)

// treeOf is the tree of the request's api-version.
func treeOf(r *http.Request) *schema.Tree {
	return apischema.Set.For(arm.APIVersion(r))
}

// readVersioned reads a request body of type typ: properties no api-version
// defines and read-only ones are left out, as AKS ignores them. A property
// of a later version than the request's is kept: Slipway is lenient where
// AKS would ignore it, so a client that sends a newer field at the SDK's
// api-version (as raw JSON must) still has it honoured; responses, which
// clients deserialize, are strict.
func readVersioned(r *http.Request, body []byte, typ string) (map[string]any, error) {
	var doc map[string]any
	if err := arm.DecodeJSON(body, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		doc = map[string]any{} // a body of null
	}
	apischema.Set.Union().Prune(doc, typ, true)
	return doc, nil
}

// carry adds to doc, a request of the request's api-version, what the
// stored resource holds that the version cannot say (properties it does not
// define or makes read-only): a client of an older version does not erase
// what a newer one set, as AKS keeps it. A list's elements get theirs by
// position when the request's list is as long as the stored one.
func carry(r *http.Request, doc map[string]any, stored any, typ string) {
	schema.Overlay(doc, treeOf(r).Undefined(stored, typ, schema.Beyond{Lists: true, ReadOnly: true}))
}

// decodeModel decodes a generic document into an SDK model. The document
// came from a body that already decoded once, so an error here is one of
// types the body's own decoding let through.
func decodeModel(doc any, model any) error {
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return arm.DecodeJSON(data, model)
}

// unmodeledOf is what doc, of type typ, holds beyond the SDK's models.
func unmodeledOf(doc any, typ string) any {
	return apischema.SDK.Undefined(doc, typ, schema.Beyond{Lists: true})
}

// storedDoc is a stored resource in full: the modeled JSON with its
// unmodeled properties laid over it.
func storedDoc(modeled []byte, unmodeled *runtime.RawExtension) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(modeled, &doc); err != nil {
		return nil, fmt.Errorf("stored resource: %w", err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	u, err := decodeRaw(unmodeled)
	if err != nil {
		return nil, err
	}
	schema.Overlay(doc, u)
	return doc, nil
}

// decodeRaw reads stored unmodeled JSON; nil when there is none.
func decodeRaw(raw *runtime.RawExtension) (any, error) {
	if raw == nil || len(raw.Raw) == 0 {
		return nil, nil
	}
	v, err := schema.Decode(raw.Raw)
	if err != nil {
		return nil, fmt.Errorf("stored unmodeled properties: %w", err)
	}
	return v, nil
}

// encodeRaw stores unmodeled JSON; nil when there is none.
func encodeRaw(v any) (*runtime.RawExtension, error) {
	if v == nil {
		return nil, nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &runtime.RawExtension{Raw: data}, nil
}

// respond writes v, a resource of type typ, as the request's api-version
// defines it.
func respond(w http.ResponseWriter, r *http.Request, status int, typ string, v any) error {
	doc, err := inShape(treeOf(r), typ, v)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, status, doc)
	return nil
}

// sdkShaped is a view whose JSON is the SDK's model alone, with nothing
// laid over it.
type sdkShaped interface{ sdkShaped() bool }

// inShape is v as tree defines typ. A view in the SDK's shape is already in
// the shape of the SDK's api-version, the one most clients speak, and is
// written as it is, without the round trip through a generic document.
func inShape(tree *schema.Tree, typ string, v any) (any, error) {
	if s, ok := v.(sdkShaped); ok && tree == apischema.SDK && s.sdkShaped() {
		return v, nil
	}
	doc, err := schema.Generic(v)
	if err != nil {
		return nil, err
	}
	tree.Prune(doc, typ, false)
	return doc, nil
}

// respondList writes a list of resources of type typ as the request's
// api-version defines them.
func respondList[T any](w http.ResponseWriter, r *http.Request, typ string, items []T) error {
	tree := treeOf(r)
	value := make([]any, 0, len(items))
	for _, item := range items {
		doc, err := inShape(tree, typ, item)
		if err != nil {
			return err
		}
		value = append(value, doc)
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": value})
	return nil
}

// propertiesOf is the "properties" object of a generic resource, or nil.
func propertiesOf(doc any) map[string]any {
	m, _ := doc.(map[string]any)
	p, _ := m["properties"].(map[string]any)
	return p
}

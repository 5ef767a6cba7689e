package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/utils/ptr"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// AssignmentType is the ARM type of policy assignments.
const AssignmentType = "Microsoft.Authorization/policyAssignments"

// DefinitionObject and AssignmentObject name the management objects of a
// custom definition and of an assignment by their IDs.
func DefinitionObject(id string) string { return "pd-" + armid.Label(id) }

// AssignmentObject is the name of an assignment's management object.
func AssignmentObject(id string) string { return "pa-" + armid.Label(id) }

// ErrDefinitionNotFound says an assignment's definition is not there.
var ErrDefinitionNotFound = fmt.Errorf("policy definition not found")

// Definition reads a definition by its ID: a built-in one
// (/providers/Microsoft.Authorization/policyDefinitions/{guid}) or a
// custom one at a subscription.
func Definition(ctx context.Context, c client.Reader, id string) (*armpolicy.Definition, error) {
	name := armid.NameOf(id)
	if strings.HasPrefix(strings.ToLower(id), "/providers/microsoft.authorization/policydefinitions/") {
		if d, ok := BuiltIn(name); ok {
			return d, nil
		}
		return nil, ErrDefinitionNotFound
	}
	obj := &slipwayv1.PolicyDefinition{}
	err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: DefinitionObject(id)}, obj)
	if apierrors.IsNotFound(err) {
		return nil, ErrDefinitionNotFound
	}
	if err != nil {
		return nil, err
	}
	return RenderDefinition(obj)
}

// RenderDefinition is a custom definition as ARM shows it.
func RenderDefinition(d *slipwayv1.PolicyDefinition) (*armpolicy.Definition, error) {
	var out armpolicy.Definition
	if err := json.Unmarshal(d.Spec.Resource.Raw, &out); err != nil {
		return nil, fmt.Errorf("stored policy definition %s: %w", d.Spec.ResourceID, err)
	}
	out.ID, out.Name, out.Type = to.Ptr(d.Spec.ResourceID), to.Ptr(armid.NameOf(d.Spec.ResourceID)), to.Ptr(DefinitionType)
	out.SystemData = systemData(d.Spec.SystemData)
	return &out, nil
}

// RenderAssignment is an assignment as ARM shows it.
func RenderAssignment(a *slipwayv1.PolicyAssignment) (*armpolicy.Assignment, error) {
	var out armpolicy.Assignment
	if err := json.Unmarshal(a.Spec.Resource.Raw, &out); err != nil {
		return nil, fmt.Errorf("stored policy assignment %s: %w", a.Spec.ResourceID, err)
	}
	if out.Properties == nil {
		out.Properties = &armpolicy.AssignmentProperties{}
	}
	out.ID, out.Name, out.Type = to.Ptr(a.Spec.ResourceID), to.Ptr(armid.NameOf(a.Spec.ResourceID)), to.Ptr(AssignmentType)
	out.Properties.Scope = to.Ptr(a.Spec.Scope)
	out.SystemData = systemData(a.Spec.SystemData)
	return &out, nil
}

// InScope says whether an assignment at scope, less its notScopes,
// covers the resource id.
func InScope(a *armpolicy.Assignment, id string) bool {
	if !under(id, ptr.Deref(a.Properties.Scope, "")) {
		return false
	}
	for _, n := range a.Properties.NotScopes {
		if n != nil && under(id, *n) {
			return false
		}
	}
	return true
}

// AssignmentScope is the scope an assignment's ID is at.
func AssignmentScope(id string) string {
	if i := strings.Index(strings.ToLower(id), "/providers/microsoft.authorization/policyassignments/"); i >= 0 {
		return id[:i]
	}
	return ""
}

// Covers says whether scope is id or above it.
func Covers(scope, id string) bool { return under(id, scope) }

// under says whether id is scope or below it.
func under(id, scope string) bool {
	id, scope = strings.ToLower(strings.TrimRight(id, "/")), strings.ToLower(strings.TrimRight(scope, "/"))
	return scope != "" && (id == scope || strings.HasPrefix(id, scope+"/"))
}

func systemData(sd *slipwayv1.SystemData) *armpolicy.SystemData {
	if sd == nil {
		return nil
	}
	return &armpolicy.SystemData{CreatedBy: to.Ptr(sd.CreatedBy), CreatedByType: to.Ptr(armpolicy.CreatedByType(sd.CreatedByType)), CreatedAt: to.Ptr(sd.CreatedAt.UTC()),
		LastModifiedBy: to.Ptr(sd.LastModifiedBy), LastModifiedByType: to.Ptr(armpolicy.CreatedByType(sd.LastModifiedByType)), LastModifiedAt: to.Ptr(sd.LastModifiedAt.UTC())}
}

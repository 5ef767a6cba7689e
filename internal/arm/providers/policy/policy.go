// Package policy is Azure Policy's part of the Microsoft.Authorization
// provider: policy definitions (the built-in Kubernetes ones, and custom
// ones at a subscription) and policy assignments at a subscription, a
// resource group or a resource, on the official SDK's models (armpolicy).
// Role-based access is the authorization package's; Azure serves the two
// from one namespace but they share nothing else. What an assignment does
// in a cluster is internal/policy's and the policy controller's.
package policy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"k8s.io/utils/ptr"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	policies "github.com/slipway-dev/slipway/internal/policy"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.Authorization"

// versions: every dated api-version up to 2025-03-01, the one armpolicy
// v1.0.0 sends; az 2.45 sends 2021-06-01. The shapes served are common to
// them.
var versions = arm.DatedVersions("2025-03-01")

// Provider serves policy definitions and assignments.
type Provider struct {
	*arm.Server
}

// Register adds the routes: definitions at the tenant (built-ins) and the
// subscription, assignments at the subscription and at every resource
// type registered so far (call it after the providers whose resources
// take assignments).
func Register(core *arm.Server) *Provider {
	s := &Provider{Server: core}
	// Built-in definitions are readable by anyone signed in, as Azure's.
	core.Handle("GET", "providers/"+Namespace+"/policyDefinitions", versions, s.listBuiltIns, arm.AuthorizeInHandler)
	core.Handle("GET", "providers/"+Namespace+"/policyDefinitions/{definition}", versions, s.getBuiltIn, arm.AuthorizeInHandler)
	defs := "subscriptions/{sub}/providers/" + Namespace + "/policyDefinitions"
	core.Handle("GET", defs, versions, s.listDefinitions)
	core.Handle("GET", defs+"/{definition}", versions, s.getDefinition)
	core.Handle("PUT", defs+"/{definition}", versions, s.putDefinition)
	core.Handle("DELETE", defs+"/{definition}", versions, s.deleteDefinition)
	for _, scope := range append([]string{"subscriptions/{sub}"}, core.ResourcePatterns()...) {
		base := scope + "/providers/" + Namespace + "/policyAssignments"
		core.Handle("GET", base, versions, core.AtScope(scope, s.listAssignments))
		core.Handle("GET", base+"/{assignment}", versions, core.AtScope(scope, s.getAssignment))
		core.Handle("PUT", base+"/{assignment}", versions, core.AtScope(scope, s.putAssignment))
		core.Handle("DELETE", base+"/{assignment}", versions, core.AtScope(scope, s.deleteAssignment))
	}
	return s
}

// signedIn lets any authenticated caller through (tenant-wide reads).
func signedIn(r *http.Request) error {
	if arm.Caller(r.Context()) == nil {
		return arm.NewError(http.StatusUnauthorized, "AuthenticationFailed", "", "Authentication failed.")
	}
	return nil
}

func definitionNotFound(name string) error {
	return arm.NewError(http.StatusNotFound, "PolicyDefinitionNotFound", "", "The policy definition '%s' could not be found.", name)
}

func (s *Provider) listBuiltIns(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	if err := signedIn(r); err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, armpolicy.DefinitionListResult{Value: filterDefinitions(r, policies.BuiltIns())})
	return nil
}

func (s *Provider) getBuiltIn(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	if err := signedIn(r); err != nil {
		return err
	}
	d, ok := policies.BuiltIn(p["definition"])
	if !ok {
		return definitionNotFound(p["definition"])
	}
	arm.WriteJSON(w, http.StatusOK, d)
	return nil
}

var policyTypeFilter = regexp.MustCompile(`(?i)policyType\s+eq\s+'([^']*)'`)

// filterDefinitions applies the one $filter the list takes that narrows
// it here: policyType eq 'BuiltIn' | 'Custom'.
func filterDefinitions(r *http.Request, defs []*armpolicy.Definition) []*armpolicy.Definition {
	m := policyTypeFilter.FindStringSubmatch(r.URL.Query().Get("$filter"))
	if m == nil {
		return defs
	}
	return slices.DeleteFunc(defs, func(d *armpolicy.Definition) bool { return !strings.EqualFold(string(*d.Properties.PolicyType), m[1]) })
}

// definitionID is a custom definition's ID.
func (s *Provider) definitionID(name string) string {
	return "/subscriptions/" + s.SubscriptionID() + "/providers/" + Namespace + "/policyDefinitions/" + name
}

func (s *Provider) customDefinition(ctx context.Context, name string) (*slipwayv1.PolicyDefinition, error) {
	d := &slipwayv1.PolicyDefinition{}
	err := s.Client().Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: policies.DefinitionObject(s.definitionID(name))}, d)
	if apierrors.IsNotFound(err) {
		return nil, definitionNotFound(name)
	}
	return d, err
}

func (s *Provider) listDefinitions(w http.ResponseWriter, r *http.Request, _ arm.Params) error {
	list := &slipwayv1.PolicyDefinitionList{}
	if err := s.Client().List(r.Context(), list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return err
	}
	out := policies.BuiltIns()
	for i := range list.Items {
		d, err := policies.RenderDefinition(&list.Items[i])
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	arm.WriteJSON(w, http.StatusOK, armpolicy.DefinitionListResult{Value: filterDefinitions(r, out)})
	return nil
}

func (s *Provider) getDefinition(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	d, err := s.customDefinition(r.Context(), p["definition"])
	if err != nil {
		return err
	}
	out, err := policies.RenderDefinition(d)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

// putDefinition makes or replaces a custom definition. Kubernetes
// definitions (mode Microsoft.Kubernetes.Data) must name a constraint
// template Slipway enforces; other modes are kept, and apply to nothing
// Slipway evaluates.
func (s *Provider) putDefinition(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	name := p["definition"]
	if _, builtIn := policies.BuiltIn(name); builtIn {
		return arm.NewError(http.StatusBadRequest, "PolicyDefinitionNameConflict", "name", "The policy definition '%s' is a built-in definition's name.", name)
	}
	var in armpolicy.Definition
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if in.Properties == nil || in.Properties.PolicyRule == nil {
		return arm.BadRequest("InvalidPolicyRule", "properties.policyRule", "The policy definition '%s' has no policy rule.", name)
	}
	props := in.Properties
	props.PolicyType = to.Ptr(armpolicy.PolicyTypeCustom)
	props.Mode = to.Ptr(cmp.Or(ptr.Deref(props.Mode, ""), "Indexed"))
	if props.Version == nil {
		props.Version = to.Ptr("1.0.0")
	}
	props.Versions = []*string{props.Version}
	if strings.EqualFold(*props.Mode, policies.KubernetesMode) {
		props.Mode = to.Ptr(policies.KubernetesMode)
		// An assignment with the parameters' defaults must resolve: the
		// rule's template and shape are checked now, not at assignment.
		probe := &armpolicy.Definition{Name: to.Ptr(name), Properties: props}
		if _, err := policies.Resolve(s.definitionID(name)+"/probe", &armpolicy.AssignmentProperties{}, probe); err != nil {
			var inv *policies.Invalid
			if errors.As(err, &inv) && inv.Code != "MissingPolicyParameter" {
				return arm.BadRequest(inv.Code, "properties.policyRule", "%s", inv.Message)
			}
		}
	}
	id := s.definitionID(name)
	in.ID, in.Name, in.Type, in.SystemData = nil, nil, nil, nil
	obj := &slipwayv1.PolicyDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: policies.DefinitionObject(id)},
		Spec: slipwayv1.PolicyDefinitionSpec{ResourceID: id}}
	created, err := s.save(r.Context(), obj, &in, &obj.Spec.Resource, &obj.Spec.SystemData)
	if err != nil {
		return err
	}
	out, err := policies.RenderDefinition(obj)
	if err != nil {
		return err
	}
	writeSaved(w, created, out)
	return nil
}

// save writes a policy object's ARM resource: it creates obj (its name
// and identifying spec set) or updates the stored one, with resource and
// systemData, which point into obj's spec. It says whether it created.
func (s *Provider) save(ctx context.Context, obj client.Object, in any, resource *runtime.RawExtension, sd **slipwayv1.SystemData) (bool, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return false, err
	}
	err = s.Client().Get(ctx, client.ObjectKeyFromObject(obj), obj)
	created := apierrors.IsNotFound(err)
	if err != nil && !created {
		return false, err
	}
	*resource, *sd = runtime.RawExtension{Raw: raw}, arm.Touched(ctx, *sd)
	if created {
		return true, s.Client().Create(ctx, obj)
	}
	return false, s.Client().Update(ctx, obj)
}

// writeSaved answers a PUT: 201 for what it created, 200 for what it
// replaced.
func writeSaved(w http.ResponseWriter, created bool, out any) {
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, out)
}

// deleteDefinition deletes a custom definition no assignment uses, as
// Azure refuses to delete one in use.
func (s *Provider) deleteDefinition(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	d, err := s.customDefinition(r.Context(), p["definition"])
	if arm.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	list := &slipwayv1.PolicyAssignmentList{}
	if err := s.Client().List(r.Context(), list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return err
	}
	for i := range list.Items {
		a, err := policies.RenderAssignment(&list.Items[i])
		if err != nil {
			return err
		}
		if strings.EqualFold(ptr.Deref(a.Properties.PolicyDefinitionID, ""), d.Spec.ResourceID) {
			return arm.NewError(http.StatusBadRequest, "PolicyDefinitionInUse", "", "The policy definition '%s' is in use by the policy assignment '%s'. Delete the assignment first.", p["definition"], *a.ID)
		}
	}
	if err := client.IgnoreNotFound(s.Client().Delete(r.Context(), d)); err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, nil)
	return nil
}

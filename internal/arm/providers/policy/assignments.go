package policy

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"k8s.io/utils/ptr"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	policies "github.com/slipway-dev/slipway/internal/policy"
)

// assignmentName is Azure's rule for assignment names: at most 64
// characters (24 at a management group), none of <>*%&:\?.+/ and no
// trailing space.
var assignmentName = regexp.MustCompile(`^[^<>*%&:\\?.+/]{1,64}$`)

func assignmentNotFound(name string) error {
	return arm.NewError(http.StatusNotFound, "PolicyAssignmentNotFound", "", "The policy assignment '%s' is not found.", name)
}

func (s *Provider) assignment(r *http.Request, scope, name string) (*slipwayv1.PolicyAssignment, error) {
	a := &slipwayv1.PolicyAssignment{}
	err := s.Client().Get(r.Context(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: policies.AssignmentObject(scope + "/providers/" + Namespace + "/policyAssignments/" + name)}, a)
	if apierrors.IsNotFound(err) {
		return nil, assignmentNotFound(name)
	}
	return a, err
}

func (s *Provider) getAssignment(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	a, err := s.assignment(r, scope, p["assignment"])
	if err != nil {
		return err
	}
	out, err := policies.RenderAssignment(a)
	if err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

// putAssignment makes or replaces an assignment. Its definition must
// exist; a Kubernetes definition's parameters are checked as Azure checks
// them (none unknown, none required missing, values allowed), and its
// rule must resolve.
func (s *Provider) putAssignment(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	name := p["assignment"]
	if !assignmentName.MatchString(name) || strings.HasSuffix(name, " ") {
		return arm.BadRequest("InvalidPolicyAssignmentName", "name", "The policy assignment name '%s' is invalid: it must be 1-64 characters, none of <>*%%&:\\?.+/, without a trailing space.", name)
	}
	var in armpolicy.Assignment
	if err := arm.DecodeBody(r, &in); err != nil {
		return err
	}
	if in.Properties == nil || ptr.Deref(in.Properties.PolicyDefinitionID, "") == "" {
		return arm.BadRequest("InvalidRequestContent", "properties.policyDefinitionId", "The policy assignment '%s' has no policyDefinitionId.", name)
	}
	props := in.Properties
	def, err := policies.Definition(r.Context(), s.Client(), *props.PolicyDefinitionID)
	if errors.Is(err, policies.ErrDefinitionNotFound) {
		return arm.BadRequest("PolicyDefinitionNotFound", "properties.policyDefinitionId", "The policy definition '%s' could not be found.", *props.PolicyDefinitionID)
	}
	if err != nil {
		return err
	}
	props.PolicyDefinitionID = def.ID
	switch mode := ptr.Deref(props.EnforcementMode, ""); {
	case mode == "":
		props.EnforcementMode = to.Ptr(armpolicy.EnforcementModeDefault)
	case strings.EqualFold(string(mode), string(armpolicy.EnforcementModeDefault)):
		props.EnforcementMode = to.Ptr(armpolicy.EnforcementModeDefault)
	case strings.EqualFold(string(mode), string(armpolicy.EnforcementModeDoNotEnforce)):
		props.EnforcementMode = to.Ptr(armpolicy.EnforcementModeDoNotEnforce)
	default:
		return arm.BadRequest("InvalidRequestContent", "properties.enforcementMode", "The enforcementMode '%s' is not one of Default, DoNotEnforce.", mode)
	}
	id := scope + "/providers/" + Namespace + "/policyAssignments/" + name
	if strings.EqualFold(ptr.Deref(def.Properties.Mode, ""), policies.KubernetesMode) {
		if _, err := policies.Resolve(id, props, def); err != nil {
			var inv *policies.Invalid
			if errors.As(err, &inv) {
				return arm.BadRequest(inv.Code, "properties.parameters", "%s", inv.Message)
			}
			return err
		}
	} else if _, err := policies.Parameters(name, def, props.Parameters); err != nil {
		var inv *policies.Invalid
		if errors.As(err, &inv) {
			return arm.BadRequest(inv.Code, "properties.parameters", "%s", inv.Message)
		}
		return err
	}
	if props.NotScopes == nil {
		props.NotScopes = []*string{}
	}
	if props.DefinitionVersion == nil {
		props.DefinitionVersion = to.Ptr(strings.SplitN(ptr.Deref(def.Properties.Version, ""), ".", 2)[0] + ".*.*")
	}
	props.Scope, props.AssignmentType = nil, nil
	in.ID, in.Name, in.Type, in.SystemData = nil, nil, nil, nil

	obj := &slipwayv1.PolicyAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: policies.AssignmentObject(id)},
		Spec: slipwayv1.PolicyAssignmentSpec{ResourceID: id, Scope: scope}}
	created, err := s.save(r.Context(), obj, &in, &obj.Spec.Resource, &obj.Spec.SystemData)
	if err != nil {
		return err
	}
	out, err := policies.RenderAssignment(obj)
	if err != nil {
		return err
	}
	writeSaved(w, created, out)
	return nil
}

func (s *Provider) deleteAssignment(w http.ResponseWriter, r *http.Request, p arm.Params, scope string) error {
	a, err := s.assignment(r, scope, p["assignment"])
	if arm.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	out, err := policies.RenderAssignment(a)
	if err != nil {
		return err
	}
	if err := client.IgnoreNotFound(s.Client().Delete(r.Context(), a)); err != nil {
		return err
	}
	arm.WriteJSON(w, http.StatusOK, out)
	return nil
}

// listAssignments lists the assignments that apply at a scope: those at
// it and above it, and (without $filter=atScope()) those below it, as
// Azure lists them; $filter=atExactScope() only those at it, and
// policyDefinitionId eq '...' those of one definition.
func (s *Provider) listAssignments(w http.ResponseWriter, r *http.Request, _ arm.Params, scope string) error {
	filter := strings.ToLower(r.URL.Query().Get("$filter"))
	list := &slipwayv1.PolicyAssignmentList{}
	if err := s.Client().List(r.Context(), list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return err
	}
	out := []*armpolicy.Assignment{}
	for i := range list.Items {
		a, err := policies.RenderAssignment(&list.Items[i])
		if err != nil {
			return err
		}
		at := strings.EqualFold(*a.Properties.Scope, scope)
		above := policies.Covers(*a.Properties.Scope, scope)
		below := policies.Covers(scope, *a.Properties.Scope)
		switch {
		case strings.Contains(filter, "atexactscope()") && !at,
			strings.Contains(filter, "atscope()") && !above,
			!above && !below:
			continue
		}
		if m := definitionFilter.FindStringSubmatch(r.URL.Query().Get("$filter")); m != nil && !strings.EqualFold(ptr.Deref(a.Properties.PolicyDefinitionID, ""), m[1]) {
			continue
		}
		out = append(out, a)
	}
	arm.WriteJSON(w, http.StatusOK, armpolicy.AssignmentListResult{Value: out})
	return nil
}

var definitionFilter = regexp.MustCompile(`(?i)policyDefinitionId\s+eq\s+'([^']*)'`)

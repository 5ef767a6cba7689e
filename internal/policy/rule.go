package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/utils/ptr"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-dev/slipway/internal/armid"
)

// Effects an assignment may have, as Azure spells them.
const (
	EffectAudit    = "Audit"
	EffectDeny     = "Deny"
	EffectDisabled = "Disabled"
)

// Rule is an assignment of a Kubernetes definition, resolved: what a
// cluster in its scope must enforce or audit.
type Rule struct {
	// AssignmentID and AssignmentName are the assignment's.
	AssignmentID, AssignmentName string
	// Instance tells apart assignments made again under one ID (the
	// management object's UID): each gets objects of its own names in a
	// cluster, as the API server's policy source does not always take a
	// binding deleted and made again under its name at once.
	Instance string
	// DefinitionID is the definition's.
	DefinitionID string
	// Kind is the constraint kind (Kind*).
	Kind string
	// Effect is Audit, Deny or Disabled. With enforcementMode
	// DoNotEnforce a Deny is audited only.
	Effect string
	// ExcludedNamespaces are never evaluated; if Namespaces is not empty,
	// only those are. LabelSelector selects the objects evaluated.
	ExcludedNamespaces, Namespaces []string
	LabelSelector                  *metav1.LabelSelector
	// CPU and Memory are the limits (per container) or quotas (per
	// namespace) the kind checks against.
	CPU, Memory string
	// ExcludedContainers and ExcludedImages are left out of container
	// checks; an image ending in * is a prefix.
	ExcludedContainers, ExcludedImages []string
}

// Enforced says whether the rule denies what breaks it.
func (r *Rule) Enforced() bool { return r.Effect == EffectDeny }

// Invalid is an assignment that cannot be resolved against its
// definition, with the ARM error code that says why.
type Invalid struct{ Code, Message string }

func (e *Invalid) Error() string { return e.Code + ": " + e.Message }

var parameterRef = regexp.MustCompile(`^\[parameters\('([^']+)'\)\]$`)

// Parameters are an assignment's parameter values over its definition's
// defaults, checked against the definition: none unknown, none required
// missing, each among its allowed values.
func Parameters(assignment string, def *armpolicy.Definition, given map[string]*armpolicy.ParameterValuesValue) (map[string]any, error) {
	props := def.Properties
	out := map[string]any{}
	for name, p := range props.Parameters {
		if p != nil && p.DefaultValue != nil {
			out[name] = p.DefaultValue
		}
	}
	for name, v := range given {
		key, p, ok := lookupFold(props.Parameters, name)
		if !ok {
			return nil, &Invalid{"UndefinedPolicyParameter", fmt.Sprintf("The policy assignment '%s' has the parameter(s) '%s' which are not defined in the policy definition '%s'.", assignment, name, ptr.Deref(def.Name, ""))}
		}
		if v == nil || v.Value == nil {
			continue
		}
		if len(p.AllowedValues) > 0 && !slices.ContainsFunc(p.AllowedValues, func(a any) bool { return fmt.Sprint(a) == fmt.Sprint(v.Value) }) {
			return nil, &Invalid{"InvalidPolicyParameterValue", fmt.Sprintf("The policy assignment '%s' parameter '%s' value '%v' is not allowed: allowed values are %v.", assignment, name, v.Value, p.AllowedValues)}
		}
		out[key] = v.Value
	}
	var missing []string
	for name := range props.Parameters {
		if _, ok := out[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, &Invalid{"MissingPolicyParameter", fmt.Sprintf("The policy assignment '%s' is missing the parameter(s) '%s' as defined in the policy definition '%s'.", assignment, strings.Join(missing, ", "), ptr.Deref(def.Name, ""))}
	}
	return out, nil
}

// lookupFold finds a key of m equal to name but for case: the key, its
// value, and whether there is one.
func lookupFold[V any](m map[string]V, name string) (string, V, bool) {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return k, v, true
		}
	}
	var zero V
	return "", zero, false
}

// Resolve turns an assignment of a Kubernetes definition into its rule:
// the definition's policyRule.then, with the assignment's parameters put
// in. A definition whose template Slipway does not enforce is an
// *Invalid with code "UnsupportedPolicyTemplate".
func Resolve(assignmentID string, a *armpolicy.AssignmentProperties, def *armpolicy.Definition) (*Rule, error) {
	name := armid.NameOf(assignmentID)
	var rule struct {
		Then struct {
			Effect  any `json:"effect"`
			Details struct {
				TemplateInfo struct {
					URL string `json:"url"`
				} `json:"templateInfo"`
				ExcludedNamespaces any            `json:"excludedNamespaces"`
				Namespaces         any            `json:"namespaces"`
				LabelSelector      any            `json:"labelSelector"`
				Values             map[string]any `json:"values"`
			} `json:"details"`
		} `json:"then"`
	}
	raw, _ := json.Marshal(def.Properties.PolicyRule)
	if err := json.Unmarshal(raw, &rule); err != nil {
		return nil, &Invalid{"InvalidPolicyRule", fmt.Sprintf("The policy definition '%s' rule is not valid: %v", ptr.Deref(def.Name, ""), err)}
	}
	d := rule.Then.Details
	kind, ok := KindOfTemplate(d.TemplateInfo.URL)
	if !ok {
		return nil, &Invalid{"UnsupportedPolicyTemplate", fmt.Sprintf("The policy definition '%s' uses the constraint template '%s', which Slipway does not enforce; supported templates are container-resource-limits, container-resource-requests and slipway-namespace-quota.", ptr.Deref(def.Name, ""), d.TemplateInfo.URL)}
	}
	// Parameters after the template: a definition's own checks come
	// first, and go on at its PUT, where no assignment gives values.
	params, err := Parameters(name, def, a.Parameters)
	if err != nil {
		return nil, err
	}
	value := func(v any) any {
		if s, ok := v.(string); ok {
			if m := parameterRef.FindStringSubmatch(s); m != nil {
				_, p, _ := lookupFold(params, m[1])
				return p
			}
		}
		return v
	}
	r := &Rule{AssignmentID: assignmentID, AssignmentName: name, DefinitionID: ptr.Deref(def.ID, ""), Kind: kind}
	r.Effect = canonicalEffect(fmt.Sprint(value(rule.Then.Effect)))
	if r.Effect == "" {
		return nil, &Invalid{"InvalidPolicyParameterValue", fmt.Sprintf("The policy assignment '%s' effect '%v' is not one of Audit, Deny, Disabled.", name, value(rule.Then.Effect))}
	}
	if ptr.Deref(a.EnforcementMode, "") == armpolicy.EnforcementModeDoNotEnforce && r.Effect == EffectDeny {
		r.Effect = EffectAudit // reported, never denied
	}
	r.ExcludedNamespaces = stringList(value(d.ExcludedNamespaces))
	r.Namespaces = stringList(value(d.Namespaces))
	if sel := value(d.LabelSelector); sel != nil {
		raw, _ := json.Marshal(sel)
		ls := &metav1.LabelSelector{}
		if err := json.Unmarshal(raw, ls); err != nil {
			return nil, &Invalid{"InvalidPolicyParameterValue", fmt.Sprintf("The policy assignment '%s' labelSelector is not a Kubernetes label selector: %v", name, err)}
		}
		if len(ls.MatchLabels) > 0 || len(ls.MatchExpressions) > 0 {
			r.LabelSelector = ls
		}
	}
	vals := map[string]any{}
	for k, v := range d.Values {
		vals[strings.ToLower(k)] = value(v)
	}
	switch kind {
	case KindContainerLimits:
		r.CPU, r.Memory = fmt.Sprint(vals["cpulimit"]), fmt.Sprint(vals["memorylimit"])
	case KindNamespaceQuota:
		r.CPU, r.Memory = fmt.Sprint(vals["cpuquota"]), fmt.Sprint(vals["memoryquota"])
	}
	if kind != KindContainerRequests {
		for what, q := range map[string]string{"CPU": r.CPU, "memory": r.Memory} {
			if _, err := resource.ParseQuantity(q); err != nil {
				return nil, &Invalid{"InvalidPolicyParameterValue", fmt.Sprintf("The policy assignment '%s' %s value '%s' is not a Kubernetes quantity such as 500m or 512Mi.", name, what, q)}
			}
		}
	}
	r.ExcludedContainers = stringList(vals["excludedcontainers"])
	r.ExcludedImages = stringList(vals["excludedimages"])
	return r, nil
}

func canonicalEffect(s string) string {
	for _, e := range []string{EffectAudit, EffectDeny, EffectDisabled} {
		if strings.EqualFold(s, e) {
			return e
		}
	}
	return ""
}

// stringList reads a parameter array of strings.
func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

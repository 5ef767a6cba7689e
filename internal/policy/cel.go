package policy

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/cel/environment"
)

// The container checks, in CEL, as the cluster's API server runs them in
// a ValidatingAdmissionPolicy and as Slipway runs them over existing pods
// for compliance: one expression, so admission and audit never disagree.
// Each yields the messages of the containers that break the rule (empty
// if none), worded as the Azure Policy templates word them;
// variables.params holds the assignment's values (excludedContainers and
// excludedImages joined with commas): in the policy, a variable whose
// expression is a literal map of them; here, a variable.
const (
	// checkedContainers are the pod's containers and init containers not
	// excluded by name or image (a trailing * matches a prefix).
	checkedContainers = `(object.spec.containers + (has(object.spec.initContainers) ? object.spec.initContainers : []))` +
		`.filter(c, !(c.name in variables.params.excludedContainers.split(',')) && ` +
		`!variables.params.excludedImages.split(',').exists(i, i != '' && (i.endsWith('*') ? c.image.startsWith(i.substring(0, size(i) - 1)) : c.image == i)))`

	limitsProblems = checkedContainers + `.map(c, ` +
		`!has(c.resources) || !has(c.resources.limits) || size(c.resources.limits) == 0 ? 'container <' + c.name + '> has no resource limits' : ` +
		`!('cpu' in c.resources.limits) ? 'container <' + c.name + '> has no cpu limit' : ` +
		`!('memory' in c.resources.limits) ? 'container <' + c.name + '> has no memory limit' : ` +
		`quantity(string(c.resources.limits['cpu'])).compareTo(quantity(variables.params.cpuLimit)) > 0 ? ` +
		`'container <' + c.name + '> cpu limit <' + string(c.resources.limits['cpu']) + '> is higher than the maximum allowed of <' + variables.params.cpuLimit + '>' : ` +
		`quantity(string(c.resources.limits['memory'])).compareTo(quantity(variables.params.memoryLimit)) > 0 ? ` +
		`'container <' + c.name + '> memory limit <' + string(c.resources.limits['memory']) + '> is higher than the maximum allowed of <' + variables.params.memoryLimit + '>' : ` +
		`'').filter(m, m != '')`

	requestsProblems = checkedContainers + `.map(c, ` +
		`!has(c.resources) || !has(c.resources.requests) || size(c.resources.requests) == 0 ? 'container <' + c.name + '> has no resource requests' : ` +
		`!('cpu' in c.resources.requests) ? 'container <' + c.name + '> has no cpu request' : ` +
		`!('memory' in c.resources.requests) ? 'container <' + c.name + '> has no memory request' : ` +
		`'').filter(m, m != '')`
)

// problemsOf is the CEL expression of a container kind's checks.
func problemsOf(kind string) (string, bool) {
	switch kind {
	case KindContainerLimits:
		return limitsProblems, true
	case KindContainerRequests:
		return requestsProblems, true
	}
	return "", false
}

// programs are the compiled checks, by kind, in the environment of the
// cluster API servers' stored expressions (their quantity and string
// libraries included).
var programs = sync.OnceValues(func() (map[string]cel.Program, error) {
	envs, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions:        []cel.EnvOption{cel.Variable("object", cel.DynType), cel.Variable("variables", cel.DynType)},
	})
	if err != nil {
		return nil, err
	}
	env, err := envs.Env(environment.StoredExpressions)
	if err != nil {
		return nil, err
	}
	out := map[string]cel.Program{}
	for _, kind := range []string{KindContainerLimits, KindContainerRequests} {
		expr, _ := problemsOf(kind)
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return nil, fmt.Errorf("compiling the %s check: %w", kind, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			return nil, fmt.Errorf("the %s check: %w", kind, err)
		}
		out[kind] = prg
	}
	return out, nil
})

// Params are a rule's values as the checks read them (variables.params).
func (r *Rule) Params() map[string]string {
	return map[string]string{
		"assignment": r.AssignmentName, "cpuLimit": r.CPU, "memoryLimit": r.Memory,
		"excludedContainers": strings.Join(r.ExcludedContainers, ","), "excludedImages": strings.Join(r.ExcludedImages, ","),
	}
}

// check is a container kind's compiled check with a rule's parameters.
type check struct {
	prg    cel.Program
	params map[string]any
}

// check prepares a rule's container check.
func (r *Rule) check() (*check, error) {
	progs, err := programs()
	if err != nil {
		return nil, err
	}
	prg, ok := progs[r.Kind]
	if !ok {
		return nil, fmt.Errorf("rule kind %s has no container check", r.Kind)
	}
	data := map[string]any{}
	for k, v := range r.Params() {
		data[k] = v
	}
	return &check{prg: prg, params: data}, nil
}

// problems runs the check over a pod (as unstructured content): the
// messages of its containers that break the rule.
func (c *check) problems(pod map[string]any) ([]string, error) {
	out, _, err := c.prg.Eval(map[string]any{"object": pod, "variables": map[string]any{"params": c.params}})
	if err != nil {
		return nil, err
	}
	native, err := out.ConvertToNative(reflect.TypeOf([]string{}))
	if err != nil {
		return nil, fmt.Errorf("the check gave %v: %w", out, err)
	}
	return native.([]string), nil
}

// paramsLiteral is a rule's values as a CEL map literal, the expression
// of its policy's params variable.
func (r *Rule) paramsLiteral() string {
	params := r.Params()
	var b strings.Builder
	b.WriteString("{")
	for i, k := range slices.Sorted(maps.Keys(params)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(celString(k) + ": " + celString(params[k]))
	}
	b.WriteString("}")
	return b.String()
}

// celString is a CEL string literal of s.
func celString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

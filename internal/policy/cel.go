package policy

import (
	"fmt"
	"reflect"
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
// if none), worded as the Azure Policy templates word them; params.data
// holds the assignment's values (excludedContainers and excludedImages
// joined with commas).
const (
	// checkedContainers are the pod's containers and init containers not
	// excluded by name or image (a trailing * matches a prefix).
	checkedContainers = `(object.spec.containers + (has(object.spec.initContainers) ? object.spec.initContainers : []))` +
		`.filter(c, !(c.name in params.data.excludedContainers.split(',')) && ` +
		`!params.data.excludedImages.split(',').exists(i, i != '' && (i.endsWith('*') ? c.image.startsWith(i.substring(0, size(i) - 1)) : c.image == i)))`

	limitsProblems = checkedContainers + `.map(c, ` +
		`!has(c.resources) || !has(c.resources.limits) || size(c.resources.limits) == 0 ? 'container <' + c.name + '> has no resource limits' : ` +
		`!('cpu' in c.resources.limits) ? 'container <' + c.name + '> has no cpu limit' : ` +
		`!('memory' in c.resources.limits) ? 'container <' + c.name + '> has no memory limit' : ` +
		`quantity(string(c.resources.limits['cpu'])).compareTo(quantity(params.data.cpuLimit)) > 0 ? ` +
		`'container <' + c.name + '> cpu limit <' + string(c.resources.limits['cpu']) + '> is higher than the maximum allowed of <' + params.data.cpuLimit + '>' : ` +
		`quantity(string(c.resources.limits['memory'])).compareTo(quantity(params.data.memoryLimit)) > 0 ? ` +
		`'container <' + c.name + '> memory limit <' + string(c.resources.limits['memory']) + '> is higher than the maximum allowed of <' + params.data.memoryLimit + '>' : ` +
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
		EnvOptions:        []cel.EnvOption{cel.Variable("object", cel.DynType), cel.Variable("params", cel.DynType)},
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

// Params are a rule's values as the checks read them (params.data).
func (r *Rule) Params() map[string]string {
	return map[string]string{
		"assignment": r.AssignmentName, "cpuLimit": r.CPU, "memoryLimit": r.Memory,
		"excludedContainers": strings.Join(r.ExcludedContainers, ","), "excludedImages": strings.Join(r.ExcludedImages, ","),
	}
}

// ContainerProblems runs a container kind's check over a pod (as
// unstructured content): the messages of its containers that break the
// rule.
func (r *Rule) ContainerProblems(pod map[string]any) ([]string, error) {
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
	out, _, err := prg.Eval(map[string]any{"object": pod, "params": map[string]any{"data": data}})
	if err != nil {
		return nil, err
	}
	native, err := out.ConvertToNative(reflect.TypeOf([]string{}))
	if err != nil {
		return nil, fmt.Errorf("the %s check gave %v: %w", r.Kind, out, err)
	}
	return native.([]string), nil
}

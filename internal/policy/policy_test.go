package policy

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func values(kv ...any) map[string]*armpolicy.ParameterValuesValue {
	out := map[string]*armpolicy.ParameterValuesValue{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = &armpolicy.ParameterValuesValue{Value: kv[i+1]}
	}
	return out
}

func resolve(t *testing.T, def string, params map[string]*armpolicy.ParameterValuesValue, mode armpolicy.EnforcementMode) *Rule {
	t.Helper()
	d, ok := BuiltIn(def)
	if !ok {
		t.Fatalf("no built-in %s", def)
	}
	r, err := Resolve("/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/limits", &armpolicy.AssignmentProperties{Parameters: params, EnforcementMode: &mode}, d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func container(name, image string, limits corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Image: image, Resources: corev1.ResourceRequirements{Limits: limits, Requests: limits}}
}

func pod(ns, name string, labels map[string]string, cs ...corev1.Container) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, Spec: corev1.PodSpec{Containers: cs}}
}

func limits(cpu, memory string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		l[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return l
}

func TestBuiltInsRender(t *testing.T) {
	for _, d := range BuiltIns() {
		if *d.Properties.Mode != KubernetesMode || *d.Properties.PolicyType != armpolicy.PolicyTypeBuiltIn || d.Properties.Parameters["effect"] == nil {
			t.Errorf("built-in %s: %+v", *d.Name, d.Properties)
		}
	}
	d, _ := BuiltIn(strings.ToUpper(ContainerLimitsDefinition))
	if *d.Properties.DisplayName != "Kubernetes cluster containers CPU and memory resource limits should not exceed the specified limits" {
		t.Errorf("limits definition %q", *d.Properties.DisplayName)
	}
}

func TestResolveRefusesBadAssignments(t *testing.T) {
	d, _ := BuiltIn(ContainerLimitsDefinition)
	for name, tc := range map[string]struct {
		params map[string]*armpolicy.ParameterValuesValue
		code   string
	}{
		"missing memoryLimit": {values("cpuLimit", "500m"), "MissingPolicyParameter"},
		"unknown parameter":   {values("cpuLimit", "500m", "memoryLimit", "1Gi", "gpuLimit", "1"), "UndefinedPolicyParameter"},
		"effect not allowed":  {values("cpuLimit", "500m", "memoryLimit", "1Gi", "effect", "Mutate"), "InvalidPolicyParameterValue"},
		"not a quantity":      {values("cpuLimit", "half a core", "memoryLimit", "1Gi"), "InvalidPolicyParameterValue"},
	} {
		_, err := Resolve("/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/a", &armpolicy.AssignmentProperties{Parameters: tc.params}, d)
		var inv *Invalid
		if !errors.As(err, &inv) || inv.Code != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
}

func TestContainerLimits(t *testing.T) {
	r := resolve(t, ContainerLimitsDefinition, values("cpuLimit", "500m", "memoryLimit", "512Mi", "effect", "deny",
		"excludedContainers", []any{"sidecar"}, "excludedImages", []any{"mcr.microsoft.com/oss/*"}), armpolicy.EnforcementModeDefault)
	if r.Effect != EffectDeny || !r.Enforced() || len(r.ExcludedNamespaces) != 4 {
		t.Fatalf("rule %+v", r)
	}
	pods := []corev1.Pod{
		pod("default", "fits", nil, container("app", "nginx", limits("250m", "256Mi"))),
		pod("default", "big", nil, container("app", "nginx", limits("1", "256Mi"))),
		pod("default", "fat", nil, container("app", "nginx", limits("500m", "1Gi"))),
		pod("default", "none", nil, container("app", "nginx", nil)),
		pod("default", "nocpu", nil, container("app", "nginx", limits("", "1Mi"))),
		pod("default", "excluded", nil, container("sidecar", "nginx", nil), container("agent", "mcr.microsoft.com/oss/agent:1", nil)),
		pod("kube-system", "system", nil, container("app", "nginx", nil)),
	}
	ev, err := r.Evaluate(Namespaces{"default": nil, "kube-system": nil}, pods)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range ev.Violations {
		got[v.Name] = v.Message
	}
	want := map[string]string{
		"big":   "[azurepolicy-limits] container <app> cpu limit <1> is higher than the maximum allowed of <500m>",
		"fat":   "[azurepolicy-limits] container <app> memory limit <1Gi> is higher than the maximum allowed of <512Mi>",
		"none":  "[azurepolicy-limits] container <app> has no resource limits",
		"nocpu": "[azurepolicy-limits] container <app> has no cpu limit",
	}
	if ev.Evaluated != 6 || len(got) != len(want) {
		t.Errorf("evaluated %d, violations %v", ev.Evaluated, got)
	}
	for name, msg := range want {
		if got[name] != msg {
			t.Errorf("%s: %q, want %q", name, got[name], msg)
		}
	}

	audit := resolve(t, ContainerLimitsDefinition, values("cpuLimit", "1", "memoryLimit", "1Gi"), armpolicy.EnforcementModeDoNotEnforce)
	if audit.Effect != EffectAudit || binding(audit).Spec.ValidationActions[0] != "Warn" || !strings.Contains(admissionPolicy(audit).Spec.Variables[0].Expression, "'cpuLimit': '1'") {
		t.Errorf("DoNotEnforce: effect %s", audit.Effect)
	}
}

func TestContainerRequestsAndSelectors(t *testing.T) {
	r := resolve(t, ContainerRequestsDefinition, values("namespaces", []any{"shop"}, "labelSelector", map[string]any{"matchLabels": map[string]any{"tier": "web"}}), armpolicy.EnforcementModeDefault)
	pods := []corev1.Pod{
		pod("shop", "web", map[string]string{"tier": "web"}, container("app", "nginx", nil)),
		pod("shop", "db", map[string]string{"tier": "db"}, container("app", "postgres", nil)),
		pod("other", "web", map[string]string{"tier": "web"}, container("app", "nginx", nil)),
	}
	ev, err := r.Evaluate(Namespaces{"shop": nil, "other": nil}, pods)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Evaluated != 1 || len(ev.Violations) != 1 || ev.Violations[0].Message != "[azurepolicy-limits] container <app> has no resource requests" {
		t.Errorf("evaluation %+v", ev)
	}
}

func TestNamespaceQuota(t *testing.T) {
	r := resolve(t, NamespaceQuotaDefinition, values("cpuQuota", "1", "memoryQuota", "1Gi", "effect", "Audit"), armpolicy.EnforcementModeDefault)
	pods := []corev1.Pod{
		pod("a", "p1", nil, container("c", "i", limits("600m", "100Mi"))),
		pod("a", "p2", nil, container("c", "i", limits("600m", "100Mi"))),
		pod("b", "p3", nil, container("c", "i", limits("600m", "2Gi"))),
		pod("kube-system", "p4", nil, container("c", "i", limits("8", "8Gi"))),
	}
	ev := r.evaluateQuota(Namespaces{"a": nil, "b": nil, "kube-system": nil}, pods)
	if ev.Evaluated != 2 || len(ev.Violations) != 2 {
		t.Fatalf("evaluation %+v", ev)
	}
	for _, v := range ev.Violations {
		if !(v.Name == "a" && strings.Contains(v.Message, "total cpu limits <1200m>")) && !(v.Name == "b" && strings.Contains(v.Message, "total memory limits <2Gi>")) {
			t.Errorf("violation %+v", v)
		}
	}
	if got := to.Ptr(r.ObjectName()); !strings.HasPrefix(*got, "azurepolicy-k8sslipwaynamespacequota-") {
		t.Errorf("object name %s", *got)
	}
}

// BenchmarkAudit5000Pods measures one audit of the limits rule over 5,000
// pods (a tenth of them over the limit), the CEL check run in process as
// the API server runs it on admission.
//
//	make bench-policy
func BenchmarkAudit5000Pods(b *testing.B) {
	d, _ := BuiltIn(ContainerLimitsDefinition)
	r, err := Resolve("/subscriptions/s/providers/Microsoft.Authorization/policyAssignments/limits", &armpolicy.AssignmentProperties{
		Parameters: values("cpuLimit", "500m", "memoryLimit", "512Mi")}, d)
	if err != nil {
		b.Fatal(err)
	}
	pods := make([]corev1.Pod, 5000)
	for i := range pods {
		cpu := "250m"
		if i%10 == 0 {
			cpu = "1"
		}
		pods[i] = pod("ns"+string(rune('a'+i%20)), "p"+strings.Repeat("x", i%7), map[string]string{"app": "web"},
			container("app", "nginx", limits(cpu, "256Mi")), container("sidecar", "envoy", limits("100m", "64Mi")))
	}
	namespaces := Namespaces{}
	for i := range 20 {
		namespaces["ns"+string(rune('a'+i))] = nil
	}
	b.ResetTimer()
	for b.Loop() {
		ev, err := r.Evaluate(namespaces, pods)
		if err != nil || len(ev.Violations) != 500 {
			b.Fatalf("%d violations (%v)", len(ev.Violations), err)
		}
	}
}

func TestFindingsOf(t *testing.T) {
	ev := &auditv1.Event{
		Stage: auditv1.StageResponseComplete,
		Annotations: map[string]string{
			"azurepolicy-k8sazurev3containerlimits-abc/deny":    "container <app> cpu limit <1> is higher than the maximum allowed of <500m>",
			"azurepolicy-k8sazurev1containerrequests-def/audit": "container <app> has no memory request",
			"other-policy/deny": "not the add-on's",
			"validation.policy.admission.k8s.io/validation_failure": "[]",
		},
		ResponseStatus: &metav1.Status{Code: 403, Message: `pods "second" is forbidden: exceeded quota: azurepolicy-k8sslipwaynamespacequota-0a1b, requested: limits.cpu=400m, used: limits.cpu=400m, limited: limits.cpu=600m`},
		ObjectRef:      &auditv1.ObjectReference{Resource: "pods", Namespace: "team"},
		RequestObject:  &runtime.Unknown{Raw: []byte(`{"metadata":{"generateName":"web-7d4b9-"}}`)},
	}
	got := FindingsOf(ev)
	slices.SortFunc(got, func(a, b Finding) int { return strings.Compare(a.Policy+a.Quota, b.Policy+b.Quota) })
	want := []Finding{
		{Policy: "azurepolicy-k8sazurev1containerrequests-def", Action: ActionAudit, Message: "container <app> has no memory request"},
		{Policy: "azurepolicy-k8sazurev3containerlimits-abc", Action: ActionDeny, Message: "container <app> cpu limit <1> is higher than the maximum allowed of <500m>"},
		{Quota: "azurepolicy-k8sslipwaynamespacequota-0a1b", Action: ActionDeny, Message: ev.ResponseStatus.Message},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings\n got %+v\nwant %+v", got, want)
	}
	if kind, ns, name := ObjectOf(ev); kind != "Pod" || ns != "team" || name != "web-7d4b9-" {
		t.Errorf("object %s %s/%s", kind, ns, name)
	}
	ev.Stage = auditv1.StageRequestReceived
	if got := FindingsOf(ev); got != nil {
		t.Errorf("findings of a request not answered: %+v", got)
	}
}

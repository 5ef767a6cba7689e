package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apilabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// selects says whether a label selector (nil: everything) selects labels.
func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(apilabels.Set(l))
}

// Evaluation is a rule's verdict over a cluster's objects.
type Evaluation struct {
	// Evaluated counts the objects the rule covers.
	Evaluated int
	// Violations are those that break it, each with the message admission
	// would give.
	Violations []slipwayv1.PolicyViolation
}

// Evaluate runs a rule over a cluster's existing objects, as the add-on's
// audit does: the pods it covers for the container kinds (with the very
// check the API server runs on admission), each namespace's pods' summed
// limits for a namespace quota. Pods that have ended are not evaluated.
func (r *Rule) Evaluate(namespaces Namespaces, pods []corev1.Pod) (*Evaluation, error) {
	out := &Evaluation{}
	if r.Kind == KindNamespaceQuota {
		return r.evaluateQuota(namespaces, pods), nil
	}
	check, err := r.check()
	if err != nil {
		return nil, err
	}
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed ||
			!r.covers(p.Namespace) || !selects(r.LabelSelector, p.Labels) {
			continue
		}
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
		if err != nil {
			return nil, err
		}
		out.Evaluated++
		problems, err := check.problems(obj)
		if err != nil {
			return nil, fmt.Errorf("evaluating pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		for _, m := range problems {
			out.Violations = append(out.Violations, slipwayv1.PolicyViolation{Kind: "Pod", Namespace: p.Namespace, Name: p.Name,
				Message: "[azurepolicy-" + r.AssignmentName + "] " + m})
		}
	}
	return out, nil
}

// evaluateQuota adds up each covered namespace's pod limits against the
// quota.
func (r *Rule) evaluateQuota(namespaces Namespaces, pods []corev1.Pod) *Evaluation {
	type total struct{ cpu, memory resource.Quantity }
	totals := map[string]*total{}
	for ns, l := range namespaces {
		if r.covers(ns) && selects(r.LabelSelector, l) {
			totals[ns] = &total{}
		}
	}
	for i := range pods {
		p := &pods[i]
		t, ok := totals[p.Namespace]
		if !ok || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, c := range p.Spec.Containers {
			t.cpu.Add(c.Resources.Limits[corev1.ResourceCPU])
			t.memory.Add(c.Resources.Limits[corev1.ResourceMemory])
		}
	}
	cpu, memory := resource.MustParse(r.CPU), resource.MustParse(r.Memory)
	out := &Evaluation{Evaluated: len(totals)}
	for ns, t := range totals {
		for _, c := range []struct {
			what       string
			have, most resource.Quantity
		}{{"cpu", t.cpu, cpu}, {"memory", t.memory, memory}} {
			if c.have.Cmp(c.most) > 0 {
				out.Violations = append(out.Violations, slipwayv1.PolicyViolation{Kind: "Namespace", Name: ns,
					Message: fmt.Sprintf("[azurepolicy-%s] namespace <%s> total %s limits <%s> are higher than the quota of <%s>", r.AssignmentName, ns, c.what, c.have.String(), c.most.String())})
			}
		}
	}
	return out
}

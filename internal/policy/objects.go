package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/slipway-dev/slipway/internal/armid"
)

// Labels on every object the add-on makes in a cluster: what to prune.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "azure-policy-addon"
	// AssignmentLabel names, on a binding, parameters or quota, the
	// assignment it is for (the label of its lower-cased ID).
	AssignmentLabel = "policy.slipway.dev/assignment"
	// AssignmentAnnotation holds the assignment's ID, as the add-on
	// annotates its constraints.
	AssignmentAnnotation = "azure-policy-assignment-id"
	// DefinitionAnnotation holds the assignment's definition ID.
	DefinitionAnnotation = "azure-policy-definition-id"
)

// ObjectName is the name of an assignment's objects in a cluster, as the
// add-on names its constraints: the template's name, cut to 30
// characters, and a hash of the assignment.
func (r *Rule) ObjectName() string {
	tmpl := templateNames[r.Kind]
	if len(tmpl) > 30 {
		tmpl = tmpl[:30]
	}
	return "azurepolicy-" + tmpl + "-" + armid.Label(r.AssignmentID+"#"+r.Instance)
}

// templateNames are the constraint templates' names: the add-on's current
// limits template is k8sazurev3containerlimits (seen on AKS clusters); the
// requests one is named after it.
var templateNames = map[string]string{
	KindContainerLimits:   "k8sazurev3containerlimits",
	KindContainerRequests: "k8sazurev1containerrequests",
	KindNamespaceQuota:    "k8sslipwaynamespacequota",
}

func labels(r *Rule) map[string]string {
	return map[string]string{ManagedByLabel: ManagedBy, AssignmentLabel: armid.Label(r.AssignmentID)}
}

func annotations(r *Rule) map[string]string {
	return map[string]string{AssignmentAnnotation: r.AssignmentID, DefinitionAnnotation: r.DefinitionID}
}

// auditKey is the key of the audit annotation a rule's policy writes on
// every request it finds non-compliant: its effect, so that the policy
// events read from the audit log say whether the request was denied.
// (An audit annotation of the policy's own, not the binding's Audit
// action: that one is one key for all policies, and the API server keeps
// only the first policy's value when two fail one request.)
func (r *Rule) auditKey() string {
	if r.Enforced() {
		return ActionDeny
	}
	return ActionAudit
}

// admissionPolicy is a container rule's ValidatingAdmissionPolicy: the
// kind's check, with the assignment's values as a literal params
// variable. (Not a paramKind shared by all assignments: a kube-apiserver
// stops its informer of a core paramKind when the last binding using it
// goes, and does not start it again, so that the next assignment would
// never be enforced.) An expression the API server cannot evaluate
// admits the pod (failurePolicy Ignore), as AKS's Gatekeeper webhook
// fails open. Its audit annotation records each finding in the API
// server's audit log, where policy events come from.
func admissionPolicy(r *Rule) *admissionv1.ValidatingAdmissionPolicy {
	expr, _ := problemsOf(r.Kind)
	return &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: r.ObjectName(), Labels: labels(r), Annotations: annotations(r)},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Ignore),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
				Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
				Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}}}},
			Variables: []admissionv1.Variable{{Name: "params", Expression: r.paramsLiteral()}, {Name: "problems", Expression: expr}},
			Validations: []admissionv1.Validation{{
				Expression:        "size(variables.problems) == 0",
				MessageExpression: celString("[azurepolicy-"+r.AssignmentName+"] ") + " + variables.problems.join('; ')",
				Reason:            ptr.To(metav1.StatusReasonForbidden),
			}},
			// An empty string writes no annotation.
			AuditAnnotations: []admissionv1.AuditAnnotation{{Key: r.auditKey(), ValueExpression: "variables.problems.join('; ')"}},
		},
	}
}

// namespaceSelector selects the namespaces a rule covers.
func namespaceSelector(r *Rule) *metav1.LabelSelector {
	sel := &metav1.LabelSelector{}
	if len(r.ExcludedNamespaces) > 0 {
		sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: r.ExcludedNamespaces})
	}
	if len(r.Namespaces) > 0 {
		sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: r.Namespaces})
	}
	return sel
}

// binding binds a container rule's policy: Deny refuses, Audit admits
// with a warning and an audit annotation.
func binding(r *Rule) *admissionv1.ValidatingAdmissionPolicyBinding {
	actions := []admissionv1.ValidationAction{admissionv1.Deny}
	if !r.Enforced() {
		actions = []admissionv1.ValidationAction{admissionv1.Warn, admissionv1.Audit}
	}
	b := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: r.ObjectName(), Labels: labels(r), Annotations: annotations(r)},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        r.ObjectName(),
			ValidationActions: actions,
			MatchResources:    &admissionv1.MatchResources{NamespaceSelector: namespaceSelector(r), ObjectSelector: &metav1.LabelSelector{}},
		},
	}
	if r.LabelSelector != nil {
		b.Spec.MatchResources.ObjectSelector = r.LabelSelector
	}
	return b
}

// Namespaces are the names of a cluster's namespaces with their labels.
type Namespaces map[string]map[string]string

// covers says whether a rule covers a namespace.
func (r *Rule) covers(ns string) bool {
	return !slices.Contains(r.ExcludedNamespaces, ns) && (len(r.Namespaces) == 0 || slices.Contains(r.Namespaces, ns))
}

// Sync brings a cluster's admission objects to rules (Disabled ones left
// out): a policy and its binding per container rule, and for an enforced
// namespace quota a ResourceQuota in each namespace it covers. Objects of
// rules no longer given are deleted.
func Sync(ctx context.Context, cs kubernetes.Interface, rules []*Rule, namespaces Namespaces) error {
	want := map[string]bool{}
	var errs []error
	for _, r := range rules {
		if r.Effect == EffectDisabled {
			continue
		}
		if _, ok := problemsOf(r.Kind); ok {
			want[r.ObjectName()] = true
			errs = append(errs, ensure(ctx, cs.AdmissionregistrationV1().ValidatingAdmissionPolicies(), admissionPolicy(r), samePolicy))
			errs = append(errs, ensure(ctx, cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings(), binding(r), sameBinding))
			continue
		}
		if r.Kind == KindNamespaceQuota && r.Enforced() {
			for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
				if !r.covers(ns) || !selects(r.LabelSelector, namespaces[ns]) {
					continue
				}
				q := &corev1.ResourceQuota{
					ObjectMeta: metav1.ObjectMeta{Name: r.ObjectName(), Namespace: ns, Labels: labels(r), Annotations: annotations(r)},
					Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
						corev1.ResourceLimitsCPU: resource.MustParse(r.CPU), corev1.ResourceLimitsMemory: resource.MustParse(r.Memory)}},
				}
				want[ns+"/"+q.Name] = true
				errs = append(errs, ensure(ctx, cs.CoreV1().ResourceQuotas(ns), q, sameQuota))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return prune(ctx, cs, want)
}

// prune deletes the add-on's objects not wanted (by name; quotas by
// namespace/name): bindings before their policies.
func prune(ctx context.Context, cs kubernetes.Interface, want map[string]bool) error {
	opts := metav1.ListOptions{LabelSelector: ManagedByLabel + "=" + ManagedBy}
	var errs []error
	del := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	admission := cs.AdmissionregistrationV1()
	if list, err := admission.ValidatingAdmissionPolicyBindings().List(ctx, opts); err != nil {
		errs = append(errs, err)
	} else {
		for _, b := range list.Items {
			if !want[b.Name] {
				del(admission.ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{}))
			}
		}
	}
	if list, err := admission.ValidatingAdmissionPolicies().List(ctx, opts); err != nil {
		errs = append(errs, err)
	} else {
		for _, p := range list.Items {
			if !want[p.Name] {
				del(admission.ValidatingAdmissionPolicies().Delete(ctx, p.Name, metav1.DeleteOptions{}))
			}
		}
	}
	if list, err := cs.CoreV1().ResourceQuotas(metav1.NamespaceAll).List(ctx, opts); err != nil {
		errs = append(errs, err)
	} else {
		for _, q := range list.Items {
			if !want[q.Namespace+"/"+q.Name] {
				del(cs.CoreV1().ResourceQuotas(q.Namespace).Delete(ctx, q.Name, metav1.DeleteOptions{}))
			}
		}
	}
	return errors.Join(errs...)
}

// typedClient is what ensure needs of a typed client.
type typedClient[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// ensure makes an object, or updates it when same says it differs (the
// updated object is want, with the existing resource version).
func ensure[T interface {
	metav1.Object
	comparable
}](ctx context.Context, c typedClient[T], want T, same func(have, want T) bool) error {
	have, err := c.Get(ctx, want.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.Create(ctx, want, metav1.CreateOptions{FieldManager: ManagedBy})
		return wrap(err, want)
	}
	if err != nil {
		return wrap(err, want)
	}
	if same(have, want) {
		return nil
	}
	want.SetResourceVersion(have.GetResourceVersion())
	_, err = c.Update(ctx, want, metav1.UpdateOptions{FieldManager: ManagedBy})
	return wrap(err, want)
}

func wrap(err error, obj metav1.Object) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("azure policy object %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
}

func samePolicy(have, want *admissionv1.ValidatingAdmissionPolicy) bool {
	return equality.Semantic.DeepEqual(have.Spec.Variables, want.Spec.Variables) && equality.Semantic.DeepEqual(have.Spec.Validations, want.Spec.Validations) &&
		equality.Semantic.DeepEqual(have.Spec.FailurePolicy, want.Spec.FailurePolicy) && equality.Semantic.DeepEqual(have.Spec.AuditAnnotations, want.Spec.AuditAnnotations) &&
		equality.Semantic.DeepEqual(have.Annotations, want.Annotations)
}

func sameBinding(have, want *admissionv1.ValidatingAdmissionPolicyBinding) bool {
	return equality.Semantic.DeepEqual(have.Spec.ValidationActions, want.Spec.ValidationActions) &&
		equality.Semantic.DeepEqual(have.Spec.MatchResources.NamespaceSelector, want.Spec.MatchResources.NamespaceSelector) &&
		equality.Semantic.DeepEqual(have.Spec.MatchResources.ObjectSelector, want.Spec.MatchResources.ObjectSelector)
}

func sameQuota(have, want *corev1.ResourceQuota) bool {
	return equality.Semantic.DeepEqual(have.Spec.Hard, want.Spec.Hard) && equality.Semantic.DeepEqual(have.Annotations, want.Annotations)
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/policyinsights/armpolicyinsights"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const limitsDefinition = "/providers/Microsoft.Authorization/policyDefinitions/e345eecc-fa47-480f-9e88-67dcc122b164"

// podAsking is a pod whose one container asks for (and is limited to)
// cpu and memory.
func podAsking(ns, name, cpu, memory string) *corev1.Pod {
	l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx", Resources: corev1.ResourceRequirements{Limits: l, Requests: l}}}}}
}

// admits tries a pod with a server-side dry run, which goes through
// admission and stores nothing.
func admits(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	_, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

func limitsAssignment(effect, cpu, memory string) armpolicy.Assignment {
	return armpolicy.Assignment{Properties: &armpolicy.AssignmentProperties{
		DisplayName: to.Ptr("Limit container CPU and memory"), PolicyDefinitionID: to.Ptr(limitsDefinition),
		Parameters: map[string]*armpolicy.ParameterValuesValue{"cpuLimit": {Value: cpu}, "memoryLimit": {Value: memory}, "effect": {Value: effect}},
	}}
}

// TestAzurePolicy: the Azure Policy add-on with the built-in container
// limits definition, through armpolicy and armpolicyinsights unmodified:
// a Deny assignment at a cluster is enforced by the cluster's own API
// server (a pod asking too much refused with the assignment and the
// limit named, kube-system left alone), an Audit assignment at the
// resource group reaches both its clusters and reports the pods it would
// refuse in policyStates, deleting the Deny lifts it, and only roles
// that may write policy assign it.
func TestAzurePolicy(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group = "policy-rg"
	var clusters []armcontainerservice.ManagedCluster
	for _, name := range []string{"policy-a", "policy-b"} {
		mc := addonCluster(t, s, c, group, name, "azurepolicy", 1)
		if ap := mc.Properties.AddonProfiles["azurepolicy"]; ap == nil || ap.Identity == nil || !strings.HasSuffix(*ap.Identity.ResourceID, "/azurepolicy-"+name) {
			t.Errorf("add-on profile %+v", mc.Properties.AddonProfiles)
		}
		clusters = append(clusters, mc)
	}
	cred, opts := s.credential(t, s.conn.ClientSecret), s.clientOptions()
	definitions, err := armpolicy.NewDefinitionsClient(s.conn.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	assignments, err := armpolicy.NewAssignmentsClient(s.conn.SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	states, err := armpolicyinsights.NewPolicyStatesClient(cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	a := clusters[0]
	cs := adminClient(t, c, group, *a.Name)
	waitServiceAccount(t, cs)

	t.Run("the built-in definition", func(t *testing.T) {
		d, err := definitions.GetBuiltIn(ctx, "e345eecc-fa47-480f-9e88-67dcc122b164", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *d.Properties.DisplayName != "Kubernetes cluster containers CPU and memory resource limits should not exceed the specified limits" ||
			*d.Properties.Mode != "Microsoft.Kubernetes.Data" || d.Properties.Parameters["cpuLimit"] == nil {
			t.Errorf("definition %+v", d.Properties)
		}
		_, err = assignments.Create(ctx, *a.ID, "incomplete", armpolicy.Assignment{Properties: &armpolicy.AssignmentProperties{
			PolicyDefinitionID: to.Ptr(limitsDefinition), Parameters: map[string]*armpolicy.ParameterValuesValue{"cpuLimit": {Value: "1"}}}}, nil)
		expectCode(t, err, http.StatusBadRequest, "MissingPolicyParameter")
	})

	t.Run("Contributor may not assign a policy, Resource Policy Contributor may", func(t *testing.T) {
		p := s.newPrincipal(t, "policy-writer")
		s.assign(t, "b24988ac-6180-42a0-ab88-20f7382dd24c", p.ObjectID, "/subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/"+group) // Contributor
		conn := *s.conn
		conn.ClientID, conn.ClientSecret = p.AppID, p.Password
		pcred, err := conn.Credential(s.httpClient())
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := armpolicy.NewAssignmentsClient(s.conn.SubscriptionID, pcred, opts)
		if err != nil {
			t.Fatal(err)
		}
		// The role is in force once the principal reads the cluster;
		// only then does a refusal say Contributor may not assign.
		theirClusters, err := armcontainerservice.NewManagedClustersClient(s.conn.SubscriptionID, pcred, opts)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "Contributor in force", func() (bool, string) {
			_, err := theirClusters.Get(ctx, group, *a.Name, nil)
			return err == nil, fmt.Sprint(err)
		})
		_, err = theirs.Create(ctx, *a.ID, "by-contributor", limitsAssignment("Audit", "1", "1Gi"), nil)
		expectCode(t, err, http.StatusForbidden, "AuthorizationFailed")
		s.assign(t, "36243c78-bf99-498c-9df9-86d9f8d28608", p.ObjectID, *a.ID) // Resource Policy Contributor
		eventually(t, 10*time.Second, "Resource Policy Contributor allowed", func() (bool, string) {
			_, err := theirs.Create(ctx, *a.ID, "by-policy-contributor", limitsAssignment("Disabled", "1", "1Gi"), nil)
			return err == nil, fmt.Sprint(err)
		})
		if _, err := theirs.Delete(ctx, *a.ID, "by-policy-contributor", nil); err != nil {
			t.Fatal(err)
		}
	})

	start := time.Now()
	deny, err := assignments.Create(ctx, *a.ID, "limits", limitsAssignment("Deny", "500m", "512Mi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *deny.Properties.Scope != *a.ID || *deny.Properties.EnforcementMode != armpolicy.EnforcementModeDefault {
		t.Errorf("assignment %+v", deny.Properties)
	}
	t.Run("Deny at the cluster: too much is refused, within limits and kube-system admitted", func(t *testing.T) {
		want := "[azurepolicy-limits] container <app> cpu limit <1> is higher than the maximum allowed of <500m>"
		eventually(t, 30*time.Second, "enforcement", func() (bool, string) {
			err := admits(ctx, cs, podAsking("default", "greedy", "1", "256Mi"))
			return err != nil && strings.Contains(err.Error(), want), fmt.Sprint(err)
		})
		t.Logf("assignment PUT to enforcement: %s", time.Since(start).Round(time.Millisecond))
		t.Logf("refusal: %v", admits(ctx, cs, podAsking("default", "greedy", "1", "256Mi")))
		// The API server type-checked the CEL against the Pod schema.
		eventually(t, 30*time.Second, "the policy type-checked", func() (bool, string) {
			vaps, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=azure-policy-addon"})
			if err != nil || len(vaps.Items) != 1 {
				return false, fmt.Sprint(vaps, err)
			}
			tc := vaps.Items[0].Status.TypeChecking
			return tc != nil && len(tc.ExpressionWarnings) == 0, fmt.Sprintf("%+v", tc)
		})
		if err := admits(ctx, cs, podAsking("default", "modest", "250m", "256Mi")); err != nil {
			t.Errorf("a pod within the limits: %v", err)
		}
		if err := admits(ctx, cs, podAsking("kube-system", "system", "1", "1Gi")); err != nil {
			t.Errorf("a kube-system pod: %v", err)
		}
		// The other cluster is not in the assignment's scope.
		other := adminClient(t, c, group, *clusters[1].Name)
		waitServiceAccount(t, other)
		if err := admits(ctx, other, podAsking("default", "greedy", "1", "256Mi")); err != nil {
			t.Errorf("a cluster outside the assignment refused a pod: %v", err)
		}
	})

	t.Run("Audit at the group: admitted, and reported NonCompliant on both clusters", func(t *testing.T) {
		groupID := "/subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + group
		if _, err := assignments.Create(ctx, groupID, "audit-limits", limitsAssignment("Audit", "100m", "1Gi"), nil); err != nil {
			t.Fatal(err)
		}
		for _, mc := range clusters {
			cs := adminClient(t, c, group, *mc.Name)
			if _, err := cs.CoreV1().Pods("default").Create(ctx, podAsking("default", "web", "250m", "256Mi"), metav1.CreateOptions{}); err != nil {
				t.Fatalf("a pod over the audited limit on %s: %v", *mc.Name, err)
			}
		}
		eventually(t, 60*time.Second, "both clusters NonCompliant in policyStates", func() (bool, string) {
			pager := states.NewListQueryResultsForResourceGroupPager(armpolicyinsights.PolicyStatesResourceLatest, s.conn.SubscriptionID, group,
				&armpolicyinsights.QueryOptions{Filter: to.Ptr("policyAssignmentName eq 'audit-limits' and complianceState eq 'NonCompliant'")}, nil)
			found := map[string]bool{}
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					return false, err.Error()
				}
				for _, st := range page.Value {
					found[strings.ToLower(*st.ResourceID)] = true
				}
			}
			return len(found) == 2, fmt.Sprint(found)
		})
		// Per cluster, the pods that break the rule are the record's
		// components, as Azure reports them at a resource.
		for _, mc := range clusters {
			pager := states.NewListQueryResultsForResourcePager(armpolicyinsights.PolicyStatesResourceLatest, *mc.ID,
				&armpolicyinsights.QueryOptions{Filter: to.Ptr("policyAssignmentName eq 'audit-limits'"), Expand: to.Ptr("components")}, nil)
			page, err := pager.NextPage(ctx)
			if err != nil || len(page.Value) != 1 {
				t.Fatalf("states of %s: %+v (%v)", *mc.Name, page.Value, err)
			}
			st := page.Value[0]
			if len(st.Components) != 1 || *st.Components[0].ID != "default/web" || *st.Components[0].Type != "Pod" ||
				!strings.Contains(fmt.Sprint(st.Components[0].AdditionalProperties["message"]), "container <app> cpu limit <250m> is higher than the maximum allowed of <100m>") {
				t.Errorf("components of %s: %+v", *mc.Name, st.Components)
			}
		}
		sum, err := states.SummarizeForResourceGroup(ctx, armpolicyinsights.PolicyStatesSummaryResourceTypeLatest, s.conn.SubscriptionID, group, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := sum.Value[0].Results; *r.NonCompliantResources != 2 || *r.NonCompliantPolicies < 1 {
			t.Errorf("summary %+v", *r)
		}
		// The Deny assignment reports the cluster it covers compliant:
		// nothing it covers breaks it.
		pager := states.NewListQueryResultsForResourcePager(armpolicyinsights.PolicyStatesResourceLatest, *a.ID,
			&armpolicyinsights.QueryOptions{Filter: to.Ptr("policyAssignmentName eq 'limits'")}, nil)
		page, err := pager.NextPage(ctx)
		if err != nil || len(page.Value) != 1 || *page.Value[0].ComplianceState != "Compliant" || *page.Value[0].PolicyDefinitionAction != "deny" {
			t.Errorf("the Deny assignment's state: %+v (%v)", page.Value, err)
		}
	})

	t.Run("deleting the Deny assignment lifts it", func(t *testing.T) {
		if _, err := assignments.Delete(ctx, *a.ID, "limits", nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "a 1-CPU pod admitted", func() (bool, string) {
			err := admits(ctx, cs, podAsking("default", "greedy", "1", "256Mi"))
			return err == nil, fmt.Sprint(err)
		})
		// Made again under the same name, it holds again.
		if _, err := assignments.Create(ctx, *a.ID, "limits", limitsAssignment("Deny", "500m", "512Mi"), nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "enforced again", func() (bool, string) {
			err := admits(ctx, cs, podAsking("default", "greedy", "1", "256Mi"))
			return err != nil, "admitted"
		})
	})

	t.Run("a namespace quota is Kubernetes' ResourceQuota in each namespace in scope", func(t *testing.T) {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := assignments.Create(ctx, *a.ID, "team-quota", armpolicy.Assignment{Properties: &armpolicy.AssignmentProperties{
			PolicyDefinitionID: to.Ptr("/providers/Microsoft.Authorization/policyDefinitions/5119a9e6-0c4f-4b0a-9d0e-51f5e7a5c0d1"),
			Parameters: map[string]*armpolicy.ParameterValuesValue{"cpuQuota": {Value: "600m"}, "memoryQuota": {Value: "1Gi"},
				"namespaces": {Value: []any{"team"}}},
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the quota in namespace team", func() (bool, string) {
			qs, err := cs.CoreV1().ResourceQuotas("team").List(ctx, metav1.ListOptions{})
			return err == nil && len(qs.Items) == 1, fmt.Sprint(qs, err)
		})
		if _, err := cs.CoreV1().Pods("team").Create(ctx, podAsking("team", "first", "400m", "256Mi"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("a pod within the quota: %v", err)
		}
		err = admits(ctx, cs, podAsking("team", "second", "400m", "256Mi"))
		if err == nil || !strings.Contains(err.Error(), "exceeded quota") {
			t.Errorf("a pod beyond the namespace's quota: %v", err)
		}
		if qs, _ := cs.CoreV1().ResourceQuotas("default").List(ctx, metav1.ListOptions{}); len(qs.Items) != 0 {
			t.Errorf("a quota outside the assignment's namespaces: %+v", qs.Items)
		}
	})

	t.Run("a custom definition on the limits template", func(t *testing.T) {
		builtIn, err := definitions.GetBuiltIn(ctx, "e345eecc-fa47-480f-9e88-67dcc122b164", nil)
		if err != nil {
			t.Fatal(err)
		}
		props := *builtIn.Properties
		props.DisplayName, props.PolicyType, props.Version, props.Versions = to.Ptr("Our container limits"), nil, nil, nil
		custom, err := definitions.CreateOrUpdate(ctx, "our-limits", armpolicy.Definition{Properties: &props}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *custom.Properties.PolicyType != armpolicy.PolicyTypeCustom || *custom.ID != "/subscriptions/"+s.conn.SubscriptionID+"/providers/Microsoft.Authorization/policyDefinitions/our-limits" {
			t.Errorf("custom definition %s %+v", *custom.ID, custom.Properties)
		}
		// A template Slipway does not enforce is refused, saying which it does.
		odd := props
		odd.PolicyRule = map[string]any{"if": map[string]any{"field": "type", "in": []any{"Microsoft.ContainerService/managedClusters"}},
			"then": map[string]any{"effect": "[parameters('effect')]", "details": map[string]any{
				"templateInfo": map[string]any{"sourceType": "PublicURL", "url": "https://example.com/k8s/odd/template.yaml"}}}}
		_, err = definitions.CreateOrUpdate(ctx, "odd", armpolicy.Definition{Properties: &odd}, nil)
		expectCode(t, err, http.StatusBadRequest, "UnsupportedPolicyTemplate")

		b := clusters[1]
		other := adminClient(t, c, group, *b.Name)
		assignment := limitsAssignment("Deny", "200m", "512Mi")
		assignment.Properties.PolicyDefinitionID = custom.ID
		if _, err := assignments.Create(ctx, *b.ID, "ours", assignment, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the custom definition enforced", func() (bool, string) {
			err := admits(ctx, other, podAsking("default", "big", "300m", "256Mi"))
			return err != nil && strings.Contains(err.Error(), "[azurepolicy-ours] container <app> cpu limit <300m> is higher than the maximum allowed of <200m>"), fmt.Sprint(err)
		})
		if _, err := assignments.Delete(ctx, *b.ID, "ours", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := definitions.Delete(ctx, "our-limits", nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("denials and audits are policy events", func(t *testing.T) {
		events, err := armpolicyinsights.NewPolicyEventsClient(cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		// find is the events of a query, once at least want of them are in.
		find := func(what string, want int, list func() *runtime.Pager[armpolicyinsights.PolicyEventsClientListQueryResultsForResourceResponse]) []*armpolicyinsights.PolicyEvent {
			var got []*armpolicyinsights.PolicyEvent
			eventually(t, 30*time.Second, what, func() (bool, string) {
				got = nil
				pager := list()
				for pager.More() {
					page, err := pager.NextPage(ctx)
					if err != nil {
						return false, err.Error()
					}
					got = append(got, page.Value...)
				}
				return len(got) >= want, fmt.Sprint(len(got))
			})
			return got
		}
		atCluster := func(filter string) func() *runtime.Pager[armpolicyinsights.PolicyEventsClientListQueryResultsForResourceResponse] {
			return func() *runtime.Pager[armpolicyinsights.PolicyEventsClientListQueryResultsForResourceResponse] {
				return events.NewListQueryResultsForResourcePager(armpolicyinsights.PolicyEventsResourceTypeDefault, *a.ID,
					&armpolicyinsights.QueryOptions{Filter: to.Ptr(filter), Expand: to.Ptr("components")}, nil)
			}
		}
		denied := find("the refusals of the Deny assignment", 1, atCluster("policyAssignmentName eq 'limits' and policyDefinitionAction eq 'deny'"))
		ev := denied[0]
		if *ev.ResourceID != *a.ID || *ev.PolicyDefinitionName != "e345eecc-fa47-480f-9e88-67dcc122b164" || *ev.IsCompliant ||
			len(ev.Components) != 1 || *ev.Components[0].ID != "default/greedy" || *ev.Components[0].Type != "Pod" ||
			!strings.Contains(fmt.Sprint(ev.Components[0].AdditionalProperties["message"]), "cpu limit <1> is higher than the maximum allowed of <500m>") {
			t.Errorf("a denial: %+v, components %+v", ev, ev.Components)
		}
		quota := find("the namespace quota's refusal", 1, atCluster("policyAssignmentName eq 'team-quota'"))
		if c := quota[0].Components; len(c) != 1 || *c[0].ID != "team/second" || *quota[0].PolicyDefinitionAction != "deny" ||
			!strings.Contains(fmt.Sprint(c[0].AdditionalProperties["message"]), "exceeded quota") {
			t.Errorf("the quota's refusal: %+v", c)
		}
		// Pods admitted by both clusters but over the audited limit, seen
		// from the group. (The pods above were made before the audit was
		// in force on both; these are tried until it is.)
		eventually(t, 30*time.Second, "audit events on both clusters", func() (bool, string) {
			for _, mc := range clusters {
				if err := admits(ctx, adminClient(t, c, group, *mc.Name), podAsking("default", "audited", "250m", "256Mi")); err != nil {
					return false, err.Error()
				}
			}
			pager := events.NewListQueryResultsForResourceGroupPager(armpolicyinsights.PolicyEventsResourceTypeDefault, s.conn.SubscriptionID, group,
				&armpolicyinsights.QueryOptions{Filter: to.Ptr("policyAssignmentName eq 'audit-limits' and policyDefinitionAction eq 'audit'")}, nil)
			found := map[string]bool{}
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					return false, err.Error()
				}
				for _, ev := range page.Value {
					found[strings.ToLower(*ev.ResourceID)] = true
				}
			}
			return len(found) == 2, fmt.Sprint(found)
		})
		page, err := events.NewListQueryResultsForSubscriptionPager(armpolicyinsights.PolicyEventsResourceTypeDefault, s.conn.SubscriptionID,
			&armpolicyinsights.QueryOptions{Top: to.Ptr[int32](1)}, nil).NextPage(ctx)
		if err != nil || len(page.Value) != 1 {
			t.Errorf("$top=1 at the subscription: %d events (%v)", len(page.Value), err)
		}
		later := time.Now().Add(time.Hour)
		page, err = events.NewListQueryResultsForSubscriptionPager(armpolicyinsights.PolicyEventsResourceTypeDefault, s.conn.SubscriptionID,
			&armpolicyinsights.QueryOptions{From: &later, To: to.Ptr(later.Add(time.Hour))}, nil).NextPage(ctx)
		if err != nil || len(page.Value) != 0 {
			t.Errorf("events of the next hour: %d (%v)", len(page.Value), err)
		}
	})
}

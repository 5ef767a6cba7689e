// Package policy is Azure Policy for Kubernetes as Slipway serves it: the
// built-in definitions that control the CPU and memory of workloads, how
// an assignment of one resolves into a rule, the Kubernetes objects that
// make a cluster's API server enforce the rule on its own (a
// ValidatingAdmissionPolicy with CEL, or ResourceQuotas), and the same
// rule evaluated over a cluster's existing objects for compliance.
package policy

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
)

// DefinitionType is the ARM type of policy definitions.
const DefinitionType = "Microsoft.Authorization/policyDefinitions"

// KubernetesMode is the mode of definitions the Azure Policy add-on
// carries into clusters.
const KubernetesMode = "Microsoft.Kubernetes.Data"

// Kinds of rule: the constraint templates Slipway enforces, named by the
// template URL a definition's policyRule points at.
const (
	KindContainerLimits   = "container-resource-limits"
	KindContainerRequests = "container-resource-requests"
	KindNamespaceQuota    = "slipway-namespace-quota"
)

// templateURL is the constraint template a kind's definitions name, as
// Azure's built-ins name theirs on its policy store.
func templateURL(kind string) string {
	if kind == KindNamespaceQuota {
		return "https://slipway.dev/policy/kubernetes/" + kind + "/v1/template.yaml"
	}
	return "https://store.policy.core.windows.net/kubernetes/" + kind + "/v3/template.yaml"
}

// KindOfTemplate says which kind a template URL is, for built-in and
// custom definitions alike.
func KindOfTemplate(url string) (string, bool) {
	for _, k := range []string{KindContainerLimits, KindContainerRequests, KindNamespaceQuota} {
		if strings.Contains(strings.ToLower(url), "/"+k+"/") {
			return k, true
		}
	}
	return "", false
}

// DefaultExcludedNamespaces are AKS's default exclusions for Kubernetes
// definitions.
var DefaultExcludedNamespaces = []string{"kube-system", "gatekeeper-system", "azure-arc", "azure-extensions-usage-system"}

// Built-in definition names (GUIDs), as Azure's.
const (
	ContainerLimitsDefinition   = "e345eecc-fa47-480f-9e88-67dcc122b164"
	ContainerRequestsDefinition = "03a4ecdb-0684-4039-be91-2762979e1bc8"
	// NamespaceQuotaDefinition is Slipway's own: Azure has no built-in
	// for a namespace's total CPU and memory.
	NamespaceQuotaDefinition = "5119a9e6-0c4f-4b0a-9d0e-51f5e7a5c0d1"
)

// commonParameters are the parameters every Kubernetes definition takes,
// as Azure's built-ins spell them.
const commonParameters = `
  "effect": {"type": "String", "metadata": {"displayName": "Effect", "description": "'Audit' allows a non-compliant resource to be created or updated, but flags it as non-compliant. 'Deny' blocks the non-compliant resource creation or update. 'Disabled' turns off the policy."},
    "allowedValues": ["audit", "Audit", "deny", "Deny", "disabled", "Disabled"], "defaultValue": "Deny"},
  "excludedNamespaces": {"type": "Array", "metadata": {"displayName": "Namespace exclusions", "description": "List of Kubernetes namespaces to exclude from policy evaluation. System namespaces \"kube-system\", \"gatekeeper-system\" and \"azure-arc\" are always excluded by design. \"azure-extensions-usage-system\" is optional to remove."},
    "defaultValue": ["kube-system", "gatekeeper-system", "azure-arc", "azure-extensions-usage-system"]},
  "namespaces": {"type": "Array", "metadata": {"displayName": "Namespace inclusions", "description": "List of Kubernetes namespaces to only include in policy evaluation. An empty list means the policy is applied to all resources in all namespaces."}, "defaultValue": []},
  "labelSelector": {"type": "Object", "metadata": {"displayName": "Kubernetes label selector", "description": "Label query to select Kubernetes resources for policy evaluation. An empty label selector matches all Kubernetes resources."}, "defaultValue": {}}`

// definitionTemplate is a Kubernetes definition as Azure writes one; the
// kind-specific parameters and values are filled in.
const definitionTemplate = `{
 "properties": {
  "displayName": %q, "policyType": %q, "mode": "Microsoft.Kubernetes.Data", "description": %q,
  "metadata": {"version": %q, "category": "Kubernetes"}, "version": %q, "versions": [%q],
  "parameters": {%s,%s},
  "policyRule": {
   "if": {"field": "type", "in": ["Microsoft.Kubernetes/connectedClusters", "Microsoft.ContainerService/managedClusters"]},
   "then": {"effect": "[parameters('effect')]", "details": {
     "templateInfo": {"sourceType": "PublicURL", "url": %q},
     "apiGroups": [""], "kinds": [%q],
     "excludedNamespaces": "[parameters('excludedNamespaces')]", "namespaces": "[parameters('namespaces')]", "labelSelector": "[parameters('labelSelector')]",
     "values": {%s}}}
  }
 },
 "id": "/providers/Microsoft.Authorization/policyDefinitions/%s", "type": "Microsoft.Authorization/policyDefinitions", "name": %q
}`

type builtIn struct {
	name, displayName, description, version, kind, objectKind, parameters, values string
}

var builtIns = []builtIn{
	{ContainerLimitsDefinition, "Kubernetes cluster containers CPU and memory resource limits should not exceed the specified limits",
		"Enforce container CPU and memory resource limits to prevent resource exhaustion attacks in a Kubernetes cluster. This policy is generally available for Kubernetes Service (AKS), and preview for Azure Arc enabled Kubernetes. For more information, see https://aka.ms/kubepolicydoc.",
		"9.3.0", KindContainerLimits, "Pod",
		`"cpuLimit": {"type": "String", "metadata": {"displayName": "Max allowed CPU units", "description": "The maximum CPU units allowed for a container. E.g. 200m. For more information, please refer https://aka.ms/k8s-policy-pod-limits"}},
  "memoryLimit": {"type": "String", "metadata": {"displayName": "Max allowed memory bytes", "description": "The maximum memory bytes allowed for a container. E.g. 1Gi. For more information, please refer https://aka.ms/k8s-policy-pod-limits"}},
  "excludedContainers": {"type": "Array", "metadata": {"displayName": "Containers exclusions", "description": "The list of InitContainers and Containers to exclude from policy evaluation. The identifier is the name of container. Use an empty list to apply this policy to all containers in all namespaces."}, "defaultValue": []},
  "excludedImages": {"type": "Array", "metadata": {"displayName": "Image exclusions", "description": "The list of InitContainers and Containers to exclude from policy evaluation. The identifier is the image of container. Prefix-matching can be signified with '*'. For example: 'myregistry.azurecr.io/istio:*'."}, "defaultValue": []}`,
		`"cpuLimit": "[parameters('cpuLimit')]", "memoryLimit": "[parameters('memoryLimit')]", "excludedContainers": "[parameters('excludedContainers')]", "excludedImages": "[parameters('excludedImages')]"`},
	{ContainerRequestsDefinition, "Kubernetes cluster containers CPU and memory resource requests must be defined",
		"Enforce container CPU and memory resource requests to be defined in a Kubernetes cluster, so that the scheduler can place pods on nodes with room for them. For more information, see https://aka.ms/kubepolicydoc.",
		"1.0.0-preview", KindContainerRequests, "Pod",
		`"excludedImages": {"type": "Array", "metadata": {"displayName": "Image exclusions", "description": "The list of InitContainers and Containers to exclude from policy evaluation. The identifier is the image of container. Prefix-matching can be signified with '*'."}, "defaultValue": []}`,
		`"excludedImages": "[parameters('excludedImages')]"`},
	{NamespaceQuotaDefinition, "[Slipway] Kubernetes namespaces' total container CPU and memory limits should not exceed the specified quota",
		"Slipway's own definition (Azure has no built-in for it): caps the sum of the CPU and memory limits of all pods in each namespace. Deny enforces it with a Kubernetes ResourceQuota in each namespace in scope (pods must then set limits); Audit reports namespaces over the quota.",
		"1.0.0", KindNamespaceQuota, "Namespace",
		`"cpuQuota": {"type": "String", "metadata": {"displayName": "Max total CPU limits per namespace", "description": "The most CPU the limits of a namespace's pods may add up to. E.g. 4."}},
  "memoryQuota": {"type": "String", "metadata": {"displayName": "Max total memory limits per namespace", "description": "The most memory the limits of a namespace's pods may add up to. E.g. 8Gi."}}`,
		`"cpuQuota": "[parameters('cpuQuota')]", "memoryQuota": "[parameters('memoryQuota')]"`},
}

// BuiltIns are the built-in Kubernetes definitions Slipway serves.
func BuiltIns() []*armpolicy.Definition {
	out := make([]*armpolicy.Definition, 0, len(builtIns))
	for _, b := range builtIns {
		out = append(out, b.definition())
	}
	return out
}

// BuiltIn is the built-in definition of that name (its GUID).
func BuiltIn(name string) (*armpolicy.Definition, bool) {
	for _, b := range builtIns {
		if strings.EqualFold(b.name, name) {
			return b.definition(), true
		}
	}
	return nil, false
}

func (b builtIn) definition() *armpolicy.Definition {
	doc := fmt.Sprintf(definitionTemplate, b.displayName, armpolicy.PolicyTypeBuiltIn, b.description, b.version, b.version, b.version,
		strings.TrimSpace(commonParameters), b.parameters, templateURL(b.kind), b.objectKind, b.values, b.name, b.name)
	var d armpolicy.Definition
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		panic(fmt.Sprintf("built-in policy definition %s: %v", b.name, err)) // the tests render each
	}
	return &d
}

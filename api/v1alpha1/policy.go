package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`

// PolicyDefinition is a custom Azure Policy definition
// (Microsoft.Authorization/policyDefinitions at a subscription); the
// built-in ones are Slipway's code (internal/policy). Its name is derived
// from its lower-cased ID; the policy provider owns it.
type PolicyDefinition struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PolicyDefinitionSpec `json:"spec"`
}

// PolicyDefinitionSpec is the definition as written through ARM.
type PolicyDefinitionSpec struct {
	// ResourceID is the definition's ARM ID, as spelled when created.
	ResourceID string `json:"resourceID"`
	// Resource is the definition (armpolicy's JSON) as last written.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource   runtime.RawExtension `json:"resource"`
	SystemData *SystemData          `json:"systemData,omitempty"`
}

// +kubebuilder:object:root=true

// PolicyDefinitionList is a list of PolicyDefinitions.
type PolicyDefinitionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyDefinition `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`

// PolicyAssignment is an Azure Policy assignment
// (Microsoft.Authorization/policyAssignments) at a subscription, a
// resource group or a resource. Its name is derived from its lower-cased
// ID; the policy provider owns it, the policy controller carries it into
// the clusters in its scope.
type PolicyAssignment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PolicyAssignmentSpec `json:"spec"`
}

// PolicyAssignmentSpec is the assignment as written through ARM.
type PolicyAssignmentSpec struct {
	// ResourceID is the assignment's ARM ID, as spelled when created.
	ResourceID string `json:"resourceID"`
	// Scope is the ID of what it is assigned to.
	Scope string `json:"scope"`
	// Resource is the assignment (armpolicy's JSON) as last written.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource   runtime.RawExtension `json:"resource"`
	SystemData *SystemData          `json:"systemData,omitempty"`
}

// +kubebuilder:object:root=true

// PolicyAssignmentList is a list of PolicyAssignments.
type PolicyAssignmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyAssignment `json:"items"`
}

// LabelPolicyAssignment and LabelCluster index compliance records by the
// labels of their assignment's and cluster's lower-cased IDs.
const (
	LabelPolicyAssignment = "slipway.dev/policy-assignment"
	LabelPolicyCluster    = "slipway.dev/policy-cluster"
)

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Assignment",type=string,JSONPath=`.spec.assignmentID`
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterID`
// +kubebuilder:printcolumn:name="Compliant",type=boolean,JSONPath=`.status.compliant`

// PolicyCompliance is the latest evaluation of one policy assignment on
// one cluster: what Azure Policy's add-on reports for a cluster, which
// Microsoft.PolicyInsights/policyStates answers from. The policy
// controller owns it; it goes with its assignment or its cluster.
type PolicyCompliance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PolicyComplianceSpec   `json:"spec"`
	Status PolicyComplianceStatus `json:"status,omitempty"`
}

// PolicyComplianceSpec is which assignment (of which definition) on which
// cluster.
type PolicyComplianceSpec struct {
	AssignmentID string `json:"assignmentID"`
	DefinitionID string `json:"definitionID"`
	ClusterID    string `json:"clusterID"`
}

// PolicyComplianceStatus is the evaluation.
type PolicyComplianceStatus struct {
	// Evaluated is when the cluster's objects were last evaluated.
	Evaluated metav1.Time `json:"evaluated"`
	// Compliant is whether every object evaluated complies.
	Compliant bool `json:"compliant"`
	// Evaluations counts the objects evaluated.
	Evaluations int `json:"evaluations"`
	// NonCompliant are the objects that do not comply, at most
	// MaxNonCompliant of them (Azure's cap per policy and cluster);
	// NonCompliantCount counts them all.
	NonCompliant      []PolicyViolation `json:"nonCompliant,omitempty"`
	NonCompliantCount int               `json:"nonCompliantCount"`
	// Effect is the effect in force when evaluated (Audit, Deny).
	Effect string `json:"effect,omitempty"`
}

// MaxNonCompliant is how many non-compliant objects a record keeps, as
// the Azure Policy add-on reports at most 500 per policy and cluster.
const MaxNonCompliant = 500

// PolicyViolation is one object that does not comply, and why.
type PolicyViolation struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Message   string `json:"message"`
}

// +kubebuilder:object:root=true

// PolicyComplianceList is a list of PolicyCompliances.
type PolicyComplianceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyCompliance `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Time",type=date,JSONPath=`.spec.time`
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Assignment",type=string,JSONPath=`.spec.assignmentID`
// +kubebuilder:printcolumn:name="Object",type=string,JSONPath=`.spec.object.name`

// PolicyEvent is one evaluation of a policy on one request to a cluster's
// API server: a request denied by a Deny assignment, or admitted but
// non-compliant with an Audit one. Microsoft.PolicyInsights/policyEvents
// answers from them. Slipway writes them from each cluster's audit log
// and never changes one; the newest MaxPolicyEvents of a cluster are
// kept, for at most PolicyEventRetention.
type PolicyEvent struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PolicyEventSpec `json:"spec"`
}

// PolicyEventSpec is what happened.
type PolicyEventSpec struct {
	AssignmentID string `json:"assignmentID"`
	DefinitionID string `json:"definitionID,omitempty"`
	ClusterID    string `json:"clusterID"`
	// Time is when the API server answered the request.
	Time metav1.MicroTime `json:"time"`
	// Action is the policy's effect on the request: deny or audit.
	Action string `json:"action"`
	// Object is the Kubernetes object the request was for.
	Object PolicyViolation `json:"object"`
	// Operation is the request's verb (create, update, patch).
	Operation string `json:"operation,omitempty"`
	// User is who made the request, as the cluster's API server saw it.
	User string `json:"user,omitempty"`
	// AuditID is the API server's ID of the request.
	AuditID string `json:"auditID"`
}

// MaxPolicyEvents is how many events a cluster keeps; PolicyEventRetention
// how long (Azure keeps policy events for 90 days).
const (
	MaxPolicyEvents      = 1000
	PolicyEventRetention = 90 * 24 * time.Hour
)

// +kubebuilder:object:root=true

// PolicyEventList is a list of PolicyEvents.
type PolicyEventList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyEvent `json:"items"`
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func metav1AddToGroupVersion(s *runtime.Scheme) { metav1.AddToGroupVersion(s, GroupVersion) }

// Namespace holds every Slipway object in the management cluster.
const Namespace = "slipway-system"

// Labels that index objects for listing. ARM names are case-insensitive and
// may hold characters labels cannot, so the values are hashes of the
// lower-cased names (see internal/store).
const (
	LabelSubscription  = "slipway.dev/subscription"
	LabelResourceGroup = "slipway.dev/resource-group"
	LabelCluster       = "slipway.dev/cluster"
)

// Finalizer keeps an object until its controller has cleaned up after it.
const Finalizer = "slipway.dev/cleanup"

// OperationRef names the operation an object's controller must carry out.
type OperationRef struct {
	// ID is the operation's ID, as in its ARM status URL.
	ID string `json:"id"`
	// Action is the provisioning state the resource shows while the
	// operation runs: Creating, Updating, Deleting, Starting, Stopping,
	// Scaling, UpgradingNodeImageVersion.
	Action string `json:"action"`
}

// ErrorDetail is an ARM error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Name",type=string,JSONPath=`.spec.name`
// +kubebuilder:printcolumn:name="Location",type=string,JSONPath=`.spec.location`

// ResourceGroup is an ARM resource group.
type ResourceGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ResourceGroupSpec   `json:"spec"`
	Status ResourceGroupStatus `json:"status,omitempty"`
}

// ResourceGroupSpec is a resource group as the user made it.
type ResourceGroupSpec struct {
	SubscriptionID string `json:"subscriptionID"`
	// Name is the group's name as first spelled.
	Name      string            `json:"name"`
	Location  string            `json:"location"`
	Tags      map[string]string `json:"tags,omitempty"`
	ManagedBy string            `json:"managedBy,omitempty"`
	// Operation is set while the group is being deleted.
	Operation *OperationRef `json:"operation,omitempty"`
}

// ResourceGroupStatus is empty for now: a group is Succeeded once stored.
type ResourceGroupStatus struct{}

// +kubebuilder:object:root=true

// ResourceGroupList is a list of ResourceGroups.
type ResourceGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ResourceGroup `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.provisioningState`
// +kubebuilder:printcolumn:name="Power",type=string,JSONPath=`.status.powerState`

// ManagedCluster is an AKS managed cluster.
type ManagedCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ManagedClusterSpec   `json:"spec"`
	Status ManagedClusterStatus `json:"status,omitempty"`
}

// ManagedClusterSpec is the cluster as the user asked for it.
type ManagedClusterSpec struct {
	// ResourceID is the cluster's ARM ID, as spelled when it was created.
	ResourceID string `json:"resourceID"`
	// Resource is the ARM ManagedCluster (the SDK's JSON) as last set by
	// the user, defaults applied, read-only fields and agent pools left
	// out: the pools are AgentPool objects of their own.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource runtime.RawExtension `json:"resource"`
	// Stopped says the user stopped the cluster.
	Stopped bool `json:"stopped,omitempty"`
	// Operation is the operation in progress or last carried out.
	Operation *OperationRef `json:"operation,omitempty"`
}

// ManagedClusterStatus is what the cluster controller observed.
type ManagedClusterStatus struct {
	// CompletedOperation is the ID of the last operation that ended; the
	// cluster is busy while Spec.Operation names another.
	CompletedOperation string `json:"completedOperation,omitempty"`
	// ProvisioningState is the state the last operation ended in:
	// Succeeded, Failed or Canceled.
	ProvisioningState        string       `json:"provisioningState,omitempty"`
	ProvisioningError        *ErrorDetail `json:"provisioningError,omitempty"`
	PowerState               string       `json:"powerState,omitempty"`
	CurrentKubernetesVersion string       `json:"currentKubernetesVersion,omitempty"`
	// HostedCluster is the ID of the control plane in the hosting layer.
	HostedCluster string `json:"hostedCluster,omitempty"`
}

// +kubebuilder:object:root=true

// ManagedClusterList is a list of ManagedClusters.
type ManagedClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ManagedCluster `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.provisioningState`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.readyNodes`

// AgentPool is a node pool of a managed cluster.
type AgentPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AgentPoolSpec   `json:"spec"`
	Status AgentPoolStatus `json:"status,omitempty"`
}

// AgentPoolSpec is the pool as the user asked for it.
type AgentPoolSpec struct {
	ResourceID string `json:"resourceID"`
	// Cluster is the name of the ManagedCluster object the pool belongs to.
	Cluster string `json:"cluster"`
	// Name is the pool's name.
	Name string `json:"name"`
	// Properties is the SDK's ManagedClusterAgentPoolProfileProperties
	// JSON, defaults applied, read-only fields left out.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Properties runtime.RawExtension `json:"properties"`
	// Operation is the operation in progress or last carried out.
	Operation *OperationRef `json:"operation,omitempty"`
	// DeleteMachines names machines deleteMachines asked to remove; the
	// controller drains and removes them, then clears the list.
	DeleteMachines []string `json:"deleteMachines,omitempty"`
	// Evictions names Spot machines whose eviction an operator simulated;
	// the controller gives notice, drains, and deletes or deallocates them
	// per the pool's eviction policy, then clears the list.
	Evictions []string `json:"evictions,omitempty"`
}

// AgentPoolStatus is what the agent pool controller observed.
type AgentPoolStatus struct {
	CompletedOperation string       `json:"completedOperation,omitempty"`
	ProvisioningState  string       `json:"provisioningState,omitempty"`
	ProvisioningError  *ErrorDetail `json:"provisioningError,omitempty"`
	// Nodes are the names of the pool's nodes, by instance.
	Nodes []string `json:"nodes,omitempty"`
	// ReadyNodes counts the pool's nodes that are Ready.
	ReadyNodes int32 `json:"readyNodes,omitempty"`
	// Deallocated names machines that are deallocated (evicted Spot VMs
	// with the Deallocate policy): they keep their place in the scale set
	// and count against quota, but do not run.
	Deallocated      []string `json:"deallocated,omitempty"`
	NodeImageVersion string   `json:"nodeImageVersion,omitempty"`
}

// +kubebuilder:object:root=true

// AgentPoolList is a list of AgentPools.
type AgentPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentPool `json:"items"`
}

// Operation statuses, as ARM spells them.
const (
	OperationInProgress = "InProgress"
	OperationSucceeded  = "Succeeded"
	OperationFailed     = "Failed"
	OperationCanceled   = "Canceled"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
// +kubebuilder:printcolumn:name="Resource",type=string,JSONPath=`.spec.resourceID`

// Operation is an ARM long-running operation. Its name is its ID.
type Operation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OperationSpec   `json:"spec"`
	Status OperationStatus `json:"status,omitempty"`
}

// OperationSpec says what the operation does.
type OperationSpec struct {
	SubscriptionID string `json:"subscriptionID"`
	Location       string `json:"location"`
	// ResourceID is the resource the operation acts on.
	ResourceID string `json:"resourceID"`
	// Action is the resource's provisioning state while it runs.
	Action string `json:"action"`
	// Deletes says the resource is gone when the operation succeeds.
	Deletes bool `json:"deletes,omitempty"`
}

// OperationStatus is how the operation is going.
type OperationStatus struct {
	// Status is InProgress, Succeeded, Failed or Canceled; empty means
	// InProgress.
	Status          string       `json:"status,omitempty"`
	StartTime       metav1.Time  `json:"startTime,omitempty"`
	EndTime         *metav1.Time `json:"endTime,omitempty"`
	PercentComplete int32        `json:"percentComplete,omitempty"`
	Error           *ErrorDetail `json:"error,omitempty"`
}

// +kubebuilder:object:root=true

// OperationList is a list of Operations.
type OperationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Operation `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="AppID",type=string,JSONPath=`.spec.appID`
// +kubebuilder:printcolumn:name="DisplayName",type=string,JSONPath=`.spec.displayName`

// ServicePrincipal is an identity that can get tokens with a client secret.
// Its name is its application (client) ID.
type ServicePrincipal struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ServicePrincipalSpec `json:"spec"`
}

// ServicePrincipalSpec holds the principal's identity and hashed secrets.
type ServicePrincipalSpec struct {
	AppID       string `json:"appID"`
	ObjectID    string `json:"objectID"`
	DisplayName string `json:"displayName,omitempty"`
	// Secrets are stored as salted SHA-256 hashes, never in clear.
	Secrets []SecretHash `json:"secrets,omitempty"`
}

// SecretHash is one client secret, hashed.
type SecretHash struct {
	KeyID string `json:"keyID"`
	// Hint is the secret's first three characters, as Entra shows them.
	Hint string `json:"hint"`
	Salt string `json:"salt"`
	// Hash is hex(SHA-256(salt || secret)). Secrets are 32 random bytes,
	// so a slow password hash would add nothing but latency to every
	// token request.
	Hash    string       `json:"hash"`
	Expires *metav1.Time `json:"expires,omitempty"`
}

// +kubebuilder:object:root=true

// ServicePrincipalList is a list of ServicePrincipals.
type ServicePrincipalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServicePrincipal `json:"items"`
}

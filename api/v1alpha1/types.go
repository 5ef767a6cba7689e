package v1alpha1

import (
	"time"

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

// AnnotationIPSlot is an agent pool's block of its cluster's node subnet,
// fixed when the pool is made, so that nodes of different pools never
// share an address.
const AnnotationIPSlot = "slipway.dev/ip-slot"

// AnnotationWriteClaim on a ManagedCluster names the operation that last
// claimed the right to write to the cluster or one of its pools: "<operation>
// <action> [<pool>]". Whoever starts an operation (the ARM front door, the
// node OS scheduler) sets it through an update conditional on the
// resourceVersion it checked for other operations, so two starts racing
// cannot both win.
const AnnotationWriteClaim = "slipway.dev/write-claim"

// WriteClaim is the value of AnnotationWriteClaim for operation id, carrying
// out action on pool ("" for the cluster itself).
func WriteClaim(id, action, pool string) string { return id + " " + action + " " + pool }

// Finalizer keeps an object until its controller has cleaned up after it.
const Finalizer = "slipway.dev/cleanup"

// OperationRef names the operation an object's controller must carry out.
type OperationRef struct {
	// ID is the operation's ID, as in its ARM status URL.
	ID string `json:"id"`
	// Action is the provisioning state the resource shows while the
	// operation runs: Creating, Updating, Deleting, Starting, Stopping,
	// Scaling, Upgrading, UpgradingNodeImageVersion.
	Action string `json:"action"`
}

// The actions an operation carries out, as the provisioning state a
// resource shows while it runs.
const (
	ActionCreating = "Creating"
	ActionUpdating = "Updating"
	ActionScaling  = "Scaling"
	ActionDeleting = "Deleting"
	ActionStarting = "Starting"
	ActionStopping = "Stopping"
	// ActionCanceling is the state of an abort's own operation.
	ActionCanceling = "Canceling"
	// ActionUpgradeNodeImage is the provisioning state of a pool whose node
	// image is being upgraded (and of its cluster meanwhile).
	ActionUpgradeNodeImage = "UpgradingNodeImageVersion"
	// ActionUpgrading is the provisioning state of a cluster or pool whose
	// Kubernetes version is being upgraded.
	ActionUpgrading = "Upgrading"
)

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
	// Unmodeled is what the api-versions define beyond the SDK's models,
	// as the last PUT gave it: the ManagedCluster JSON holding only those
	// properties and the objects that lead to them. Slipway stores and
	// returns them but does not act on them. Its agentPoolProfiles list
	// runs beside Resource's; the pools keep their own.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Unmodeled *runtime.RawExtension `json:"unmodeled,omitempty"`
	// Stopped says the user stopped the cluster.
	Stopped bool `json:"stopped,omitempty"`
	// Operation is the operation in progress or last carried out.
	Operation *OperationRef `json:"operation,omitempty"`
	// MaintenanceConfigurations are the cluster's maintenance windows.
	MaintenanceConfigurations []MaintenanceConfiguration `json:"maintenanceConfigurations,omitempty"`
	// SystemData says who made the cluster and who last wrote it.
	SystemData *SystemData `json:"systemData,omitempty"`
}

// MaintenanceConfiguration is one of a cluster's maintenance
// configurations: default, aksManagedAutoUpgradeSchedule or
// aksManagedNodeOSUpgradeSchedule.
type MaintenanceConfiguration struct {
	Name string `json:"name"`
	// Properties is the SDK's MaintenanceConfigurationProperties JSON.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Properties runtime.RawExtension `json:"properties"`
	SystemData *SystemData          `json:"systemData,omitempty"`
}

// SystemData records who made a resource and who last changed it, and
// when, as ARM's systemData shows it.
type SystemData struct {
	CreatedBy          string      `json:"createdBy"`
	CreatedByType      string      `json:"createdByType"`
	CreatedAt          metav1.Time `json:"createdAt"`
	LastModifiedBy     string      `json:"lastModifiedBy"`
	LastModifiedByType string      `json:"lastModifiedByType"`
	LastModifiedAt     metav1.Time `json:"lastModifiedAt"`
}

// AutoUpgradeRun records one run of an auto-upgrade scheduler (node OS, or
// the cluster's Kubernetes version): an upgrade was found, and the run
// waited for a window, started the upgrade and saw it end.
type AutoUpgradeRun struct {
	// ID names the run.
	ID string `json:"id"`
	// Channel is the nodeOSUpgradeChannel the run applied.
	Channel string `json:"channel"`
	// Status is Pending (waiting for a window), InProgress, Succeeded,
	// Failed or Canceled.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Detected is when the newer image was found; NextWindow when a
	// pending run may start.
	Detected   metav1.Time       `json:"detected"`
	NextWindow *metav1.Time      `json:"nextWindow,omitempty"`
	StartTime  *metav1.Time      `json:"startTime,omitempty"`
	EndTime    *metav1.Time      `json:"endTime,omitempty"`
	Pools      []AutoUpgradePool `json:"pools,omitempty"`
	// From and To are the cluster's Kubernetes versions, and OperationID
	// the cluster operation that carries the run out, for a run of the
	// cluster auto-upgrade channel (VersionUpgradeRuns).
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	OperationID string `json:"operationID,omitempty"`
}

// AutoUpgradePool is a pool's part in an auto-upgrade run.
type AutoUpgradePool struct {
	Name        string `json:"name"`
	From        string `json:"from,omitempty"`
	To          string `json:"to"`
	OperationID string `json:"operationID,omitempty"`
	Status      string `json:"status,omitempty"`
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
	// Host is the Slipway host that runs the control plane when several
	// share the management plane (internal/fleet); empty on a single host.
	Host string `json:"host,omitempty"`
	// AutoUpgradeRuns are the node OS auto-upgrade runs, newest last.
	AutoUpgradeRuns []AutoUpgradeRun `json:"autoUpgradeRuns,omitempty"`
	// VersionUpgradeRuns are the runs of the cluster auto-upgrade channel
	// (autoUpgradeProfile.upgradeChannel), newest last.
	VersionUpgradeRuns []AutoUpgradeRun `json:"versionUpgradeRuns,omitempty"`
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
	// Unmodeled is what the api-versions define beyond the SDK's models:
	// the AgentPool JSON holding only those properties, stored and
	// returned as given.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Unmodeled *runtime.RawExtension `json:"unmodeled,omitempty"`
	// Operation is the operation in progress or last carried out.
	Operation *OperationRef `json:"operation,omitempty"`
	// DeleteMachines names machines deleteMachines asked to remove; the
	// controller drains and removes them, then clears the list.
	DeleteMachines []string `json:"deleteMachines,omitempty"`
	// Evictions names Spot machines whose eviction an operator simulated;
	// the controller gives notice, drains, and deletes or deallocates them
	// per the pool's eviction policy, then clears the list.
	Evictions []string `json:"evictions,omitempty"`
	// NodeImageTarget is the image the pool's node image upgrade rolls
	// its nodes to; set by whoever starts the upgrade.
	NodeImageTarget string `json:"nodeImageTarget,omitempty"`
	// UpgradeExtras are the upgrade settings that API versions newer than
	// the SDK's models add.
	UpgradeExtras *UpgradeExtras `json:"upgradeExtras,omitempty"`
}

// UpgradeExtras are upgradeSettings fields of api-versions after
// 2025-02-01, which the SDK's models (and so the pool's Properties) lack.
type UpgradeExtras struct {
	// MaxUnavailable is how many nodes may be upgraded in place at once
	// (a count or a percentage of the pool).
	MaxUnavailable string `json:"maxUnavailable,omitempty"`
	// UndrainableNodeBehavior is Cordon or Schedule; empty fails the
	// upgrade on a node whose drain a PodDisruptionBudget blocks.
	UndrainableNodeBehavior string `json:"undrainableNodeBehavior,omitempty"`
}

// NodeImageUpgrade is the progress of a pool's node image upgrade.
type NodeImageUpgrade struct {
	// OperationID is the operation that runs the upgrade.
	OperationID string `json:"operationID"`
	// Target is the image the nodes go to.
	Target string `json:"target"`
	// KubernetesVersion is the release the nodes' kubelets go to, for an
	// upgrade of the pool's orchestratorVersion; empty for a node image
	// upgrade, which keeps it.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Phase is Surging, Draining, Soaking, Reimaging, RemovingSurge,
	// Canceling, Succeeded, Failed or Canceled.
	Phase string `json:"phase"`
	// PhaseStarted is when the phase began (drain timeout, soak).
	PhaseStarted metav1.Time `json:"phaseStarted"`
	// Total counts the nodes to upgrade; Upgraded those done.
	Total    int32 `json:"total"`
	Upgraded int32 `json:"upgraded"`
	// Batch are the nodes being drained and reimaged now.
	Batch []string `json:"batch,omitempty"`
	// Surge are the extra nodes the upgrade added.
	Surge []string `json:"surge,omitempty"`
	// Quarantined nodes could not be drained and stay cordoned
	// (undrainableNodeBehavior Cordon); Skipped ones were made schedulable
	// again without an upgrade (Schedule).
	Quarantined []string     `json:"quarantined,omitempty"`
	Skipped     []string     `json:"skipped,omitempty"`
	StartTime   metav1.Time  `json:"startTime"`
	EndTime     *metav1.Time `json:"endTime,omitempty"`
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
	// CurrentOrchestratorVersion is the Kubernetes release the pool's
	// nodes run (the orchestratorVersion an upgrade reached); empty until
	// the controller first sees the pool.
	CurrentOrchestratorVersion string `json:"currentOrchestratorVersion,omitempty"`
	// Upgrade is the current or last node image upgrade.
	Upgrade *NodeImageUpgrade `json:"upgrade,omitempty"`
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

// OperationRetention is how long a finished operation stays answerable
// (its Azure-AsyncOperation and Location URLs, the portal's history);
// after it, the operation is deleted, so finished operations do not pile
// up in the management plane.
const OperationRetention = 14 * 24 * time.Hour

// UsageRetention is how long a day's UsageRecord is kept: the 13 months of
// cost data Cost Management's query API reaches back. A deleted cluster's
// node resource group keeps its records until then, as its cost stays in
// Azure's cost data.
const UsageRetention = 396 * 24 * time.Hour

// OperationStatus is how the operation is going.
type OperationStatus struct {
	// Status is InProgress, Succeeded, Failed or Canceled; empty means
	// InProgress.
	Status          string       `json:"status,omitempty"`
	StartTime       metav1.Time  `json:"startTime,omitempty"`
	EndTime         *metav1.Time `json:"endTime,omitempty"`
	PercentComplete int32        `json:"percentComplete,omitempty"`
	Error           *ErrorDetail `json:"error,omitempty"`
	// Upgrade is the progress of a node image upgrade this operation runs.
	Upgrade *NodeImageUpgrade `json:"upgrade,omitempty"`
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

// LabelImageFamily indexes NodeImages by the family they extend.
const LabelImageFamily = "slipway.dev/image-family"

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Family",type=string,JSONPath=`.spec.family`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`

// NodeImage is a node image published after Slipway was built (the ones it
// ships are in internal/nodeimage). Its name is the image's full name, lower
// case.
type NodeImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NodeImageSpec `json:"spec"`
}

// NodeImageSpec describes a published image.
type NodeImageSpec struct {
	// Family is the image family's prefix, e.g. AKSUbuntu-2204gen2containerd.
	Family string `json:"family"`
	// Version is YYYYMM.DD.rev.
	Version       string      `json:"version"`
	KernelVersion string      `json:"kernelVersion"`
	Released      metav1.Time `json:"released"`
}

// +kubebuilder:object:root=true

// NodeImageList is a list of NodeImages.
type NodeImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeImage `json:"items"`
}

// LabelPrincipal indexes role assignments by the principal's object ID.
const LabelPrincipal = "slipway.dev/principal"

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Scope",type=string,JSONPath=`.spec.scope`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.roleDefinitionID`
// +kubebuilder:printcolumn:name="Principal",type=string,JSONPath=`.spec.principalID`

// RoleAssignment grants a role to a principal at a scope (a subscription,
// a resource group or a resource) and every scope below it. Its name is the
// assignment's GUID.
type RoleAssignment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RoleAssignmentSpec `json:"spec"`
}

// RoleAssignmentSpec is an ARM role assignment's properties.
type RoleAssignmentSpec struct {
	// Scope is the ARM ID the assignment applies at, as first spelled.
	Scope string `json:"scope"`
	// RoleDefinitionID is the role's full definition ID.
	RoleDefinitionID string `json:"roleDefinitionID"`
	PrincipalID      string `json:"principalID"`
	PrincipalType    string `json:"principalType,omitempty"`
	Description      string `json:"description,omitempty"`
}

// +kubebuilder:object:root=true

// RoleAssignmentList is a list of RoleAssignments.
type RoleAssignmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RoleAssignment `json:"items"`
}

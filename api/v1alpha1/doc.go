// Package v1alpha1 holds Slipway's management objects: the state behind the
// ARM API (resource groups, managed clusters, agent pools, operations,
// service principals, cluster health), stored as custom resources in the management API
// server. It imports only apimachinery so that clients and tools can use it
// without the rest of Slipway.
//
// +kubebuilder:object:generate=true
// +groupName=slipway.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of Slipway's objects.
var GroupVersion = schema.GroupVersion{Group: "slipway.dev", Version: "v1alpha1"}

// SchemeBuilder registers the types with a scheme.
var SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

// AddToScheme adds the types to a scheme.
var AddToScheme = SchemeBuilder.AddToScheme

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ResourceGroup{}, &ResourceGroupList{},
		&ManagedCluster{}, &ManagedClusterList{},
		&AgentPool{}, &AgentPoolList{},
		&Operation{}, &OperationList{},
		&ServicePrincipal{}, &ServicePrincipalList{},
		&NodeImage{}, &NodeImageList{},
		&RoleAssignment{}, &RoleAssignmentList{},
		&ClusterHealth{}, &ClusterHealthList{},
		&Disk{}, &DiskList{},
		&Snapshot{}, &SnapshotList{},
		&StorageAccount{}, &StorageAccountList{},
		&FileShare{}, &FileShareList{},
		&UsageRecord{}, &UsageRecordList{},
		&Host{}, &HostList{},
		&CostAllocation{}, &CostAllocationList{},
		&Vault{}, &VaultList{},
		&VaultSecret{}, &VaultSecretList{},
		&PolicyDefinition{}, &PolicyDefinitionList{},
		&PolicyAssignment{}, &PolicyAssignmentList{},
		&PolicyCompliance{}, &PolicyComplianceList{},
		&PolicyEvent{}, &PolicyEventList{},
	)
	metav1AddToGroupVersion(s)
	return nil
}

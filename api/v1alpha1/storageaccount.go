package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`

// StorageAccount is a storage account (Microsoft.Storage/storageAccounts):
// where the Azure Files CSI driver keeps a cluster's file shares, or one a
// user makes through ARM. Its name is armid.ObjectName of its ID; the
// storage service (internal/storageaccounts) owns it.
type StorageAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec StorageAccountSpec `json:"spec"`
}

// StorageAccountSpec is the account as written through ARM.
type StorageAccountSpec struct {
	// ResourceID is the account's ARM ID, as spelled when it was created.
	ResourceID string `json:"resourceID"`
	// Resource is the ARM account (the SDK's JSON) as last written:
	// location, kind, sku, tags and the writable properties.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource runtime.RawExtension `json:"resource"`
	// Keys are the account's two access keys, key1 and key2.
	Keys        []string    `json:"keys"`
	TimeCreated metav1.Time `json:"timeCreated"`
}

// +kubebuilder:object:root=true

// StorageAccountList is a list of StorageAccounts.
type StorageAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StorageAccount `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`

// FileShare is a file share of a storage account
// (.../fileServices/default/shares). Its name is armid.ObjectName of its ID.
type FileShare struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec FileShareSpec `json:"spec"`
}

// FileShareSpec is the share as written through ARM.
type FileShareSpec struct {
	// ResourceID is the share's ARM ID.
	ResourceID string `json:"resourceID"`
	// Account is the ARM ID of its storage account.
	Account string `json:"account"`
	// Properties is the SDK's FileShareProperties JSON as last written.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Properties   runtime.RawExtension `json:"properties"`
	LastModified metav1.Time          `json:"lastModified"`
}

// +kubebuilder:object:root=true

// FileShareList is a list of FileShares.
type FileShareList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FileShare `json:"items"`
}

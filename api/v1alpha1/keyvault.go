package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// LabelVault indexes a vault's secrets by the vault's lower-cased name.
const LabelVault = "slipway.dev/vault"

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`
// +kubebuilder:printcolumn:name="Deleted",type=date,JSONPath=`.spec.deleted.deletionDate`

// Vault is a key vault (Microsoft.KeyVault/vaults). Vault names are
// global, as DNS names are: its name is "kv-" and the lower-cased vault
// name. The key vault service (internal/keyvault) owns it; a soft-deleted
// vault keeps its object, and its secrets, until it is purged.
type Vault struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VaultSpec `json:"spec"`
}

// VaultSpec is the vault as written through ARM.
type VaultSpec struct {
	// ResourceID is the vault's ARM ID, as spelled when it was created.
	ResourceID string `json:"resourceID"`
	// Resource is the ARM vault (armkeyvault's JSON) as last written:
	// location, tags and the writable properties.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Resource   runtime.RawExtension `json:"resource"`
	SystemData *SystemData          `json:"systemData,omitempty"`
	// Deleted is set while the vault is soft-deleted.
	Deleted *Deletion `json:"deleted,omitempty"`
}

// Deletion is when a soft-deleted vault or object was deleted, and when it
// is purged unless recovered.
type Deletion struct {
	DeletionDate       metav1.Time `json:"deletionDate"`
	ScheduledPurgeDate metav1.Time `json:"scheduledPurgeDate"`
}

// +kubebuilder:object:root=true

// VaultList is a list of Vaults.
type VaultList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Vault `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Vault",type=string,JSONPath=`.spec.vault`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.name`

// VaultSecret is one secret of a vault with all its versions. Its name is
// derived from the vault's and the secret's lower-cased names; the key
// vault service owns it. Values are sealed with the data directory's key:
// the management plane never holds one in the clear.
type VaultSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VaultSecretSpec `json:"spec"`
}

// VaultSecretSpec is the secret.
type VaultSecretSpec struct {
	// Vault is the vault's lower-cased name.
	Vault string `json:"vault"`
	// Name is the secret's name as first spelled.
	Name string `json:"name"`
	// Versions are the secret's versions, oldest first; the last is the
	// current one.
	Versions []SecretVersion `json:"versions"`
	// Deleted is set while the secret is soft-deleted.
	Deleted *Deletion `json:"deleted,omitempty"`
}

// SecretVersion is one version of a secret.
type SecretVersion struct {
	// Version is 32 lower-case hex digits.
	Version string `json:"version"`
	// Sealed is the value, encrypted (AES-256-GCM, base64).
	Sealed      string `json:"sealed"`
	ContentType string `json:"contentType,omitempty"`
	Enabled     bool   `json:"enabled"`
	// NotBefore, Expires, Created and Updated are Unix seconds, as the
	// data plane speaks them.
	NotBefore *int64            `json:"nbf,omitempty"`
	Expires   *int64            `json:"exp,omitempty"`
	Created   int64             `json:"created"`
	Updated   int64             `json:"updated"`
	Tags      map[string]string `json:"tags,omitempty"`
}

// +kubebuilder:object:root=true

// VaultSecretList is a list of VaultSecrets.
type VaultSecretList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VaultSecret `json:"items"`
}

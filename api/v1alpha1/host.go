package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.ready`
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.clusters`
// +kubebuilder:printcolumn:name="Capacity",type=integer,JSONPath=`.spec.capacity`
// +kubebuilder:printcolumn:name="ARM",type=string,JSONPath=`.spec.armEndpoint`

// Host is one `slipway serve` of several that share a management plane
// (internal/fleet), named by its --host-name. As a Node's heartbeat is its
// Lease, a Host's is the Lease host-<name> in the same namespace, renewed
// every two seconds; Status.Ready follows it.
type Host struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   HostSpec   `json:"spec"`
	Status HostStatus `json:"status,omitempty"`
}

// HostSpec is what the host says of itself when it joins.
type HostSpec struct {
	// Capacity is how many clusters the host takes by choice.
	Capacity int `json:"capacity"`
	// ARMEndpoint is where the host answers ARM.
	ARMEndpoint string `json:"armEndpoint,omitempty"`
}

// HostStatus is how the host is doing, as the fleet sees it.
type HostStatus struct {
	// Ready is "True" while the host's Lease is renewed, "False" once it
	// expired: its clusters move to other hosts.
	Ready string `json:"ready,omitempty"`
	// Clusters is how many clusters are placed on the host.
	Clusters int `json:"clusters"`
}

// +kubebuilder:object:root=true

// HostList is a list of Hosts.
type HostList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Host `json:"items"`
}

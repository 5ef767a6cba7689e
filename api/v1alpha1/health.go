package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.resourceID`
// +kubebuilder:printcolumn:name="Checked",type=date,JSONPath=`.status.checkedAt`

// ClusterHealth is the availability history of one managed cluster, as
// Resource Health serves it: the transitions of the last 30 days and the
// events that impacted it. Its name is its ManagedCluster's; the health
// controller owns it and deletes it with the cluster.
type ClusterHealth struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterHealthSpec   `json:"spec"`
	Status ClusterHealthStatus `json:"status,omitempty"`
}

// ClusterHealthSpec names the cluster.
type ClusterHealthSpec struct {
	// ResourceID is the cluster's ARM ID, as first spelled.
	ResourceID string `json:"resourceID"`
	Location   string `json:"location,omitempty"`
}

// ClusterHealthStatus is what the probes saw.
type ClusterHealthStatus struct {
	// CheckedAt is when a probe last ran. It is written at most once a
	// heartbeat when nothing changes, so a gap longer than the Unknown
	// threshold means no probe ran (Slipway was down) and is recorded as
	// Unknown when probing resumes.
	CheckedAt *metav1.Time `json:"checkedAt,omitempty"`
	// Transitions are the states the cluster went through, oldest first.
	// The last one is the current state.
	Transitions []HealthTransition `json:"transitions,omitempty"`
	// Events are the planned maintenance and incidents that impacted the
	// cluster, oldest first.
	Events []HealthEvent `json:"events,omitempty"`
}

// HealthTransition is one state the cluster was in, from Since until the
// next transition's Since.
type HealthTransition struct {
	// State is Available, Degraded, Unavailable or Unknown.
	State string `json:"state"`
	// ReasonType is Unplanned, Planned or UserInitiated ("" when Available).
	ReasonType string `json:"reasonType,omitempty"`
	// Reason is a short machine-readable cause, such as APIServerUnreachable.
	Reason  string      `json:"reason,omitempty"`
	Title   string      `json:"title"`
	Summary string      `json:"summary"`
	Since   metav1.Time `json:"since"`
}

// HealthEvent is a Service Health event: planned maintenance Slipway
// carried out on the cluster, or an unplanned incident.
type HealthEvent struct {
	// ID is the event's tracking ID.
	ID string `json:"id"`
	// Type is PlannedMaintenance or ServiceIssue.
	Type    string `json:"type"`
	Title   string `json:"title"`
	Summary string `json:"summary"`
	// Key identifies what the event is about (an operation's ID, a
	// cause), so the same maintenance seen again extends its event.
	Key        string       `json:"key"`
	Start      metav1.Time  `json:"start"`
	LastUpdate metav1.Time  `json:"lastUpdate"`
	End        *metav1.Time `json:"end,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterHealthList is a list of ClusterHealths.
type ClusterHealthList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterHealth `json:"items"`
}

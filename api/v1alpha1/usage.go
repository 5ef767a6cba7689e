package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.resourceGroup`
// +kubebuilder:printcolumn:name="Date",type=string,JSONPath=`.spec.date`

// UsageRecord is one UTC day of metered usage in one resource group: what
// each billable resource in it ran, and what that cost, as Cost Management
// reports it. Its name is the group's ObjectName and the date; the
// metering controller owns it. Records outlive the resources and the group
// they count, as Azure's cost data does. It has no status subresource: a
// new day's record is made with its rates in one write.
type UsageRecord struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   UsageRecordSpec   `json:"spec"`
	Status UsageRecordStatus `json:"status,omitempty"`
}

// UsageRecordSpec names the group and the day.
type UsageRecordSpec struct {
	SubscriptionID string `json:"subscriptionID"`
	// ResourceGroup is the group's name as first spelled.
	ResourceGroup string `json:"resourceGroup"`
	// Date is the UTC day, as YYYY-MM-DD.
	Date string `json:"date"`
}

// UsageRecordStatus is the day's usage so far.
type UsageRecordStatus struct {
	// Lines are what each meter of each resource used that day.
	Lines []UsageLine `json:"lines,omitempty"`
	// AccruedUntil is the instant up to which Lines count.
	AccruedUntil metav1.MicroTime `json:"accruedUntil"`
	// Rates are the meters that ran from AccruedUntil on. Only the
	// group's latest record's rates are in force: usage from AccruedUntil
	// to any later moment Slipway was up is Rates times that time.
	Rates []UsageRate `json:"rates,omitempty"`
}

// UsageMeter is what is charged: one meter of one resource, described with
// Cost Management's dimensions.
type UsageMeter struct {
	// ResourceID is the resource as its ID was spelled.
	ResourceID string `json:"resourceID"`
	// ResourceType is lower-case, as Cost Management reports it
	// (microsoft.compute/virtualmachinescalesets).
	ResourceType     string `json:"resourceType"`
	Location         string `json:"location,omitempty"`
	ServiceName      string `json:"serviceName"`
	MeterCategory    string `json:"meterCategory"`
	MeterSubCategory string `json:"meterSubCategory,omitempty"`
	Meter            string `json:"meter"`
	// PricingModel is OnDemand or Spot.
	PricingModel string `json:"pricingModel"`
	// UnitOfMeasure is "1 Hour", "1/Month" or "1 GB/Month"; a month is
	// 730 hours, as Azure's prices count it.
	UnitOfMeasure string            `json:"unitOfMeasure"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// UsageRate is a meter that runs: how many units, at what price.
type UsageRate struct {
	UsageMeter `json:",inline"`
	// Units is how many units run: instances, disks, clusters, or GiB.
	Units int64 `json:"units"`
	// NanoUSDPerUnitHour is the price of one unit for one hour, in
	// billionths of a US dollar (integers: CRDs keep no floats).
	NanoUSDPerUnitHour int64 `json:"nanoUSDPerUnitHour"`
	// Split shares the meter out to the Kubernetes namespaces and
	// workloads that use it (cost analysis); what no share takes is idle.
	Split []UsageShare `json:"split,omitempty"`
}

// UsageShare is a namespace's or workload's part of a meter.
type UsageShare struct {
	Namespace string `json:"namespace"`
	// Workload is the pods' top controller, as Kind/name
	// (Deployment/web), or empty for pods of none.
	Workload string `json:"workload,omitempty"`
	// PartsPerMillion is the share of the meter.
	PartsPerMillion int64 `json:"ppm"`
}

// UsageLine is what one meter used in the day.
type UsageLine struct {
	UsageMeter `json:",inline"`
	// UnitMillis is the units times the milliseconds they ran.
	UnitMillis int64 `json:"unitMillis"`
	// NanoUSD is what that cost, in billionths of a US dollar.
	NanoUSD int64 `json:"nanoUSD"`
	// Split is the part of the line each namespace and workload used,
	// while the meter was shared out.
	Split []UsageSplit `json:"split,omitempty"`
}

// UsageSplit is a namespace's or workload's part of a line.
type UsageSplit struct {
	Namespace  string `json:"namespace"`
	Workload   string `json:"workload,omitempty"`
	UnitMillis int64  `json:"unitMillis"`
	NanoUSD    int64  `json:"nanoUSD"`
}

// +kubebuilder:object:root=true

// CostAllocation is how a cluster's node pools are shared out among its
// namespaces and workloads, by their pods' requests, as the cost analysis
// add-on (OpenCost) samples it. Its name is its ManagedCluster's; the cost
// agent writes it while the cluster's costAnalysis is enabled.
type CostAllocation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CostAllocationSpec `json:"spec"`
}

// CostAllocationSpec is the latest sample.
type CostAllocationSpec struct {
	// Pools are the shares of each pool's VMs, by pool name.
	Pools map[string][]UsageShare `json:"pools,omitempty"`
	// SampledAt is when the pods were read.
	SampledAt metav1.Time `json:"sampledAt"`
}

// +kubebuilder:object:root=true

// CostAllocationList is a list of CostAllocations.
type CostAllocationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CostAllocation `json:"items"`
}

// +kubebuilder:object:root=true

// UsageRecordList is a list of UsageRecords.
type UsageRecordList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UsageRecord `json:"items"`
}

// Package nodepool holds AKS's rules for agent pools: defaults, validation,
// and what the nodes of a pool look like.
package nodepool

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"k8s.io/apimachinery/pkg/util/validation"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/version"
	"github.com/slipway-dev/slipway/internal/vmsize"
)

// Properties are an agent pool's properties, as the SDK models them.
type Properties = armcontainerservice.ManagedClusterAgentPoolProfileProperties

// Defaults AKS applies.
const (
	DefaultVMSize  = "Standard_DS2_v2"
	DefaultMaxPods = 110
	DefaultOSDisk  = 128
	// DefaultMaxSurge is the surge of an upgrade when a pool sets none.
	DefaultMaxSurge = "10%"
)

// Invalid is a validation failure, in AKS's terms.
type Invalid struct {
	Code, Target, Message string
}

func (e *Invalid) Error() string { return e.Code + ": " + e.Message }

func invalid(target, format string, args ...any) *Invalid {
	return &Invalid{Code: "InvalidParameter", Target: target, Message: fmt.Sprintf(format, args...)}
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

// ValidateName checks a pool name against AKS's naming rule.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return invalid("agentPoolProfile.name", "The value of parameter agentPoolProfile.name is invalid. Please see https://aka.ms/aks-naming-rules for more details.")
	}
	return nil
}

// Spot pools' label and taint, which AKS adds to every spot pool.
const (
	SpotLabel = "kubernetes.azure.com/scalesetpriority"
	SpotTaint = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
)

// Normalize applies AKS's defaults to a pool and validates it, as a PUT of
// the pool (or of its cluster) does.
func Normalize(p *Properties) error {
	for field, n := range map[string]*int32{"minCount": p.MinCount, "maxCount": p.MaxCount} {
		if n != nil && (*n < 0 || *n > 1000) {
			return invalid("agentPoolProfile."+field, "The value of parameter agentPoolProfile.%s is invalid: %d is outside 0-1000.", field, *n)
		}
	}
	Default(p)
	if _, ok := vmsize.Lookup(*p.VMSize); !ok {
		return unknownSize(*p.VMSize)
	}
	if err := resolveOSDisk(p); err != nil {
		return err
	}
	return Validate(p)
}

// Default fills in what the user left out, as AKS does, except the OS disk,
// which depends on the VM size (see Normalize).
func Default(p *Properties) {
	if p.Count == nil {
		p.Count = to.Ptr[int32](1)
	}
	if p.VMSize == nil || *p.VMSize == "" {
		p.VMSize = to.Ptr(DefaultVMSize)
	}
	if p.Mode == nil || *p.Mode == "" {
		p.Mode = to.Ptr(armcontainerservice.AgentPoolModeUser)
	}
	if p.OSType == nil || *p.OSType == "" {
		p.OSType = to.Ptr(armcontainerservice.OSTypeLinux)
	}
	if p.OSSKU == nil || *p.OSSKU == "" {
		p.OSSKU = to.Ptr(armcontainerservice.OSSKUUbuntu)
		if *p.OSType == armcontainerservice.OSTypeWindows {
			p.OSSKU = to.Ptr(armcontainerservice.OSSKU(nodeimage.WindowsOSSKUs()[0]))
		}
	}
	if p.Type == nil || *p.Type == "" {
		p.Type = to.Ptr(armcontainerservice.AgentPoolTypeVirtualMachineScaleSets)
	}
	if p.MaxPods == nil || *p.MaxPods == 0 {
		p.MaxPods = to.Ptr[int32](DefaultMaxPods)
	}
	if p.ScaleSetPriority == nil || *p.ScaleSetPriority == "" {
		p.ScaleSetPriority = to.Ptr(armcontainerservice.ScaleSetPriorityRegular)
	}
	if *p.ScaleSetPriority == armcontainerservice.ScaleSetPrioritySpot {
		if p.ScaleSetEvictionPolicy == nil || *p.ScaleSetEvictionPolicy == "" {
			p.ScaleSetEvictionPolicy = to.Ptr(armcontainerservice.ScaleSetEvictionPolicyDelete)
		}
		if p.SpotMaxPrice == nil || *p.SpotMaxPrice == 0 {
			p.SpotMaxPrice = to.Ptr[float32](-1)
		}
		if p.NodeLabels == nil {
			p.NodeLabels = map[string]*string{}
		}
		p.NodeLabels[SpotLabel] = to.Ptr("spot")
		hasTaint := false
		for _, t := range p.NodeTaints {
			hasTaint = hasTaint || deref(t) == SpotTaint
		}
		if !hasTaint {
			p.NodeTaints = append(p.NodeTaints, to.Ptr(SpotTaint))
		}
	} else {
		// az sends an eviction policy and a price for every pool; they
		// mean nothing for Regular pools, and AKS does not show them.
		p.ScaleSetEvictionPolicy, p.SpotMaxPrice = nil, nil
	}
	if p.EnableAutoScaling == nil {
		p.EnableAutoScaling = to.Ptr(false)
	}
	if !*p.EnableAutoScaling {
		// Bounds mean nothing without the autoscaler; az clears them when
		// it turns it off, and AKS shows none (Normalize refuses values no
		// pool could have first).
		p.MinCount, p.MaxCount = nil, nil
	}
	if p.OSDiskSizeGB != nil && *p.OSDiskSizeGB == 0 {
		p.OSDiskSizeGB = nil // 0 means "the size's default"
	}
	if p.OSDiskType != nil && *p.OSDiskType == "" {
		p.OSDiskType = nil
	}
	delete(p.Tags, CostTag)
	// Read-only fields are Slipway's to set, never the user's.
	p.ProvisioningState, p.NodeImageVersion, p.CurrentOrchestratorVersion, p.ETag = nil, nil, nil, nil
	if p.PowerState != nil && (p.PowerState.Code == nil || *p.PowerState.Code == "") {
		p.PowerState = nil
	}
}

// ephemeralDefaultGiB is the OS disk an ephemeral disk gets when no size is
// asked for: 128 GiB, or the whole temporary disk when the disk lives there
// and holds at least that (AKS's rule for pools created from March 2025).
func ephemeralDefaultGiB(s vmsize.Size) int32 {
	if s.CacheGiB == 0 && s.TempGiB >= DefaultOSDisk {
		return int32(s.TempGiB)
	}
	return DefaultOSDisk
}

// managedDefaultGiB is AKS's managed OS disk size by vCPU count.
func managedDefaultGiB(s vmsize.Size) int32 {
	switch {
	case s.VCPUs >= 64:
		return 1024
	case s.VCPUs >= 16:
		return 512
	case s.VCPUs >= 8:
		return 256
	}
	return DefaultOSDisk
}

// resolveOSDisk picks the OS disk type and size as AKS does: Ephemeral when
// the size supports it and its cache (or temporary disk) holds the disk,
// else Managed; an explicit Ephemeral that cannot be had is an error.
func resolveOSDisk(p *Properties) error {
	size, _ := vmsize.Lookup(*p.VMSize)
	capacity := int32(size.EphemeralCapacityGiB())
	switch {
	case p.OSDiskType == nil:
		want := ephemeralDefaultGiB(size)
		if p.OSDiskSizeGB != nil {
			want = *p.OSDiskSizeGB
		}
		if size.EphemeralOS && capacity >= want {
			p.OSDiskType, p.OSDiskSizeGB = to.Ptr(armcontainerservice.OSDiskTypeEphemeral), to.Ptr(want)
		} else {
			p.OSDiskType = to.Ptr(armcontainerservice.OSDiskTypeManaged)
			if p.OSDiskSizeGB == nil {
				p.OSDiskSizeGB = to.Ptr(managedDefaultGiB(size))
			}
		}
	case *p.OSDiskType == armcontainerservice.OSDiskTypeEphemeral:
		if p.OSDiskSizeGB == nil {
			p.OSDiskSizeGB = to.Ptr(ephemeralDefaultGiB(size))
		}
	case *p.OSDiskType == armcontainerservice.OSDiskTypeManaged:
		if p.OSDiskSizeGB == nil {
			p.OSDiskSizeGB = to.Ptr(managedDefaultGiB(size))
		}
	}
	return checkOSDisk(p)
}

// checkOSDisk validates a resolved OS disk.
func checkOSDisk(p *Properties) error {
	size, _ := vmsize.Lookup(*p.VMSize)
	if p.OSDiskType == nil || p.OSDiskSizeGB == nil {
		return invalid("agentPoolProfile.osDiskType", "The OS disk type and size must be set.")
	}
	if gb := *p.OSDiskSizeGB; gb < 30 || gb > 2048 {
		return invalid("agentPoolProfile.osDiskSizeGB", "The value of parameter agentPoolProfile.osDiskSizeGB is invalid: %d is outside 30-2048.", gb)
	}
	switch *p.OSDiskType {
	case armcontainerservice.OSDiskTypeManaged:
	case armcontainerservice.OSDiskTypeEphemeral:
		if !size.EphemeralOS {
			return &Invalid{Code: "VMSizeDoesNotSupportEphemeralOS", Target: "agentPoolProfile.osDiskType",
				Message: fmt.Sprintf("The Virtual Machine size %s does not support Ephemeral OS disk.", size.Name)}
		}
		if have, need := int64(size.EphemeralCapacityGiB())<<30, int64(*p.OSDiskSizeGB)<<30; have < need {
			return &Invalid{Code: "VMCacheSizeTooSmall", Target: "agentPoolProfile.osDiskSizeGB",
				Message: fmt.Sprintf("The virtual machine size %s has a cache size of %d bytes, but the OS disk requires %d bytes. Use a VM size with larger cache or disable ephemeral OS.", size.Name, have, need)}
		}
	default:
		return invalid("agentPoolProfile.osDiskType", "The value of parameter agentPoolProfile.osDiskType is invalid: %q. Allowed values are Managed and Ephemeral.", *p.OSDiskType)
	}
	return nil
}

// Validate checks a normalized pool.
func Validate(p *Properties) error {
	mode := *p.Mode
	if mode != armcontainerservice.AgentPoolModeSystem && mode != armcontainerservice.AgentPoolModeUser {
		return invalid("agentPoolProfile.mode", "The value of parameter agentPoolProfile.mode is invalid: %q. Allowed values are System and User.", mode)
	}
	minCount := int32(0)
	if mode == armcontainerservice.AgentPoolModeSystem {
		minCount = 1
	}
	if err := countInRange("count", *p.Count, minCount); err != nil {
		return err
	}
	if *p.EnableAutoScaling {
		if p.MinCount == nil {
			return invalid("agentPoolProfile.minCount", "Required parameter agentPoolProfile.minCount is missing (null): a pool with enableAutoScaling needs minCount and maxCount.")
		}
		if p.MaxCount == nil {
			return invalid("agentPoolProfile.maxCount", "Required parameter agentPoolProfile.maxCount is missing (null): a pool with enableAutoScaling needs minCount and maxCount.")
		}
		if err := countInRange("minCount", *p.MinCount, minCount); err != nil {
			return err
		}
		if err := countInRange("maxCount", *p.MaxCount, max(minCount, 1)); err != nil {
			return err
		}
	}
	if _, ok := vmsize.Lookup(*p.VMSize); !ok {
		return unknownSize(*p.VMSize)
	}
	if err := validateOS(p, mode); err != nil {
		return err
	}
	if err := checkOSDisk(p); err != nil {
		return err
	}
	// An unset orchestratorVersion is the caller's to fill: the control
	// plane's for a new pool, the pool's own on update.
	if v := deref(p.OrchestratorVersion); v != "" {
		if err := ValidateVersion(v, "agentPoolProfile.orchestratorVersion"); err != nil {
			return err
		}
	}
	for _, t := range p.NodeTaints {
		if _, err := ParseTaint(deref(t)); err != nil {
			return invalid("agentPoolProfile.nodeTaints", "The value of parameter agentPoolProfile.nodeTaints is invalid: %v", err)
		}
	}
	if err := validateFields(p); err != nil {
		return err
	}
	if p.MaxPods != nil && (*p.MaxPods < 10 || *p.MaxPods > 250) {
		return invalid("agentPoolProfile.maxPods", "The value of parameter agentPoolProfile.maxPods is invalid: %d is outside 10-250.", *p.MaxPods)
	}
	if *p.ScaleSetPriority == armcontainerservice.ScaleSetPrioritySpot {
		if mode == armcontainerservice.AgentPoolModeSystem {
			return invalid("agentPoolProfile.mode", "The value of parameter agentPoolProfile.mode is invalid. Error details: Spot node pools require user node pools; a system pool cannot use Spot VMs.")
		}
		if p.UpgradeSettings != nil && deref(p.UpgradeSettings.MaxSurge) != "" {
			return invalid("agentPoolProfile.upgrade.maxSurge", "The value of parameter agentPoolProfile.upgrade.maxSurge is invalid. Error details: Spot pools can't set max surge.")
		}
		if *p.OSDiskType == armcontainerservice.OSDiskTypeEphemeral && deref(p.ScaleSetEvictionPolicy) == armcontainerservice.ScaleSetEvictionPolicyDeallocate {
			return invalid("agentPoolProfile.scaleSetEvictionPolicy", "The value of parameter agentPoolProfile.scaleSetEvictionPolicy is invalid. Error details: Deallocate is not supported with Ephemeral OS disks, whose contents a deallocated VM cannot keep; use Delete or a Managed OS disk.")
		}
		switch pol := deref(p.ScaleSetEvictionPolicy); pol {
		case armcontainerservice.ScaleSetEvictionPolicyDelete, armcontainerservice.ScaleSetEvictionPolicyDeallocate:
		default:
			return invalid("agentPoolProfile.scaleSetEvictionPolicy", "The value of parameter agentPoolProfile.scaleSetEvictionPolicy is invalid: %q. Allowed values are Delete and Deallocate.", pol)
		}
		if price := *p.SpotMaxPrice; price != -1 && (price <= 0 || math.Abs(float64(price)*1e5-math.Round(float64(price)*1e5)) > 1e-2) {
			return invalid("agentPoolProfile.spotMaxPrice", "The value of parameter agentPoolProfile.spotMaxPrice is invalid: %v. It must be -1 or a price above 0 with at most 5 decimals.", price)
		}
	}
	return nil
}

// validateOS checks a pool's OS type and SKU as AKS does: Linux pools run a
// Linux SKU; Windows pools a Windows one, and are never System pools.
func validateOS(p *Properties, mode armcontainerservice.AgentPoolMode) error {
	sku := string(deref(p.OSSKU))
	switch *p.OSType {
	case armcontainerservice.OSTypeLinux:
		if !slices.ContainsFunc(nodeimage.LinuxOSSKUs(), func(s string) bool { return strings.EqualFold(s, sku) }) {
			return invalid("agentPoolProfile.osSKU", "The value of parameter agentPoolProfile.osSKU is invalid: %q. Allowed values for Linux are %s.", sku, strings.Join(nodeimage.LinuxOSSKUs(), ", "))
		}
	case armcontainerservice.OSTypeWindows:
		if strings.EqualFold(sku, string(armcontainerservice.OSSKUWindows2019)) {
			return invalid("agentPoolProfile.osSKU", "Windows2019 is not supported for Kubernetes version 1.33 and above; use Windows2022 or Windows2025.")
		}
		if !slices.ContainsFunc(nodeimage.WindowsOSSKUs(), func(s string) bool { return strings.EqualFold(s, sku) }) {
			return invalid("agentPoolProfile.osSKU", "The value of parameter agentPoolProfile.osSKU is invalid: %q. Allowed values for Windows are %s.", sku, strings.Join(nodeimage.WindowsOSSKUs(), ", "))
		}
		if mode == armcontainerservice.AgentPoolModeSystem {
			return invalid("agentPoolProfile.mode", "Windows agent pools cannot be System pools: a cluster's System pools run Linux.")
		}
	default:
		return invalid("agentPoolProfile.osType", "The value of parameter agentPoolProfile.osType is invalid: %q. Allowed values are Linux and Windows.", *p.OSType)
	}
	return nil
}

// ValidateNameFor applies the name rule of a pool's OS on top of
// ValidateName's: Windows node names are the pool's name plus six
// characters within NetBIOS's fifteen, so Windows pool names have at most
// six. It also applies AKS's floor for System pools' VM sizes, whose
// message names the pool.
func ValidateNameFor(name string, p *Properties) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if deref(p.OSType) == armcontainerservice.OSTypeWindows && len(name) > 6 {
		return invalid("agentPoolProfile.name", "Windows agent pool name %q can not be longer than 6 characters. Please see https://aka.ms/aks-naming-rules for more details.", name)
	}
	if size, ok := vmsize.Lookup(deref(p.VMSize)); ok && deref(p.Mode) == armcontainerservice.AgentPoolModeSystem && (size.VCPUs < 2 || size.MemoryGiB < 4) {
		return invalid("agentPoolProfile.vmSize", "System node pool must use VM sku with more than 2 cores and 4GB memory. Nodepool name: %s.", name)
	}
	return nil
}

// CheckVMSize refuses a VM size Azure does not offer, with AKS's message,
// which names the pool and the location; "" is the default size.
func CheckVMSize(pool, location, size string) error {
	if _, ok := vmsize.Lookup(size); ok || size == "" {
		return nil
	}
	return &Invalid{Code: "BadRequest", Target: "agentPoolProfile.vmSize", Message: fmt.Sprintf(
		"The VM size of AgentPoolProfile:%s is not allowed in your subscription in location '%s'. For more details, please visit https://aka.ms/aks/quotas-skus-regions", pool, location)}
}

// unknownSize is CheckVMSize's refusal where the pool and location are not
// at hand.
func unknownSize(size string) error {
	return &Invalid{Code: "BadRequest", Target: "agentPoolProfile.vmSize", Message: fmt.Sprintf(
		"The VM size %s is not allowed in your subscription. For more details, please visit https://aka.ms/aks/quotas-skus-regions", size)}
}

// countInRange applies AKS's range to a pool's count, minCount or
// maxCount, with the message AKS gives (a System pool cannot go to 0).
func countInRange(field string, n, least int32) error {
	if n >= least && n <= 1000 {
		return nil
	}
	return invalid("agentPoolProfile."+field, "agentPoolProfile.%s was %d. It must be greater or equal to minCount:%d and less than or equal to maxCount:1000. If allowedMinCount was expected to be 0 but is 1: 1) The nodepool is a VMAS pool. 2) api Version is less than 2020-03-01. 3) The node is a system pool.", field, n, least)
}

// validateFields checks the values AKS refuses that the model's types
// allow: enums, label keys Kubernetes would refuse, zones, ranges.
func validateFields(p *Properties) error {
	switch prio := deref(p.ScaleSetPriority); prio {
	case armcontainerservice.ScaleSetPriorityRegular, armcontainerservice.ScaleSetPrioritySpot:
	default:
		return invalid("agentPoolProfile.scaleSetPriority", "The value of parameter agentPoolProfile.scaleSetPriority is invalid: %q. Allowed values are Regular and Spot.", prio)
	}
	if t := deref(p.Type); t != armcontainerservice.AgentPoolTypeVirtualMachineScaleSets {
		return invalid("agentPoolProfile.type", "The value of parameter agentPoolProfile.type is invalid: %q. Slipway's node pools are VirtualMachineScaleSets.", t)
	}
	if p.PowerState != nil {
		switch c := deref(p.PowerState.Code); c {
		case armcontainerservice.CodeRunning, armcontainerservice.CodeStopped:
		default:
			return invalid("agentPoolProfile.powerState.code", "The value of parameter agentPoolProfile.powerState.code is invalid: %q. Allowed values are Running and Stopped.", c)
		}
	}
	for _, z := range p.AvailabilityZones {
		if z := deref(z); z != "1" && z != "2" && z != "3" {
			return invalid("agentPoolProfile.availabilityZones", "The value of parameter agentPoolProfile.availabilityZones is invalid: zone %q does not exist in this location. Allowed zones are 1, 2 and 3.", z)
		}
	}
	for k, v := range p.NodeLabels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return invalid("agentPoolProfile.nodeLabels", "The value of parameter agentPoolProfile.nodeLabels is invalid: label key %q: %s.", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(deref(v)); len(errs) > 0 {
			return invalid("agentPoolProfile.nodeLabels", "The value of parameter agentPoolProfile.nodeLabels is invalid: the value of label %q: %s.", k, strings.Join(errs, "; "))
		}
		if reservedLabel(k) {
			return invalid("agentPoolProfile.nodeLabels", "The value of parameter agentPoolProfile.nodeLabels is invalid: label %q is in a namespace AKS reserves (kubernetes.io, k8s.io, kubernetes.azure.com).", k)
		}
	}
	if p.MinCount != nil && p.MaxCount != nil && *p.MinCount > *p.MaxCount {
		return invalid("agentPoolProfile.minCount", "agentPoolProfile.minCount was %d. It must be less than or equal to agentPoolProfile.maxCount:%d.", *p.MinCount, *p.MaxCount)
	}
	if us := p.UpgradeSettings; us != nil {
		if v := deref(us.MaxSurge); v != "" && !ValidCountOrPercent(v) {
			return invalid("agentPoolProfile.upgradeSettings.maxSurge", "The value of parameter agentPoolProfile.upgradeSettings.maxSurge is invalid: %q is neither a whole number nor a percentage.", v)
		}
		if d := us.DrainTimeoutInMinutes; d != nil && (*d < 1 || *d > 1440) {
			return invalid("agentPoolProfile.upgradeSettings.drainTimeoutInMinutes", "The value of parameter agentPoolProfile.upgradeSettings.drainTimeoutInMinutes is invalid: %d is outside 1-1440.", *d)
		}
		if d := us.NodeSoakDurationInMinutes; d != nil && (*d < 0 || *d > 30) {
			return invalid("agentPoolProfile.upgradeSettings.nodeSoakDurationInMinutes", "The value of parameter agentPoolProfile.upgradeSettings.nodeSoakDurationInMinutes is invalid: %d is outside 0-30.", *d)
		}
	}
	return nil
}

// reservedLabel says whether a node label key is in a namespace that AKS
// and the kubelet keep for themselves; the labels Slipway sets on its own
// (the Spot label) are allowed back in, as az echoes them.
func reservedLabel(k string) bool {
	prefix, _, found := strings.Cut(k, "/")
	if !found || k == SpotLabel {
		return false
	}
	for _, ns := range []string{"kubernetes.io", "k8s.io", "kubernetes.azure.com"} {
		if prefix == ns || strings.HasSuffix(prefix, "."+ns) {
			return true
		}
	}
	return false
}

// ValidCountOrPercent says whether v is a node count or a percentage, as
// maxSurge and maxUnavailable take.
func ValidCountOrPercent(v string) bool {
	n, pct := strings.CutSuffix(v, "%")
	i, err := strconv.Atoi(n)
	return err == nil && i >= 0 && (!pct || i <= 100)
}

// ValidateVersion accepts a Kubernetes release Slipway serves, as x.y.z or
// as an x.y alias of its minor's latest patch.
func ValidateVersion(v, target string) error {
	if _, ok := version.Resolve(v); ok {
		return nil
	}
	return &Invalid{Code: "K8sVersionNotSupported", Target: target,
		Message: fmt.Sprintf("Version %s is not supported in this region. Please use [az aks get-versions] command to get the supported version list in this region. Supported versions: %s.", v, strings.Join(version.Releases, ", "))}
}

// CurrentVersion is the Kubernetes release the pool's nodes run: what its
// last upgrade reached, or, before the controller has seen the pool, what
// its orchestratorVersion asks for.
func CurrentVersion(pool *slipwayv1.AgentPool) string {
	if v := pool.Status.CurrentOrchestratorVersion; v != "" {
		return v
	}
	return DesiredVersion(pool)
}

// DesiredVersion is the release the pool's orchestratorVersion resolves
// to; pools stored before versions were chosen run the compiled-in one.
func DesiredVersion(pool *slipwayv1.AgentPool) string {
	var p struct {
		OrchestratorVersion string `json:"orchestratorVersion"`
	}
	json.Unmarshal(pool.Spec.Properties.Raw, &p)
	if v, ok := version.Resolve(p.OrchestratorVersion); ok {
		return v
	}
	return strings.TrimPrefix(version.Kubernetes, "v")
}

// ValidateUpdate checks what a PUT of pool name may not change: the
// immutable fields, and the count of a pool the autoscaler sizes.
func ValidateUpdate(name string, old, p *Properties) error {
	if *p.EnableAutoScaling && deref(p.Count) != deref(old.Count) {
		if deref(old.EnableAutoScaling) {
			return invalid("agentPoolProfile.count", "Cannot manually scale AgentPool '%s' of an AKS cluster with cluster autoscaler enabled. Please disable cluster autoscaler in the cluster to manually scale.", name)
		}
		return invalid("agentPoolProfile.count", "Cannot manually scale and enable cluster autoscaler in the same update operation on VMSS Agentpool '%s'.", name)
	}
	immutable := []struct {
		name     string
		old, new string
	}{
		{"vmSize", deref(old.VMSize), deref(p.VMSize)},
		{"osDiskType", string(deref(old.OSDiskType)), string(deref(p.OSDiskType))},
		{"osType", string(deref(old.OSType)), string(deref(p.OSType))},
		{"scaleSetPriority", string(deref(old.ScaleSetPriority)), string(deref(p.ScaleSetPriority))},
	}
	for _, f := range immutable {
		if !strings.EqualFold(f.old, f.new) {
			return &Invalid{Code: "PropertyChangeNotAllowed", Target: "agentPoolProfile." + f.name,
				Message: fmt.Sprintf("Changing property '%s' is not allowed. Provided value is %s, please use current value %s.", f.name, f.new, f.old)}
		}
	}
	if deref(old.SpotMaxPrice) != deref(p.SpotMaxPrice) {
		return &Invalid{Code: "PropertyChangeNotAllowed", Target: "agentPoolProfile.spotMaxPrice",
			Message: fmt.Sprintf("Changing property 'spotMaxPrice' is not allowed. Provided value is %v, please use current value %v.", deref(p.SpotMaxPrice), deref(old.SpotMaxPrice))}
	}
	if deref(old.OSDiskSizeGB) != deref(p.OSDiskSizeGB) {
		return &Invalid{Code: "PropertyChangeNotAllowed", Target: "agentPoolProfile.osDiskSizeGB",
			Message: fmt.Sprintf("Changing property 'osDiskSizeGB' is not allowed. Provided value is %d, please use current value %d.", deref(p.OSDiskSizeGB), deref(old.OSDiskSizeGB))}
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

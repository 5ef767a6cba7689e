// Package nodepool holds AKS's rules for agent pools: defaults, validation,
// and what the nodes of a pool look like.
package nodepool

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

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
	// DefaultNodeImage is the node image new pools get until the node
	// image catalog says otherwise.
	DefaultNodeImage = "AKSUbuntu-2204gen2containerd-202511.14.0"
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

// Default fills in what the user left out, as AKS does.
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
	}
	if p.Type == nil || *p.Type == "" {
		p.Type = to.Ptr(armcontainerservice.AgentPoolTypeVirtualMachineScaleSets)
	}
	if p.MaxPods == nil || *p.MaxPods == 0 {
		p.MaxPods = to.Ptr[int32](DefaultMaxPods)
	}
	if p.OSDiskSizeGB == nil || *p.OSDiskSizeGB == 0 {
		p.OSDiskSizeGB = to.Ptr[int32](DefaultOSDisk)
	}
	if p.OSDiskType == nil || *p.OSDiskType == "" {
		p.OSDiskType = to.Ptr(armcontainerservice.OSDiskTypeManaged)
	}
	if p.ScaleSetPriority == nil || *p.ScaleSetPriority == "" {
		p.ScaleSetPriority = to.Ptr(armcontainerservice.ScaleSetPriorityRegular)
	}
	if p.OrchestratorVersion == nil || *p.OrchestratorVersion == "" {
		p.OrchestratorVersion = to.Ptr(strings.TrimPrefix(version.Kubernetes, "v"))
	}
	if p.EnableAutoScaling == nil {
		p.EnableAutoScaling = to.Ptr(false)
	}
	// Read-only fields are Slipway's to set, never the user's.
	p.ProvisioningState, p.NodeImageVersion, p.CurrentOrchestratorVersion, p.ETag = nil, nil, nil, nil
	if p.PowerState != nil && (p.PowerState.Code == nil || *p.PowerState.Code == "") {
		p.PowerState = nil
	}
}

// Validate checks a defaulted pool.
func Validate(p *Properties) error {
	mode := *p.Mode
	if mode != armcontainerservice.AgentPoolModeSystem && mode != armcontainerservice.AgentPoolModeUser {
		return invalid("agentPoolProfile.mode", "The value of parameter agentPoolProfile.mode is invalid: %q. Allowed values are System and User.", mode)
	}
	minCount := int32(0)
	if mode == armcontainerservice.AgentPoolModeSystem {
		minCount = 1
	}
	if c := *p.Count; c < minCount || c > 1000 {
		return invalid("agentPoolProfile.count", "agentPoolProfile.count was %d. It must be greater or equal to minCount:%d and less than or equal to maxCount:1000.", c, minCount)
	}
	if _, ok := vmsize.Lookup(*p.VMSize); !ok {
		return invalid("agentPoolProfile.vmSize", "The VM size of %s is not supported. Supported sizes: %s.", *p.VMSize, strings.Join(vmsize.Names(), ", "))
	}
	if *p.OSType != armcontainerservice.OSTypeLinux {
		return invalid("agentPoolProfile.osType", "The value of parameter agentPoolProfile.osType is invalid: Slipway's simulated nodes run Linux only.")
	}
	if err := ValidateVersion(*p.OrchestratorVersion, "agentPoolProfile.orchestratorVersion"); err != nil {
		return err
	}
	for _, t := range p.NodeTaints {
		if _, err := ParseTaint(deref(t)); err != nil {
			return invalid("agentPoolProfile.nodeTaints", "The value of parameter agentPoolProfile.nodeTaints is invalid: %v", err)
		}
	}
	if p.MaxPods != nil && (*p.MaxPods < 10 || *p.MaxPods > 250) {
		return invalid("agentPoolProfile.maxPods", "The value of parameter agentPoolProfile.maxPods is invalid: %d is outside 10-250.", *p.MaxPods)
	}
	return nil
}

// ValidateVersion accepts the Kubernetes version Slipway carries, as x.y or
// x.y.z.
func ValidateVersion(v, target string) error {
	full := strings.TrimPrefix(version.Kubernetes, "v")
	if v == full || v == version.KubernetesMinor() {
		return nil
	}
	return &Invalid{Code: "K8sVersionNotSupported", Target: target,
		Message: fmt.Sprintf("Version %s is not supported in this region. Supported versions: %s (%s).", v, full, version.KubernetesMinor())}
}

// ValidateUpdate checks what a PUT may not change.
func ValidateUpdate(old, p *Properties) error {
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

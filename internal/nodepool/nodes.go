package nodepool

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/compute"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/vmsize"
)

// NodeName is AKS's name for instance i of a Linux pool's scale set.
func NodeName(pool, hash string, instance int) string {
	return fmt.Sprintf("aks-%s-%s-vmss%06d", pool, hash, instance)
}

// WindowsNodeName is AKS's name for instance i of a Windows pool: a
// Windows computer name has at most 15 characters, so "aks", the pool's
// name (at most 6) and the instance.
func WindowsNodeName(pool string, instance int) string {
	return fmt.Sprintf("aks%s%06d", pool, instance)
}

// InstanceOf parses the instance number from a node name
// ("aks-<pool>-<hash>-vmss000003" and "aks<pool>000003" are instance 3).
func InstanceOf(node string) (int, bool) {
	digits := ""
	if i := strings.LastIndex(node, "vmss"); i >= 0 {
		digits = node[i+4:]
	} else if strings.HasPrefix(node, "aks") && len(node) > 9 && !strings.Contains(node, "-") {
		digits = node[len(node)-6:]
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// addressesPerPool is the size of each pool's block of the node subnet
// (10.224.0.0/12): room for AKS's 1,000 nodes a pool, for 256 pools.
const addressesPerPool = 4096

// InternalIP is the address of instance i of the pool in slot: the pool's
// block of the cluster's node subnet, the first four addresses of which
// Azure keeps, as it keeps a subnet's.
func InternalIP(slot, instance int) string {
	n := 10<<24 | 224<<16 | (slot*addressesPerPool + 4 + instance)
	return fmt.Sprintf("%d.%d.%d.%d", n>>24&0xff, n>>16&0xff, n>>8&0xff, n&0xff)
}

// IPSlotOf is a pool's slot; pools made before slots existed have 0.
func IPSlotOf(pool *slipwayv1.AgentPool) int {
	slot, _ := strconv.Atoi(pool.Annotations[slipwayv1.AnnotationIPSlot])
	return slot
}

// FreeIPSlot is the lowest slot no pool of pools holds.
func FreeIPSlot(pools []slipwayv1.AgentPool) int {
	used := map[int]bool{}
	for i := range pools {
		used[IPSlotOf(&pools[i])] = true
	}
	slot := 0
	for used[slot] {
		slot++
	}
	return slot
}

// SetIPSlot gives a new pool its slot.
func SetIPSlot(pool *slipwayv1.AgentPool, slot int) {
	if pool.Annotations == nil {
		pool.Annotations = map[string]string{}
	}
	pool.Annotations[slipwayv1.AnnotationIPSlot] = strconv.Itoa(slot)
}

// ParseTaint parses AKS's "key=value:Effect" taint syntax.
func ParseTaint(s string) (corev1.Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok {
		return corev1.Taint{}, fmt.Errorf("taint %q is not key=value:Effect", s)
	}
	key, value, _ := strings.Cut(kv, "=")
	switch corev1.TaintEffect(effect) {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return corev1.Taint{}, fmt.Errorf("taint %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", s)
	}
	if key == "" {
		return corev1.Taint{}, fmt.Errorf("taint %q has no key", s)
	}
	return corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffect(effect)}, nil
}

// NodeSpec describes node instance of a pool.
type NodeSpec struct {
	Pool     string
	Hash     string
	Instance int
	IPSlot   int    // the pool's block of the node subnet
	Cluster  string // the cluster's node resource group, as AKS labels it
	// Subscription holds the node resource group and the VMs in it.
	Subscription string
	Location     string
	Image        nodeimage.Image
	KubeVersion  string
	Properties   *Properties
}

// Node returns the VM of an instance and its node, labelled as AKS labels
// its nodes.
func (n NodeSpec) Node() compute.Instance {
	p := n.Properties
	size, _ := vmsize.Lookup(deref(p.VMSize))
	name, osName := NodeName(n.Pool, n.Hash, n.Instance), "linux"
	windows := deref(p.OSType) == armcontainerservice.OSTypeWindows
	if windows {
		name, osName = WindowsNodeName(n.Pool, n.Instance), "windows"
	}
	labels := map[string]string{
		"agentpool":                                               n.Pool,
		"kubernetes.azure.com/agentpool":                          n.Pool,
		"kubernetes.azure.com/mode":                               strings.ToLower(string(deref(p.Mode))),
		"kubernetes.azure.com/role":                               "agent",
		"kubernetes.azure.com/cluster":                            n.Cluster,
		"kubernetes.azure.com/node-image-version":                 n.Image.Name(),
		"kubernetes.azure.com/os-sku":                             string(deref(p.OSSKU)),
		"kubernetes.azure.com/storageprofile":                     strings.ToLower(string(deref(p.OSDiskType))),
		"topology.kubernetes.io/region":                           n.Location,
		"topology.kubernetes.io/zone":                             n.zone(),
		DiskZoneLabel:                                             n.diskZone(),
		"node.kubernetes.io/instance-type":                        size.Name,
		"beta.kubernetes.io/instance-type":                        size.Name,
		"kubernetes.io/os":                                        osName,
		"kubernetes.io/arch":                                      size.Arch(),
		"kubernetes.io/hostname":                                  name,
		"kubernetes.azure.com/consolidated-additional-properties": "",
	}
	delete(labels, "kubernetes.azure.com/consolidated-additional-properties")
	if windows {
		// The Windows Server build, which pods select to match their
		// container images' (10.0.20348 for Windows Server 2022).
		labels["node.kubernetes.io/windows-build"] = fmt.Sprintf("10.0.%d", n.Image.Family.Build)
	}
	for k, v := range p.NodeLabels {
		labels[k] = deref(v)
	}
	var taints []corev1.Taint
	for _, t := range p.NodeTaints {
		if taint, err := ParseTaint(deref(t)); err == nil {
			taints = append(taints, taint)
		}
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(size.VCPUs), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(int64(size.MemoryGiB*(1<<30)), resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(deref(p.MaxPods)), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(deref(p.OSDiskSizeGB))<<30, resource.BinarySI),
	}
	return compute.Instance{
		Name:        name,
		OSDisk:      deref(p.OSDiskType),
		Labels:      labels,
		Taints:      taints,
		Capacity:    capacity,
		Allocatable: allocatable(size, capacity, deref(p.MaxPods)),
		NodeInfo: corev1.NodeSystemInfo{
			OSImage:                 n.Image.Family.OSImage,
			KernelVersion:           n.Image.Kernel,
			ContainerRuntimeVersion: containerRuntime(windows),
			KubeletVersion:          "v" + strings.TrimPrefix(n.KubeVersion, "v"),
			OperatingSystem:         osName,
			Architecture:            size.Arch(),
		},
		Annotations: map[string]string{
			// The kubelet's registration: attach and detach are the
			// attach/detach controller's, not the node's.
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		},
		ProviderID: "azure://" + n.VMID(),
		InternalIP: InternalIP(n.IPSlot, n.Instance),
	}
}

// containerRuntime is the containerd AKS's node images carry.
func containerRuntime(windows bool) string {
	if windows {
		return "containerd://1.7.20+azure"
	}
	return "containerd://1.7.27-1"
}

// VMID is the ARM ID of the instance's VM: a scale-set VM in the node
// resource group, as AKS names them.
func (n NodeSpec) VMID() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/aks-%s-%s-vmss/virtualMachines/%d", n.Subscription, n.Cluster, n.Pool, n.Hash, n.Instance)
}

// DiskZoneLabel is the Azure Disk CSI driver's topology key: the zone a
// zonal disk must be attached in.
const DiskZoneLabel = "topology.disk.csi.azure.com/zone"

// diskZone is the node's DiskZoneLabel: its zone, or empty outside zones
// (where the zone label is "0"), as the driver reports it.
func (n NodeSpec) diskZone() string {
	if len(n.Properties.AvailabilityZones) == 0 {
		return ""
	}
	return n.zone()
}

// zone is the node's zone label: "<location>-<zone>" for zonal pools, with
// instances spread round-robin as VMSS spreads them, and "0" otherwise, as
// AKS labels nodes outside zones.
func (n NodeSpec) zone() string {
	zones := n.Properties.AvailabilityZones
	if len(zones) == 0 {
		return "0"
	}
	return n.Location + "-" + deref(zones[n.Instance%len(zones)])
}

// allocatable is capacity less AKS's reservations (Microsoft Learn, AKS
// "Node resource reservations", Kubernetes 1.29 and later): CPU by core
// count; memory the lesser of 20 MiB per pod plus 50 MiB and 25% of the
// node's memory, plus the kubelet's 100 MiB hard-eviction threshold.
func allocatable(size vmsize.Size, capacity corev1.ResourceList, maxPods int32) corev1.ResourceList {
	out := capacity.DeepCopy()
	var cpuMilli int64
	switch {
	case size.VCPUs <= 1:
		cpuMilli = 60
	case size.VCPUs <= 2:
		cpuMilli = 100
	case size.VCPUs <= 4:
		cpuMilli = 140
	case size.VCPUs <= 8:
		cpuMilli = 180
	case size.VCPUs <= 16:
		cpuMilli = 260
	case size.VCPUs <= 32:
		cpuMilli = 420
	default:
		cpuMilli = 740
	}
	memory := capacity.Memory().Value()
	reserved := min(int64(maxPods)*20<<20+50<<20, memory/4) + 100<<20
	out[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(size.VCPUs)*1000-cpuMilli, resource.DecimalSI)
	out[corev1.ResourceMemory] = *resource.NewQuantity(memory-reserved, resource.BinarySI)
	return out
}

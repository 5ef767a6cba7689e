// Package armid builds ARM resource IDs and maps them to the names of the
// management objects that hold them. ARM names are case-insensitive and allow
// characters Kubernetes names do not, so objects are named by a hash of the
// lower-cased ID, and the ID as the user spelled it is kept in the object.
package armid

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Provider namespaces and types, as AKS spells them in IDs.
const (
	ContainerService   = "Microsoft.ContainerService"
	ManagedClusterType = ContainerService + "/managedClusters"
	AgentPoolType      = ContainerService + "/managedClusters/agentPools"
)

// ResourceGroup returns a resource group's ID.
func ResourceGroup(sub, group string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", sub, group)
}

// ManagedCluster returns a managed cluster's ID.
func ManagedCluster(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourcegroups/%s/providers/%s/%s", sub, group, "Microsoft.ContainerService/managedClusters", name)
}

// AgentPool returns an agent pool's ID.
func AgentPool(sub, group, cluster, pool string) string {
	return ManagedCluster(sub, group, cluster) + "/agentPools/" + pool
}

// ObjectName is the management object name for an ARM ID.
func ObjectName(id string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(id)))
	return "r" + hex.EncodeToString(sum[:10])
}

// Label is a label value standing for a case-insensitive name.
func Label(name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	return hex.EncodeToString(sum[:10])
}

// NameOf is the name an ARM ID ends with.
func NameOf(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// GUID is a stable GUID standing for a case-insensitive name: the IDs
// Slipway makes up for what Azure would make at random (a cluster's
// identities, its outbound IPs), the same on every read.
func GUID(name string) string {
	sum := Label(name) + Label(name+"#")
	return fmt.Sprintf("%s-%s-4%s-a%s-%s", sum[0:8], sum[8:12], sum[13:16], sum[17:20], sum[20:32])
}

// NodeHash is the eight-digit number in AKS node and scale-set names
// (aks-<pool>-<hash>-vmss...), stable for a pool of a cluster.
func NodeHash(clusterID, pool string) string {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(clusterID) + "/" + pool))
	return fmt.Sprintf("%08d", h.Sum32()%100000000)
}

// ScaleSet is the name of a pool's VM scale set, as AKS names it
// (aks-<pool>-<hash>-vmss): the node group's ID to the autoscaler, the
// resource billed for its VMs.
func ScaleSet(clusterID, pool string) string {
	return "aks-" + pool + "-" + NodeHash(clusterID, pool) + "-vmss"
}

// GroupOf is the subscription and resource group an ARM ID is in.
func GroupOf(id string) (sub, group string, ok bool) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) < 4 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") {
		return "", "", false
	}
	return segs[1], segs[3], true
}

// SubscriptionOf is the subscription an ARM ID is in, or "".
func SubscriptionOf(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return ""
	}
	return segs[1]
}

// Compute resource types.
const (
	Compute  = "Microsoft.Compute"
	DiskType = Compute + "/disks"
)

// Disk returns a managed disk's ID.
func Disk(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, DiskType, name)
}

// ParseDisk splits a managed disk's ID into its parts; ok is false for
// anything else.
func ParseDisk(id string) (sub, group, name string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(id, "/"), "/")
	if len(segs) != 8 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") ||
		!strings.EqualFold(segs[4], "providers") || !strings.EqualFold(segs[5], Compute) || !strings.EqualFold(segs[6], "disks") {
		return "", "", "", false
	}
	for _, s := range segs {
		if s == "" {
			return "", "", "", false
		}
	}
	return segs[1], segs[3], segs[7], true
}

// ValidName applies the naming rule most Azure resources share (disks,
// snapshots): 1 to max letters, digits, '_', '-' and '.', starting with a
// letter or digit and ending with a letter, digit or '_'.
func ValidName(name string, max int) bool {
	if name == "" || len(name) > max {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(name); i++ {
		if c := name[i]; !alnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	last := name[len(name)-1]
	return alnum(name[0]) && (alnum(last) || last == '_')
}

// NewResourceGroup is the management object of a new resource group;
// managedBy names the resource that manages it (a cluster, for its node
// resource group), or is empty.
func NewResourceGroup(sub, name, location, managedBy string) *slipwayv1.ResourceGroup {
	return &slipwayv1.ResourceGroup{
		ObjectMeta: metav1.ObjectMeta{
			Name: ObjectName(ResourceGroup(sub, name)), Namespace: slipwayv1.Namespace,
			Labels:     map[string]string{slipwayv1.LabelSubscription: Label(sub)},
			Finalizers: []string{slipwayv1.Finalizer},
		},
		Spec: slipwayv1.ResourceGroupSpec{SubscriptionID: sub, Name: name, Location: location, ManagedBy: managedBy},
	}
}

// Package vmsize is Slipway's catalog of Azure VM sizes: what a node of each
// size offers, where an ephemeral OS disk can live on it, and what it costs.
package vmsize

import (
	"sort"
	"strings"
)

// Size describes an Azure VM size.
type Size struct {
	Name      string
	VCPUs     int
	MemoryGiB float64
	GPUs      int
	// CacheGiB is the local cache disk; 0 if the size has none.
	CacheGiB int
	// TempGiB is the local temporary (resource) disk; 0 if none.
	TempGiB int
	// EphemeralOS says whether the size can hold an ephemeral OS disk.
	EphemeralOS bool
	// PricePerHour is the Linux pay-as-you-go price in USD.
	PricePerHour float64
	// MaxDataDisks is how many data disks a VM of the size can attach:
	// the Azure Disk CSI driver's attach limit for its nodes.
	MaxDataDisks int
}

// DefaultMaxDataDisks is the attach limit the Azure Disk CSI driver
// assumes for a size it does not know.
const DefaultMaxDataDisks = 16

// EphemeralCapacityGiB is where an ephemeral OS disk goes: the cache disk on
// sizes that have one, else the temporary disk (Azure's "CacheDisk, else
// ResourceDisk" placement default).
func (s Size) EphemeralCapacityGiB() int {
	if s.CacheGiB > 0 {
		return s.CacheGiB
	}
	return s.TempGiB
}

// catalog. vCPUs, memory, cache and temporary disk sizes from the size pages
// on Microsoft Learn (virtual-machines/sizes: bv1-series, dsv2-series,
// dsv3-series, ddsv5-series, dsv5-series, esv3-series, fsv2-series,
// ncv3-series; "Ephemeral OS Disks" in each page's feature list; "Max data
// disks", as the Azure Disk CSI driver's azure_dd_max_disk_count.go has
// them); cache sizes
// in GiB as the pages' "max cached and temp storage" columns give them, and
// Standard_DS2_v2's 86 GiB is the 92341796864 bytes AKS's own
// VMCacheSizeTooSmall message quotes (Azure/AKS#2635). Prices: Azure Retail
// Prices API, East US, Linux, pay-as-you-go, 2025 list prices.
var catalog = map[string]Size{}

func init() {
	for _, s := range []Size{
		{Name: "Standard_B2s", VCPUs: 2, MemoryGiB: 4, TempGiB: 8, EphemeralOS: true, PricePerHour: 0.0416, MaxDataDisks: 4},
		{Name: "Standard_DS2_v2", VCPUs: 2, MemoryGiB: 7, CacheGiB: 86, TempGiB: 14, EphemeralOS: true, PricePerHour: 0.146, MaxDataDisks: 8},
		{Name: "Standard_D2s_v3", VCPUs: 2, MemoryGiB: 8, CacheGiB: 50, TempGiB: 16, EphemeralOS: true, PricePerHour: 0.096, MaxDataDisks: 4},
		{Name: "Standard_D4s_v3", VCPUs: 4, MemoryGiB: 16, CacheGiB: 100, TempGiB: 32, EphemeralOS: true, PricePerHour: 0.192, MaxDataDisks: 8},
		{Name: "Standard_D8s_v3", VCPUs: 8, MemoryGiB: 32, CacheGiB: 200, TempGiB: 64, EphemeralOS: true, PricePerHour: 0.384, MaxDataDisks: 16},
		{Name: "Standard_D4ds_v5", VCPUs: 4, MemoryGiB: 16, TempGiB: 150, EphemeralOS: true, PricePerHour: 0.226, MaxDataDisks: 8},
		{Name: "Standard_D2s_v5", VCPUs: 2, MemoryGiB: 8, EphemeralOS: false, PricePerHour: 0.096, MaxDataDisks: 4},
		{Name: "Standard_E4s_v3", VCPUs: 4, MemoryGiB: 32, CacheGiB: 100, TempGiB: 64, EphemeralOS: true, PricePerHour: 0.252, MaxDataDisks: 8},
		{Name: "Standard_F8s_v2", VCPUs: 8, MemoryGiB: 16, CacheGiB: 128, TempGiB: 64, EphemeralOS: true, PricePerHour: 0.338, MaxDataDisks: 16},
		{Name: "Standard_NC6s_v3", VCPUs: 6, MemoryGiB: 112, GPUs: 1, CacheGiB: 352, TempGiB: 736, EphemeralOS: true, PricePerHour: 3.06, MaxDataDisks: 12},
	} {
		catalog[strings.ToLower(s.Name)] = s
	}
}

// Lookup finds a size by name, case-insensitively as Azure does.
func Lookup(name string) (Size, bool) {
	s, ok := catalog[strings.ToLower(name)]
	return s, ok
}

// Names lists the catalog's sizes.
func Names() []string {
	var out []string
	for _, s := range catalog {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// Package vmsize is Slipway's catalog of Azure VM sizes: what a node of each
// size offers.
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
}

// catalog: vCPUs and memory from Microsoft Learn's size pages
// (learn.microsoft.com/azure/virtual-machines/sizes/...: b-family, dsv2,
// dv3/dsv3, ddsv5, dsv5, esv3, fsv2, ncv3).
var catalog = map[string]Size{}

func init() {
	for _, s := range []Size{
		{Name: "Standard_B2s", VCPUs: 2, MemoryGiB: 4},
		{Name: "Standard_DS2_v2", VCPUs: 2, MemoryGiB: 7},
		{Name: "Standard_D2s_v3", VCPUs: 2, MemoryGiB: 8},
		{Name: "Standard_D4s_v3", VCPUs: 4, MemoryGiB: 16},
		{Name: "Standard_D8s_v3", VCPUs: 8, MemoryGiB: 32},
		{Name: "Standard_D4ds_v5", VCPUs: 4, MemoryGiB: 16},
		{Name: "Standard_D2s_v5", VCPUs: 2, MemoryGiB: 8},
		{Name: "Standard_E4s_v3", VCPUs: 4, MemoryGiB: 32},
		{Name: "Standard_F8s_v2", VCPUs: 8, MemoryGiB: 16},
		{Name: "Standard_NC6s_v3", VCPUs: 6, MemoryGiB: 112, GPUs: 1},
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

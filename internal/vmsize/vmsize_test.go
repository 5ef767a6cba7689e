package vmsize

import "testing"

// TestCatalog: the catalog holds the sizes AKS users name, from every
// family, with their figures; the measured sizes keep theirs; a size Azure
// does not offer is not in it.
func TestCatalog(t *testing.T) {
	for _, tc := range []struct {
		name       string
		vcpus, gpu int
		memoryGiB  float64
		arch       string
	}{
		{"Standard_DS1_v2", 1, 0, 3.5, "amd64"},      // general purpose, v2
		{"Standard_D4s_v5", 4, 0, 16, "amd64"},       // general purpose, v5
		{"Standard_D8as_v6", 8, 0, 32, "amd64"},      // AMD, v6
		{"Standard_D4pds_v5", 4, 0, 16, "arm64"},     // Arm
		{"Standard_F16s_v2", 16, 0, 32, "amd64"},     // compute
		{"Standard_E8ds_v5", 8, 0, 64, "amd64"},      // memory
		{"Standard_L8s_v3", 8, 0, 64, "amd64"},       // storage
		{"Standard_ND96asr_v4", 96, 8, 900, "amd64"}, // GPU
		{"Standard_NC6s_v3", 6, 1, 112, "amd64"},     // GPU, measured
		{"standard_ds2_v2", 2, 0, 7, "amd64"},        // names are case-insensitive
	} {
		s, ok := Lookup(tc.name)
		if !ok {
			t.Errorf("%s is not in the catalog", tc.name)
			continue
		}
		if s.VCPUs != tc.vcpus || s.GPUs != tc.gpu || s.MemoryGiB != tc.memoryGiB || s.Arch() != tc.arch || s.PricePerHour <= 0 || s.MaxDataDisks <= 0 {
			t.Errorf("%s = %+v", tc.name, s)
		}
	}
	if ds2, _ := Lookup("Standard_DS2_v2"); ds2.CacheGiB != 86 || !ds2.EphemeralOS {
		t.Errorf("the measured Standard_DS2_v2 lost its figures: %+v", ds2)
	}
	for _, name := range []string{"Standard_D3000s_v9", "Basic_A0x", ""} {
		if _, ok := Lookup(name); ok {
			t.Errorf("%q is in the catalog", name)
		}
	}
	if n := len(Names()); n < 1500 {
		t.Errorf("the catalog has %d sizes; Azure offers more than 1,500", n)
	}
}

package standalone

import (
	"path/filepath"
	"testing"
)

func TestNodeVM(t *testing.T) {
	o := Options{Subscription: "s", ResourceGroup: "MC_rg_c_eastus", VMSize: "Standard_D8s_v3"}
	for _, tc := range []struct{ node, id string }{
		{"aks-nodepool1-12345678-vmss000000", "/subscriptions/s/resourceGroups/MC_rg_c_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0"},
		{"aks-vmsspool-12345678-vmss00000z", "/subscriptions/s/resourceGroups/MC_rg_c_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-vmsspool-12345678-vmss/virtualMachines/35"},
		{"worker-1", ""},
		{"aks-nodepool1-12345678-vmss00-0", ""},
	} {
		o.NodeID = tc.node
		vm, err := nodeVM(o)
		if tc.id == "" {
			if err == nil {
				t.Errorf("%s: VM %s, want an error", tc.node, vm.ID)
			}
			continue
		}
		if err != nil || vm.ID != tc.id || vm.Node != tc.node || vm.MaxDataDisks != 16 {
			t.Errorf("%s: %+v, %v; want %s with 16 disks", tc.node, vm, err, tc.id)
		}
	}
	o.NodeID, o.VMSize = "aks-nodepool1-12345678-vmss000000", "Standard_Nope"
	if _, err := nodeVM(o); err == nil {
		t.Error("an unknown VM size was accepted")
	}
}

func TestListen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "csi.sock")
	for i := 0; i < 2; i++ { // the second finds the first's socket and replaces it
		lis, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
	}
	for _, bad := range []string{"/no/scheme.sock", "http://x", "unix://"} {
		if lis, err := Listen(bad); err == nil {
			lis.Close()
			t.Errorf("%s was accepted", bad)
		}
	}
}

package azuredisk_test

import (
	"context"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/csi/csitest"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/hosting"
)

const (
	sub   = "00000000-0000-0000-0000-000000000001"
	group = "MC_rg_sanity_eastus"
	node  = "aks-nodepool1-12345678-vmss000000"
)

// TestSanity runs the CSI conformance suite against `slipway csi disk`.
func TestSanity(t *testing.T) {
	c, kubeconfig := csitest.ManagementPlane(t, hosting.PortRange{First: 21300, Last: 21349})
	endpoint := csitest.Serve(t, "disk", kubeconfig, "--subscription", sub, "--resource-group", group, "--location", "eastus",
		"--node-id", node, "--vm-size", "Standard_B2s") // 4 data disks
	svc := disks.New(c)
	csitest.Sanity(t, endpoint, map[string]string{"skuName": "Premium_LRS"}, "--csi.testnodevolumeattachlimit")

	// Everything the suite made, it deleted.
	left, err := svc.List(context.Background(), sub, group)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range left {
		names = append(names, d.Spec.ResourceID)
	}
	if len(names) > 0 {
		t.Errorf("disks left after the suite: %s", strings.Join(names, ", "))
	}
}

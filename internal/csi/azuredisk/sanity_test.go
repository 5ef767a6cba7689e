package azuredisk_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/csi/csitest"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/hosting"
)

const (
	sub   = "00000000-0000-0000-0000-000000000001"
	group = "MC_rg_sanity_eastus"
	node  = "aks-nodepool1-12345678-vmss000000"
)

// ids gives csi-sanity volume IDs of the driver's form (disk ARM IDs) that
// name no disk, and node names no VM has.
type ids struct{ n atomic.Int64 }

func (g *ids) GenerateUniqueValidVolumeID() string {
	return armid.Disk(sub, group, fmt.Sprintf("missing-%d-%d", time.Now().UnixNano(), g.n.Add(1)))
}
func (g *ids) GenerateInvalidVolumeID() string { return "not-a-disk-id" }
func (g *ids) GenerateUniqueValidNodeID() string {
	return fmt.Sprintf("aks-missing-%d-vmss%06d", time.Now().UnixNano(), g.n.Add(1))
}
func (g *ids) GenerateInvalidNodeID() string { return "no-such-node" }

// TestSanity runs the CSI conformance suite against `slipway csi disk`.
func TestSanity(t *testing.T) {
	c, kubeconfig := csitest.ManagementPlane(t, hosting.PortRange{First: 21300, Last: 21349})
	endpoint := csitest.Serve(t, "disk", kubeconfig, "--subscription", sub, "--resource-group", group, "--location", "eastus",
		"--node-id", node, "--vm-size", "Standard_B2s") // 4 data disks
	svc := disks.New(c)
	csitest.Sanity(t, endpoint, func(cfg *sanity.TestConfig) {
		cfg.TestVolumeParameters = map[string]string{"skuName": "Premium_LRS"}
		cfg.TestNodeVolumeAttachLimit = true
		cfg.IDGen = &ids{}
	})

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

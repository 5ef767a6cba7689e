package azuredisk_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"google.golang.org/grpc"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/csi/azuredisk"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/testenv"
)

const (
	sub   = "00000000-0000-0000-0000-000000000001"
	group = "MC_rg_sanity_eastus"
	node  = "aks-nodepool1-12345678-vmss000000"
)

// inventory is the VMs of the sanity run: one node with its size's limit,
// as a cluster's nodes are.
type inventory map[string]disks.VM

func (inv inventory) VM(_ context.Context, name string) (disks.VM, string, error) {
	vm, ok := inv[name]
	if !ok {
		return disks.VM{}, "", fmt.Errorf("node %s: %w", name, azuredisk.ErrNoVM)
	}
	return vm, "", nil
}

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

// TestSanity runs the CSI conformance suite (csi-sanity) against the driver
// over a unix socket, with its disks kept by the disk service in a real
// management plane.
func TestSanity(t *testing.T) {
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "csi") // short: a socket path has ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	plane, err := management.Open(ctx, management.Options{DataDir: filepath.Join(dir, "data"), Executable: bin, Ports: hosting.PortRange{First: 21300, Last: 21399}})
	if err != nil {
		t.Fatal(err)
	}
	defer plane.Close()
	c, err := client.New(plane.Config, client.Options{Scheme: plane.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	vms := inventory{node: {ID: "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0", Node: node, MaxDataDisks: 4}}
	driver := azuredisk.New(disks.New(c), vms, azuredisk.Config{Subscription: sub, ResourceGroup: group, Location: "eastus", NodeID: node})

	sock := filepath.Join(dir, "csi.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, driver)
	csi.RegisterControllerServer(srv, driver)
	csi.RegisterNodeServer(srv, driver)
	go srv.Serve(lis)
	defer srv.Stop()

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeParameters = map[string]string{"skuName": "Premium_LRS"}
	cfg.TestNodeVolumeAttachLimit = true
	cfg.IDGen = &ids{}
	cfg.IdempotentCount = 3
	sanity.Test(t, cfg)

	// Everything the suite made, it deleted.
	left, err := disks.New(c).List(ctx, sub, group)
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

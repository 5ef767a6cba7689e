package azurefile_test

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/slipway-dev/slipway/internal/csi/csitest"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
)

const (
	sub   = "00000000-0000-0000-0000-000000000001"
	group = "MC_rg_sanity_eastus"
)

// TestSanity runs the CSI conformance suite against the file driver (with
// standard shares: the suite runs once a process), then checks the size
// rules of premium shares.
func TestSanity(t *testing.T) {
	c, kubeconfig := csitest.ManagementPlane(t, hosting.PortRange{First: 21350, Last: 21399})
	endpoint := csitest.Serve(t, "file", kubeconfig, "--subscription", sub, "--resource-group", group, "--location", "eastus",
		"--node-id", "aks-nodepool1-12345678-vmss000000")
	svc := storageaccounts.New(c)
	csitest.Sanity(t, endpoint, map[string]string{"skuName": "Standard_LRS"})
	ctx := context.Background()

	// Everything the suite made, it deleted: no share is left in the
	// account the driver made, and it made one.
	accounts, err := svc.ListAccounts(ctx, sub, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 1 {
		t.Errorf("%d storage accounts, want the one the driver made", len(accounts))
	}
	for _, a := range accounts {
		shares, err := svc.ListShares(ctx, a.Spec.ResourceID)
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range shares {
			t.Errorf("share left after the suite: %s", sh.Spec.ResourceID)
		}
	}

	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	driver := csi.NewControllerClient(conn)
	mount := []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER}}}
	for _, tc := range []struct {
		name          string
		sku           string
		required, got int64
		code          codes.Code
	}{
		{"premium raised to its floor", "Premium_LRS", 1 << 30, 100 << 30, codes.OK},
		{"standard as asked", "Standard_LRS", 1 << 30, 1 << 30, codes.OK},
		{"no size: the default", "Standard_LRS", 0, 100 << 30, codes.OK},
		{"premium over its limit", "Premium_LRS", 0, 0, codes.OutOfRange},
	} {
		req := &csi.CreateVolumeRequest{Name: "size-" + tc.name, VolumeCapabilities: mount, Parameters: map[string]string{"skuName": tc.sku},
			CapacityRange: &csi.CapacityRange{RequiredBytes: tc.required}}
		if tc.code == codes.OutOfRange {
			req.CapacityRange = &csi.CapacityRange{RequiredBytes: 1 << 30, LimitBytes: 50 << 30}
		}
		resp, err := driver.CreateVolume(ctx, req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			continue
		}
		if err == nil && resp.Volume.CapacityBytes != tc.got {
			t.Errorf("%s: %d bytes, want %d", tc.name, resp.Volume.CapacityBytes, tc.got)
		}
	}
}

// Package csitest runs the CSI conformance suite, csi-sanity, against
// Slipway's drivers: each driver serves on a unix socket in-process, its
// objects kept by its service in a real management plane.
package csitest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"google.golang.org/grpc"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// Driver is a CSI plugin's three services.
type Driver interface {
	csi.IdentityServer
	csi.ControllerServer
	csi.NodeServer
}

// ManagementPlane starts a management plane for a test, on ports of its
// own, and returns a client of it.
func ManagementPlane(t *testing.T, ports hosting.PortRange) client.Client {
	t.Helper()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	plane, err := management.Open(context.Background(), management.Options{DataDir: t.TempDir(), Executable: bin, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plane.Close)
	c, err := client.New(plane.Config, client.Options{Scheme: plane.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Sanity serves d on a unix socket and runs csi-sanity against it with
// the configuration configure fills in.
func Sanity(t *testing.T, d Driver, configure func(*sanity.TestConfig)) {
	t.Helper()
	dir, err := os.MkdirTemp("", "csi") // short: a socket path has ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "csi.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	go srv.Serve(lis)
	defer srv.Stop()

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.IdempotentCount = 3
	configure(&cfg)
	sanity.Test(t, cfg)
}

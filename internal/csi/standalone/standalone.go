// Package standalone serves one of Slipway's CSI drivers on its own, on a
// gRPC endpoint, as `slipway csi disk|file --endpoint unix://PATH` does: for
// conformance tools (csi-sanity), and for a real node's plugin later. Inside
// `slipway serve` the drivers run in-process instead (internal/storage).
//
// The driver keeps its disks and shares where Slipway does, in a
// management plane: a running Slipway's (its kubeconfig), or one it hosts
// itself in a data directory. Its node service speaks for one node, whose
// VM it knows from the flags: a standalone driver has no cluster to read
// nodes from.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/csi/azuredisk"
	"github.com/slipway-dev/slipway/internal/csi/azurefile"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
	"github.com/slipway-dev/slipway/internal/vmsize"
)

// Driver is a CSI plugin's three services.
type Driver interface {
	csi.IdentityServer
	csi.ControllerServer
	csi.NodeServer
}

// Options say which driver to serve, where, and for which node.
type Options struct {
	// Driver is "disk" or "file".
	Driver string
	// Endpoint is unix://PATH or tcp://HOST:PORT.
	Endpoint string
	// ManagementKubeconfig names a running Slipway's management plane;
	// without it, one is hosted in DataDir with Executable and Ports.
	ManagementKubeconfig string
	DataDir, Executable  string
	Ports                hosting.PortRange

	// Subscription, ResourceGroup and Location are where new disks and
	// accounts go, as a cluster's node resource group is.
	Subscription, ResourceGroup, Location string
	// NodeID is the node the node service speaks for; VMSize gives its
	// attach limit.
	NodeID, VMSize string

	// Progress receives what a person waiting should see.
	Progress io.Writer
	// Ready, if set, is called once the endpoint accepts connections.
	Ready func()
}

// Run serves the driver until ctx ends.
func Run(ctx context.Context, o Options) error {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	var vm disks.VM
	if o.Driver == "disk" {
		var err error
		if vm, err = nodeVM(o); err != nil {
			return err
		}
	} else if o.Driver != "file" {
		return fmt.Errorf("unknown CSI driver %q: disk or file", o.Driver)
	}
	plane, err := management.Open(ctx, management.Options{Kubeconfig: o.ManagementKubeconfig, DataDir: o.DataDir,
		Executable: o.Executable, Ports: o.Ports, Progress: o.Progress})
	if err != nil {
		return err
	}
	defer plane.Close()
	c, err := client.New(plane.Config, client.Options{Scheme: plane.Scheme})
	if err != nil {
		return fmt.Errorf("management plane client: %w", err)
	}

	var d Driver
	switch o.Driver {
	case "disk":
		d = azuredisk.New(disks.New(c), inventory{o.NodeID: vm}, azuredisk.Config{
			Subscription: o.Subscription, ResourceGroup: o.ResourceGroup, Location: o.Location, NodeID: o.NodeID})
	case "file":
		d = azurefile.New(storageaccounts.New(c), azurefile.Config{
			Subscription: o.Subscription, ResourceGroup: o.ResourceGroup, Location: o.Location, NodeID: o.NodeID})
	}
	// The socket appears once the driver can answer: a client that sees
	// it need not retry.
	lis, err := Listen(o.Endpoint)
	if err != nil {
		return err
	}
	srv := NewServer(d)
	fmt.Fprintf(o.Progress, "Serving the %s CSI driver on %s for node %s\n", o.Driver, o.Endpoint, o.NodeID)
	if o.Ready != nil {
		o.Ready()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		srv.GracefulStop()
		return nil
	case err := <-done:
		return fmt.Errorf("serving CSI: %w", err)
	}
}

// NewServer returns a gRPC server with d's three services registered.
func NewServer(d Driver) *grpc.Server {
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	return srv
}

// Listen listens on a CSI endpoint, unix://PATH or tcp://HOST:PORT, as the
// sidecars name them. A socket left by an earlier run is removed first.
func Listen(endpoint string) (net.Listener, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("CSI endpoint %q: %w", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque // unix:relative/path
		}
		if u.Host != "" {
			path = u.Host + path // unix://relative/path
		}
		if path == "" {
			return nil, fmt.Errorf("CSI endpoint %q names no socket", endpoint)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing the old socket: %w", err)
		}
		lis, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("CSI endpoint: %w", err)
		}
		return lis, nil
	case "tcp":
		lis, err := net.Listen("tcp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("CSI endpoint: %w", err)
		}
		return lis, nil
	}
	return nil, fmt.Errorf("CSI endpoint %q: use unix://PATH or tcp://HOST:PORT", endpoint)
}

// nodeVM is the VM behind the node: a scale-set VM of the node resource
// group, named from the node as AKS names them
// (aks-<pool>-<hash>-vmss<instance in base 36>), with its size's limit.
func nodeVM(o Options) (disks.VM, error) {
	size, ok := vmsize.Lookup(o.VMSize)
	if !ok {
		return disks.VM{}, fmt.Errorf("unknown VM size %q: not one Azure offers", o.VMSize)
	}
	limit := size.MaxDataDisks
	if limit == 0 {
		limit = vmsize.DefaultMaxDataDisks
	}
	i := strings.LastIndex(o.NodeID, "vmss")
	if i <= 0 {
		return disks.VM{}, fmt.Errorf("node %q is not a scale-set VM's name (aks-<pool>-<hash>-vmss<instance>)", o.NodeID)
	}
	scaleSet := o.NodeID[:i]
	n, err := strconv.ParseInt(o.NodeID[i+len("vmss"):], 36, 64)
	if err != nil {
		return disks.VM{}, fmt.Errorf("node %q is not a scale-set VM's name (aks-<pool>-<hash>-vmss<instance>)", o.NodeID)
	}
	id := armid.ResourceGroup(o.Subscription, o.ResourceGroup) +
		fmt.Sprintf("/providers/Microsoft.Compute/virtualMachineScaleSets/%svmss/virtualMachines/%d", scaleSet, n)
	return disks.VM{ID: id, Node: o.NodeID, MaxDataDisks: limit}, nil
}

// inventory is the one VM a standalone driver knows.
type inventory map[string]disks.VM

func (inv inventory) VM(_ context.Context, node string) (disks.VM, string, error) {
	vm, ok := inv[node]
	if !ok {
		return disks.VM{}, "", fmt.Errorf("node %s: %w", node, azuredisk.ErrNoVM)
	}
	return vm, "", nil
}

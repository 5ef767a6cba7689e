package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/app"
	"github.com/slipway-dev/slipway/internal/bench"
	"github.com/slipway-dev/slipway/internal/components"
	"github.com/slipway-dev/slipway/internal/csi/standalone"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/portal"
	"github.com/slipway-dev/slipway/internal/timing"
	"github.com/slipway-dev/slipway/internal/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "slipway",
		Short:         "Slipway: self-hosted managed Kubernetes that speaks the AKS API",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(newServeCommand(), newManagementCommand(), newVersionCommand(), newComponentCommand(), newBenchCommand(), newNodeImageCommand(), newAZLoginCommand(), newServicePrincipalCommand(), newCSICommand(), newPortalCommand(),
		newBackupCommand(), newRestoreCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Slipway's version, the Kubernetes releases it serves and where each runs from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "slipway %s\netcd %s\n", version.Version, version.Etcd)
			for _, r := range version.Releases {
				where := "compiled in"
				if !version.Compiled(r) {
					where = filepath.Join(filepath.Dir(exe), version.BinaryName(r))
					if _, err := os.Stat(where); err != nil {
						where += " (missing: make build builds it)"
					}
				}
				note := ""
				if r == version.Default() {
					note = ", default"
				}
				fmt.Fprintf(out, "kubernetes %s (%s%s)\n", r, where, note)
			}
			return nil
		},
	}
}

// newComponentCommand documents "slipway component"; main dispatches it
// before cobra parses anything, so this only runs without a component name.
func newComponentCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "component NAME [flags]",
		Short:              "Run an upstream server: " + strings.Join(components.Names(), ", "),
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("name a component: %s", strings.Join(components.Names(), ", "))
			}
			os.Exit(components.Run(args[0], args[1:]))
			return nil
		},
	}
}

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure Slipway"}
	var o bench.ClusterOptions
	clusterCmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create control planes one after another; print seconds to ready, then each one's memory and CPU at idle",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.DataDir == "" {
				dir, err := os.MkdirTemp("", "slipway-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				o.DataDir = dir
			}
			o.Out = cmd.OutOrStdout()
			store := "one shared datastore"
			if o.OwnEtcd {
				store = "an etcd each"
			}
			fmt.Fprintf(o.Out, "slipway %s, kubernetes %s: %d clusters on %s, %d simulated nodes each, data in %s\n",
				version.Version, version.Kubernetes, o.Clusters, store, o.Nodes, filepath.Clean(o.DataDir))
			_, err := bench.Cluster(ctx, o)
			return err
		},
	}
	clusterCmd.Flags().IntVar(&o.Clusters, "clusters", 3, "control planes to create")
	clusterCmd.Flags().IntVar(&o.Nodes, "nodes", 3, "simulated nodes per cluster")
	clusterCmd.Flags().StringVar(&o.DataDir, "data-dir", "", "where the clusters live (default: a temporary directory, removed afterwards)")
	clusterCmd.Flags().BoolVar(&o.OwnEtcd, "own-etcd", false, "give each cluster an etcd of its own (as clusters made before the shared datastore) instead of the shared datastore")
	clusterCmd.Flags().DurationVar(&o.Settle, "settle", 30*time.Second, "how long the clusters idle before their memory is read")
	clusterCmd.Flags().DurationVar(&o.Window, "window", 30*time.Second, "how long their CPU is measured")
	cmd.AddCommand(clusterCmd)

	var h bench.HealthOptions
	healthCmd := &cobra.Command{
		Use:   "health",
		Short: "Run idle clusters and measure the CPU their Resource Health probes cost",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if h.DataDir == "" {
				dir, err := os.MkdirTemp("", "slipway-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				h.DataDir = dir
			}
			h.Out = cmd.OutOrStdout()
			fmt.Fprintf(h.Out, "slipway %s: %d clusters with add-ons, %d simulated nodes each, probed every %s\n", version.Version, h.Clusters, h.Nodes, h.Interval)
			return bench.Health(ctx, h)
		},
	}
	healthCmd.Flags().IntVar(&h.Clusters, "clusters", 20, "idle clusters to run")
	healthCmd.Flags().IntVar(&h.Nodes, "nodes", 3, "simulated nodes per cluster")
	healthCmd.Flags().DurationVar(&h.Interval, "interval", 5*time.Second, "time between two probes of a cluster (serve's --health-interval)")
	healthCmd.Flags().DurationVar(&h.Window, "window", 30*time.Second, "length of each measurement")
	healthCmd.Flags().IntVar(&h.Rounds, "rounds", 3, "pairs of windows (without, with probes) to measure")
	healthCmd.Flags().StringVar(&h.DataDir, "data-dir", "", "where the clusters live (default: a temporary directory, removed afterwards)")
	cmd.AddCommand(healthCmd)
	return cmd
}

func newServeCommand() *cobra.Command {
	var o app.Options
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the AKS API and host the clusters made through it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Out = cmd.OutOrStdout()
			if o.Join != "" {
				if cmd.Flags().Changed("first-port") || cmd.Flags().Changed("last-port") || cmd.Flags().Changed("management-kubeconfig") || cmd.Flags().Changed("datastore-endpoints") {
					return errors.New("--join names the management plane, the datastore and the port range the hosts share: leave out --management-kubeconfig, --datastore-* and --first-port/--last-port")
				}
				if o.HostName == "" {
					return errors.New("--join needs --host-name, unique among the hosts")
				}
			}
			return app.Serve(ctx, o)
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data-dir", defaultDataDir(), "where Slipway keeps its state")
	cmd.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:8443", "HTTPS address of the ARM endpoint")
	cmd.Flags().StringVar(&o.PprofListen, "pprof-listen", "", "serve Go profiles (net/http/pprof) over plain HTTP on this address, e.g. 127.0.0.1:6060; loopback only")
	cmd.Flags().StringVar(&o.ManagementKubeconfig, "management-kubeconfig", "", "use this cluster as the management plane instead of hosting one")
	cmd.Flags().StringSliceVar(&o.Datastore.Endpoints, "datastore-endpoints", nil, "keep the clusters' objects in this etcd cluster (client URLs) instead of one Slipway runs")
	cmd.Flags().StringVar(&o.Datastore.CACertFile, "datastore-ca-cert", "", "with --datastore-endpoints: the CA that signed etcd's serving certificate and that etcd trusts for client certificates")
	cmd.Flags().StringVar(&o.Datastore.CAKeyFile, "datastore-ca-key", "", "with --datastore-endpoints: that CA's key, which issues each cluster's client certificate")
	cmd.Flags().StringVar(&o.Datastore.CertFile, "datastore-cert", "", "with --datastore-endpoints: a client certificate of etcd's root user")
	cmd.Flags().StringVar(&o.Datastore.KeyFile, "datastore-key", "", "with --datastore-endpoints: that certificate's key")
	cmd.Flags().Float64Var(&o.TimeScale, "time-scale", timing.DefaultScale, "scale of simulated VM durations: 1 is real time (a node takes about two minutes), the default makes one Ready in about 1.4 s")
	cmd.Flags().DurationVar(&o.NodeOSUpgradeDelay, "node-os-upgrade-delay", 24*time.Hour, "how long after a node image is published clusters without a node OS maintenance window get it (AKS rolls a release out over days)")
	cmd.Flags().IntVar(&o.RebootConcurrency, "reboot-concurrency", 1, "how many nodes of a cluster the reboot coordinator reboots at once")
	cmd.Flags().Float64Var(&o.SpotEvictionRate, "spot-eviction-rate", 0, "random evictions per Spot VM per simulated hour (0: only simulateEviction evicts)")
	cmd.Flags().DurationVar(&o.HealthInterval, "health-interval", 5*time.Second, "time between two Resource Health probes of a cluster (a failure is seen within this plus 2 s)")
	cmd.Flags().DurationVar(&o.CostSampleInterval, "cost-sample-interval", 30*time.Second, "time between two samples of the pods of a cluster whose cost analysis is on")
	cmd.Flags().DurationVar(&o.PolicyInterval, "policy-interval", 10*time.Second, "time between two syncs and audits of the Azure Policy assignments of a cluster with the azurepolicy add-on (AKS: 15m)")
	cmd.Flags().StringVar(&o.KeyVaultDNSSuffix, "keyvault-dns-suffix", app.DefaultKeyVaultDNSSuffix, "DNS suffix of the key vaults' data planes: vault kv1 is https://kv1.<suffix>:<port>/ (map such names to Slipway's address)")
	cmd.Flags().DurationVar(&o.HealthUnknownAfter, "health-unknown-after", 10*time.Minute, "how long without a health probe makes a cluster's Resource Health Unknown, as in Azure; time Slipway was down counts")
	cmd.Flags().IntVar(&o.Ports.First, "first-port", hosting.DefaultPortRange.First, "first port for control planes, on loopback unless --advertise-address (the management plane takes the first 100)")
	cmd.Flags().IntVar(&o.Ports.Last, "last-port", hosting.DefaultPortRange.Last, "last port for control planes")
	cmd.Flags().StringVar(&o.Join, "join", "", "join a fleet through its join `file`, written by slipway management serve: this serve becomes one host of several on its management plane and datastore")
	cmd.Flags().StringVar(&o.HostName, "host-name", "", "this host's name in the fleet, unique among the hosts (with --join, or --management-kubeconfig and --datastore-endpoints)")
	cmd.Flags().StringVar(&o.Advertise, "advertise-address", "", "where clients on other machines reach this host (IP address or DNS name): ARM's URLs and the clusters' kubeconfigs name it, and control planes listen on every address (--listen must reach it too)")
	cmd.Flags().IntVar(&o.Spares, "spare-control-planes", 1, "control planes kept started ahead for creates to claim, taking the API server's start off a create (each holds an idle API server's memory, about 150 MiB)")
	cmd.Flags().IntVar(&o.Capacity, "capacity", 0, "clusters this host takes by choice before others with more room (default: its memory over 256 MiB)")
	return cmd
}

func newManagementCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "management", Short: "Run the parts several Slipway hosts share"}
	var o app.ManagementOptions
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the management plane and the clusters' shared datastore alone, and write the join file hosts start from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Out = cmd.OutOrStdout()
			return app.ServeManagement(ctx, o)
		},
	}
	serve.Flags().StringVar(&o.DataDir, "data-dir", defaultDataDir()+"-management", "where the management plane and the datastore keep their state; join.json is written here")
	serve.Flags().IntVar(&o.Ports.First, "first-port", hosting.DefaultPortRange.First, "first port of the range the hosts share (the management plane and the datastore take the first 100)")
	serve.Flags().IntVar(&o.Ports.Last, "last-port", hosting.DefaultPortRange.Last, "last port of that range")
	serve.Flags().StringVar(&o.Advertise, "advertise-address", "", "where hosts on other machines reach the management plane and the datastore (IP address or DNS name): both then listen on every address, and the join file names this")
	cmd.AddCommand(serve)
	return cmd
}

func newNodeImageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "node-image", Short: "Manage the node image catalog"}
	var dataDir, osSKU, version string
	publish := &cobra.Command{
		Use:   "publish",
		Short: "Announce a newer node image to the server running over --data-dir, and print its name",
		Long: `Publish tells the Slipway serving --data-dir (found through its connection.json)
that a newer node image came out for an OS SKU: --version (YYYYMM.DD.rev), or by
default the next weekly release. Pools then report it as latestNodeImageVersion,
upgradeNodeImageVersion rolls nodes to it, and the node OS auto-upgrade channels
apply it in their maintenance windows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, err := app.PublishNodeImage(cmd.Context(), dataDir, osSKU, version)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), name)
			return nil
		},
	}
	publish.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory of the running server")
	publish.Flags().StringVar(&osSKU, "os-sku", "Ubuntu", "the OS SKU whose image family gets the new image (Ubuntu, Ubuntu2204, Ubuntu2404, AzureLinux, AzureLinux3, CBLMariner)")
	publish.Flags().StringVar(&version, "version", "", "the new image's version, YYYYMM.DD.rev (default: the next weekly release)")
	cmd.AddCommand(publish)
	return cmd
}

func newCSICommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "csi",
		Short: "Serve a CSI driver on its own: for conformance tools such as csi-sanity",
		Long: `csi serves one of the drivers that slipway serve runs in-process for its
clusters, disk (disk.csi.azure.com) or file (file.csi.azure.com), on a gRPC
endpoint. Its disks and shares are kept in a management plane: a running
Slipway's (--management-kubeconfig), or one it hosts in --data-dir. Its node
service speaks for one node, --node-id, a VM of size --vm-size.`,
	}
	for _, driver := range []string{"disk", "file"} {
		o := standalone.Options{Driver: driver}
		sub := &cobra.Command{
			Use:   driver + " --endpoint unix://PATH",
			Short: "Serve the Azure " + map[string]string{"disk": "Disk", "file": "Files"}[driver] + " CSI driver",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				if o.ManagementKubeconfig == "" && o.DataDir == "" {
					dir, err := os.MkdirTemp("", "slipway-csi-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(dir)
					o.DataDir = dir
				}
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				o.Executable, o.Progress = exe, cmd.ErrOrStderr()
				return standalone.Run(ctx, o)
			},
		}
		f := sub.Flags()
		f.StringVar(&o.Endpoint, "endpoint", "", "where to serve CSI: unix://PATH or tcp://HOST:PORT")
		f.StringVar(&o.ManagementKubeconfig, "management-kubeconfig", "", "keep disks and shares in this management plane (a running Slipway's)")
		f.StringVar(&o.DataDir, "data-dir", "", "host a management plane here (default: a temporary directory, removed afterwards)")
		f.IntVar(&o.Ports.First, "first-port", 30000, "first loopback port of a hosted management plane")
		f.IntVar(&o.Ports.Last, "last-port", 30099, "last loopback port of a hosted management plane")
		f.StringVar(&o.Subscription, "subscription", "00000000-0000-0000-0000-000000000000", "subscription of new disks and storage accounts")
		f.StringVar(&o.ResourceGroup, "resource-group", "MC_slipway_csi_eastus", "resource group of new disks and storage accounts (a cluster's node resource group)")
		f.StringVar(&o.Location, "location", "eastus", "region of new disks and storage accounts")
		f.StringVar(&o.NodeID, "node-id", "aks-nodepool1-00000000-vmss000000", "the node the node service speaks for, a scale-set VM's name")
		f.StringVar(&o.VMSize, "vm-size", "Standard_D2s_v3", "the node's VM size: its data-disk limit is the attach limit")
		sub.MarkFlagRequired("endpoint")
		cmd.AddCommand(sub)
	}
	return cmd
}

func newPortalCommand() *cobra.Command {
	var dataDir string
	ttl := portal.LinkTTL
	cmd := &cobra.Command{
		Use:   "portal",
		Short: "Print a one-time link that signs in to the portal as the bootstrap principal",
		Long: `portal prints a link to the portal of the Slipway serving --data-dir that signs
its holder in as the bootstrap service principal (the subscription's Owner).
It works once, for --valid (ten minutes by default). Anyone who can read the
data directory can make one; anyone else signs in with a service principal's
client ID and secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			link, err := app.PortalLink(dataDir, ttl)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), link)
			fmt.Fprintf(cmd.ErrOrStderr(), "good once, for %s\n", ttl)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory of the running server")
	cmd.Flags().DurationVar(&ttl, "valid", portal.LinkTTL, "how long the link can be used")
	return cmd
}

// defaultDataDir is where serve keeps its state, and where the commands
// that talk to it look for it: ~/.slipway.
func defaultDataDir() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".slipway")
}

func newAZLoginCommand() *cobra.Command {
	o := app.AZLoginOptions{}
	cmd := &cobra.Command{
		Use:   "az-login",
		Short: "Point the az CLI at the server running over --data-dir and log in",
		Long: `az-login registers Slipway as an az cloud (or updates it), selects it, and logs
in with the bootstrap service principal. az must trust Slipway's CA: az-login
writes a bundle of the system's roots plus that CA, and prints the line that
points az at it, so that

    eval "$(slipway az-login)"

leaves the shell ready for az. What it does goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log = cmd.ErrOrStderr()
			bundle, err := app.AZLogin(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export REQUESTS_CA_BUNDLE=%s\n", bundle)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data-dir", defaultDataDir(), "the data directory of the running server")
	cmd.Flags().StringVar(&o.Cloud, "cloud", "Slipway", "the name to register the cloud under")
	cmd.Flags().StringVar(&o.AZ, "az", "az", "the az executable")
	return cmd
}

func newServicePrincipalCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "sp", Short: "Manage service principals: identities that log in with a secret"}
	var dataDir, name, appID, keyID, endDate string
	end := func() (time.Time, error) {
		if endDate == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339, endDate)
		if err != nil {
			if d, derr := time.Parse("2006-01-02", endDate); derr == nil {
				return d, nil
			}
			return time.Time{}, fmt.Errorf("--end-date %q: give a date (2027-01-31) or an RFC 3339 time", endDate)
		}
		return t, nil
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a service principal and print it with its secret (shown this once)",
		Long: `create makes a service principal on the server running over --data-dir and prints
{"appId","objectId","displayName","tenant","password","keyId"}, as az ad sp
create-for-rbac does. Only a hash of the password is kept; it expires at
--end-date (default: in two years, as Entra's). keyId names the secret for
sp remove-secret. The principal can do nothing until it is given a role.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := end()
			if err != nil {
				return err
			}
			sp, err := app.CreateServicePrincipal(cmd.Context(), dataDir, name, e)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), sp)
		},
	}
	create.Flags().StringVar(&name, "name", "", "the principal's display name")
	create.MarkFlagRequired("name")
	secret := &cobra.Command{
		Use:   "add-secret",
		Short: "Give a service principal one more secret and print it with its keyId (shown this once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := end()
			if err != nil {
				return err
			}
			sp, err := app.AddServicePrincipalSecret(cmd.Context(), dataDir, appID, e)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), sp)
		},
	}
	for _, c := range []*cobra.Command{create, secret} {
		c.Flags().StringVar(&endDate, "end-date", "", "when the secret expires (a date or RFC 3339 time; default in two years)")
	}
	remove := &cobra.Command{
		Use:   "remove-secret",
		Short: "Revoke one secret of a service principal: token requests with it are refused from now on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sp, err := app.RemoveServicePrincipalSecret(cmd.Context(), dataDir, appID, keyID)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), sp)
		},
	}
	remove.Flags().StringVar(&keyID, "key-id", "", "the keyId of the secret to revoke (sp create and add-secret print it)")
	remove.MarkFlagRequired("key-id")
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete a service principal with its secrets and role assignments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := app.DeleteServicePrincipal(cmd.Context(), dataDir, appID); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted service principal %s\n", appID)
			return nil
		},
	}
	for _, c := range []*cobra.Command{secret, remove, del} {
		c.Flags().StringVar(&appID, "app-id", "", "the principal's application (client) ID")
		c.MarkFlagRequired("app-id")
	}
	rotate := &cobra.Command{
		Use:   "rotate-signing-key",
		Short: "Sign tokens with a new key from now on (tokens already issued stay valid until they expire)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kid, err := app.RotateSigningKey(cmd.Context(), dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signing with key %s\n", kid)
			return nil
		},
	}
	for _, c := range []*cobra.Command{create, secret, remove, del, rotate} {
		c.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the data directory of the running server")
		cmd.AddCommand(c)
	}
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

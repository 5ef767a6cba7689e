// Package app wires Slipway's parts into the server that `slipway serve`
// runs: the management plane, the hosting layer, the controllers and the ARM
// front door. It is the one place that lists them.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/arm/providers/authorization"
	computeprovider "github.com/slipway-dev/slipway/internal/arm/providers/compute"
	"github.com/slipway-dev/slipway/internal/arm/providers/containerservice"
	"github.com/slipway-dev/slipway/internal/arm/providers/costmanagement"
	keyvaultprovider "github.com/slipway-dev/slipway/internal/arm/providers/keyvault"
	policyprovider "github.com/slipway-dev/slipway/internal/arm/providers/policy"
	"github.com/slipway-dev/slipway/internal/arm/providers/policyinsights"
	"github.com/slipway-dev/slipway/internal/arm/providers/resourcehealth"
	"github.com/slipway-dev/slipway/internal/arm/providers/resources"
	"github.com/slipway-dev/slipway/internal/arm/providers/slipwayidentity"
	storageprovider "github.com/slipway-dev/slipway/internal/arm/providers/storage"
	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/authz"
	"github.com/slipway-dev/slipway/internal/compute/sim"
	"github.com/slipway-dev/slipway/internal/controller"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/fleet"
	"github.com/slipway-dev/slipway/internal/health"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/keyvault"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/nodeimage"
	"github.com/slipway-dev/slipway/internal/portal"
	"github.com/slipway-dev/slipway/internal/readcache"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
	"github.com/slipway-dev/slipway/internal/timing"
)

// Options configure the server.
type Options struct {
	DataDir string
	// Listen is the HTTPS address; port 0 picks a free one.
	Listen string
	// PprofListen, if set, serves Go's profiles (net/http/pprof) over
	// plain HTTP on this address: keep it on loopback.
	PprofListen          string
	ManagementKubeconfig string
	// Datastore, if it names endpoints, is the etcd the clusters share
	// instead of one serve runs itself.
	Datastore datastore.External
	// Executable runs the components; empty means this binary.
	Executable string
	// SpotEvictionRate is the average number of random evictions per Spot
	// VM per simulated hour; 0 means none.
	SpotEvictionRate float64
	// NodeOSUpgradeDelay is how long after a node image is found a cluster
	// with no node OS maintenance window gets it.
	NodeOSUpgradeDelay time.Duration
	// RebootConcurrency is how many nodes of a cluster reboot at once.
	RebootConcurrency int
	// TimeScale scales the simulated VMs' real-world durations; 0 means
	// timing.DefaultScale.
	TimeScale float64
	// HealthInterval is the time between two health probes of a cluster;
	// 0 means 5 s. HealthUnknownAfter is how long without a probe makes
	// a cluster's health Unknown; 0 means Resource Health's ten minutes.
	HealthInterval, HealthUnknownAfter time.Duration
	// CostSampleInterval is the time between two samples of a cost
	// analysis cluster's pods.
	CostSampleInterval time.Duration
	// PolicyInterval is the time between two syncs and audits of the
	// Azure Policy assignments of a cluster with the add-on.
	PolicyInterval time.Duration
	// KeyVaultDNSSuffix is the vaults' DNS suffix (DefaultKeyVaultDNSSuffix).
	KeyVaultDNSSuffix string
	// Ports is the port range of hosted control planes; the first hundred
	// go to the management plane. Zero means hosting's default.
	Ports hosting.PortRange
	// Join, if set, is a join file of `slipway management serve`: this
	// serve is one host of several, on that management plane and
	// datastore, named HostName (which must then be set).
	Join string
	// HostName, if set, makes this serve one host of a fleet sharing the
	// management plane and the datastore (internal/fleet). Capacity is
	// how many clusters it takes by choice; zero means an estimate from
	// the machine's memory.
	HostName string
	Capacity int
	// Advertise, if set, is this host's address for clients on other
	// machines (an IP address or a DNS name): ARM's URLs and the
	// clusters' kubeconfigs name it, and the clusters' API servers listen
	// on every address (hosting.Options.Advertise). Listen must
	// reach it.
	Advertise string
	// Spares is how many control planes are kept started ahead for
	// creates to claim (hosting.Options.Spares): each costs an idle API
	// server's memory and takes its start off a create.
	Spares int
	// Out receives progress and connection instructions.
	Out io.Writer
	// Ready, if set, receives the connection once the server answers.
	Ready func(*Connection)
}

// Serve runs Slipway until ctx ends.
func Serve(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return err
	}
	if o.Join != "" {
		if err := useJoin(o.Join, &o); err != nil {
			return err
		}
	}
	if o.HostName != "" && (o.ManagementKubeconfig == "" || len(o.Datastore.Endpoints) == 0) {
		return errors.New("a named host (--host-name) shares a management plane and a datastore: give --join, or --management-kubeconfig and --datastore-endpoints")
	}
	if err := checkAdvertise(o.Advertise); err != nil {
		return err
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.Default().Handler()))
	connPath := filepath.Join(o.DataDir, "connection.json")
	conn, err := loadOrCreateConnection(connPath)
	if err != nil {
		return err
	}

	if o.PprofListen != "" {
		if err := servePprof(ctx, o.PprofListen); err != nil {
			return err
		}
	}
	listener, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	defer listener.Close()
	host, port, _ := net.SplitHostPort(listener.Addr().String())
	host = cmp.Or(o.Advertise, host)
	base := "https://" + net.JoinHostPort(host, port)
	conn.KeyVaultDNSSuffix = cmp.Or(o.KeyVaultDNSSuffix, DefaultKeyVaultDNSSuffix)
	tlsCfg, caFile, err := serverTLS(filepath.Join(o.DataDir, "pki"), host, conn.KeyVaultDNSSuffix)
	if err != nil {
		return err
	}
	conn.ARMEndpoint, conn.AuthorityHost = base+"/", base+"/"
	conn.LoginEndpoint, conn.CACertFile = identity.ADFSIssuer(base), caFile
	sealer, err := keyvault.OpenSealer(filepath.Join(o.DataDir, "keyvault", "sealing.key"))
	if err != nil {
		return err
	}

	if o.TimeScale == 0 {
		o.TimeScale = timing.DefaultScale
	}
	ports, err := splitPorts(o.Ports)
	if err != nil {
		return err
	}
	plane, err := management.Open(ctx, management.Options{DataDir: o.DataDir, Kubeconfig: o.ManagementKubeconfig,
		Executable: o.Executable, Progress: o.Out, Ports: ports.management})
	if err != nil {
		return err
	}
	defer plane.Close()
	if plane.Hosted {
		if err := writeManagementKubeconfig(plane, o.DataDir); err != nil {
			return err
		}
	}

	mgr, err := ctrl.NewManager(plane.Config, ctrl.Options{
		Scheme:                  plane.Scheme,
		Cache:                   cache.Options{DefaultNamespaces: map[string]cache.Config{slipwayv1.Namespace: {}}},
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          !plane.Hosted,
		LeaderElectionID:        "slipway-controllers",
		LeaderElectionNamespace: slipwayv1.Namespace,
	})
	if err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	principals := &identity.Store{Client: mgr.GetClient()}
	direct, err := client.New(plane.Config, client.Options{Scheme: plane.Scheme})
	if err != nil {
		return err
	}
	diskService, accountService := disks.New(direct), storageaccounts.New(direct)
	vaults := keyvault.New(direct, mgr.GetClient(), sealer, conn.KeyVaultDNSSuffix, ":"+port)
	volumes := clusterStorage{client: mgr.GetClient(), disks: diskService, accounts: accountService, timing: timing.Model{Scale: o.TimeScale}}
	images := &nodeimage.Catalog{Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader()}
	signer, err := identity.NewSigner(identity.SignerOptions{
		KeyFile:  filepath.Join(o.DataDir, "identity", "signing-key.pem"),
		Issuers:  []string{identity.ADFSIssuer(base), identity.TenantIssuer(base, conn.TenantID)},
		Audience: conn.Audience, Resources: []string{vaults.Resource()},
	})
	if err != nil {
		return err
	}
	dataPlane := &keyvault.DataPlane{Service: vaults, Verify: signer.VerifyFor, RBAC: &authz.Authorizer{Client: mgr.GetClient()},
		Authority: base, TenantID: conn.TenantID}
	secretsStores := clusterSecretsStore{client: mgr.GetClient(), vaults: dataPlane, principals: principals, tenantID: conn.TenantID}
	policyEvents := clusterPolicyEvents{client: direct, log: slog.Default()}
	companions := allOf(volumes.start, secretsStores.start, policyEvents.start,
		func(ctx context.Context, c *hosting.Cluster) (func(), error) {
			return startAutoscaler(ctx, c, mgr.GetClient(), images)
		})
	var store *datastore.Store
	if len(o.Datastore.Endpoints) > 0 {
		fmt.Fprintf(o.Out, "Connecting to the clusters' shared datastore at %s...\n", strings.Join(o.Datastore.Endpoints, ","))
		store, err = datastore.Connect(ctx, o.Datastore)
	} else {
		fmt.Fprintln(o.Out, "Starting the clusters' shared datastore (etcd)...")
		store, err = startDatastore(ctx, o.DataDir, o.Executable, ports, "")
	}
	if err != nil {
		return err
	}
	defer store.Close()
	hostingOpts := hosting.Options{DataDir: o.DataDir, Executable: o.Executable, Ports: ports.clusters,
		Companion: companions, Datastore: store, Advertise: o.Advertise,
		Spares: o.Spares, WarmSpare: warmSpare}
	if o.HostName != "" {
		// One host of several: control planes are kept where any host
		// can start them, their ports are the fleet's.
		hostingOpts.Registry, hostingOpts.PortLedger = fleet.Registry{Client: direct}, fleet.PortLedger{Client: direct}
	}
	clusters, err := hosting.New(hostingOpts)
	if err != nil {
		return err
	}
	defer clusters.Close()
	etcds := localEtcds{plane: plane, store: store, hosted: clusters.Members}
	defer serveBackups(o.DataDir, etcds)()
	go datastore.KeepDefragmented(ctx, etcds.members)
	go clusters.KeepSpares(ctx)
	var placement controller.Placement
	if o.HostName != "" {
		capacity := cmp.Or(o.Capacity, defaultCapacity())
		hosts := fleet.New(fleet.Options{Client: direct, Name: o.HostName, Capacity: capacity, ARMEndpoint: base + "/",
			Fence: func() {
				for _, c := range clusters.List() {
					clusters.Release(c.ID())
				}
			}})
		if err := hosts.Register(ctx); err != nil {
			return err
		}
		if err := mgr.Add(hosts); err != nil {
			return err
		}
		placement = hosts
		fmt.Fprintf(o.Out, "Host %s joined the fleet (capacity %d clusters)\n", o.HostName, capacity)
	}
	if err := (&identity.Store{Client: direct}).Ensure(ctx, conn.ClientID, conn.ObjectID, "slipway-bootstrap", conn.ClientSecret); err != nil {
		return err
	}
	// The bootstrap principal owns the subscription; it grants everyone
	// else their roles.
	if err := authorization.EnsureRoleAssignment(ctx, direct, identity.GUID([]byte(conn.ObjectID + "owner")[:16]), "/subscriptions/"+conn.SubscriptionID, conn.ObjectID, authz.Owner, conn.SubscriptionID); err != nil {
		return fmt.Errorf("granting the bootstrap principal Owner: %w", err)
	}
	// One budget of failed secrets per client ID, at the token endpoint
	// and the portal's sign-in alike.
	secretLimiter := identity.NewFailureLimiter(5, time.Second, time.Minute)
	// ARM writes through the API server and serves GETs of the objects
	// the controllers watch anyway from their cache, read-your-writes.
	frontClient, err := readcache.New(ctx, direct, mgr.GetCache(), &slipwayv1.ManagedCluster{}, &slipwayv1.AgentPool{}, &slipwayv1.ResourceGroup{})
	if err != nil {
		return err
	}
	front := arm.New(arm.Config{
		BaseURL: base, SubscriptionID: conn.SubscriptionID, TenantID: conn.TenantID, Location: conn.Location,
		Audience: conn.Audience, Client: frontClient, Signer: signer, Principals: principals, TokenLimiter: secretLimiter,
		// Assignments are read through the cache: like ARM's, a new one
		// takes effect a moment after it is made.
		Authorizer: &authz.Authorizer{Client: mgr.GetClient()},
	})
	healthPolicy := health.DefaultPolicy()
	healthPolicy.UnknownAfter = cmp.Or(o.HealthUnknownAfter, healthPolicy.UnknownAfter)
	healthPolicy.Heartbeat = min(healthPolicy.Heartbeat, healthPolicy.UnknownAfter/4)
	// The resource providers. Authorization comes last: role assignments
	// attach to the resource types the others registered.
	resources.Register(front)
	containerservice.Register(front, credentials{clusters}, &nodeimage.Catalog{Reader: direct, Writer: direct})
	slipwayidentity.Register(front, &identity.Store{Client: direct}, signer)
	resourcehealth.Register(front, healthPolicy, containerservice.RouteCluster)
	computeprovider.Register(front, diskService)
	keyvaultprovider.Register(front, vaults)
	storageprovider.Register(front, accountService)
	heartbeat, err := controller.NewMeteringHeartbeat(ctx, direct, time.Minute, clock.RealClock{})
	if err != nil {
		return err
	}
	if err := mgr.Add(heartbeat); err != nil {
		return err
	}
	if err := mgr.Add(&controller.Pruner{Reader: mgr.GetAPIReader(), Client: mgr.GetClient(), Every: 10 * time.Minute, Now: time.Now}); err != nil {
		return err
	}
	// Every host rotates the logs of the control planes it runs, leader
	// or not.
	if err := mgr.Add(everyHost(func(ctx context.Context) error {
		clusters.RotateLogsEvery(ctx, time.Minute)
		return nil
	})); err != nil {
		return err
	}
	costmanagement.Register(front, heartbeat.Downtime, containerservice.RouteCluster)
	policyprovider.Register(front)
	policyinsights.Register(front)
	authorization.Register(front)

	vms := &sim.Provider{Clusters: clusters}
	for _, r := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&controller.ClusterReconciler{Started: time.Now(), Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Hosting: clusters, Placement: placement, Compute: vms, FQDN: containerservice.ClusterFQDN, NewAgentPool: containerservice.NewAgentPoolObject},
		&controller.AgentPoolReconciler{Started: time.Now(), Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Hosting: clusters, Placement: placement, Compute: vms, Timing: timing.Model{Scale: o.TimeScale}, SpotEvictionRate: o.SpotEvictionRate,
			Images: &nodeimage.Catalog{Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader()}},
		&controller.ResourceGroupReconciler{Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), StartOperation: front.StartOperation,
			Contents: []controller.GroupContents{diskService, accountService, vaults}},
		&controller.NodeOSUpgradeReconciler{Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), Hosting: clusters, Placement: placement, Compute: vms, Timing: timing.Model{Scale: o.TimeScale},
			Images: &nodeimage.Catalog{Reader: mgr.GetClient(), Fresh: mgr.GetAPIReader()}, StartOperation: front.StartOperation,
			Delay: o.NodeOSUpgradeDelay, RebootConcurrency: o.RebootConcurrency},
		&controller.VersionUpgradeReconciler{Client: mgr.GetClient(), Fresh: mgr.GetAPIReader(), StartOperation: front.StartOperation},
		&controller.HealthReconciler{Client: mgr.GetClient(), Hosting: clusters, Placement: placement, Clock: clock.RealClock{},
			Identity: identityCheck{store: &identity.Store{Client: mgr.GetClient()}, signer: signer, tenant: conn.TenantID, audience: conn.Audience},
			Interval: cmp.Or(o.HealthInterval, 5*time.Second), Policy: healthPolicy},
		&controller.MeteringReconciler{Client: mgr.GetClient(), Clock: clock.RealClock{}, Downtime: heartbeat.Downtime},
		&controller.CostAllocationReconciler{Client: mgr.GetClient(), Hosting: clusters, Placement: placement, Clock: clock.RealClock{}, Interval: cmp.Or(o.CostSampleInterval, 30*time.Second)},
		&controller.PolicyReconciler{Client: mgr.GetClient(), Hosting: clusters, Placement: placement, Clock: clock.RealClock{}, Interval: cmp.Or(o.PolicyInterval, 10*time.Second)},
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up controllers: %w", err)
		}
	}

	// The informers the front door reads through, made before the cache
	// starts so that waiting for it to sync covers them.
	for _, obj := range []client.Object{&slipwayv1.RoleAssignment{}, &slipwayv1.ServicePrincipal{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()

	// The token endpoint and the authorizer read through the manager's
	// cache: serving before it has synced would answer the first requests
	// after a restart with 500s.
	syncCtx, syncDone := context.WithTimeout(ctx, 2*time.Minute)
	synced := mgr.GetCache().WaitForCacheSync(syncCtx)
	syncDone()
	if !synced {
		select {
		case err := <-mgrDone:
			return fmt.Errorf("controllers stopped before their caches synced: %w", err)
		default:
			return fmt.Errorf("the management plane's caches did not sync")
		}
	}

	armHandler := front.Handler()
	site, err := portal.New(portal.Options{ARM: armHandler, BaseURL: base, Audience: conn.Audience, TenantID: conn.TenantID,
		SubscriptionID: conn.SubscriptionID, Tokens: signer, Principals: principals, Limiter: secretLimiter, DataDir: o.DataDir, Store: mgr.GetClient()})
	if err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	portalHandler := site.Handler()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One port, two hosts: ARM (and its portal), and each vault at
		// its own name.
		if _, ok := dataPlane.VaultOf(r.Host); ok {
			dataPlane.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/portal" {
			http.Redirect(w, r, "/portal/", http.StatusMovedPermanently)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/portal/") {
			portalHandler.ServeHTTP(w, r)
			return
		}
		armHandler.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, TLSConfig: tlsCfg,
		// Slow or idle clients are cut off: with --listen beyond
		// loopback, connections held open would exhaust the server.
		// No body Slipway takes needs more than seconds to send, and no
		// answer more than seconds to write.
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 90 * time.Second,
		// net/http logs recovered panics and TLS handshake failures
		// here; they are worth seeing.
		ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.ServeTLS(listener, "", "") }()

	if err := conn.write(connPath); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "Slipway is serving the AKS API at %s\n", base)
	fmt.Fprintf(o.Out, "  portal: %s/portal/ (a one-time sign-in link: slipway portal --data-dir %s)\n", base, o.DataDir)
	fmt.Fprintf(o.Out, "  connection details (secret included, mode 0600): %s\n", connPath)
	fmt.Fprintf(o.Out, "  CA certificate to trust:                        %s\n", caFile)
	fmt.Fprintf(o.Out, "  tenant %s, subscription %s, client ID %s\n", conn.TenantID, conn.SubscriptionID, conn.ClientID)
	if o.Ready != nil {
		o.Ready(conn)
	}

	select {
	case <-ctx.Done():
	case err = <-mgrDone:
		if err != nil {
			err = fmt.Errorf("controllers stopped: %w", err)
		}
	case err = <-srvDone:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	srv.Shutdown(shutdownCtx)
	cancel()
	fmt.Fprintln(o.Out, "Stopping Slipway: the clusters' control planes stop and start again with it")
	return err
}

// credentials adapts the hosting layer to the ARM layer's needs.
type credentials struct{ host *hosting.Host }

func (c credentials) Kubeconfig(id string, admin bool, cluster, user, kubeContext string) ([]byte, error) {
	cred := hosting.User
	if admin {
		cred = hosting.Admin
	}
	// The cluster may run on another host: its PKI is then read from the
	// management plane.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.host.Kubeconfig(ctx, id, cred, hosting.KubeconfigNames{Cluster: cluster, User: user, Context: kubeContext})
}

// writeManagementKubeconfig leaves the hosted management plane's kubeconfig
// in the data directory, readable by its owner only (the directory holds
// the plane's CA key already), for `slipway csi --management-kubeconfig`.
func writeManagementKubeconfig(plane *management.Plane, dataDir string) error {
	data, err := plane.Kubeconfig()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dataDir, management.KubeconfigFile), data, 0o600); err != nil {
		return fmt.Errorf("writing the management kubeconfig: %w", err)
	}
	return nil
}

// companion starts something that runs beside a cluster, and returns how
// to stop it.
type companion = func(ctx context.Context, c *hosting.Cluster) (func(), error)

// allOf starts companions in order and stops them in reverse; if one
// fails to start, those started are stopped.
func allOf(cs ...companion) companion {
	return func(ctx context.Context, c *hosting.Cluster) (func(), error) {
		var stops []func()
		stopAll := func() {
			for i := len(stops) - 1; i >= 0; i-- {
				stops[i]()
			}
		}
		for _, start := range cs {
			stop, err := start(ctx, c)
			if err != nil {
				stopAll()
				return nil, err
			}
			stops = append(stops, stop)
		}
		return stopAll, nil
	}
}

// everyHost is a runnable that runs on every host of a fleet, not only on
// the one elected to run the controllers of shared concerns.
type everyHost func(ctx context.Context) error

func (f everyHost) Start(ctx context.Context) error { return f(ctx) }
func (everyHost) NeedLeaderElection() bool          { return false }

// warmSpare makes a spare control plane ready for a default cluster's
// add-ons (addons.Warm).
func warmSpare(ctx context.Context, c *hosting.Cluster) error {
	cfg, err := c.RESTConfig(hosting.Admin)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return addons.Warm(ctx, dc)
}

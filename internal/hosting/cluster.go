package hosting

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/components"
	"github.com/slipway-dev/slipway/internal/pki"
	"github.com/slipway-dev/slipway/internal/simnode"
	"github.com/slipway-dev/slipway/internal/supervisor"
	"github.com/slipway-dev/slipway/internal/version"
)

// record is what a cluster keeps on disk (cluster.json): enough to start it
// again after Slipway restarts.
type record struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	FQDN    string    `json:"fqdn"`
	Ports   Ports     `json:"ports"`
	Created time.Time `json:"created"`
	// Running is the desired state: a cluster that was running when
	// Slipway went away is started again by its controller (Cluster.Start).
	Running bool `json:"running"`
	// APIOnly clusters run etcd and kube-apiserver only.
	APIOnly bool `json:"apiOnly,omitempty"`
	// ServiceCIDR and PodCIDR are the cluster's networks; empty (clusters
	// made before they were kept) means the defaults.
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	PodCIDR     string `json:"podCIDR,omitempty"`
	// Datastore is where the cluster keeps its objects: sharedDatastore
	// for the datastore all clusters share (Options.Datastore), empty for
	// an etcd of its own in the cluster's directory. Clusters made before
	// the datastore was shared keep their own etcd for life; a cluster
	// moves by backup and restore into a new cluster, not in place.
	Datastore string `json:"datastore,omitempty"`
	// KubernetesVersion is the release the control plane runs, e.g.
	// "1.35.4"; empty (clusters made before releases were chosen) means
	// the compiled-in version.Kubernetes.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Address is where clients reach the API server: the advertised
	// address (Options.Advertise) of the host that last started it, empty
	// for loopback. It is kept with the record so that every host hands
	// out kubeconfigs that point at the cluster's current host.
	Address string `json:"address,omitempty"`
	// Store names what the control plane holds beyond its record: its
	// directory under clusters/, its datastore prefix and etcd user, and
	// its ports in the ledger. Empty means the ID; a cluster made from a
	// spare control plane (Options.Spares) keeps the spare's name, as its
	// running API server was started with that prefix.
	Store string `json:"store,omitempty"`
	// Spare marks a control plane started ahead of any create and not yet
	// claimed by one: it belongs to this host alone and is in no registry.
	Spare bool `json:"spare,omitempty"`
	// Issuer is the service-account token issuer; empty (clusters made
	// before it was kept) means "https://" + FQDN, as they were started.
	Issuer string `json:"issuer,omitempty"`
}

// DefaultIssuer is the service-account token issuer of new clusters: the
// in-cluster name of the API server, as kubeadm sets it and as AKS reports
// for clusters without the OIDC issuer. It does not name the cluster, so a
// spare control plane started before its cluster's name was known can
// serve any cluster.
const DefaultIssuer = "https://kubernetes.default.svc.cluster.local"

func (r *record) store() string  { return cmp.Or(r.Store, r.ID) }
func (r *record) issuer() string { return cmp.Or(r.Issuer, "https://"+r.FQDN) }

// sharedDatastore is record.Datastore of a cluster on the shared datastore.
const sharedDatastore = "shared"

func (r *record) release() string {
	return cmp.Or(r.KubernetesVersion, strings.TrimPrefix(version.Kubernetes, "v"))
}

func (r *record) serviceCIDR() string { return cmp.Or(r.ServiceCIDR, DefaultServiceCIDR) }
func (r *record) podCIDR() string     { return cmp.Or(r.PodCIDR, DefaultPodCIDR) }

// kubernetesServiceIP is the address of the kubernetes Service: the
// service CIDR's first, which the API server's certificate must name.
func (r *record) kubernetesServiceIP() (string, error) {
	prefix, err := netip.ParsePrefix(r.serviceCIDR())
	if err != nil || !prefix.Addr().Is4() {
		return "", fmt.Errorf("service CIDR %q: not an IPv4 CIDR", r.serviceCIDR())
	}
	return prefix.Masked().Addr().Next().String(), nil
}

const recordFile = "cluster.json"

func readRecord(dir string) (*record, error) {
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, recordFile), err)
	}
	return &rec, nil
}

func writeRecord(dir string, rec *record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, recordFile), data, 0o600)
}

// saveRecord writes a changed record to the registry, then to the data
// directory. c.mu is held.
func (c *Cluster) saveRecord(ctx context.Context) error {
	if err := c.host.share(ctx, c.dir, &c.rec); err != nil {
		return err
	}
	return writeRecord(c.dir, &c.rec)
}

// Cluster is one hosted control plane: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler as supervised child processes,
// and the simulated kubelets of its nodes inside this process.
type Cluster struct {
	host *Host
	dir  string

	// op serialises Start, Stop and Delete.
	op sync.Mutex

	mu       sync.Mutex
	rec      record
	procs    []*supervisor.Process
	logs     []io.Closer
	kubelets *simnode.Kubelets
	// apiBind is the address the running API server listens on:
	// Host.apiBind from a start, "::" after every other upgrade on a host
	// that advertises no address (surgeBind).
	apiBind string
	// stopCompanion stops what Options.Companion started.
	stopCompanion func()

	// admin and probeHTTP are Slipway's own clients of the cluster, made once.
	admin     func() (kubernetes.Interface, error)
	probeHTTP func() (*http.Client, error)
}

// AdminClient returns Slipway's shared admin client of the cluster.
func (c *Cluster) AdminClient() (kubernetes.Interface, error) {
	c.mu.Lock()
	if c.admin == nil {
		c.admin = sync.OnceValues(func() (kubernetes.Interface, error) {
			cfg, err := c.RESTConfig(Admin)
			if err != nil {
				return nil, err
			}
			return kubernetes.NewForConfig(cfg)
		})
	}
	admin := c.admin
	c.mu.Unlock()
	return admin()
}

// ID returns the cluster's identifier, unique within its host.
func (c *Cluster) ID() string { return c.rec.ID }

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.rec.Name }

// FQDN returns the DNS name in the API server's certificate.
func (c *Cluster) FQDN() string { return c.rec.FQDN }

// Dir returns the cluster's data directory.
func (c *Cluster) Dir() string { return c.dir }

// Endpoint returns the API server's URL.
func (c *Cluster) Endpoint() string { return c.rec.endpoint() }

// endpoint is the API server's URL on loopback, which this host's own
// clients use: its port is the cluster's wherever it runs (see
// PortLedger).
func (r *record) endpoint() string {
	return fmt.Sprintf("https://%s:%d", loopbackV4, r.Ports.APIServer)
}

// served is the API server's URL for clients anywhere: at the address its
// host advertises, loopback if none.
func (r *record) served() string {
	return "https://" + net.JoinHostPort(cmp.Or(r.Address, loopbackV4), strconv.Itoa(r.Ports.APIServer))
}

// KubernetesVersion returns the release the control plane runs.
func (c *Cluster) KubernetesVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.release()
}

// FromSpare returns the name of the spare control plane the cluster was
// made from, if it was.
func (c *Cluster) FromSpare() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.Store, c.rec.Store != ""
}

// Ports returns the ports the control plane listens on.
func (c *Cluster) Ports() Ports { return c.rec.Ports }

// AdminKubeconfigPath is the path of the admin kubeconfig file that Slipway
// writes for itself (mode 0600).
func (c *Cluster) AdminKubeconfigPath() string {
	return filepath.Join(c.dir, "kubeconfig", "admin.kubeconfig")
}

func (c *Cluster) pkiDir() string { return filepath.Join(c.dir, "pki") }

// RESTConfig returns a client configuration for cred.
func (c *Cluster) RESTConfig(cred Credential) (*rest.Config, error) {
	data, err := c.kubeconfig(cred, KubeconfigNames{}, true)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, err
	}
	// Slipway's own controllers drive each cluster hard (a scale-in drains
	// and removes hundreds of nodes); client-go's default of 5 requests a
	// second would make that crawl. The API server's priority and fairness
	// still protects it.
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// Kubelets returns the simulated kubelets of a running cluster, or nil.
func (c *Cluster) Kubelets() *simnode.Kubelets {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kubelets
}

// Running reports whether the control plane's processes are supervised.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs != nil
}

// Health is a snapshot of a cluster's control plane.
type Health struct {
	// Ready is true when the API server answered /readyz with ok.
	Ready bool
	// Message says why the cluster is not ready.
	Message    string
	Components []supervisor.Status
}

// Health probes the API server and reports each component's state.
func (c *Cluster) Health(ctx context.Context) Health {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	var h Health
	for _, p := range procs {
		h.Components = append(h.Components, p.Status())
	}
	if procs == nil {
		h.Message = "the control plane is stopped"
		return h
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.probe(ctx); err != nil {
		h.Message = err.Error()
		return h
	}
	h.Ready = true
	return h
}

// Start starts the control plane if it is not running and waits until the
// API server is ready, or until ctx ends or the host's ready timeout passes.
func (c *Cluster) Start(ctx context.Context) error {
	c.op.Lock()
	defer c.op.Unlock()
	if err := c.setDesired(ctx, true); err != nil {
		return err
	}
	return c.start(ctx)
}

func (c *Cluster) setDesired(ctx context.Context, running bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec.Running == running {
		return nil
	}
	c.rec.Running = running
	if err := c.saveRecord(ctx); err != nil {
		c.rec.Running = !running
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	if c.Running() {
		return nil
	}
	began := time.Now()
	if err := c.startServers(ctx); err != nil {
		return err
	}
	ready := time.Now()
	if !c.rec.APIOnly {
		if err := c.startRest(ctx); err != nil {
			return err
		}
	}
	// Where a start's time goes, for the create benchmark's figures.
	slog.Info("Control plane started", "cluster", c.rec.ID, "release", c.rec.release(),
		"apiServerReady", ready.Sub(began).Round(time.Millisecond), "total", time.Since(began).Round(time.Millisecond))
	return nil
}

// isServer says whether a component is one of the servers startServers
// starts: the API server and its etcd.
func isServer(l launch) bool { return l.name == components.Etcd || l.name == components.APIServer }

// startServers starts the cluster's etcd (if it has its own) and API
// server, waits until the API server is ready and makes the objects
// Slipway relies on in it: all a spare control plane runs.
func (c *Cluster) startServers(ctx context.Context) error {
	if err := c.writeComponentKubeconfigs(); err != nil {
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	if err := writeAuditPolicy(c.dir); err != nil {
		return fmt.Errorf("cluster %s: writing the audit policy: %w", c.rec.ID, err)
	}
	if c.rec.Datastore == sharedDatastore && c.host.datastore == nil {
		return fmt.Errorf("cluster %s keeps its objects in the shared datastore, which this host was not given", c.rec.ID)
	}
	if err := c.advertise(ctx); err != nil {
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	bind := c.host.apiBind()
	if err := c.launchAll(launches(&c.rec, c.dir, c.host.datastore, bind), isServer); err != nil {
		return err
	}
	c.mu.Lock()
	c.apiBind = bind
	c.mu.Unlock()
	if err := c.waitReady(ctx); err != nil {
		c.stop()
		return err
	}
	if err := c.bootstrap(ctx); err != nil {
		c.stop()
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	return nil
}

// startRest starts what a running API server needs to be a cluster: the
// controller manager and the scheduler (unless a spare runs them already),
// the simulated kubelets and the companion.
func (c *Cluster) startRest(ctx context.Context) error {
	rest := func(l launch) bool { return !isServer(l) && !c.runs(l.name) }
	c.mu.Lock()
	bind := c.apiBind
	c.mu.Unlock()
	if err := c.launchAll(launches(&c.rec, c.dir, c.host.datastore, bind), rest); err != nil {
		c.stop()
		return err
	}
	kubelets, err := simnode.Start(context.Background(), simnode.Options{
		Kubeconfig: c.AdminKubeconfigPath(),
		PodCIDR:    c.rec.podCIDR(),
		Log:        c.host.log,
	})
	if err != nil {
		c.stop()
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	c.mu.Lock()
	c.kubelets = kubelets
	c.mu.Unlock()
	if c.host.companion != nil {
		stop, err := c.host.companion(ctx, c)
		if err != nil {
			c.stop()
			return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
		}
		c.mu.Lock()
		c.stopCompanion = stop
		c.mu.Unlock()
	}
	return nil
}

// runs says whether the cluster runs the component called name.
func (c *Cluster) runs(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.Status().Name == name {
			return true
		}
	}
	return false
}

// launchAll starts the components of ls that want says, in order, each
// with its log file, and adds them to the cluster's processes. If one
// fails to start, those it started are stopped again.
func (c *Cluster) launchAll(ls []launch, want func(launch) bool) error {
	logDir := filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	var procs []*supervisor.Process
	var logs []io.Closer
	for _, l := range ls {
		if !want(l) {
			continue
		}
		p, logFile, err := c.launch(l, logDir)
		if err != nil {
			stopAll(procs, logs)
			return err
		}
		procs, logs = append(procs, p), append(logs, logFile)
	}
	c.mu.Lock()
	c.procs, c.logs = append(c.procs, procs...), append(c.logs, logs...)
	c.mu.Unlock()
	return nil
}

// launch starts one component with its log file.
func (c *Cluster) launch(l launch, logDir string) (*supervisor.Process, io.Closer, error) {
	path, args, err := c.host.command(l.name, c.rec.release())
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, l.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: opening log: %w", c.rec.ID, err)
	}
	p, err := supervisor.Start(supervisor.Spec{Name: l.name, Path: path, Args: append(args, l.args...), Env: l.env, Output: logFile})
	if err != nil {
		logFile.Close()
		return nil, nil, fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	return p, logFile, nil
}

// Upgrade moves the control plane to another Kubernetes release (one
// version.Releases lists), keeping its objects. The new release's API
// server starts beside the old one on the same port (both bind it with
// SO_REUSEPORT), and the old one stops only once the new one is ready, so
// the API stays served throughout, as behind AKS's load balancer. Then the
// controller manager and the scheduler are replaced one at a time (they do
// not elect leaders, so two must never run together). etcd, the simulated
// kubelets and the companions run on throughout. A stopped cluster just
// records the release it starts on.
func (c *Cluster) Upgrade(ctx context.Context, release string) error {
	c.op.Lock()
	defer c.op.Unlock()
	if c.KubernetesVersion() == release {
		return nil
	}
	if _, _, err := c.host.command(components.APIServer, release); err != nil {
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	c.mu.Lock()
	prev := c.rec.KubernetesVersion
	c.rec.KubernetesVersion = release
	err := c.saveRecord(ctx)
	if err != nil {
		c.rec.KubernetesVersion = prev
	}
	running := c.procs != nil
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.rec.ID, err)
	}
	if !running {
		return nil
	}
	// The record names the new release before any process changes: a
	// crash part-way starts the whole control plane on it.
	logDir := filepath.Join(c.dir, "logs")
	c.mu.Lock()
	bind := c.host.surgeBind(c.apiBind)
	c.mu.Unlock()
	for _, l := range launches(&c.rec, c.dir, c.host.datastore, bind) {
		if !slices.Contains([]string{components.APIServer, components.ControllerManager, components.Scheduler}, l.name) {
			continue
		}
		if l.name != components.APIServer {
			c.stopProcess(l.name)
		}
		p, logFile, err := c.launch(l, logDir)
		if err != nil {
			c.stop()
			return err
		}
		if l.name == components.APIServer {
			if err := c.waitServing(ctx, release, bind); err != nil {
				p.Stop(context.Background())
				logFile.Close()
				c.stop()
				return err
			}
			// The old server's watches keep it from exiting until it is
			// killed (StopTimeout later); its listener closes at once, its
			// kept-alive clients move to the new one as their connections
			// close, so nothing waits for it.
			go c.detachProcess(l.name)()
			c.mu.Lock()
			c.apiBind = bind
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.procs = append(c.procs, p)
		c.logs = append(c.logs, logFile)
		c.mu.Unlock()
	}
	return c.waitControllers(ctx, release)
}

// waitControllers waits until the controller manager runs its controllers
// (its verbose /healthz lists replicaset-controller, a check it adds once
// they are started) and the scheduler is ready. An upgrade returns only
// then: the pools' upgrades that follow drain nodes, and an evicted pod
// that no controller replaces and no scheduler places holds a
// PodDisruptionBudget until the drain times out.
func (c *Cluster) waitControllers(ctx context.Context, release string) error {
	ctx, cancel := context.WithTimeout(ctx, c.host.readyTimeout)
	defer cancel()
	checks := []struct{ name, url, want string }{
		{"controller manager", fmt.Sprintf("https://127.0.0.1:%d/healthz?verbose", c.rec.Ports.ControllerManager), "[+]replicaset-controller ok"},
		{"scheduler", fmt.Sprintf("https://127.0.0.1:%d/readyz", c.rec.Ports.Scheduler), ""},
	}
	for _, check := range checks {
		for {
			body, err := c.fetch(ctx, componentProbe, check.url)
			if err == nil && !strings.Contains(string(body), check.want) {
				err = fmt.Errorf("%s does not list %q yet", check.url, check.want)
			}
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster %s: %s %s not ready after %s: %v (logs in %s)",
					c.rec.ID, check.name, release, c.host.readyTimeout, err, filepath.Join(c.dir, "logs"))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// stopProcess stops the running component called name and forgets it.
func (c *Cluster) stopProcess(name string) {
	c.detachProcess(name)()
}

// detachProcess forgets the running component called name and returns
// what stops it.
func (c *Cluster) detachProcess(name string) (stop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var procs []*supervisor.Process
	var logs []io.Closer
	for i := len(c.procs) - 1; i >= 0; i-- {
		if c.procs[i].Name() == name {
			procs, logs = append(procs, c.procs[i]), append(logs, c.logs[i])
			c.procs = slices.Delete(c.procs, i, i+1)
			c.logs = slices.Delete(c.logs, i, i+1)
		}
	}
	return func() { stopAll(procs, logs) }
}

// surgeBind is where an upgrade's new API server listens, beside the
// running one on the same port, given where that one listens.
//
// Two servers on one address and port (SO_REUSEPORT) share its new
// connections at random. Among them are the new server's own loopback
// connections (its informers, its post-start hooks), which fail TLS
// against the old server's loopback certificate and back off: that made
// the new server take ten seconds more to be ready, and clients that
// dialled meanwhile met a server not yet serving. So the new server takes
// the other kind of address: the kernel gives a connection to 127.0.0.1 to
// a listener on 127.0.0.1 before one on the IPv6 wildcard "::". When the
// running server is on 127.0.0.1, the new one listens on "::": clients
// keep reaching the old one until it stops, and the new one's loopback
// (::1) reaches only itself. When the running server is on "::", the new
// one listens on 127.0.0.1 and takes the new IPv4 connections at once
// (its loopback among them), kept-alive ones staying with the old. A
// host without IPv6 loopback shares the address, as before.
//
// A host that advertises an address has no second kind of address to
// give the new server: its API servers listen on every address, and Go
// listens on the dual-stack "::" for 0.0.0.0 as for "::" (the API server
// offers no IPv4-only listener). So there the two servers share the
// port's one listener kind, as first built: new connections split between
// them until the old one stops, and the new one is ready later (its own
// loopback connections that reach the old one fail TLS and retry).
// TestSurgeBindKernelPreference checks the kernel's part of this.
func (h *Host) surgeBind(running string) string {
	if h.advertised != "" {
		return h.apiBind()
	}
	if running == loopbackV4 && ipv6Loopback() {
		return "::"
	}
	return loopbackV4
}

// apiBind is where this host's API servers listen from a start: loopback,
// or every address if the host advertises one (Options.Advertise).
func (h *Host) apiBind() string {
	if h.advertised == "" {
		return loopbackV4
	}
	return "0.0.0.0"
}

const loopbackV4 = "127.0.0.1"

// advertise makes the cluster reachable at the address this host
// advertises before its API server starts: its serving certificate names
// the address, and its record (in the registry too) says where it is
// served, for the kubeconfigs any host hands out.
func (c *Cluster) advertise(ctx context.Context) error {
	addr := c.host.advertised
	pkiDir := c.pkiDir()
	if addr != "" {
		ca, err := pki.LoadKeyPair(pkiDir, certCA)
		if err != nil {
			return err
		}
		serviceIP, err := c.rec.kubernetesServiceIP()
		if err != nil {
			return err
		}
		if _, err := pki.EnsureHost(pkiDir, certAPIServer, ca, apiServerSpec(c.rec.FQDN, serviceIP), addr, time.Now()); err != nil {
			return fmt.Errorf("naming %s in the API server's certificate: %w", addr, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec.Address == addr {
		return nil
	}
	prev := c.rec.Address
	c.rec.Address = addr
	if err := c.saveRecord(ctx); err != nil {
		c.rec.Address = prev
		return err
	}
	return nil
}

// ipv6Loopback says whether this host can listen on ::1.
var ipv6Loopback = sync.OnceValue(func() bool {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
})

// waitServing waits until an API server of release, listening on bind, is
// ready. A connection stays with the process that accepted it, so the
// probe dials until /version shows the new release (on "::", it dials ::1,
// which only the new server answers; on a shared address the kernel picks
// either), then asks /readyz on that same connection.
func (c *Cluster) waitServing(ctx context.Context, release, bind string) error {
	base, err := c.probeClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.host.readyTimeout)
	defer cancel()
	want := "v" + release
	lastErr := errors.New("no answer yet")
	for {
		var dials atomic.Int32
		tr := base.Transport.(*http.Transport).Clone()
		tr.MaxConnsPerHost = 1
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			if bind == "::" {
				// The certificate is still checked for 127.0.0.1, the
				// address in the URL.
				_, port, _ := net.SplitHostPort(addr)
				addr = net.JoinHostPort("::1", port)
			}
			return dial(ctx, network, addr)
		}
		client := &http.Client{Transport: tr}
		var v struct {
			GitVersion string `json:"gitVersion"`
		}
		lastErr = c.getJSON(ctx, client, c.Endpoint()+"/version", &v)
		if lastErr == nil && v.GitVersion != want {
			lastErr = fmt.Errorf("/version answered %s, not %s", v.GitVersion, want)
		}
		// On the new release's connection: ask /readyz until it is ready
		// or the connection is lost (a second dial means another process
		// may be answering).
		for found := lastErr == nil; found && ctx.Err() == nil; {
			lastErr = c.get(ctx, client, c.Endpoint()+"/readyz")
			if dials.Load() != 1 {
				break
			}
			if lastErr == nil {
				tr.CloseIdleConnections()
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		tr.CloseIdleConnections()
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: API server %s not ready after %s: %v (logs in %s)",
				c.rec.ID, release, c.host.readyTimeout, lastErr, filepath.Join(c.dir, "logs"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReady polls /readyz until it answers ok.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.host.readyTimeout)
	defer cancel()
	var lastErr error
	for {
		probeCtx, probeCancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = c.probe(probeCtx)
		probeCancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %s: API server not ready after %s: %w (logs in %s)",
				c.rec.ID, c.host.readyTimeout, lastErr, filepath.Join(c.dir, "logs"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe asks the API server's /readyz.
func (c *Cluster) probe(ctx context.Context) error {
	return c.get(ctx, nil, c.Endpoint()+"/readyz")
}

// probeClient returns the cluster's /readyz client, made once per cluster
// object (a cluster made again under the same ID has a new CA).
func (c *Cluster) probeClient() (*http.Client, error) {
	c.mu.Lock()
	if c.probeHTTP == nil {
		c.probeHTTP = sync.OnceValues(c.newProbeClient)
	}
	get := c.probeHTTP
	c.mu.Unlock()
	return get()
}

func (c *Cluster) newProbeClient() (*http.Client, error) {
	caPEM, err := os.ReadFile(crt(c.pkiDir(), certCA))
	if err != nil {
		return nil, fmt.Errorf("reading cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("cluster CA: no certificate")
	}
	// One kept-alive connection: health probes ask every few seconds, and
	// a TLS handshake each time cost more than the probe itself.
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
	}}, nil
}

func lastLines(b []byte) string {
	const max = 300
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// writeComponentKubeconfigs writes the kubeconfig files that the controller
// manager, the scheduler and the simulated kubelets read.
func (c *Cluster) writeComponentKubeconfigs() error {
	for _, f := range []struct {
		cred Credential
		path string
	}{
		{controllerManagerCredential, filepath.Join(c.dir, "kubeconfig", "kube-controller-manager.kubeconfig")},
		{schedulerCredential, filepath.Join(c.dir, "kubeconfig", "kube-scheduler.kubeconfig")},
		{Admin, c.AdminKubeconfigPath()},
	} {
		data, err := c.kubeconfig(f.cred, KubeconfigNames{}, true)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(f.path, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// bootstrap makes the in-cluster objects Slipway relies on. It runs at every
// start and is idempotent.
func (c *Cluster) bootstrap(ctx context.Context) error {
	cfg, err := c.RESTConfig(Admin)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ClusterUsersGroup},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: ClusterUsersGroup}},
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding cluster users: %w", err)
	}
	return nil
}

// Stop stops the control plane; it stays stopped across Slipway restarts
// until Start.
func (c *Cluster) Stop(ctx context.Context) error {
	c.op.Lock()
	defer c.op.Unlock()
	if err := c.setDesired(ctx, false); err != nil {
		return err
	}
	c.stop()
	return nil
}

// Restart stops and starts the control plane.
func (c *Cluster) Restart(ctx context.Context) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.stop()
	if err := c.setDesired(ctx, true); err != nil {
		return err
	}
	return c.start(ctx)
}

// stop ends the simulated kubelets and the processes, in reverse start
// order, without touching the desired state.
func (c *Cluster) stop() {
	c.mu.Lock()
	procs, logs, kubelets, companion := c.procs, c.logs, c.kubelets, c.stopCompanion
	c.procs, c.logs, c.kubelets, c.stopCompanion = nil, nil, nil, nil
	c.mu.Unlock()
	if companion != nil {
		companion()
	}
	if kubelets != nil {
		kubelets.Stop()
	}
	stopAll(procs, logs)
}

func stopAll(procs []*supervisor.Process, logs []io.Closer) {
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(context.Background())
	}
	for _, l := range logs {
		l.Close()
	}
}

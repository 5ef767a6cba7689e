// Package hosting runs the control planes of Slipway's clusters: for each
// cluster an etcd, kube-apiserver, kube-controller-manager and kube-scheduler,
// each a supervised child process of the slipway binary, with its own PKI,
// ports and data directory under <data-dir>/clusters/<id>/, and the
// simulated kubelets of its nodes.
//
// The data directory is the source of truth: a cluster that was running when
// Slipway died (even by kill -9) is found there and started again by Start,
// with its etcd data, certificates and ports unchanged.
package hosting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/components"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/pki"
	"github.com/slipway-dev/slipway/internal/version"
)

// Options configure a Host.
type Options struct {
	// DataDir holds every cluster's data.
	DataDir string
	// Executable is the slipway binary that runs the components; empty
	// means this process's own executable.
	Executable string
	// Ports is the range ports are allocated from; zero means
	// DefaultPortRange.
	Ports PortRange
	// ReadyTimeout bounds how long Start waits for /readyz; zero means 2
	// minutes, enough for a loaded 2-core machine.
	ReadyTimeout time.Duration
	// Log receives the simulated kubelets' log; nil discards it. The
	// components log to files in each cluster's logs directory.
	Log io.Writer
	// Companion, if set, runs alongside each started cluster's simulated
	// kubelets in this process: what the cluster's managed side needs
	// beyond its components (its storage controllers). It returns how to
	// stop it; it is stopped before the cluster's kubelets and processes.
	Companion func(ctx context.Context, c *Cluster) (stop func(), err error)
	// Datastore, if set, keeps the objects of every new cluster that is
	// not APIOnly, each under its own prefix; nil gives each new cluster
	// an etcd of its own. Clusters already made keep where they are.
	Datastore *datastore.Store
	// Registry, if set, keeps every new cluster's record and PKI where
	// other hosts can adopt it; PortLedger, if set, hands out ports no
	// other host's cluster holds. Hosts that share a management plane set
	// both (internal/fleet).
	Registry   Registry
	PortLedger PortLedger
	// Spares is how many spare control planes KeepSpares keeps started
	// for creates to claim (see spares.go); WarmSpare, if set, runs on
	// each once its API server is ready.
	Spares    int
	WarmSpare func(ctx context.Context, c *Cluster) error
	// Advertise, if set, is the address (an IP or a DNS name) at which
	// other machines reach this host's control planes: their API servers
	// listen on every address, their certificates name it, and the
	// kubeconfigs handed out point at it. Empty keeps them on loopback.
	Advertise string
}

// Host owns the clusters in one data directory.
type Host struct {
	dataDir      string
	executable   string
	readyTimeout time.Duration
	log          io.Writer
	companion    func(ctx context.Context, c *Cluster) (stop func(), err error)
	datastore    *datastore.Store
	registry     Registry
	ledger       PortLedger
	ports        *portAllocator
	advertised   string

	mu       sync.Mutex
	clusters map[string]*Cluster
	spares
}

// New opens the data directory and loads the clusters recorded in it,
// without starting any: serve's cluster controller starts each.
func New(opts Options) (*Host, error) {
	if opts.DataDir == "" {
		return nil, errors.New("hosting: no data directory")
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("hosting: finding own executable: %w", err)
		}
		opts.Executable = exe
	}
	if opts.Ports == (PortRange{}) {
		opts.Ports = DefaultPortRange
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	h := &Host{
		dataDir:      opts.DataDir,
		executable:   opts.Executable,
		readyTimeout: opts.ReadyTimeout,
		log:          opts.Log,
		companion:    opts.Companion,
		datastore:    opts.Datastore,
		registry:     opts.Registry,
		ledger:       opts.PortLedger,
		ports:        newPortAllocator(opts.Ports),
		advertised:   opts.Advertise,
		clusters:     map[string]*Cluster{},
		spares:       spares{want: opts.Spares, warm: opts.WarmSpare, wake: make(chan struct{}, 1)},
	}
	root := h.clustersDir()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("hosting: %w", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("hosting: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		rec, err := readRecord(dir)
		if errors.Is(err, fs.ErrNotExist) {
			// Create died before writing the record: nothing was handed
			// out, so the half-made directory can go.
			os.RemoveAll(dir)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("hosting: loading cluster %s: %w", e.Name(), err)
		}
		if rec.Spare {
			// This host's own, in no registry: KeepSpares starts it
			// again, or removes it if it is no longer wanted.
			if err := h.ports.reserve(rec.store(), rec.Ports.all()...); err != nil {
				return nil, fmt.Errorf("hosting: %w", err)
			}
			h.spares.idle = append(h.spares.idle, &Cluster{host: h, dir: dir, rec: *rec})
			continue
		}
		if h.registry != nil {
			// The directory is a cache: a cluster placed here is adopted
			// from the registry, as it is now, when its controller gets
			// to it; one that ran here once and moved away must not hold
			// its ports on this host.
			continue
		}
		if err := h.ports.reserve(rec.store(), rec.Ports.all()...); err != nil {
			return nil, fmt.Errorf("hosting: %w", err)
		}
		h.clusters[rec.ID] = &Cluster{host: h, dir: dir, rec: *rec}
	}
	return h, nil
}

func (h *Host) clustersDir() string { return filepath.Join(h.dataDir, "clusters") }

// ClusterSpec describes a new cluster.
type ClusterSpec struct {
	// ID is the cluster's identifier and directory name; empty means a
	// random one. Letters, digits, '-' and '_' only.
	ID string
	// Name is the cluster's name; empty means the ID.
	Name string
	// FQDN is the API server's DNS name; empty means "<name>.slipway.local".
	FQDN string
	// APIOnly runs etcd and kube-apiserver only: a store with an API and
	// no controllers, scheduler or nodes, as Slipway's own management
	// plane needs.
	APIOnly bool
	// ServiceCIDR and PodCIDR are the cluster's networks; empty means
	// AKS's defaults (DefaultServiceCIDR, DefaultPodCIDR).
	ServiceCIDR, PodCIDR string
	// KubernetesVersion is the release to run (one of version.Releases);
	// empty means the compiled-in one.
	KubernetesVersion string
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ErrExists is returned by Create for an ID already in use.
var ErrExists = errors.New("cluster already exists")

// ErrNotFound is returned for an unknown cluster ID.
var ErrNotFound = errors.New("cluster not found")

// Create makes a new cluster (PKI, ports, data directory) and starts it,
// returning once its API server is ready. A cluster whose start fails is
// kept, stopped, so its logs can be read; Delete removes it.
func (h *Host) Create(ctx context.Context, spec ClusterSpec) (*Cluster, error) {
	if spec.ID == "" {
		spec.ID = randomID()
	}
	if !validID.MatchString(spec.ID) {
		return nil, fmt.Errorf("hosting: invalid cluster ID %q", spec.ID)
	}
	if spec.Name == "" {
		spec.Name = spec.ID
	}
	if spec.FQDN == "" {
		spec.FQDN = spec.Name + ".slipway.local"
	}
	h.mu.Lock()
	if _, ok := h.clusters[spec.ID]; ok {
		h.mu.Unlock()
		return nil, fmt.Errorf("hosting: %s: %w", spec.ID, ErrExists)
	}
	c := h.takeSpare(spec)
	fromSpare := c != nil
	if !fromSpare {
		c = &Cluster{host: h, dir: filepath.Join(h.clustersDir(), spec.ID)}
	}
	h.clusters[spec.ID] = c // claims the ID while the cluster is made
	c.op.Lock()
	defer c.op.Unlock()
	h.mu.Unlock()

	if fromSpare {
		began := time.Now()
		if err := c.claim(ctx, spec); err != nil {
			h.mu.Lock()
			delete(h.clusters, spec.ID)
			h.mu.Unlock()
			if rerr := h.removeSpare(context.WithoutCancel(ctx), c); rerr != nil {
				slog.Error("Removing a spare control plane", "spare", c.rec.store(), "err", rerr)
			}
			return nil, fmt.Errorf("hosting: creating %s from a spare control plane: %w", spec.ID, err)
		}
		if err := c.startRest(ctx); err != nil {
			return c, err
		}
		slog.Info("Control plane started from a spare", "cluster", spec.ID, "release", c.rec.release(), "spare", c.rec.Store,
			"total", time.Since(began).Round(time.Millisecond))
		return c, nil
	}

	rec, err := h.prepare(ctx, c.dir, spec, false)
	if err != nil {
		h.mu.Lock()
		delete(h.clusters, spec.ID)
		h.mu.Unlock()
		// The ledger keeps the ports of a failed attempt for the retry
		// under the same ID; Delete frees them.
		h.ports.release(spec.ID)
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("hosting: creating %s: %w", spec.ID, err)
	}
	c.rec = *rec
	if err := c.start(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// prepare writes a new cluster's PKI and then its record, which makes the
// cluster exist for a later New.
func (h *Host) prepare(ctx context.Context, dir string, spec ClusterSpec, spare bool) (*record, error) {
	// A cluster on the shared datastore needs no etcd ports and no etcd
	// certificates of its own.
	ownEtcd := h.datastore == nil || spec.APIOnly
	ports, err := h.allocatePorts(ctx, spec.ID, portCount(ownEtcd))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rec := &record{
		ID: spec.ID, Name: spec.Name, FQDN: spec.FQDN,
		Ports:       portsFrom(ports, ownEtcd),
		Created:     now.UTC(),
		Running:     true,
		APIOnly:     spec.APIOnly,
		ServiceCIDR: spec.ServiceCIDR, PodCIDR: spec.PodCIDR,
		KubernetesVersion: spec.KubernetesVersion,
		Issuer:            DefaultIssuer,
		Spare:             spare,
	}
	if _, _, err := h.command(components.APIServer, rec.release()); err != nil {
		return nil, err
	}
	serviceIP, err := rec.kubernetesServiceIP()
	if err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := ensurePKI(pkiDir, spec.FQDN, serviceIP, now, ownEtcd); err != nil {
		return nil, err
	}
	if !ownEtcd {
		cert, err := h.datastore.Admit(ctx, spec.ID)
		if err != nil {
			return nil, err
		}
		if err := pki.WriteKeyPair(pkiDir, certDatastoreClient, cert); err != nil {
			return nil, err
		}
		rec.Datastore = sharedDatastore
	}
	if err := h.share(ctx, dir, rec); err != nil {
		return nil, err
	}
	if err := writeRecord(dir, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// command is the program and leading arguments that run component of a
// Kubernetes release: slipway's own "component NAME" for etcd and the
// compiled-in release, bin/kube-<release> beside slipway ("kube-1.35.4
// NAME") for the others (see kube/main.go).
func (h *Host) command(component, release string) (string, []string, error) {
	if component == components.Etcd || version.Compiled(release) {
		return h.executable, []string{"component", component}, nil
	}
	if !slices.Contains(version.Releases, release) {
		return "", nil, fmt.Errorf("Kubernetes %s is not a release Slipway serves (%s)", release, strings.Join(version.Releases, ", "))
	}
	path := filepath.Join(filepath.Dir(h.executable), version.BinaryName(release))
	if _, err := os.Stat(path); err != nil {
		return "", nil, fmt.Errorf("Kubernetes %s runs from %s, which is missing (make build builds it): %w", release, path, err)
	}
	return path, []string{component}, nil
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "c" + hex.EncodeToString(b)
}

// Get returns the cluster with id.
func (h *Host) Get(id string) (*Cluster, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.clusters[id]
	if !ok {
		return nil, fmt.Errorf("hosting: %s: %w", id, ErrNotFound)
	}
	return c, nil
}

// List returns the clusters, ordered by ID.
func (h *Host) List() []*Cluster {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Cluster, 0, len(h.clusters))
	for _, c := range h.clusters {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rec.ID < out[j].rec.ID })
	return out
}

// Delete stops the cluster and removes its data.
func (h *Host) Delete(ctx context.Context, id string) error {
	// A cluster that ran on another host is deleted from the registry.
	c, err := h.Adopt(ctx, id)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.stop()
	// The cluster's keys go before its record: a crash in between leaves
	// a cluster that a retried Delete finds and finishes, never keys that
	// nothing refers to.
	if c.rec.Datastore == sharedDatastore {
		if h.datastore == nil {
			return fmt.Errorf("hosting: deleting %s: its objects are in the shared datastore, which this host was not given", id)
		}
		if err := h.datastore.Remove(ctx, c.rec.store()); err != nil {
			return fmt.Errorf("hosting: deleting %s: %w", id, err)
		}
	}
	// Then what other hosts could adopt; the ports go last, so no other
	// cluster is given them while anything still names them.
	if h.registry != nil {
		if err := h.registry.Delete(ctx, id); err != nil {
			return fmt.Errorf("hosting: deleting %s from the registry: %w", id, err)
		}
	}
	// The record goes first: a crash halfway leaves a directory New cleans.
	if err := os.Remove(filepath.Join(c.dir, recordFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hosting: deleting %s: %w", id, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("hosting: deleting %s: %w", id, err)
	}
	// A cluster made from a spare lives in the spare's directory, which
	// a link of the cluster's own name points at.
	if link := filepath.Join(h.clustersDir(), id); link != c.dir {
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hosting: deleting %s: %w", id, err)
		}
	}
	h.mu.Lock()
	delete(h.clusters, id)
	h.mu.Unlock()
	if err := h.releasePorts(ctx, c.rec.store()); err != nil {
		return fmt.Errorf("hosting: deleting %s: %w", id, err)
	}
	return nil
}

// Close stops every cluster's processes but keeps their desired state, so
// that the next Start over the same data directory starts them again.
func (h *Host) Close() {
	h.stopSpares()
	var wg sync.WaitGroup
	for _, c := range h.List() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.op.Lock()
			defer c.op.Unlock()
			c.stop()
		}()
	}
	wg.Wait()
}

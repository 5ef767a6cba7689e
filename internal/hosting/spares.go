package hosting

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/pki"
)

// Spare control planes take the API server's start off a create's path.
// Starting kube-apiserver is most of a create (4–5 s of 8 on this project's
// machine, most of it building the OpenAPI documents and caches before
// /readyz), and nothing in that start depends on which cluster it will be:
// the cluster's DNS name is only in the serving certificate, which the API
// server reloads when its file changes (the service-account issuer and the
// controller manager's cluster name are AKS's fixed ones). So a host keeps
// Options.Spares control planes started ahead (API server, controller
// manager, scheduler), each with its own PKI, ports and datastore prefix,
// and a create whose cluster they fit claims one: the certificate is
// issued again for the cluster's FQDN (same key), the record takes the
// cluster's ID and keeps the spare's name as its Store, and the simulated
// kubelets and the companion start. KeepSpares starts another a few
// seconds later, so that a new API server's start (seconds of both cores
// here) does not slow the create that claimed the last one.
//
// A spare fits a cluster of the release and service CIDR it was started
// with (the API server's flags): the compiled-in release and AKS's default
// network. Others take the cold path, as does every create while no spare
// is ready.
//
// A spare is this host's alone: it is in no registry, and New finds it in
// the data directory and KeepSpares starts it again. A host that is never
// started again leaves its spares' ports in the ledger and their users in
// the shared datastore (a few keys, no cluster's data).

// spares is the Host's stock of spare control planes; Host.mu guards it.
type spares struct {
	// want is how many KeepSpares keeps ready.
	want int
	// ready are started and claimable; idle were found in the data
	// directory by New and are not started yet.
	ready, idle []*Cluster
	// wake tells KeepSpares that one was claimed.
	wake chan struct{}
	// warm, if set, runs on a spare's API server once it is ready: the
	// first requests a new cluster's add-ons would otherwise pay for.
	warm func(ctx context.Context, c *Cluster) error
}

// spareRetry is how long KeepSpares waits after a spare failed to start;
// spareRefill how long after a claim before it starts another.
const (
	spareRetry  = 10 * time.Second
	spareRefill = 5 * time.Second
)

// KeepSpares keeps Options.Spares spare control planes ready until ctx
// ends, then stops them (they start again with the host).
func (h *Host) KeepSpares(ctx context.Context) {
	defer h.stopSpares()
	for {
		err := h.fillSpares(ctx)
		wait := time.Duration(0)
		if err != nil && ctx.Err() == nil {
			slog.Error("Starting a spare control plane", "err", err, "retryIn", spareRetry)
			wait = spareRetry
		}
		var retry <-chan time.Time
		if wait > 0 {
			retry = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-h.spares.wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(spareRefill):
			}
		case <-retry:
		}
	}
}

// fillSpares starts spares until want are ready, reusing those New found,
// and removes found ones beyond want.
func (h *Host) fillSpares(ctx context.Context) error {
	for ctx.Err() == nil {
		h.mu.Lock()
		need := h.spares.want - len(h.spares.ready)
		var c *Cluster
		if n := len(h.spares.idle); n > 0 {
			c, h.spares.idle = h.spares.idle[n-1], h.spares.idle[:n-1]
		}
		h.mu.Unlock()
		switch {
		case need <= 0 && c == nil:
			return nil
		case need <= 0:
			if err := h.destroySpare(ctx, c); err != nil {
				return err
			}
			continue
		case c == nil:
			var err error
			if c, err = h.prepareSpare(ctx); err != nil {
				return err
			}
		}
		began := time.Now()
		if err := h.startSpare(ctx, c); err != nil {
			// Removed, not kept: a spare holds nothing of anyone's.
			if derr := h.destroySpare(context.WithoutCancel(ctx), c); derr != nil {
				slog.Error("Removing a spare control plane", "spare", c.rec.ID, "err", derr)
			}
			return err
		}
		slog.Info("Spare control plane ready", "spare", c.rec.ID, "took", time.Since(began).Round(time.Millisecond))
		h.mu.Lock()
		h.spares.ready = append(h.spares.ready, c)
		h.mu.Unlock()
	}
	return ctx.Err()
}

// prepareSpare makes a new spare's PKI, ports and record.
func (h *Host) prepareSpare(ctx context.Context) (*Cluster, error) {
	id := "spare-" + randomID()
	c := &Cluster{host: h, dir: filepath.Join(h.clustersDir(), id)}
	rec, err := h.prepare(ctx, c.dir, ClusterSpec{ID: id, Name: id, FQDN: id + ".slipway.local"}, true)
	if err != nil {
		h.ports.release(id)
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("hosting: preparing spare %s: %w", id, err)
	}
	c.rec = *rec
	return c, nil
}

// startSpare starts a spare's servers and warms them.
func (h *Host) startSpare(ctx context.Context, c *Cluster) error {
	c.op.Lock()
	defer c.op.Unlock()
	if err := c.startServers(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	bind := c.apiBind
	c.mu.Unlock()
	if err := c.launchAll(launches(&c.rec, c.dir, h.datastore, bind), func(l launch) bool { return !isServer(l) }); err != nil {
		c.stop()
		return err
	}
	if h.spares.warm == nil {
		return nil
	}
	if err := h.spares.warm(ctx, c); err != nil {
		c.stop()
		return fmt.Errorf("hosting: warming spare %s: %w", c.rec.ID, err)
	}
	return nil
}

// destroySpare stops a spare and removes all it holds.
func (h *Host) destroySpare(ctx context.Context, c *Cluster) error {
	c.op.Lock()
	defer c.op.Unlock()
	return h.removeSpare(ctx, c)
}

// removeSpare is destroySpare with c.op held.
func (h *Host) removeSpare(ctx context.Context, c *Cluster) error {
	c.stop()
	store := c.rec.store()
	if c.rec.Datastore == sharedDatastore && h.datastore != nil {
		if err := h.datastore.Remove(ctx, store); err != nil {
			return fmt.Errorf("hosting: removing spare %s: %w", store, err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("hosting: removing spare %s: %w", store, err)
	}
	return h.releasePorts(ctx, store)
}

// stopSpares stops the ready spares' processes; they stay in the data
// directory, and New finds them.
func (h *Host) stopSpares() {
	h.mu.Lock()
	ready := h.spares.ready
	h.spares.ready = nil
	h.spares.idle = append(h.spares.idle, ready...)
	h.mu.Unlock()
	for _, c := range ready {
		c.op.Lock()
		c.stop()
		c.op.Unlock()
	}
}

// takeSpare removes from the ready spares one that fits spec, or returns
// nil. h.mu is held.
func (h *Host) takeSpare(spec ClusterSpec) *Cluster {
	if spec.APIOnly {
		return nil
	}
	want := record{KubernetesVersion: spec.KubernetesVersion, ServiceCIDR: spec.ServiceCIDR}
	for i, c := range h.spares.ready {
		if c.rec.release() == want.release() && c.rec.serviceCIDR() == want.serviceCIDR() && c.Running() {
			h.spares.ready = append(h.spares.ready[:i:i], h.spares.ready[i+1:]...)
			select {
			case h.spares.wake <- struct{}{}:
			default:
			}
			return c
		}
	}
	return nil
}

// claim makes spare c the cluster spec: its serving certificate names the
// cluster's FQDN and its record takes the cluster's ID, in the data
// directory first, then in the registry, so a crash in between leaves at
// worst a spare's worth of ports and a prefix of bootstrap objects that no
// one uses, never a cluster that two records claim. The caller starts the
// rest of its control plane. c.op is held.
func (c *Cluster) claim(ctx context.Context, spec ClusterSpec) error {
	began := time.Now()
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	rec.Store = rec.store()
	rec.ID, rec.Name, rec.FQDN, rec.PodCIDR = spec.ID, spec.Name, spec.FQDN, spec.PodCIDR
	rec.Created, rec.Spare = began.UTC(), false

	pkiDir := c.pkiDir()
	ca, err := pki.LoadKeyPair(pkiDir, certCA)
	if err != nil {
		return err
	}
	serviceIP, err := rec.kubernetesServiceIP()
	if err != nil {
		return err
	}
	serving := apiServerSpec(rec.FQDN, serviceIP)
	if rec.Address != "" {
		serving = serving.WithHost(rec.Address)
	}
	if _, err := pki.EnsureHost(pkiDir, certAPIServer, ca, serving, rec.FQDN, began); err != nil {
		return fmt.Errorf("naming %s in the API server's certificate: %w", rec.FQDN, err)
	}
	if err := writeRecord(c.dir, &rec); err != nil {
		return err
	}
	if err := c.host.share(ctx, c.dir, &rec); err != nil {
		return err
	}
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
	// The kubeconfigs the spare's components were given named the spare.
	if err := c.writeComponentKubeconfigs(); err != nil {
		return err
	}
	// The cluster's logs are under clusters/<its ID> as for any other.
	link := filepath.Join(c.host.clustersDir(), rec.ID)
	if err := os.Symlink(filepath.Base(c.dir), link); err != nil && !errors.Is(err, fs.ErrExist) {
		slog.Warn("Linking a claimed spare's directory", "cluster", rec.ID, "err", err)
	}
	return nil
}

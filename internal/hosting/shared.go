package hosting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// Registry keeps, outside any one host, what a control plane needs to start
// anywhere: its record and its PKI (its objects are in the shared
// datastore). With one, a host's data directory is a cache of the registry
// plus the logs of what ran there, and a cluster moves to another host by
// being adopted there (Host.Adopt). internal/fleet keeps it in the
// management plane.
type Registry interface {
	// Put replaces what is kept of cluster id.
	Put(ctx context.Context, id string, files map[string][]byte) error
	// Get returns what Put kept, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (map[string][]byte, error)
	// Delete forgets cluster id; forgetting an unknown one is no error.
	Delete(ctx context.Context, id string) error
}

// PortLedger hands out ports across hosts, so that a cluster keeps its
// ports (its kubeconfigs' endpoint) wherever it runs: a port is the
// cluster's, not the host's.
type PortLedger interface {
	// Claim returns n ports of r for owner that no other owner holds and
	// for which usable is true; an owner that already holds n gets those.
	Claim(ctx context.Context, owner string, n int, r PortRange, usable func(int) bool) ([]int, error)
	// Release frees every port owner holds.
	Release(ctx context.Context, owner string) error
}

// The registry's names: the record, and each PKI file under a prefix
// (flat, as Secret keys must be).
const (
	sharedRecordKey = recordFile
	sharedPKIPrefix = "pki."
)

// share puts the cluster's record and PKI into the registry, if there is
// one and the cluster is not an unclaimed spare (which is this host's
// alone). It is called before the local record is written, so a cluster the
// data directory knows is always one the registry knows.
func (h *Host) share(ctx context.Context, dir string, rec *record) error {
	if h.registry == nil || rec.Spare {
		return nil
	}
	files, err := snapshot(dir, rec)
	if err != nil {
		return err
	}
	if err := h.registry.Put(ctx, rec.ID, files); err != nil {
		return fmt.Errorf("keeping cluster %s in the registry: %w", rec.ID, err)
	}
	return nil
}

// snapshot reads the files the registry keeps of a cluster.
func snapshot(dir string, rec *record) (map[string][]byte, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{sharedRecordKey: data}
	entries, err := os.ReadDir(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "pki", e.Name()))
		if err != nil {
			return nil, err
		}
		files[sharedPKIPrefix+e.Name()] = b
	}
	return files, nil
}

// materialize writes a cluster kept in the registry into dir: the PKI
// first, the record last, so that a crash in between leaves a directory
// New cleans away.
func materialize(dir string, files map[string][]byte) (*record, error) {
	var rec record
	if err := json.Unmarshal(files[sharedRecordKey], &rec); err != nil {
		return nil, fmt.Errorf("the registry's record: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		return nil, err
	}
	for name, data := range files {
		base, ok := strings.CutPrefix(name, sharedPKIPrefix)
		if !ok {
			continue
		}
		if base != filepath.Base(base) || base == "." || base == ".." {
			return nil, fmt.Errorf("the registry names a PKI file %q outside the PKI directory", name)
		}
		if err := atomicfile.Write(filepath.Join(dir, "pki", base), data, 0o600); err != nil {
			return nil, err
		}
	}
	if err := writeRecord(dir, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Adopt returns the cluster with id ready to start on this host: as kept
// in the registry (its record and PKI written over any stale copy in the
// data directory), unless it runs here already. Without a registry it is
// Get. Clusters the registry does not know but the data directory does
// (made before there was one) are returned as they are.
func (h *Host) Adopt(ctx context.Context, id string) (*Cluster, error) {
	local, err := h.Get(id)
	if h.registry == nil || (err == nil && local.Running()) {
		return local, err
	}
	files, err := h.registry.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return h.Get(id)
	}
	if err != nil {
		return nil, fmt.Errorf("hosting: adopting %s: %w", id, err)
	}
	h.mu.Lock()
	c, ok := h.clusters[id]
	if !ok {
		c = &Cluster{host: h, dir: filepath.Join(h.clustersDir(), id)}
		h.clusters[id] = c
	}
	h.mu.Unlock()
	c.op.Lock()
	defer c.op.Unlock()
	if c.Running() {
		return c, nil
	}
	rec, err := materialize(c.dir, files)
	if err == nil {
		err = h.ports.reserve(rec.store(), rec.Ports.all()...)
	}
	if err != nil {
		if !ok {
			h.mu.Lock()
			delete(h.clusters, id)
			h.mu.Unlock()
		}
		return nil, fmt.Errorf("hosting: adopting %s: %w", id, err)
	}
	c.mu.Lock()
	c.rec = *rec
	c.mu.Unlock()
	return c, nil
}

// Release stops the cluster's processes here and forgets it, without
// touching its desired state or anything shared: the cluster has moved to
// another host. Its directory stays, with the logs of its time here.
func (h *Host) Release(id string) {
	c, err := h.Get(id)
	if err != nil {
		return
	}
	c.op.Lock()
	c.stop()
	c.op.Unlock()
	h.mu.Lock()
	delete(h.clusters, id)
	h.mu.Unlock()
	h.ports.release(c.rec.store())
}

// Kubeconfig returns a kubeconfig of cluster id for cred, wherever it runs:
// from the data directory if it is here, else from the registry.
func (h *Host) Kubeconfig(ctx context.Context, id string, cred Credential, names KubeconfigNames) ([]byte, error) {
	if c, err := h.Get(id); err == nil || h.registry == nil {
		if err != nil {
			return nil, err
		}
		return c.Kubeconfig(cred, names)
	}
	files, err := h.registry.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("hosting: %s: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(files[sharedRecordKey], &rec); err != nil {
		return nil, fmt.Errorf("hosting: %s: the registry's record: %w", id, err)
	}
	read := func(name string) ([]byte, error) {
		data, ok := files[sharedPKIPrefix+name]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return data, nil
	}
	return buildKubeconfig(read, rec.served(), &rec, cred, names)
}

// allocatePorts reserves a new cluster's ports: from the ledger when the
// hosts share one, else from this host's own allocator.
func (h *Host) allocatePorts(ctx context.Context, id string, n int) ([]int, error) {
	if h.ledger == nil {
		return h.ports.allocate(id, n)
	}
	ports, err := h.ledger.Claim(ctx, id, n, h.ports.rng, bindable)
	if err != nil {
		return nil, err
	}
	if err := h.ports.reserve(id, ports...); err != nil {
		return nil, err
	}
	return ports, nil
}

// releasePorts frees a deleted cluster's ports, in the ledger too.
func (h *Host) releasePorts(ctx context.Context, id string) error {
	h.ports.release(id)
	if h.ledger == nil {
		return nil
	}
	return h.ledger.Release(ctx, id)
}

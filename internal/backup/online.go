package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/datastore"
)

// Source is what a running Slipway gives an online backup.
type Source struct {
	// Etcds are the running etcds of the data directory, in the order
	// they are read: the management plane's before the datastore's (see
	// Online for why).
	Etcds []datastore.Member
	// Freeze holds back every change that spans stores (a cluster's
	// datastore user and keys made or removed, with the records that name
	// them) until thaw is called.
	Freeze func() (thaw func())
}

// Snapshot is an etcd of an online backup, archived as a snapshot file
// beside its data directory Dir (Dir + snapshotSuffix) rather than as the
// directory; Restore makes Dir from it.
type Snapshot struct {
	Dir     string `json:"dir"`
	PeerURL string `json:"peerURL"`
}

// formatOnline is the format of a backup with snapshots in it; Restore
// reads both.
const formatOnline = 2

// snapshotSuffix names an etcd's snapshot beside its data directory.
const snapshotSuffix = ".snapshot.db"

// Online backs up dataDir while Slipway serves over it.
//
// The stores are not of one instant, as an offline backup's are: each etcd
// is read at a revision of its own, the management plane's first. What
// makes them agree is the order and the freeze. Slipway records what it
// is about to do to a cluster in the management plane before it does it in
// the datastore, and while frozen it neither admits a cluster to the
// datastore nor removes one. So nothing in the datastore copy is done on
// the strength of a decision the management copy has not seen, except a
// cluster's own objects written in between, which the cluster owns alone
// (its API server writes them; Slipway reconciles to whatever it finds).
// The files (records, PKI) are read within the same freeze. Restored, the
// directory is what a crash at the moment of the management snapshot would
// have left, and serve resumes from it as it resumes from a crash.
//
// An etcd of the directory that is not running (a stopped cluster's own)
// is archived as its files, under its database's lock, as Backup does.
func Online(ctx context.Context, dataDir string, out io.Writer, src Source, o Options) (*Manifest, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	found, err := findEtcds(dataDir)
	if err != nil {
		return nil, err
	}
	running := map[string]datastore.Member{}
	for _, e := range src.Etcds {
		rel, err := filepath.Rel(dataDir, e.Dir)
		if err != nil || !filepath.IsLocal(rel) {
			return nil, fmt.Errorf("backup: etcd %s is not in %s", e.Dir, dataDir)
		}
		running[rel] = e
	}
	staging, err := os.MkdirTemp("", "slipway-backup-")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(staging)

	m := &Manifest{Format: formatOnline, Created: time.Now().UTC(), Slipway: o.Slipway, Kubernetes: o.Kubernetes}
	var files []staged
	err = func() error {
		thaw := src.Freeze()
		defer thaw()
		// A stopped etcd's files are read with the rest, under its
		// database's lock, so that it cannot start meanwhile.
		for _, e := range found {
			if _, ok := running[e]; ok {
				continue
			}
			unlock, err := lockDB(filepath.Join(dataDir, e))
			if errors.Is(err, ErrRunning) {
				return fmt.Errorf("backup: the etcd in %s runs, but serve did not name it", e)
			}
			if err != nil {
				return err
			}
			defer unlock()
		}
		// Snapshots in the source's order: the management plane's first.
		for i, e := range src.Etcds {
			rel, _ := filepath.Rel(dataDir, e.Dir)
			path := filepath.Join(staging, fmt.Sprintf("%d.db", i))
			if err := e.Save(ctx, path); err != nil {
				return fmt.Errorf("backup: snapshot of the etcd in %s: %w", rel, err)
			}
			info, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			m.Snapshots = append(m.Snapshots, Snapshot{Dir: filepath.ToSlash(rel), PeerURL: e.PeerURL})
			files = append(files, staged{name: rel + snapshotSuffix, mode: 0o600, mod: info.ModTime(), size: info.Size(), from: path})
		}
		m.Etcds = found
		// The rest of the directory is small (PKI, records, kubeconfigs)
		// and read into memory, so the freeze ends before the archive is
		// written.
		rest, err := collect(dataDir, func(rel string) bool {
			_, ok := running[rel]
			return ok
		}, true)
		if err != nil {
			return err
		}
		files = append(rest, files...)
		return nil
	}()
	if err != nil {
		return nil, err
	}
	if err := writeArchive(out, m, files); err != nil {
		return nil, err
	}
	return m, nil
}

// restoreSnapshots makes each snapshot's etcd data directory
// (datastore.RestoreMember) and removes the snapshot.
func restoreSnapshots(dataDir string, snaps []Snapshot) error {
	for _, s := range snaps {
		dir, err := within(dataDir, s.Dir)
		if err != nil {
			return err
		}
		if s.PeerURL == "" {
			return fmt.Errorf("restore: the snapshot of %s names no peer URL", s.Dir)
		}
		file := dir + snapshotSuffix
		if err := datastore.RestoreMember(file, dir, s.PeerURL); err != nil {
			return fmt.Errorf("restore: the etcd of %s from its snapshot: %w", s.Dir, err)
		}
		if err := os.Remove(file); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	return nil
}

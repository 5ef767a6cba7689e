// Package backup copies a Slipway data directory into one file and back:
// the management plane's etcd, the clusters' shared datastore, the etcd of
// each cluster made before the datastore was shared, and the PKI, keys and
// records that go with them.
//
// Backup reads a stopped Slipway's directory. Each etcd's database then is
// a snapshot as `etcdctl snapshot save` would write it, and all of them,
// with the files, are of one moment: a cluster's ManagedCluster, its record
// and certificates, and its keys in the datastore agree. Backup refuses
// while any etcd of the directory holds its database.
//
// Online reads a running one, through the running serve (which alone can
// hold back its own changes): each etcd through its snapshot API, in an
// order and under a freeze that make the copies agree as a crash would
// leave them (see Online).
package backup

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// manifestName is the archive's first entry.
const manifestName = "slipway-backup.json"

// Manifest says what a backup holds.
type Manifest struct {
	Format     int       `json:"format"`
	Created    time.Time `json:"created"`
	Slipway    string    `json:"slipway"`
	Kubernetes string    `json:"kubernetes"`
	// Etcds are the etcd data directories in the backup, relative to the
	// data directory.
	Etcds []string `json:"etcds"`
	// Snapshots are the etcds an online backup read through their client
	// API (format 2); the others in Etcds are archived as their files.
	Snapshots []Snapshot `json:"snapshots,omitempty"`
	Files     int        `json:"files"`
	Bytes     int64      `json:"bytes"`
}

// ErrRunning is returned by Backup while Slipway runs over the directory;
// Online backs it up then.
var ErrRunning = errors.New("slipway serve is running over this data directory")

// Options name the versions recorded in the manifest.
type Options struct {
	Slipway, Kubernetes string
}

// Backup writes dataDir into out (gzip-compressed tar). It holds every
// etcd database's lock while it reads, so Slipway cannot start under it.
func Backup(dataDir string, out io.Writer, o Options) (*Manifest, error) {
	etcds, err := findEtcds(dataDir)
	if err != nil {
		return nil, err
	}
	if len(etcds) == 0 {
		return nil, fmt.Errorf("backup: no etcd in %s: not a Slipway data directory", dataDir)
	}
	for _, e := range etcds {
		unlock, err := lockDB(filepath.Join(dataDir, e))
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	m := &Manifest{Format: 1, Created: time.Now().UTC(), Slipway: o.Slipway, Kubernetes: o.Kubernetes, Etcds: etcds}
	files, err := collect(dataDir, func(string) bool { return false }, false)
	if err != nil {
		return nil, err
	}
	if err := writeArchive(out, m, files); err != nil {
		return nil, err
	}
	return m, nil
}

// skipped leaves out what a restored Slipway does not need: logs (they
// are big and tell of the past) and the API servers' audit logs with them.
func skipped(rel string, d fs.DirEntry) bool {
	if d.IsDir() {
		return d.Name() == "logs"
	}
	n := d.Name()
	return strings.HasSuffix(n, ".log") || strings.Contains(n, ".log.")
}

// findEtcds lists the etcd data directories under dataDir: the management
// plane's, the shared datastore's and those of clusters with an etcd of
// their own.
func findEtcds(dataDir string) ([]string, error) {
	var out []string
	for _, pattern := range []string{
		filepath.Join("management", "clusters", "*", "etcd"),
		filepath.Join("datastore", "etcd"),
		filepath.Join("clusters", "*", "etcd"),
	} {
		matches, err := filepath.Glob(filepath.Join(dataDir, pattern))
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			if _, err := os.Stat(filepath.Join(m, dbPath)); err == nil {
				rel, _ := filepath.Rel(dataDir, m)
				out = append(out, rel)
			}
		}
	}
	return out, nil
}

// dbPath is etcd's database under its data directory.
var dbPath = filepath.Join("member", "snap", "db")

// lockDB takes the lock etcd's database (bbolt) holds while etcd runs, so
// that it is not running and cannot start while the backup reads it.
func lockDB(etcdDir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(etcdDir, dbPath), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("backup: the etcd in %s is running: %w", etcdDir, ErrRunning)
		}
		return nil, fmt.Errorf("backup: locking %s: %w", etcdDir, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Restore writes a backup into dataDir, which must not exist or be empty:
// a restore never mixes with what is there. Slipway then starts over it as
// it was when the backup was taken, on the same ports.
func Restore(in io.Reader, dataDir string) (*Manifest, error) {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("restore: %s is not empty", dataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	gz, err := gzip.NewReader(in)
	if err != nil {
		return nil, fmt.Errorf("restore: not a Slipway backup: %w", err)
	}
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != manifestName {
		return nil, errors.New("restore: not a Slipway backup: no manifest first")
	}
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("restore: reading the manifest: %w", err)
	}
	if m.Format != 1 && m.Format != formatOnline {
		return nil, fmt.Errorf("restore: backup format %d, this Slipway reads formats 1 and %d", m.Format, formatOnline)
	}
	files := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		target, err := within(dataDir, hdr.Name)
		if err != nil {
			return nil, err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
		case tar.TypeReg:
			if err := writeFile(target, tr, mode, hdr.Size); err != nil {
				return nil, fmt.Errorf("restore: %s: %w", hdr.Name, err)
			}
			files++
		default:
			return nil, fmt.Errorf("restore: %s: unexpected entry type %c", hdr.Name, hdr.Typeflag)
		}
	}
	if files != m.Files {
		return nil, fmt.Errorf("restore: %d files in the backup, its manifest says %d: the file is cut short", files, m.Files)
	}
	if err := restoreSnapshots(dataDir, m.Snapshots); err != nil {
		return nil, err
	}
	for _, e := range m.Etcds {
		if _, err := os.Stat(filepath.Join(dataDir, e, dbPath)); err != nil {
			return nil, fmt.Errorf("restore: the etcd of %s is missing from the backup", e)
		}
	}
	return &m, nil
}

// within resolves an archive name under dir, refusing any that would land
// outside it.
func within(dir, name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || strings.Contains(name, "..") || path.IsAbs(name) {
		return "", fmt.Errorf("restore: refusing entry %q", name)
	}
	return filepath.Join(dir, filepath.FromSlash(clean[1:])), nil
}

func writeFile(target string, r io.Reader, mode fs.FileMode, size int64) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

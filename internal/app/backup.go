package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/backup"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/version"
)

// BackupSocket is where a running serve takes online backups of its data
// directory (`slipway backup` while it runs): a Unix socket in the
// directory, which only the directory's owner may reach (the directory is
// 0700, the socket 0600). Only serve can take one: it alone can hold back
// its own changes while the stores are read (backup.Online).
const BackupSocket = "backup.sock"

// manifestHeader carries the backup's manifest with its bytes.
const manifestHeader = "Slipway-Backup-Manifest"

// localEtcds are the etcds serve runs over its data directory, for online
// backups and defragmentation: the management plane's first.
type localEtcds struct {
	plane interface {
		Members() ([]datastore.Member, error)
	}
	store *datastore.Store
	// hosted lists the running own etcds of clusters (nil for a
	// management serve, which hosts none).
	hosted func() ([]datastore.Member, error)
}

func (b localEtcds) members() ([]datastore.Member, error) {
	members, err := b.plane.Members()
	if err != nil {
		return nil, err
	}
	if m, ok := b.store.Member(); ok {
		members = append(members, m)
	}
	if b.hosted != nil {
		own, err := b.hosted()
		if err != nil {
			return nil, err
		}
		members = append(members, own...)
	}
	return members, nil
}

// source is what an online backup reads, with the datastore's freeze.
func (b localEtcds) source() (backup.Source, error) {
	members, err := b.members()
	if err != nil {
		return backup.Source{}, err
	}
	if len(members) == 0 {
		return backup.Source{}, errors.New("this serve runs no store of its own: its clusters are in the management plane and datastore it joined; back up the data directory of the serve that runs them (slipway management serve)")
	}
	return backup.Source{Etcds: members, Freeze: b.store.Freeze}, nil
}

// serveBackups answers online backups on the data directory's socket until
// stop is called. Without the socket (a data directory whose path is
// longer than a socket's may be, 107 bytes) serve runs on, and says that
// `slipway backup` needs it stopped.
func serveBackups(dataDir string, src localEtcds) (stop func()) {
	stop, err := listenBackups(dataDir, src)
	if err != nil {
		slog.Warn("Online backups are off; stop serve to back up", "err", err)
		return func() {}
	}
	return stop
}

func listenBackups(dataDir string, src localEtcds) (stop func(), err error) {
	path := filepath.Join(dataDir, BackupSocket)
	// A socket left by a serve that was killed: this serve owns the
	// directory now (its etcds hold their databases' locks).
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("backup socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("backup socket: %w", err)
	}
	var one sync.Mutex // one backup at a time
	mux := http.NewServeMux()
	mux.HandleFunc("POST /backup", func(w http.ResponseWriter, r *http.Request) {
		one.Lock()
		defer one.Unlock()
		began := time.Now()
		s, err := src.source()
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		// The archive is written whole before it is sent, so that a
		// failure is reported as one rather than as a cut-short file,
		// and a slow reader does not hold the freeze.
		f, err := os.CreateTemp("", "slipway-backup-*.tgz")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		m, err := backup.Online(r.Context(), dataDir, f, s, backup.Options{Slipway: version.Version, Kubernetes: version.Kubernetes})
		if err != nil {
			slog.Error("Online backup failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		size, err := f.Seek(0, io.SeekCurrent)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		manifest, merr := json.Marshal(m)
		if err = errors.Join(err, merr); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		slog.Info("Online backup taken", "etcds", len(m.Etcds), "files", m.Files, "bytes", size, "took", time.Since(began).Round(time.Millisecond))
		w.Header().Set(manifestHeader, string(manifest))
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, f)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return func() { srv.Close() }, nil
}

// OnlineBackup asks the serve running over dataDir for a backup and writes
// it to out.
func OnlineBackup(ctx context.Context, dataDir string, out io.Writer) (*backup.Manifest, error) {
	path := filepath.Join(dataDir, BackupSocket)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://serve/backup", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w, and it does not answer online backups at %s (%v): stop it, then back up", backup.ErrRunning, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("online backup: %s", bytes.TrimSpace(msg))
	}
	var m backup.Manifest
	if err := json.Unmarshal([]byte(resp.Header.Get(manifestHeader)), &m); err != nil {
		return nil, fmt.Errorf("online backup: reading its manifest: %w", err)
	}
	n, err := io.Copy(out, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("online backup: %w", err)
	}
	return &m, nil
}

package hosting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Component logs (clusters/<id>/logs/<component>.log) rotate by size. The
// components write to the file directly (it is their stdout, opened
// O_APPEND), so serve stays out of the path of their output; rotation is a
// copy and a truncate, as logrotate's copytruncate: what a component writes
// between the two is lost, a few lines at most at 20 MB. The API server's
// audit log and its backups rotate themselves (auditLogMaxMB).
const (
	componentLogMaxBytes = 20 << 20
	componentLogBackups  = 2
)

// RotateLogsEvery rotates the logs every interval until ctx ends.
func (h *Host) RotateLogsEvery(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := h.RotateLogs(); err != nil {
				slog.Warn("Rotating component logs", "err", err)
			}
		}
	}
}

// RotateLogs rotates every cluster's component logs, and the shared
// datastore's, that have grown past their limit.
func (h *Host) RotateLogs() error {
	var errs []error
	if h.datastore != nil {
		if err := rotateLogs(h.datastore.LogDir(), componentLogMaxBytes, componentLogBackups); err != nil {
			errs = append(errs, fmt.Errorf("datastore: %w", err))
		}
	}
	for _, c := range h.List() {
		if err := rotateLogs(filepath.Join(c.dir, "logs"), componentLogMaxBytes, componentLogBackups); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// rotateLogs rotates each *.log in dir larger than max: <name>.log.1 becomes
// .2 and so on up to backups, the log is copied to .1, then truncated.
func rotateLogs(dir string, max int64, backups int) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".log") || strings.HasPrefix(e.Name(), "audit") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() <= max {
			continue
		}
		if err := rotate(filepath.Join(dir, e.Name()), backups); err != nil {
			return err
		}
	}
	return nil
}

func rotate(path string, backups int) error {
	for i := backups - 1; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	src, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return src.Truncate(0)
}

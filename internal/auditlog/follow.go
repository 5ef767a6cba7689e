// Package auditlog follows a kube-apiserver's JSON audit log as the API
// server writes and rotates it, as `tail -F` would, and hands over each
// audit event. The API server writes the log alone (its log backend,
// rotated by size: the file is renamed to <name>-<time><ext> and a new
// one opened), so a reader that is slow or down never holds a request.
package auditlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Follow reads the audit log at path, and first the rotated files beside
// it (oldest first), calling fn with each event whose completion is after
// since; then it waits for more, polling every interval, and follows the
// log across rotations until ctx ends. A line that is not an event is
// skipped. A missing log is waited for.
func Follow(ctx context.Context, path string, since time.Time, interval time.Duration, fn func(*auditv1.Event)) error {
	r := &reader{since: since, fn: fn}
	for _, old := range rotated(path) {
		if err := r.readFile(old); err != nil {
			return err
		}
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("audit log: %w", err)
			}
			r.pending = nil
		}
		if f != nil {
			if err := r.read(f); err != nil {
				return err
			}
			// Read to the end of the file the API server has renamed
			// away (done just above), then turn to its new one.
			if !same(f, path) {
				f.Close()
				f = nil
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// reader turns lines into events; pending holds a line the API server has
// not finished writing.
type reader struct {
	since   time.Time
	fn      func(*auditv1.Event)
	pending []byte
}

func (r *reader) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	r.pending = nil
	return r.read(f)
}

// read hands over every complete line from the file's offset to its end.
func (r *reader) read(f *os.File) error {
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				r.pending = append(r.pending, line...)
			} else {
				if len(r.pending) > 0 {
					line = append(r.pending, line...)
					r.pending = nil
				}
				r.line(line)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit log %s: %w", f.Name(), err)
		}
	}
}

func (r *reader) line(line []byte) {
	ev := &auditv1.Event{}
	if err := json.Unmarshal(line, ev); err != nil {
		return
	}
	if !ev.StageTimestamp.Time.After(r.since) {
		return
	}
	r.fn(ev)
}

// rotated are the log's rotated files, oldest first: their names end in
// the time of the rotation.
func rotated(path string) []string {
	ext := filepath.Ext(path)
	matches, _ := filepath.Glob(strings.TrimSuffix(path, ext) + "-*" + ext)
	slices.Sort(matches)
	return matches
}

// same says whether the open file is still the one at path.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		// Renamed away and the new one not made yet: stay on the old
		// one, which may still be written.
		return true
	}
	return os.SameFile(a, b)
}

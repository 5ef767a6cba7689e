// Package plugin holds what the Azure Disk and Azure Files CSI drivers
// share: the node service over a table of what is staged and
// published on its node, class parameters and capability answers. A
// simulated VM has no device to format or share
// to mount: the drivers record the CO's stage and publish calls here and
// make and remove the target paths the CO asks for, so the node services
// answer as the real ones do (idempotent calls, ALREADY_EXISTS for a
// conflicting stage, NOT_FOUND for stats of a path not mounted).
package plugin

import (
	"fmt"
	"os"
	"sync"
)

// Table is the stage and publish state of one node.
type Table struct {
	mu        sync.Mutex
	staged    map[string]string          // volume ID -> staging path
	published map[string]map[string]bool // volume ID -> target paths
}

// New returns an empty table.
func New() *Table {
	return &Table{staged: map[string]string{}, published: map[string]map[string]bool{}}
}

// ErrStagedElsewhere says a volume is staged at another path.
type ErrStagedElsewhere struct{ Volume, Path string }

func (e *ErrStagedElsewhere) Error() string {
	return fmt.Sprintf("volume %s is staged at %s already", e.Volume, e.Path)
}

// Stage records a volume as staged at path.
func (t *Table) Stage(volume, path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.staged[volume]; ok && prev != path {
		return &ErrStagedElsewhere{Volume: volume, Path: prev}
	}
	t.staged[volume] = path
	return nil
}

// Unstage forgets a volume's staging.
func (t *Table) Unstage(volume string) {
	t.mu.Lock()
	delete(t.staged, volume)
	t.mu.Unlock()
}

// Publish makes target and records the volume as published there.
func (t *Table) Publish(volume, target string) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("making target path: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.published[volume] == nil {
		t.published[volume] = map[string]bool{}
	}
	t.published[volume][target] = true
	return nil
}

// Unpublish removes target and forgets it.
func (t *Table) Unpublish(volume, target string) error {
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("removing target path: %w", err)
	}
	t.mu.Lock()
	delete(t.published[volume], target)
	t.mu.Unlock()
	return nil
}

// Mounted says whether the volume is staged or published at path.
func (t *Table) Mounted(volume, path string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.published[volume][path] || t.staged[volume] == path
}

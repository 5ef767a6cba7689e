package datastore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defragmentation gives back the disk that etcd's compaction frees. A
// compaction frees the pages of deleted and old revisions inside the
// database file, which etcd reuses but never returns: a datastore that
// held many clusters for a while keeps its largest size for good (200
// clusters created and deleted one after another took the shared etcd's
// database from 16 to 144 MiB, `make bench-churn`). A defragmentation
// rewrites the file with only what is live.
//
// It stops the member's reads and writes while it runs, which on the
// shared datastore is every cluster's API server, for as long as it takes
// to copy the live data. So it runs only when that is the smaller part
// (more free than in use) and there is something to gain (at least
// defragFreeMin free); a database of that kind is rewritten in well under
// a second. The check is one status call per etcd, every
// defragEvery: etcd compacts every ten minutes, and a check soon after
// gives the disk back soon after.
const (
	defragEvery   = time.Minute
	defragFreeMin = 32 << 20
)

// worthDefragmenting says whether a database of size bytes, inUse of them
// live, is worth the stall.
func worthDefragmenting(size, inUse int64) bool {
	free := size - inUse
	return free >= defragFreeMin && free > inUse
}

// KeepDefragmented checks the etcds members lists every defragEvery until
// ctx ends, and defragments each that is worth it.
func KeepDefragmented(ctx context.Context, members func() ([]Member, error)) {
	t := time.NewTicker(defragEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ms, err := members()
		if err != nil {
			slog.Warn("Listing etcds to defragment", "err", err)
			continue
		}
		for _, m := range ms {
			if _, _, err := Defragment(ctx, m); err != nil {
				slog.Warn("Defragmenting etcd", "dir", m.Dir, "err", err)
			}
		}
	}
}

// Defragment defragments m if it is worth it, and returns its database's
// size before and after; after is before if it was left alone.
func Defragment(ctx context.Context, m Member) (before, after int64, err error) {
	cfg := m.Client
	cfg.Context = ctx
	c, err := clientv3.New(cfg)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	endpoint := cfg.Endpoints[0]
	st, err := c.Status(ctx, endpoint)
	if err != nil {
		return 0, 0, fmt.Errorf("status: %w", err)
	}
	before = st.DbSize
	if !worthDefragmenting(st.DbSize, st.DbSizeInUse) {
		return before, before, nil
	}
	began := time.Now()
	if _, err := c.Defragment(ctx, endpoint); err != nil {
		return before, before, fmt.Errorf("defragment: %w", err)
	}
	if st, err = c.Status(ctx, endpoint); err != nil {
		return before, before, fmt.Errorf("status: %w", err)
	}
	slog.Info("Defragmented etcd", "dir", m.Dir, "before", before, "after", st.DbSize, "inUse", st.DbSizeInUse,
		"took", time.Since(began).Round(time.Millisecond))
	return before, st.DbSize, nil
}

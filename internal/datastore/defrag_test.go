package datastore

import (
	"context"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/slipway-dev/slipway/internal/testenv"
)

func TestWorthDefragmenting(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		size, inUse int64
		want        bool
	}{
		{100 * mib, 4 * mib, true},    // a churned datastore
		{30 * mib, 2 * mib, false},    // little to gain
		{300 * mib, 200 * mib, false}, // mostly live
		{200 * mib, 90 * mib, true},
	} {
		if got := worthDefragmenting(c.size, c.inUse); got != c.want {
			t.Errorf("worthDefragmenting(%d MiB, %d MiB in use) = %v, want %v", c.size/mib, c.inUse/mib, got, c.want)
		}
	}
}

// TestDefragment fills the datastore, which is then left alone, deletes
// and compacts most of it away, and defragments it through its Member: the
// database shrinks, the live key stays.
func TestDefragment(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs etcd")
	}
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := Start(ctx, Options{Dir: t.TempDir(), Executable: bin, ClientPort: 21278, PeerPort: 21279})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	value := strings.Repeat("x", 512<<10)
	for i := range 64 {
		if _, err := s.root.Put(ctx, Prefix("gone")+string(rune('a'+i%26))+strings.Repeat("/", i/26), value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.root.Put(ctx, Prefix("kept")+"key", "live"); err != nil {
		t.Fatal(err)
	}
	m, ok := s.Member()
	if !ok {
		t.Fatal("no member for a datastore Slipway runs")
	}
	// All of it live: nothing to gain.
	if before, after, err := Defragment(ctx, m); err != nil || after != before {
		t.Errorf("defragment of a database that is all live: %d → %d, %v; want it left alone", before, after, err)
	}
	resp, err := s.root.Delete(ctx, Prefix("gone"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.root.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Most of it freed: rewritten.
	before, after, err := Defragment(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if before < defragFreeMin || after > before/4 {
		t.Errorf("database %d bytes before defragmenting, %d after; want it under a quarter", before, after)
	}
	got, err := s.root.Get(ctx, Prefix("kept")+"key")
	if err != nil || got.Count != 1 || string(got.Kvs[0].Value) != "live" {
		t.Errorf("the live key after defragmenting: %v, %+v", err, got)
	}
}

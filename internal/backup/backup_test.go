package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/pki"
	"github.com/slipway-dev/slipway/internal/testenv"
)

const clientPort, peerPort = 21274, 21275

func startStore(t *testing.T, dataDir string) *datastore.Store {
	t.Helper()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := datastore.Start(context.Background(), datastore.Options{Dir: filepath.Join(dataDir, "datastore"), Executable: bin, ClientPort: clientPort, PeerPort: peerPort})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tenant(t *testing.T, s *datastore.Store, cert *pki.KeyPair) *clientv3.Client {
	t.Helper()
	c, err := s.ClientAs(cert)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seededKey is where seed writes into cluster a's prefix.
var seededKey = datastore.APIServerPrefix("a") + "/configmaps/default/"

// seed admits clusters a and b and writes one key, x, into a's prefix; it
// returns a's certificate.
func seed(ctx context.Context, s *datastore.Store) (*pki.KeyPair, error) {
	cert, err := s.Admit(ctx, "a")
	if err != nil {
		return nil, err
	}
	if _, err := s.Admit(ctx, "b"); err != nil {
		return nil, err
	}
	a, err := s.ClientAs(cert)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	_, err = a.Put(ctx, seededKey+"x", "kept")
	return cert, err
}

// checkSeeded checks, as cluster a, that a restored datastore holds what
// seed wrote and nothing after it in a's prefix, and still refuses a
// b's prefix.
func checkSeeded(ctx context.Context, t *testing.T, a *clientv3.Client) {
	t.Helper()
	got, err := a.Get(ctx, seededKey, clientv3.WithPrefix())
	if err != nil || got.Count != 1 || string(got.Kvs[0].Value) != "kept" {
		t.Fatalf("cluster a's keys after restore: %v, %+v; want only x", err, got)
	}
	if _, err := a.Get(ctx, datastore.Prefix("b"), clientv3.WithPrefix()); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("a reading b's prefix after restore: %v, want permission denied", err)
	}
}

// TestBackupAndRestore backs up a data directory with a real datastore in
// it, and starts the datastore again from the restored copy: the cluster's
// keys are there, its certificate still opens only its prefix, the records
// came back and the logs did not. A running datastore is refused.
func TestBackupAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd")
	}
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	s := startStore(t, src)
	cert, err := seed(ctx, s)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	record := filepath.Join(src, "clusters", "a", "cluster.json")
	if err := os.MkdirAll(filepath.Join(src, "clusters", "a", "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(record, []byte(`{"id":"a"}`), 0o600)
	os.WriteFile(filepath.Join(src, "clusters", "a", "logs", "kube-apiserver.log"), []byte("old news"), 0o600)

	if _, err := Backup(src, &bytes.Buffer{}, Options{}); !errors.Is(err, ErrRunning) {
		t.Errorf("backup of a running datastore: %v, want ErrRunning", err)
	}
	s.Close()

	var buf bytes.Buffer
	m, err := Backup(src, &buf, Options{Slipway: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Etcds) != 1 || m.Etcds[0] != filepath.Join("datastore", "etcd") {
		t.Errorf("etcds in the backup: %v", m.Etcds)
	}
	dst := filepath.Join(dir, "restored")
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst); err == nil {
		t.Error("restore into a directory that is not empty: no error")
	}
	if info, err := os.Stat(filepath.Join(dst, "clusters", "a", "cluster.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("restored record: %v, %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "clusters", "a", "logs")); err == nil {
		t.Error("logs were backed up")
	}

	s = startStore(t, dst)
	defer s.Close()
	a := tenant(t, s, cert)
	defer a.Close()
	checkSeeded(ctx, t, a)
}

// TestRestoreRefusesEscapes: an archive entry may not land outside the
// data directory.
func TestRestoreRefusesEscapes(t *testing.T) {
	for _, name := range []string{"../evil", "clusters/../../evil", "/etc/evil"} {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		manifest, _ := json.Marshal(Manifest{Format: 1, Files: 1})
		tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(manifest)), Typeflag: tar.TypeReg})
		tw.Write(manifest)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
		tw.Write([]byte("x"))
		tw.Close()
		gz.Close()
		dir := t.TempDir()
		if _, err := Restore(&buf, filepath.Join(dir, "data")); err == nil {
			t.Errorf("entry %q: restored", name)
		}
		if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
			t.Errorf("entry %q: written outside the data directory", name)
		}
	}
}

// TestOnlineBackup backs up a directory while its datastore runs: the
// datastore through its snapshot API, a stopped etcd beside it as its
// files. The restored datastore starts with the keys of the backup's
// moment and not those written after, and a cluster's certificate still
// opens only its own prefix. Admit waits while the datastore is frozen.
func TestOnlineBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd")
	}
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	s := startStore(t, src)
	defer func() { s.Close() }()
	cert, err := seed(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	a := tenant(t, s, cert)
	defer a.Close()
	stopped := filepath.Join(src, "clusters", "old", "etcd", "member", "snap", "db")
	os.MkdirAll(filepath.Dir(stopped), 0o700)
	os.WriteFile(stopped, []byte("a stopped etcd's database"), 0o600)

	// Admit waits out a freeze.
	thaw := s.Freeze()
	admitted := make(chan error, 1)
	go func() {
		_, err := s.Admit(ctx, "c")
		admitted <- err
	}()
	select {
	case err := <-admitted:
		t.Errorf("Admit while frozen returned (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	thaw()
	if err := <-admitted; err != nil {
		t.Fatal(err)
	}

	member, ok := s.Member()
	if !ok {
		t.Fatal("a datastore Slipway runs has no member to back up")
	}
	var buf bytes.Buffer
	// The datastore is frozen while Online reads it, and thawed after.
	var froze, thawed int
	freeze := func() func() {
		froze++
		thaw := s.Freeze()
		return func() { thawed++; thaw() }
	}
	m, err := Online(ctx, src, &buf, Source{Etcds: []datastore.Member{member}, Freeze: freeze}, Options{Slipway: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if froze != 1 || thawed != 1 {
		t.Errorf("Online froze the datastore %d times and thawed it %d times, want once each", froze, thawed)
	}
	if len(m.Snapshots) != 1 || m.Snapshots[0].Dir != "datastore/etcd" || len(m.Etcds) != 2 {
		t.Errorf("manifest: snapshots %+v, etcds %v", m.Snapshots, m.Etcds)
	}
	if _, err := a.Put(ctx, seededKey+"y", "after the backup"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Close()

	dst := filepath.Join(dir, "restored")
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "clusters", "old", "etcd", "member", "snap", "db")); err != nil || string(got) != "a stopped etcd's database" {
		t.Errorf("the stopped etcd's database after restore: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "datastore", "etcd"+snapshotSuffix)); err == nil {
		t.Error("the snapshot file is left in the restored directory")
	}
	s = startStore(t, dst)
	a = tenant(t, s, cert)
	defer a.Close()
	checkSeeded(ctx, t, a)
	// The restored datastore takes writes: its raft state is its own.
	if _, err := a.Put(ctx, seededKey+"z", "after the restore"); err != nil {
		t.Errorf("writing to the restored datastore: %v", err)
	}
}

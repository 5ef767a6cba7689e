package datastore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/slipway-dev/slipway/internal/pki"
	"github.com/slipway-dev/slipway/internal/testenv"
)

func startStore(t *testing.T, dir string) *Store {
	t.Helper()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{Dir: dir, Executable: bin, ClientPort: 21270, PeerPort: 21271})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tenant is an etcd client that presents cert, as a cluster's API server
// does.
func tenant(t *testing.T, s *Store, cert *pki.KeyPair) *clientv3.Client {
	t.Helper()
	c, err := s.ClientAs(cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTenantsAreIsolated admits two clusters and checks that each one's
// certificate opens its own prefix and nothing else, that removing one
// takes its keys and its access, and that all of it survives a restart.
func TestTenantsAreIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd")
	}
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := startStore(t, dir)
	defer func() { s.Close() }()

	certA, err := s.Admit(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	certB, err := s.Admit(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	// "ab" must not fall inside "a"'s prefix.
	if _, err := s.Admit(ctx, "ab"); err != nil {
		t.Fatal(err)
	}
	a, b := tenant(t, s, certA), tenant(t, s, certB)
	if _, err := a.Put(ctx, APIServerPrefix("a")+"/configmaps/default/x", "from a"); err != nil {
		t.Fatalf("a writing its own prefix: %v", err)
	}
	if _, err := b.Put(ctx, APIServerPrefix("b")+"/configmaps/default/x", "from b"); err != nil {
		t.Fatalf("b writing its own prefix: %v", err)
	}
	if _, err := s.root.Put(ctx, APIServerPrefix("ab")+"/configmaps/default/x", "from ab"); err != nil {
		t.Fatal(err)
	}

	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s: want permission denied, got %v", what, err)
		}
	}
	_, err = a.Get(ctx, APIServerPrefix("b")+"/configmaps/default/x")
	denied("a reading b's key", err)
	_, err = a.Get(ctx, Prefix("b"), clientv3.WithPrefix())
	denied("a listing b's prefix", err)
	_, err = a.Get(ctx, "/clusters/a", clientv3.WithPrefix()) // would take in "ab"
	denied("a listing past its prefix", err)
	_, err = a.Get(ctx, "/", clientv3.WithPrefix())
	denied("a listing everything", err)
	_, err = a.Put(ctx, APIServerPrefix("b")+"/configmaps/default/x", "overwritten by a")
	denied("a writing b's key", err)
	_, err = a.Delete(ctx, Prefix("b"), clientv3.WithPrefix())
	denied("a deleting b's prefix", err)
	_, err = a.UserAdd(ctx, "intruder", "pw")
	denied("a adding a user", err)
	got, err := a.Get(ctx, Prefix("a"), clientv3.WithPrefix())
	if err != nil || got.Count != 1 || string(got.Kvs[0].Value) != "from a" {
		t.Errorf("a listing its own prefix: %v, %+v", err, got)
	}

	if err := s.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Keys(ctx, "a"); err != nil || n != 0 {
		t.Errorf("after removing a: %d keys left (%v)", n, err)
	}
	if n, err := s.Keys(ctx, "ab"); err != nil || n != 1 {
		t.Errorf("removing a touched ab: %d keys (%v)", n, err)
	}
	if _, err := a.Get(ctx, Prefix("a"), clientv3.WithPrefix()); err == nil {
		t.Error("a's certificate still reads after a was removed")
	}
	if err := s.Remove(ctx, "a"); err != nil {
		t.Errorf("removing a twice: %v", err)
	}

	// A restart finds access control on and b's keys in place.
	s.Close()
	s = startStore(t, dir)
	b = tenant(t, s, certB)
	got, err = b.Get(ctx, Prefix("b"), clientv3.WithPrefix())
	if err != nil || got.Count != 1 {
		t.Errorf("b after a restart: %v, %+v", err, got)
	}
	_, err = b.Get(ctx, Prefix("ab"), clientv3.WithPrefix())
	denied("b reading ab's prefix after a restart", err)
}

// TestExternalDatastore: Slipway pointed at an etcd it does not run (here,
// one a Store runs, reached only through the files an operator would hand
// over) admits clusters the same way, and closing it leaves etcd running.
func TestExternalDatastore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd")
	}
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	running, err := Start(ctx, Options{Dir: dir, Executable: bin, ClientPort: 21276, PeerPort: 21277})
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	pkiDir := filepath.Join(dir, "pki")
	if _, err := Connect(ctx, External{Endpoints: running.Endpoints()}); err == nil {
		t.Error("an external datastore without certificates was accepted")
	}
	ext, err := Connect(ctx, External{
		Endpoints:  running.Endpoints(),
		CACertFile: filepath.Join(pkiDir, "ca.crt"), CAKeyFile: filepath.Join(pkiDir, "ca.key"),
		CertFile: filepath.Join(pkiDir, "root-client.crt"), KeyFile: filepath.Join(pkiDir, "root-client.key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if ext.Process() != nil || ext.LogDir() != "" || ext.CAFile() != filepath.Join(pkiDir, "ca.crt") {
		t.Errorf("external datastore: process %v, log dir %q, CA %q", ext.Process(), ext.LogDir(), ext.CAFile())
	}
	certX, err := ext.Admit(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ext.Admit(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	ext.Close()
	x := tenant(t, running, certX)
	if _, err := x.Put(ctx, APIServerPrefix("x")+"/k", "v"); err != nil {
		t.Errorf("x writing its prefix on the external datastore: %v", err)
	}
	if _, err := x.Get(ctx, Prefix("y"), clientv3.WithPrefix()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("x reading y's prefix: %v, want permission denied", err)
	}
}

// A port already taken must fail Start at once, naming the port, rather
// than leave its clients handshaking with whatever holds it.
func TestStartRefusesATakenPort(t *testing.T) {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), Executable: "/nonexistent", ClientPort: port, PeerPort: port + 1})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d is taken", port)) {
		t.Fatalf("Start on a taken port: %v; want an error naming port %d", err, port)
	}
}

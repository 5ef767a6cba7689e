package hosting

import (
	"context"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLaunches(t *testing.T) {
	rec := &record{ID: "c1", Name: "demo", FQDN: "demo.slipway.local",
		Ports: Ports{APIServer: 20001, EtcdClient: 20002, EtcdPeer: 20003, ControllerManager: 20004, Scheduler: 20005}}
	ls := launches(rec, "/data/clusters/c1", nil, loopbackV4)
	var names []string
	for _, l := range ls {
		names = append(names, l.name)
		if !slices.IsSorted(l.args) {
			t.Errorf("%s: arguments not sorted", l.name)
		}
	}
	if want := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}; !slices.Equal(names, want) {
		t.Fatalf("start order = %v, want %v", names, want)
	}
	wantArgs := map[string][]string{
		"etcd": {"--listen-client-urls=https://127.0.0.1:20002", "--listen-peer-urls=https://127.0.0.1:20003",
			"--data-dir=/data/clusters/c1/etcd", "--client-cert-auth=true"},
		"kube-apiserver": {"--secure-port=20001", "--bind-address=127.0.0.1", "--etcd-servers=https://127.0.0.1:20002",
			"--service-account-issuer=https://demo.slipway.local", "--authorization-mode=Node,RBAC"},
		"kube-controller-manager": {"--secure-port=20004", "--leader-elect=false", "--cluster-name=kubernetes"},
		"kube-scheduler":          {"--secure-port=20005", "--leader-elect=false"},
	}
	for _, l := range ls {
		for _, want := range wantArgs[l.name] {
			if !slices.Contains(l.args, want) {
				t.Errorf("%s: missing %s in %s", l.name, want, strings.Join(l.args, " "))
			}
		}
	}
}

type fakeEndpoint struct{}

func (fakeEndpoint) Endpoints() []string { return []string{"https://127.0.0.1:20098"} }
func (fakeEndpoint) CAFile() string      { return "/data/datastore/pki/ca.crt" }

// TestLaunchesOnTheSharedDatastore: no etcd of the cluster's own, and an API
// server confined to its prefix with its own certificate, which does not
// compact (the datastore does).
func TestLaunchesOnTheSharedDatastore(t *testing.T) {
	rec := &record{ID: "c1", Name: "demo", FQDN: "demo.slipway.local", Datastore: sharedDatastore,
		Ports: Ports{APIServer: 20101, ControllerManager: 20102, Scheduler: 20103}}
	ls := launches(rec, "/data/clusters/c1", fakeEndpoint{}, loopbackV4)
	var names []string
	for _, l := range ls {
		names = append(names, l.name)
	}
	if want := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}; !slices.Equal(names, want) {
		t.Fatalf("start order = %v, want %v", names, want)
	}
	for _, want := range []string{"--etcd-servers=https://127.0.0.1:20098", "--etcd-cafile=/data/datastore/pki/ca.crt",
		"--etcd-certfile=/data/clusters/c1/pki/datastore-client.crt", "--etcd-keyfile=/data/clusters/c1/pki/datastore-client.key",
		"--etcd-prefix=/clusters/c1/registry", "--etcd-compaction-interval=0", "--feature-gates=WatchList=false,WatchListClient=false"} {
		if !slices.Contains(ls[0].args, want) {
			t.Errorf("kube-apiserver: missing %s in %s", want, strings.Join(ls[0].args, " "))
		}
	}
}

func TestSurgeBind(t *testing.T) {
	if !ipv6Loopback() {
		t.Skip("no IPv6 loopback: the servers share 127.0.0.1, as tested by TestUpgradeKeepsObjects")
	}
	// Alternating: the new server always takes the other kind of address.
	// A host that advertises one has no other kind: its servers share the
	// wildcard.
	loopback, advertising := &Host{}, &Host{advertised: "10.0.0.11"}
	for _, c := range []struct {
		h             *Host
		running, want string
	}{
		{loopback, "127.0.0.1", "::"}, {loopback, "::", "127.0.0.1"},
		{advertising, "0.0.0.0", "0.0.0.0"},
	} {
		if got := c.h.surgeBind(c.running); got != c.want {
			t.Errorf("advertising %q, running on %q: the new server on %q, want %q", c.h.advertised, c.running, got, c.want)
		}
	}
}

// TestSurgeBindKernelPreference checks what surgeBind relies on: with an
// API server on each of two addresses of one port (SO_REUSEPORT, as
// --permit-port-sharing sets it), an IPv4 connection to loopback goes to
// the listener on 127.0.0.1, never to the dual-stack "::". (Go, and so the
// API server, listens on "::" for 0.0.0.0 too: this is why a host that
// advertises an address has no such pair, see surgeBind.)
func TestSurgeBindKernelPreference(t *testing.T) {
	if !ipv6Loopback() {
		t.Skip("no IPv6 loopback")
	}
	reusePort := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return err
	}}
	// No second kind of wildcard: Go listens on the dual-stack "::" for
	// 0.0.0.0. Should that change, an advertising host's new server could
	// take "::" beside the old one on 0.0.0.0.
	if l, err := net.Listen("tcp", "0.0.0.0:0"); err == nil {
		if bound, _, _ := net.SplitHostPort(l.Addr().String()); bound != "::" {
			t.Errorf("Go listened on %s for 0.0.0.0, not the dual-stack \"::\": revisit surgeBind for advertising hosts", bound)
		}
		l.Close()
	}
	host := &Host{}
	for _, running := range []string{host.apiBind(), "::"} {
		surge := host.surgeBind(running)
		wantIPv4 := running
		if running == "::" {
			wantIPv4 = surge
		}
		old, err := reusePort.Listen(context.Background(), "tcp", net.JoinHostPort(running, "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(old.Addr().String())
		next, err := reusePort.Listen(context.Background(), "tcp", net.JoinHostPort(surge, port))
		if err != nil {
			old.Close()
			t.Fatalf("%s beside %s on port %s: %v", surge, running, port, err)
		}
		byBind := map[string]net.Listener{running: old, surge: next}
		for range 20 {
			conn, err := net.Dial("tcp", net.JoinHostPort(loopbackV4, port))
			if err != nil {
				t.Fatal(err)
			}
			// The dial completed, so the expected listener has the
			// connection queued: its Accept returns it at once.
			byBind[wantIPv4].(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Second))
			if accepted, err := byBind[wantIPv4].Accept(); err != nil {
				t.Errorf("running on %q, surge on %q: a connection to 127.0.0.1 did not go to %q: %v", running, surge, wantIPv4, err)
			} else {
				accepted.Close()
			}
			conn.Close()
		}
		old.Close()
		next.Close()
	}
}

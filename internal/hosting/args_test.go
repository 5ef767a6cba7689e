package hosting

import (
	"slices"
	"strings"
	"testing"
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
		"kube-controller-manager": {"--secure-port=20004", "--leader-elect=false", "--cluster-name=demo"},
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
	// Alternating: the new server always takes the other kind of address,
	// IPv4 loopback or every IPv4 address if the host advertises one.
	loopback, advertising := &Host{}, &Host{advertised: "10.0.0.11"}
	for _, c := range []struct {
		h             *Host
		running, want string
	}{
		{loopback, "127.0.0.1", "::"}, {loopback, "::", "127.0.0.1"},
		{advertising, "0.0.0.0", "::"}, {advertising, "::", "0.0.0.0"},
	} {
		if got := c.h.surgeBind(c.running); got != c.want {
			t.Errorf("advertising %q, running on %q: the new server on %q, want %q", c.h.advertised, c.running, got, c.want)
		}
	}
}

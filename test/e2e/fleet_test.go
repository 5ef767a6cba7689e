package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/app"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// fleet is `slipway management serve` and the hosts that joined it.
type fleet struct {
	dir   string
	mgmt  *exec.Cmd
	join  string
	hosts map[string]*server
	// client is the management plane's, made on first use.
	client client.Client
}

// startFleet runs the management plane and the datastore alone, on their
// own port range, and n hosts joined to them.
func startFleet(t testing.TB, names ...string) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("starts several slipway processes")
	}
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "slipway-fleet-")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{dir: dir, hosts: map[string]*server{}}
	t.Cleanup(func() {
		for _, h := range f.hosts {
			h.stop()
		}
		f.stopManagement()
		if t.Failed() {
			t.Logf("kept the fleet's data directories (management.log and each host's serve.log): %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	f.startManagement(t, bin)
	for _, name := range names {
		hdir := filepath.Join(dir, name)
		if err := os.MkdirAll(hdir, 0o700); err != nil {
			t.Fatal(err)
		}
		h := &server{bin: bin, dataDir: hdir, listen: net.JoinHostPort(fleetAddress, strconv.Itoa(freePort(t))),
			args: []string{"--join", f.join, "--host-name", name, "--advertise-address", fleetAddress}}
		if err := h.start(); err != nil {
			t.Fatal(err)
		}
		f.hosts[name] = h
	}
	return f
}

// startManagement starts `slipway management serve` over the fleet's
// management directory and waits for its join file.
func (f *fleet) startManagement(t testing.TB, bin string) {
	t.Helper()
	mdir := filepath.Join(f.dir, "management")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(f.dir, "management.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	// A restored directory holds a join file already; the one to wait for
	// is the one this serve writes once it serves.
	f.join = filepath.Join(mdir, app.JoinFile)
	os.Remove(f.join)
	// Everything is reached at fleetAddress, not loopback, as hosts on
	// several machines behind one load balancer address would be.
	f.mgmt = exec.Command(bin, "management", "serve", "--data-dir", mdir, "--first-port", "25000", "--last-port", "25999",
		"--advertise-address", fleetAddress)
	f.mgmt.Stdout, f.mgmt.Stderr = log, log
	if err := f.mgmt.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the join file", func() (bool, string) {
		_, err := os.Stat(f.join)
		return err == nil, fmt.Sprint(err)
	})
	if fi, _ := os.Stat(f.join); fi.Mode().Perm() != 0o600 {
		t.Errorf("join file mode %v, want 0600: it holds credentials", fi.Mode().Perm())
	}
	f.client = nil
}

// stopManagement stops `slipway management serve` and waits for it.
func (f *fleet) stopManagement() {
	if f.mgmt != nil && f.mgmt.ProcessState == nil {
		f.mgmt.Process.Signal(syscall.SIGTERM)
		f.mgmt.Wait()
	}
}

// fleetAddress is the address the fleet advertises: a loopback address
// other than 127.0.0.1, so that a certificate, a join file or a kubeconfig
// that still named 127.0.0.1 would fail.
const fleetAddress = "127.0.0.2"

// management is a client of the fleet's management plane.
func (f *fleet) management(t testing.TB) client.Client {
	t.Helper()
	if f.client != nil {
		return f.client
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(f.dir, "management", management.KubeconfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if f.client, err = client.New(cfg, client.Options{Scheme: management.NewScheme()}); err != nil {
		t.Fatal(err)
	}
	return f.client
}

// clusters are the fleet's clusters by ARM name.
func (f *fleet) clusters(t testing.TB) map[string]slipwayv1.ManagedCluster {
	t.Helper()
	var list slipwayv1.ManagedClusterList
	if err := f.management(t).List(context.Background(), &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string]slipwayv1.ManagedCluster{}
	for _, mc := range list.Items {
		out[mc.Spec.ResourceID[strings.LastIndex(mc.Spec.ResourceID, "/")+1:]] = mc
	}
	return out
}

// placement is where each cluster runs, by ARM name.
func (f *fleet) placement(t testing.TB) map[string]string {
	out := map[string]string{}
	for name, mc := range f.clusters(t) {
		out[name] = mc.Status.Host
	}
	return out
}

// hostedIDs maps each cluster's ARM name to its ID in the hosting layer.
func (f *fleet) hostedIDs(t testing.TB) map[string]string {
	out := map[string]string{}
	for name, mc := range f.clusters(t) {
		out[name] = mc.Name
	}
	return out
}

// wantIsolated checks that cluster own's datastore client certificate reads
// its keys in the shared etcd and is refused other's.
func (f *fleet) wantIsolated(t testing.TB, own, other string) {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(f.join)
	if err != nil {
		t.Fatal(err)
	}
	var join app.Join
	if err := json.Unmarshal(data, &join); err != nil {
		t.Fatal(err)
	}
	// A cluster's keys are under its store's prefix: its ID, or the name
	// of the spare control plane it was made from (cluster.json says).
	registered := func(id string) (*corev1.Secret, string) {
		secret := &corev1.Secret{}
		if err := f.management(t).Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "controlplane-" + id}, secret); err != nil {
			t.Fatal(err)
		}
		var rec struct{ ID, Store string }
		if err := json.Unmarshal(secret.Data["cluster.json"], &rec); err != nil {
			t.Fatal(err)
		}
		return secret, cmp.Or(rec.Store, rec.ID)
	}
	secret, ownStore := registered(own)
	_, otherStore := registered(other)
	cert, err := tls.X509KeyPair(secret.Data["pki.datastore-client.crt"], secret.Data["pki.datastore-client.key"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(join.Datastore.CACert))
	etcd, err := clientv3.New(clientv3.Config{Endpoints: join.Datastore.Endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	got, err := etcd.Get(ctx, "/clusters/"+ownStore+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || got.Count == 0 {
		t.Fatalf("cluster %s's certificate reads %v of its own keys (%v)", own, got, err)
	}
	if got, err := etcd.Get(ctx, "/clusters/"+otherStore+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("cluster %s's certificate read cluster %s's keys: %v, %v", own, other, got, err)
	}
}

// wantHost waits for a Host's status (kubectl get hosts) to be want.
func (f *fleet) wantHost(t testing.TB, name string, want slipwayv1.HostStatus) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("host %s %+v", name, want), func() (bool, string) {
		h := &slipwayv1.Host{}
		if err := f.management(t).Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: name}, h); err != nil {
			return false, err.Error()
		}
		return h.Status == want, fmt.Sprintf("%+v", h.Status)
	})
}

// clusterChildren counts the child processes of pid that run a cluster's
// control plane, leaving out those of an unclaimed spare control plane
// (their directory's cluster.json says "spare"), which belong to no cluster.
func clusterChildren(pid int) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if dir := clusterDirOf(string(cmdline)); dir != "" {
			var rec struct{ Spare bool }
			if data, err := os.ReadFile(filepath.Join(dir, "cluster.json")); err == nil && json.Unmarshal(data, &rec) == nil && rec.Spare {
				continue
			}
		}
		n++
	}
	return n
}

// clusterDirOf is the clusters/<name> directory a component's command
// line names, or "".
func clusterDirOf(cmdline string) string {
	for _, arg := range strings.Split(cmdline, "\x00") {
		_, path, _ := strings.Cut(arg, "=")
		if path == "" {
			path = arg
		}
		if i := strings.Index(path, "/clusters/"); i >= 0 {
			rest := path[i+len("/clusters/"):]
			name, _, _ := strings.Cut(rest, "/")
			return path[:i] + "/clusters/" + name
		}
	}
	return ""
}

// TestFleetFailover: two hosts on one management plane and datastore share
// four clusters; every host answers for every cluster; killing one host
// (kill -9) moves its clusters to the other, where they answer through the
// kubeconfigs handed out before, with their objects, nodes and an
// operation that was in flight; the host that comes back runs none of them.
func TestFleetFailover(t *testing.T) {
	f := startFleet(t, "host-a", "host-b")
	a, b := f.hosts["host-a"], f.hosts["host-b"]
	if a.conn.SubscriptionID != b.conn.SubscriptionID || a.conn.ClientID != b.conn.ClientID {
		t.Fatalf("the hosts are not one installation: subscriptions %s and %s", a.conn.SubscriptionID, b.conn.SubscriptionID)
	}
	ca, cb := newClients(t, a), newClients(t, b)
	ctx := context.Background()
	const group = "fleet"
	if _, err := ca.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(a.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	names := []string{"f1", "f2", "f3", "f4"}
	err := atOnce(len(names), func(i int) error {
		// Through both front doors: either takes any cluster.
		c := []clients{ca, cb}[i%2]
		p, err := c.clusters.BeginCreateOrUpdate(ctx, group, names[i], newCluster(a.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, poll)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	placed := f.placement(t)
	t.Logf("placement: %v", placed)
	onA := []string{}
	for _, name := range names {
		switch placed[name] {
		case "host-a":
			onA = append(onA, name)
		case "host-b":
		default:
			t.Fatalf("cluster %s placed on %q", name, placed[name])
		}
	}
	// The hosts have the same capacity: each gets half.
	if len(onA) != len(names)/2 {
		t.Fatalf("clusters not spread by room over two like hosts: %v", placed)
	}

	// Every cluster's kubeconfig from host b's front door, each cluster
	// given an object.
	kube := map[string]kubernetes.Interface{}
	for _, name := range names {
		cfg := adminConfig(t, cb, group, name)
		if u, err := url.Parse(cfg.Host); err != nil || u.Hostname() != fleetAddress {
			t.Errorf("%s's kubeconfig points at %s, not the fleet's address %s", name, cfg.Host, fleetAddress)
		}
		kube[name] = kubernetes.NewForConfigOrDie(cfg)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-failover"}, Data: map[string]string{"cluster": name}}
		if _, err := kube[name].CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Operations in flight on host a when it dies: a create, killed once
	// host a has made the control plane (its record and PKI are in the
	// management plane) and before it is done, and a scale to 2 nodes.
	// With two clusters each the hosts tie, and host-a comes first.
	created, err := cb.clusters.BeginCreateOrUpdate(ctx, group, "f5", newCluster(a.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "f5 placed on host-a, its control plane made", func() (bool, string) {
		id, host := f.hostedIDs(t)["f5"], f.placement(t)["f5"]
		if id == "" || host != "host-a" {
			return false, "on " + host
		}
		err := f.management(t).Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "controlplane-" + id}, &corev1.Secret{})
		return err == nil, fmt.Sprint(err)
	})
	scaled := onA[0]
	p, err := cb.pools.BeginCreateOrUpdate(ctx, group, scaled, "system", armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
		Count: to.Ptr[int32](2), Mode: to.Ptr(armcontainerservice.AgentPoolModeSystem), VMSize: to.Ptr("Standard_DS2_v2"), OSType: to.Ptr(armcontainerservice.OSTypeLinux)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f5 := f.clusters(t)["f5"]
	a.kill()
	if f5.Spec.Operation == nil || f5.Spec.Operation.ID == f5.Status.CompletedOperation {
		t.Log("f5's create had ended just before the kill: only the scale was in flight")
	}
	killed := time.Now()
	t.Logf("killed host-a (kill -9), which ran %v", onA)

	for _, name := range onA {
		eventually(t, 90*time.Second, name+" answering through its old kubeconfig after the failover", func() (bool, string) {
			cm, err := kube[name].CoreV1().ConfigMaps("default").Get(ctx, "before-failover", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return cm.Data["cluster"] == name, fmt.Sprint(cm.Data)
		})
		t.Logf("%s answered again %s after the kill", name, time.Since(killed).Round(100*time.Millisecond))
	}
	if got := f.placement(t); !slices.Equal(slices.Sorted(maps.Values(got)), []string{"host-b", "host-b", "host-b", "host-b", "host-b"}) {
		t.Errorf("after the failover the clusters are on %v", got)
	}
	f.wantHost(t, "host-a", slipwayv1.HostStatus{Ready: "False", Clusters: 0})
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("the scale started on host-a did not finish on host-b: %v", err)
	}
	if _, err := created.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("the create started on host-a did not finish on host-b: %v", err)
	}
	onA = append(onA, "f5")
	kube["f5"] = adminClient(t, cb, group, "f5")
	// The moved clusters' nodes are kept alive on host b: their node
	// leases are renewed after the kill.
	for _, name := range onA {
		want := 1
		if name == scaled {
			want = 2
		}
		eventually(t, time.Minute, fmt.Sprintf("%s's %d nodes Ready, their leases renewed after the kill", name, want), func() (bool, string) {
			n, err := countNodes(ctx, kube[name], "system")
			if err != nil {
				return false, err.Error()
			}
			leases, err := kube[name].CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			renewed := 0
			for _, l := range leases.Items {
				if l.Spec.RenewTime != nil && l.Spec.RenewTime.After(killed) {
					renewed++
				}
			}
			return n.total == want && n.ready == want && renewed >= want, fmt.Sprintf("%+v, %d leases renewed", n, renewed)
		})
	}

	// Host a comes back and runs none of the clusters that moved.
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	if n := clusterChildren(a.cmd.Process.Pid); n != 0 {
		t.Errorf("host-a runs %d processes after coming back; the clusters it ran are on host-b", n)
	}
	if got := f.placement(t); slices.Contains(slices.Collect(maps.Values(got)), "host-a") {
		t.Errorf("clusters went back to host-a: %v", got)
	}
	f.wantHost(t, "host-a", slipwayv1.HostStatus{Ready: "True", Clusters: 0})
	f.wantHost(t, "host-b", slipwayv1.HostStatus{Ready: "True", Clusters: 5})
	// And answers for them: a kubeconfig from its front door reaches a
	// cluster host b runs.
	ca = newClients(t, a)
	if _, err := adminClient(t, ca, group, onA[0]).CoreV1().ConfigMaps("default").Get(ctx, "before-failover", metav1.GetOptions{}); err != nil {
		t.Errorf("a kubeconfig from host-a: %v", err)
	}

	// Each cluster's datastore certificate, as the management plane keeps
	// it for any host to start the cluster with, opens its own prefix of
	// the shared etcd and no other's.
	ids := f.hostedIDs(t)
	f.wantIsolated(t, ids[names[0]], ids[names[1]])

	// Deleting a moved cluster through host a: host b, which runs it,
	// deletes its control plane, its record and PKI, and its ports.
	mgmt := f.management(t)
	var list slipwayv1.ManagedClusterList
	if err := mgmt.List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		t.Fatal(err)
	}
	hostedID := ""
	for _, mc := range list.Items {
		if strings.HasSuffix(mc.Spec.ResourceID, "/"+onA[0]) {
			hostedID = mc.Name
		}
	}
	del, err := ca.clusters.BeginDelete(ctx, group, onA[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("deleting %s through host-a: %v", onA[0], err)
	}
	if err := mgmt.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "controlplane-" + hostedID}, &corev1.Secret{}); err == nil {
		t.Errorf("the deleted cluster's record and PKI are still kept")
	}
	ledger := &corev1.ConfigMap{}
	if err := mgmt.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "slipway-ports"}, ledger); err != nil {
		t.Fatal(err)
	}
	for port, owner := range ledger.Data {
		if owner == hostedID {
			t.Errorf("port %s is still the deleted cluster's", port)
		}
	}
	if len(ledger.Data) == 0 {
		t.Error("the port ledger holds no port of the clusters left")
	}

	// The management serve's directory is the fleet's backup: backed up
	// while the fleet runs (the management serve takes it online), then
	// the fleet stopped, that directory lost and restored, and host b's
	// directory lost too, the fleet comes back with every cluster, at the
	// same endpoints, with its objects.
	mdir := filepath.Join(f.dir, "management")
	backupFile := filepath.Join(f.dir, "fleet.backup")
	if out, err := exec.Command(b.bin, "backup", "--data-dir", mdir, "--out", backupFile).CombinedOutput(); err != nil || !strings.Contains(string(out), "online") {
		t.Fatalf("slipway backup of the running management directory: %v\n%s", err, out)
	}
	for _, h := range f.hosts {
		h.stop()
	}
	f.stopManagement()
	if err := os.RemoveAll(mdir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(b.bin, "restore", "--from", backupFile, "--data-dir", mdir).CombinedOutput(); err != nil {
		t.Fatalf("slipway restore: %v\n%s", err, out)
	}
	f.startManagement(t, b.bin)
	b.dataDir = filepath.Join(f.dir, "host-b-anew")
	if err := os.MkdirAll(b.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name == onA[0] {
			continue
		}
		eventually(t, 2*time.Minute, name+" answering after the fleet's restore", func() (bool, string) {
			_, err := kube[name].CoreV1().ConfigMaps("default").Get(ctx, "before-failover", metav1.GetOptions{})
			return err == nil, fmt.Sprint(err)
		})
	}
}

// BenchmarkFleetFailover: the time from kill -9 of the host that runs a
// cluster to the cluster answering again through the kubeconfig handed out
// before, on the other host; the killed host comes back between rounds,
// so each round kills the cluster's current host. Report the median
// (-benchtime 3x for the README's figure).
func BenchmarkFleetFailover(b *testing.B) {
	f := startFleet(b, "host-a", "host-b")
	c := newClients(b, f.hosts["host-a"])
	ctx := context.Background()
	if _, err := c.groups.CreateOrUpdate(ctx, "failover", armresources.ResourceGroup{Location: to.Ptr(f.hosts["host-a"].conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	putCluster(b, c, "failover", "moving", newCluster(f.hosts["host-a"].conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)))
	kube := adminClient(b, c, "failover", "moving")
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		victim := f.placement(b)["moving"]
		f.hosts[victim].kill()
		killed := time.Now()
		eventually(b, 2*time.Minute, "the cluster answering on the other host", func() (bool, string) {
			_, err := kube.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			return err == nil && f.placement(b)["moving"] != victim, fmt.Sprint(err)
		})
		took = append(took, time.Since(killed))
		b.StopTimer()
		if err := f.hosts[victim].start(); err != nil {
			b.Fatal(err)
		}
		// The host that came back renews its lease before the next kill
		// leaves it the only one.
		time.Sleep(5 * time.Second)
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "failover-median-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "failover-max-s")
	b.Logf("failover times: %v", took)
}

// BenchmarkFleetCreate: clusters per minute made through ARM by a fleet of
// one host and by one of two, each creating fleetCreates clusters (one
// node each) at once, half through each host's front door.
func BenchmarkFleetCreate(b *testing.B) {
	const fleetCreates = 6
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			names := []string{"host-a", "host-b"}[:n]
			f := startFleet(b, names...)
			var cs []clients
			for _, name := range names {
				cs = append(cs, newClients(b, f.hosts[name]))
			}
			ctx := context.Background()
			location := f.hosts["host-a"].conn.Location
			if _, err := cs[0].groups.CreateOrUpdate(ctx, "create", armresources.ResourceGroup{Location: to.Ptr(location)}, nil); err != nil {
				b.Fatal(err)
			}
			var rates []float64
			b.ResetTimer()
			for round := range b.N {
				began := time.Now()
				err := atOnce(fleetCreates, func(i int) error {
					p, err := cs[i%len(cs)].clusters.BeginCreateOrUpdate(ctx, "create", fmt.Sprintf("c%d-%d", round, i), newCluster(location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
					if err == nil {
						_, err = p.PollUntilDone(ctx, poll)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				rates = append(rates, fleetCreates/time.Since(began).Minutes())
				// The next round starts on an empty fleet.
				b.StopTimer()
				err = atOnce(fleetCreates, func(i int) error {
					p, err := cs[0].clusters.BeginDelete(ctx, "create", fmt.Sprintf("c%d-%d", round, i), nil)
					if err == nil {
						_, err = p.PollUntilDone(ctx, poll)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			slices.Sort(rates)
			b.ReportMetric(rates[len(rates)/2], "clusters/min")
			b.Logf("%d host(s): %v clusters a minute", n, rates)
		})
	}
}

// atOnce runs do(0) … do(n-1) at once and returns the first error.
func atOnce(n int, do func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = do(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

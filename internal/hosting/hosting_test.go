package hosting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipway-dev/slipway/internal/components"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/pki"
	"github.com/slipway-dev/slipway/internal/simnode"
	"github.com/slipway-dev/slipway/internal/testenv"
	"github.com/slipway-dev/slipway/internal/version"
)

// newHost opens a host over dir, with a port range of its own so that tests
// in parallel never race for the same ports.
func newHost(t *testing.T, dir string, ports PortRange) *Host {
	t.Helper()
	return newHostWith(t, Options{DataDir: dir, Ports: ports})
}

func newHostWith(t *testing.T, o Options) *Host {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real control planes")
	}
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	o.Executable = bin
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startDatastore runs a shared datastore in dir on the two ports given.
func startDatastore(t *testing.T, dir string, clientPort, peerPort int) *datastore.Store {
	t.Helper()
	if testing.Short() {
		t.Skip("runs etcd")
	}
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := datastore.Start(context.Background(), datastore.Options{Dir: dir, Executable: bin, ClientPort: clientPort, PeerPort: peerPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ds.Close)
	return ds
}

func clientFor(t *testing.T, c *Cluster, cred Credential) kubernetes.Interface {
	t.Helper()
	cfg, err := c.RESTConfig(cred)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s (last: %s)", what, timeout, last)
}

func registerNodes(t *testing.T, c *Cluster, names ...string) {
	t.Helper()
	for _, n := range names {
		err := c.Kubelets().Register(context.Background(), simnode.Node{
			Name:   n,
			Labels: map[string]string{"kubernetes.io/os": "linux", "kubernetes.azure.com/agentpool": "nodepool1"},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("2"),
				corev1.ResourceMemory: resource.MustParse("7Gi"),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
			NodeInfo:   corev1.NodeSystemInfo{OSImage: "Ubuntu 22.04.5 LTS", KernelVersion: "5.15.0-1079-azure", KubeletVersion: "v1.36.3"},
			InternalIP: "10.224.0.4",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, c.Reason
		}
	}
	return false, "no Ready condition"
}

func runningPods(t *testing.T, cs kubernetes.Interface, selector string) (map[string]int, error) {
	pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	perNode := map[string]int{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			perNode[p.Spec.NodeName]++
		}
	}
	return perNode, nil
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func componentPID(t *testing.T, c *Cluster, name string) int {
	t.Helper()
	for _, s := range c.Health(context.Background()).Components {
		if s.Name == name {
			return s.PID
		}
	}
	t.Fatalf("no component %s", name)
	return 0
}

// TestClusterLifecycle walks one cluster through its life: a Deployment
// runs on simulated nodes, a node fails and recovers, the API server is
// killed and comes back, the whole hosting layer restarts over the same data
// directory, and the cluster is deleted.
func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHost(t, dir, PortRange{First: 21000, Last: 21099})
	ctx := context.Background()

	start := time.Now()
	c, err := h.Create(ctx, ClusterSpec{ID: "life", Name: "life", FQDN: "life-dns-1234.hcp.eastus.slipway.local"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane ready in %s", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dir, "clusters", "life", "etcd")); err != nil {
		t.Errorf("no etcd data under the cluster's directory: %v", err)
	}

	cs := clientFor(t, c, Admin)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(5)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	registerNodes(t, c, "aks-nodepool1-12345678-vmss000000", "aks-nodepool1-12345678-vmss000001", "aks-nodepool1-12345678-vmss000002")

	t.Run("pods run on simulated nodes", func(t *testing.T) {
		eventually(t, 90*time.Second, "3 nodes Ready", func() (bool, string) {
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			ready := 0
			for i := range nodes.Items {
				if ok, _ := nodeReady(&nodes.Items[i]); ok {
					ready++
				}
			}
			return ready == 3, fmt.Sprintf("%d of %d Ready", ready, len(nodes.Items))
		})
		eventually(t, 90*time.Second, "5 pods Running", func() (bool, string) {
			perNode, err := runningPods(t, cs, "app=web")
			if err != nil {
				return false, err.Error()
			}
			return total(perNode) == 5, fmt.Sprint(perNode)
		})
		perNode, _ := runningPods(t, cs, "app=web")
		for node := range perNode {
			if node == "" {
				t.Error("a Running pod has no node")
			}
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, "aks-nodepool1-12345678-vmss000000", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Status.NodeInfo.OSImage; got != "Ubuntu 22.04.5 LTS" {
			t.Errorf("osImage = %q", got)
		}
		if got := node.Status.Allocatable.Cpu().String(); got != "2" {
			t.Errorf("allocatable cpu = %s", got)
		}
	})

	t.Run("node fails and recovers", func(t *testing.T) {
		const name = "aks-nodepool1-12345678-vmss000002"
		if err := c.Kubelets().SetNotReady(ctx, name, "VMStopped", "the VM was deallocated"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "node NotReady", func() (bool, string) {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ready, reason := nodeReady(n)
			return !ready && reason == "SlipwayNotReady", reason
		})
		// It stays NotReady: KWOK must not flip it back.
		time.Sleep(2 * time.Second)
		n, _ := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if ready, _ := nodeReady(n); ready {
			t.Fatal("node became Ready again on its own")
		}
		if err := c.Kubelets().SetReady(ctx, name); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "node Ready again", func() (bool, string) {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ok, reason := nodeReady(n)
			return ok, reason
		})
	})

	t.Run("a booting node turns Ready when its boot is done", func(t *testing.T) {
		const name = "aks-nodepool1-12345678-vmss000009"
		bootDone := time.Now().Add(3 * time.Second)
		err := c.Kubelets().Register(ctx, simnode.Node{Name: name, ReadyAt: bootDone,
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourcePods: resource.MustParse("110")}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(bootDone) - time.Second)
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ready, _ := nodeReady(n); ready {
			t.Fatal("node Ready before its boot was done")
		}
		eventually(t, 30*time.Second, "node Ready after boot", func() (bool, string) {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ok, reason := nodeReady(n)
			return ok, reason
		})
		if err := c.Kubelets().Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("killed API server comes back", func(t *testing.T) {
		pid := componentPID(t, c, components.APIServer)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "API server restarted and ready", func() (bool, string) {
			h := c.Health(ctx)
			for _, s := range h.Components {
				if s.Name == components.APIServer {
					return h.Ready && s.Restarts >= 1 && s.PID != pid, fmt.Sprintf("%+v ready=%v %s", s, h.Ready, h.Message)
				}
			}
			return false, "no API server"
		})
		eventually(t, 30*time.Second, "Deployment intact", func() (bool, string) {
			d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Status.ReadyReplicas == 5, fmt.Sprintf("%d ready", d.Status.ReadyReplicas)
		})
	})

	t.Run("hosting layer restarts over the same data", func(t *testing.T) {
		oldEndpoint := c.Endpoint()
		h.Close()
		if c.Running() {
			t.Fatal("cluster still running after Close")
		}
		h2 := newHost(t, dir, PortRange{First: 21000, Last: 21099})
		defer h2.Close()
		// As serve's cluster controller does: find the cluster on disk,
		// start it if it is not running.
		c2, err := h2.Get("life")
		if err != nil {
			t.Fatal(err)
		}
		if c2.Running() {
			t.Fatal("a cluster found on disk is running before anyone started it")
		}
		if err := c2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if c2.Endpoint() != oldEndpoint {
			t.Errorf("endpoint moved from %s to %s: handed-out kubeconfigs would break", oldEndpoint, c2.Endpoint())
		}
		cs2 := clientFor(t, c2, User)
		d, err := cs2.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Deployment lost across restart: %v", err)
		}
		if *d.Spec.Replicas != 5 {
			t.Errorf("replicas = %d", *d.Spec.Replicas)
		}
		// The simulated kubelets came back with the cluster: leases are
		// renewed again and the nodes stay Ready.
		eventually(t, 60*time.Second, "nodes Ready after restart", func() (bool, string) {
			nodes, err := cs2.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			ready := 0
			for i := range nodes.Items {
				if ok, _ := nodeReady(&nodes.Items[i]); ok {
					ready++
				}
			}
			return ready == 3, fmt.Sprintf("%d Ready", ready)
		})

		if err := h2.Delete(ctx, "life"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "clusters", "life")); !os.IsNotExist(err) {
			t.Errorf("cluster directory left after Delete: %v", err)
		}
		if _, err := h2.Get("life"); err == nil {
			t.Error("deleted cluster still listed")
		}
	})
}

// TestTwoClustersAtOnce creates two clusters concurrently and checks that
// they share nothing: ports, certificates, data.
// TestTwoClustersAtOnce makes two clusters on one shared datastore, as serve
// does, and checks that nothing of one is seen or opened by the other.
func TestTwoClustersAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ds := startDatastore(t, filepath.Join(dir, "datastore"), 21198, 21199)
	h := newHostWith(t, Options{DataDir: dir, Ports: PortRange{First: 21100, Last: 21197}, Datastore: ds})
	defer h.Close()
	ctx := context.Background()

	var wg sync.WaitGroup
	clusters := make([]*Cluster, 2)
	errs := make([]error, 2)
	for i := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i], errs[i] = h.Create(ctx, ClusterSpec{ID: fmt.Sprintf("twin-%d", i)})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	a, b := clusters[0], clusters[1]

	ports := map[int]string{}
	for _, c := range clusters {
		for _, p := range c.Ports().all() {
			if other, dup := ports[p]; dup {
				t.Errorf("port %d used by %s and %s", p, other, c.ID())
			}
			ports[p] = c.ID()
		}
	}
	if a.Dir() == b.Dir() {
		t.Error("clusters share a data directory")
	}
	for _, c := range clusters {
		if _, err := os.Stat(filepath.Join(c.Dir(), "etcd")); err == nil {
			t.Errorf("%s runs an etcd of its own next to the shared datastore", c.ID())
		}
		if got := c.Health(ctx).Components; len(got) != 3 {
			t.Errorf("%s runs %d components, want 3 (no etcd)", c.ID(), len(got))
		}
	}

	// An object in one cluster is not in the other.
	csA, csB := clientFor(t, a, Admin), clientFor(t, b, Admin)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}}
	if _, err := csA.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := csB.CoreV1().Namespaces().Get(ctx, "only-in-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace of cluster A seen in cluster B: %v", err)
	}

	// A's admin certificate means nothing to B: different CAs.
	cfgA, err := a.RESTConfig(Admin)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(cfgA.CertData, cfgA.KeyData)
	if err != nil {
		t.Fatal(err)
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // we check B's client-certificate check, not its serving certificate
		Certificates:       []tls.Certificate{cert},
	}}}
	resp, err := insecure.Get(b.Endpoint() + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Errorf("cluster B answered %d to cluster A's admin certificate", resp.StatusCode)
	}
	// And B's serving certificate is not trusted with A's CA.
	cfgB, _ := b.RESTConfig(Admin)
	cfgB.CAData = cfgA.CAData
	if _, err := kubernetes.NewForConfigOrDie(cfgB).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("cluster B's serving certificate verified with cluster A's CA")
	}

	// Below the API servers: A's datastore certificate opens A's prefix
	// and is refused B's.
	dsCert, err := pki.LoadKeyPair(a.pkiDir(), certDatastoreClient)
	if err != nil {
		t.Fatal(err)
	}
	etcdA, err := ds.ClientAs(dsCert)
	if err != nil {
		t.Fatal(err)
	}
	defer etcdA.Close()
	own, err := etcdA.Get(ctx, datastore.APIServerPrefix(a.ID())+"/namespaces/only-in-a")
	if err != nil || own.Count != 1 {
		t.Errorf("A's certificate reading A's namespace in the datastore: %v, %d keys", err, own.Count)
	}
	if _, err := etcdA.Get(ctx, datastore.Prefix(b.ID()), clientv3.WithPrefix()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("A's certificate listing B's prefix: want permission denied, got %v", err)
	}

	// Deleting A takes its keys and leaves B's.
	if err := h.Delete(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	if n, err := ds.Keys(ctx, a.ID()); err != nil || n != 0 {
		t.Errorf("deleted cluster A left %d keys in the datastore (%v)", n, err)
	}
	if n, err := ds.Keys(ctx, b.ID()); err != nil || n == 0 {
		t.Errorf("deleting A left B %d keys (%v)", n, err)
	}
	if _, err := csB.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("B after A's delete: %v", err)
	}
}

// TestUpgradeKeepsObjects: a control plane on the shared datastore moves
// from the compiled-in release to the next minor's servers (bin/kube-*),
// keeping its objects, and a host opened again starts it on the release
// its record names.
func TestUpgradeKeepsObjects(t *testing.T) {
	t.Parallel()
	const next = "1.37.2"
	dir := t.TempDir()
	ds := startDatastore(t, filepath.Join(dir, "datastore"), 21448, 21449)
	h := newHostWith(t, Options{DataDir: dir, Ports: PortRange{First: 21400, Last: 21447}, Datastore: ds})
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.executable), "kube-"+next)); err != nil {
		t.Fatalf("make build builds kube-%s beside slipway: %v", next, err)
	}
	ctx := context.Background()
	c, err := h.Create(ctx, ClusterSpec{ID: "upgraded"})
	if err != nil {
		t.Fatal(err)
	}
	cs := clientFor(t, c, Admin)
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	serves := func(want string) {
		t.Helper()
		v, err := cs.Discovery().ServerVersion()
		if err != nil || v.GitVersion != want {
			t.Fatalf("the API server reports %v (%v), want %s", v, err, want)
		}
		cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "keep", metav1.GetOptions{})
		if err != nil || cm.Data["k"] != "v" {
			t.Fatalf("the ConfigMap after the upgrade: %v %v", cm, err)
		}
	}
	serves(version.Kubernetes)

	if err := c.Upgrade(ctx, "1.34.0"); err == nil {
		t.Error("an upgrade to a release Slipway does not serve was taken")
	}
	// Ask /version on a fresh connection every 25 ms while the upgrade
	// runs: the old API server serves until the new one is ready. (Not
	// /readyz: the old one's says "shutting down" while it drains.)
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	stop := make(chan struct{})
	gap := make(chan time.Duration)
	go func() {
		var longest time.Duration
		last := time.Now()
		for {
			select {
			case <-stop:
				gap <- max(longest, time.Since(last))
				return
			case <-time.After(25 * time.Millisecond):
			}
			if resp, err := probe.Get(c.Endpoint() + "/version"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					longest, last = max(longest, time.Since(last)), time.Now()
				}
			}
		}
	}()
	began := time.Now()
	err = c.Upgrade(ctx, next)
	close(stop)
	longest := <-gap
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("upgrade to %s took %s; the longest wait between answers was %s", next, took.Round(time.Millisecond), longest.Round(time.Millisecond))
	// The new API server listens beside the old one on the other kind of
	// address (surgeBind), so new connections reach the old one until the
	// new one is ready: measured 51 ms. Stopping first left the API
	// unanswered for nearly the whole upgrade (14 s of 17 s here); sharing
	// one address gave 1-2 s.
	if longest > took/3 {
		t.Errorf("the API went unanswered for %s of the %s upgrade; the old API server should serve until the new one is ready", longest, took)
	}
	if c.KubernetesVersion() != next {
		t.Errorf("KubernetesVersion() = %s", c.KubernetesVersion())
	}
	// The new server took the other address (surgeBind): on a host with
	// IPv6 loopback it answers on ::1 too, which the old one never did.
	if ipv6Loopback() {
		u, _ := url.Parse(c.Endpoint())
		resp, err := probe.Get("https://" + net.JoinHostPort("::1", u.Port()) + "/version")
		if err != nil {
			t.Errorf("the upgraded API server does not answer on ::1: %v", err)
		} else {
			resp.Body.Close()
		}
	}
	eventually(t, 30*time.Second, "the new controller manager and scheduler healthy", func() (bool, string) {
		for name, err := range c.ComponentHealth(ctx) {
			if err != nil {
				return false, name + ": " + err.Error()
			}
		}
		return true, ""
	})
	serves("v" + next)
	if p := componentPath(t, c, components.ControllerManager); p != filepath.Join(filepath.Dir(h.executable), "kube-"+next) {
		t.Errorf("the controller manager runs %s", p)
	}

	h.Close()
	h2 := newHostWith(t, Options{DataDir: dir, Ports: PortRange{First: 21400, Last: 21447}, Datastore: ds})
	defer h2.Close()
	c, err = h2.Get("upgraded")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cs = clientFor(t, c, Admin)
	serves("v" + next)
}

// componentPath is the program a component of c runs.
func componentPath(t *testing.T, c *Cluster, name string) string {
	t.Helper()
	path, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", componentPID(t, c, name)))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// memRegistry and memLedger are the registry and port ledger two hosts
// share, in memory (internal/fleet keeps them in the management plane and
// is tested against it there).
type memRegistry struct {
	mu    sync.Mutex
	files map[string]map[string][]byte
}

func (r *memRegistry) Put(_ context.Context, id string, files map[string][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[id] = maps.Clone(files)
	return nil
}

func (r *memRegistry) Get(_ context.Context, id string) (map[string][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.files[id]
	if !ok {
		return nil, ErrNotFound
	}
	return maps.Clone(f), nil
}

func (r *memRegistry) Delete(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.files, id)
	return nil
}

type memLedger struct{ *portAllocator }

func (l memLedger) Claim(_ context.Context, owner string, n int, _ PortRange, _ func(int) bool) ([]int, error) {
	return l.allocate(owner, n)
}

func (l memLedger) Release(_ context.Context, owner string) error {
	l.release(owner)
	return nil
}

// TestClusterMovesBetweenHosts: with a shared registry, port ledger and
// datastore, a cluster made on one host starts on another with its
// objects, ports and credentials, and the first host lets it go.
func TestClusterMovesBetweenHosts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ds := startDatastore(t, filepath.Join(dir, "datastore"), 21498, 21499)
	rng := PortRange{First: 21450, Last: 21497}
	reg, ledger := &memRegistry{files: map[string]map[string][]byte{}}, memLedger{newPortAllocator(rng)}
	host := func(name, advertise string) *Host {
		h := newHostWith(t, Options{DataDir: filepath.Join(dir, name), Ports: rng, Datastore: ds, Registry: reg, PortLedger: ledger, Advertise: advertise})
		t.Cleanup(h.Close)
		return h
	}
	a, b := host("a", ""), host("b", "")
	ctx := context.Background()

	c, err := a.Create(ctx, ClusterSpec{ID: "mover"})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "made-on-a"}}
	if _, err := clientFor(t, c, Admin).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another host hands out its credentials without running it.
	kubeconfig, err := b.Kubeconfig(ctx, "mover", Admin, KubeconfigNames{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("mover"); err == nil {
		t.Error("handing out a kubeconfig made host b run the cluster")
	}

	a.Release("mover")
	if _, err := a.Get("mover"); err == nil {
		t.Error("host a still knows the cluster it released")
	}
	moved, err := b.Adopt(ctx, "mover")
	if err != nil {
		t.Fatal(err)
	}
	if moved.Ports() != c.Ports() {
		t.Errorf("ports changed in the move: %+v, were %+v", moved.Ports(), c.Ports())
	}
	if err := moved.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The kubeconfig b gave out before the move reaches the cluster, with
	// what was made on a.
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "made-on-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("the moved cluster lost its objects: %v", err)
	}

	// To a host on "another machine", one that advertises its own
	// address: the kubeconfigs every host hands out now point there, and
	// its API server's certificate names it.
	c3 := host("c", "127.0.0.3")
	b.Release("mover")
	moved, err = c3.Adopt(ctx, "mover")
	if err != nil {
		t.Fatal(err)
	}
	if err := moved.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*Host{"b (from the registry)": b, "c (its own)": c3} {
		kubeconfig, err := h.Kubeconfig(ctx, "mover", Admin, KubeconfigNames{})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("https://127.0.0.3:%d", c.Ports().APIServer); cfg.Host != want {
			t.Errorf("host %s's kubeconfig points at %s, want %s", name, cfg.Host, want)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "made-on-a", metav1.GetOptions{}); err != nil {
			t.Errorf("through host %s's kubeconfig: %v", name, err)
		}
		// The server listens on every address, but its certificate names
		// only loopback and the advertised one.
		cfg.Host = fmt.Sprintf("https://127.0.0.4:%d", c.Ports().APIServer)
		cs, _ = kubernetes.NewForConfig(cfg)
		_, err = cs.CoreV1().Namespaces().Get(ctx, "made-on-a", metav1.GetOptions{})
		if err == nil || !strings.Contains(err.Error(), "certificate is valid for") {
			t.Errorf("an address the host does not advertise: got %v, want a certificate error", err)
		}
	}

	// Deleting it where it runs deletes it everywhere: registry, keys,
	// ports.
	if err := c3.Delete(ctx, "mover"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "mover"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the registry still keeps the deleted cluster: %v", err)
	}
	if n, err := ds.Keys(ctx, "mover"); err != nil || n != 0 {
		t.Errorf("the deleted cluster left %d keys (%v)", n, err)
	}
	if _, err := a.Adopt(ctx, "mover"); !errors.Is(err, ErrNotFound) {
		t.Errorf("host a adopted a deleted cluster: %v", err)
	}
}

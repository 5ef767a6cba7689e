package hosting

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func (h *Host) readySpares() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for _, c := range h.spares.ready {
		ids = append(ids, c.rec.ID)
	}
	return ids
}

func waitSpare(t *testing.T, h *Host) string {
	t.Helper()
	var id string
	eventually(t, 3*time.Minute, "a spare control plane ready", func() (bool, string) {
		ids := h.readySpares()
		if len(ids) == 0 {
			return false, "none ready"
		}
		id = ids[0]
		return true, ""
	})
	return id
}

// TestSpareControlPlane: a create that fits a spare claims it and becomes
// a whole cluster under its own ID, with the spare's prefix and ports;
// another spare is started; the cluster moves to another host and is
// deleted like any other; a spare left in the data directory is started
// again by the next host over it.
func TestSpareControlPlane(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ds := startDatastore(t, filepath.Join(dir, "datastore"), 21548, 21549)
	rng := PortRange{First: 21500, Last: 21547}
	reg, ledger := &memRegistry{files: map[string]map[string][]byte{}}, memLedger{newPortAllocator(rng)}
	host := func(name string, spares int) (*Host, context.CancelFunc) {
		h := newHostWith(t, Options{DataDir: filepath.Join(dir, name), Ports: rng, Datastore: ds, Registry: reg, PortLedger: ledger, Spares: spares})
		ctx, cancel := context.WithCancel(context.Background())
		go h.KeepSpares(ctx)
		t.Cleanup(func() { cancel(); h.Close() })
		return h, cancel
	}
	a, stopKeeping := host("a", 1)
	ctx := context.Background()
	spare := waitSpare(t, a)

	began := time.Now()
	c, err := a.Create(ctx, ClusterSpec{ID: "claimed", FQDN: "claimed.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("create from a spare took %s", time.Since(began).Round(time.Millisecond))
	if c.ID() != "claimed" || c.rec.Store != spare || c.rec.Spare {
		t.Fatalf("claimed cluster's record: id %q store %q spare %v; want id claimed, store %s", c.ID(), c.rec.Store, c.rec.Spare, spare)
	}
	if got := a.readySpares(); len(got) != 0 {
		t.Errorf("the claimed spare is still offered: %v", got)
	}
	// Registered under its own ID, naming the spare's store.
	files, err := reg.Get(ctx, "claimed")
	if err != nil {
		t.Fatal(err)
	}
	var kept record
	if err := json.Unmarshal(files[sharedRecordKey], &kept); err != nil || kept.Store != spare || kept.Issuer != DefaultIssuer {
		t.Fatalf("registry's record: %+v (%v)", kept, err)
	}
	if _, err := reg.Get(ctx, spare); !errors.Is(err, ErrNotFound) {
		t.Errorf("the spare itself is in the registry: %v", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "made-after-claim"}}
	if _, err := clientFor(t, c, Admin).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := ds.Keys(ctx, spare); err != nil || n == 0 {
		t.Errorf("the cluster keeps %d keys under the spare's prefix (%v)", n, err)
	}
	// The running API server reloads its certificate, which now names the
	// cluster's FQDN.
	eventually(t, time.Minute, "the API server serving a certificate for its FQDN", func() (bool, string) {
		err := dialFQDN(c)
		return err == nil, fmt.Sprint(err)
	})
	// The rest of the control plane runs.
	eventually(t, time.Minute, "controller manager and scheduler healthy", func() (bool, string) {
		for name, err := range c.ComponentHealth(ctx) {
			if err != nil {
				return false, name + ": " + err.Error()
			}
		}
		return true, ""
	})
	// A service account token names the default issuer.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}
	if _, err := clientFor(t, c, Admin).CoreV1().ServiceAccounts("made-after-claim").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := clientFor(t, c, Admin).CoreV1().ServiceAccounts("made-after-claim").CreateToken(ctx, "probe", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if iss := tokenIssuer(t, tok.Status.Token); iss != DefaultIssuer {
		t.Errorf("token issuer %q, want %q", iss, DefaultIssuer)
	}
	// Another spare replaces it; a create that does not fit one (another
	// service CIDR, a flag of the API server) takes the cold path.
	next := waitSpare(t, a)
	if next == spare {
		t.Fatalf("spare %s offered twice", spare)
	}
	cold, err := a.Create(ctx, ClusterSpec{ID: "cold", ServiceCIDR: "10.96.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	if cold.rec.Store != "" {
		t.Errorf("a create with another service CIDR claimed spare %s", cold.rec.Store)
	}
	if err := a.Delete(ctx, "cold"); err != nil {
		t.Fatal(err)
	}

	// It moves like any cluster: another host starts it from the registry
	// over the spare's prefix.
	kubeconfig, err := a.Kubeconfig(ctx, "claimed", Admin, KubeconfigNames{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := host("b", 0)
	a.Release("claimed")
	moved, err := b.Adopt(ctx, "claimed")
	if err != nil {
		t.Fatal(err)
	}
	if err := moved.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "made-after-claim", metav1.GetOptions{}); err != nil {
		t.Fatalf("the moved cluster lost its objects: %v", err)
	}
	if err := b.Delete(ctx, "claimed"); err != nil {
		t.Fatal(err)
	}
	if n, err := ds.Keys(ctx, spare); err != nil || n != 0 {
		t.Errorf("the deleted cluster left %d keys under its store %s (%v)", n, spare, err)
	}

	// A host over a's directory finds the spare a left and starts it.
	stopKeeping()
	a.Close()
	a2, _ := host("a", 1)
	if got := waitSpare(t, a2); got != next {
		t.Errorf("the next host's spare is %s, want %s, left in the data directory", got, next)
	}
}

// dialFQDN checks that c's API server presents a certificate for its FQDN.
func dialFQDN(c *Cluster) error {
	caPEM, err := os.ReadFile(crt(c.pkiDir(), certCA))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.Ports().APIServer), &tls.Config{ServerName: c.FQDN(), RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	return conn.Close()
}

func tokenIssuer(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Iss
}

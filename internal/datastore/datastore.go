// Package datastore is the etcd that hosted clusters share. Each cluster's
// API server keeps its objects under its own key prefix and reaches etcd
// with its own client certificate, whose user etcd's role-based access
// limits to that prefix: one cluster can never read or write another's
// keys. This is how hosted-control-plane systems (Kamaji's shared etcd,
// HyperShift's) make control planes stateless processes: the state lives in
// one datastore, which one process can back up and any host can reach.
package datastore

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/slipway-dev/slipway/internal/pki"
	"github.com/slipway-dev/slipway/internal/supervisor"
)

// rootUser is etcd's administrator; Slipway's own client certificate names
// it, and only Slipway holds that certificate.
const rootUser = "root"

// Base names of the files in the datastore's pki directory.
const (
	certCA     = "ca"
	certServer = "server"
	certRoot   = "root-client"
)

// Options configure the datastore Slipway runs itself.
type Options struct {
	// Dir holds the datastore: etcd's data, its PKI and its log.
	Dir string
	// Executable is the slipway binary that runs etcd ("slipway component
	// etcd"); empty means this process's own executable.
	Executable string
	// ClientPort and PeerPort are etcd's ports, on loopback (the client
	// port on every address if Advertise is set).
	ClientPort, PeerPort int
	// Advertise, if set, is the address (an IP or a DNS name) at which
	// hosts on other machines reach the datastore: etcd then serves
	// clients on every address, its certificate names it, and Endpoints
	// returns it.
	Advertise string
	// ReadyTimeout bounds the wait for etcd to answer; zero means 2 minutes.
	ReadyTimeout time.Duration
}

// Store is a running shared datastore and Slipway's administrative client
// of it.
type Store struct {
	dir       string // empty for an external datastore
	endpoints []string
	caFile    string
	ca        *pki.KeyPair // issues the tenants' client certificates
	root      *clientv3.Client
	rootTLS   *tls.Config
	proc      *supervisor.Process
	log       io.Closer
	// loopback and peerURL are where an etcd Slipway runs answers on this
	// machine and what it advertises to peers (for an online backup).
	loopback, peerURL string

	// fence is held for reading by every change that makes or unmakes a
	// cluster in the datastore, and for writing by an online backup (see
	// Freeze).
	fence sync.RWMutex
}

// External names an etcd cluster that Slipway uses rather than runs.
type External struct {
	Endpoints []string
	// CACertFile and CAKeyFile are the certificate authority etcd trusts
	// for client certificates, which must also have signed its serving
	// certificate (one CA, as kubeadm's etcd has): Slipway verifies etcd
	// with it and issues each cluster's client certificate from it.
	CACertFile, CAKeyFile string
	// CertFile and KeyFile are a client certificate of etcd's root user
	// (common name "root"): Slipway turns on authentication if it is off
	// and makes each cluster's user and role.
	CertFile, KeyFile string
	// ReadyTimeout bounds the wait for etcd to answer; zero means 2 minutes.
	ReadyTimeout time.Duration
}

// Connect uses an existing etcd cluster as the shared datastore.
func Connect(ctx context.Context, e External) (*Store, error) {
	if len(e.Endpoints) == 0 || e.CACertFile == "" || e.CAKeyFile == "" || e.CertFile == "" || e.KeyFile == "" {
		return nil, errors.New("datastore: an external datastore needs endpoints, its CA's certificate and key, and a root client certificate and key")
	}
	ca, err := pki.LoadKeyPairFiles(e.CACertFile, e.CAKeyFile)
	if err != nil {
		return nil, fmt.Errorf("datastore: CA: %w", err)
	}
	root, err := pki.LoadKeyPairFiles(e.CertFile, e.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("datastore: root certificate: %w", err)
	}
	s := &Store{endpoints: e.Endpoints, caFile: e.CACertFile, ca: ca}
	if err := s.connect(ctx, root, cmp.Or(e.ReadyTimeout, 2*time.Minute)); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Start runs the datastore (its PKI made on first use), waits until it
// answers, and turns on etcd's access control if it is not on yet.
func Start(ctx context.Context, o Options) (*Store, error) {
	// Something else on a port would answer in this etcd's place: its
	// clients would then fail every handshake (another CA) and Start
	// would wait out ReadyTimeout saying nothing useful.
	for _, port := range []int{o.ClientPort, o.PeerPort} {
		if err := portFree(port); err != nil {
			return nil, fmt.Errorf("datastore: port %d is taken (another Slipway, or an etcd left running?): %w", port, err)
		}
	}
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("datastore: finding own executable: %w", err)
		}
		o.Executable = exe
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	pkiDir := filepath.Join(o.Dir, "pki")
	ca, root, err := ensurePKI(pkiDir, time.Now())
	if err != nil {
		return nil, fmt.Errorf("datastore: %w", err)
	}
	logDir := logDir(o.Dir)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, fmt.Errorf("datastore: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("datastore: opening log: %w", err)
	}
	if _, err := pki.EnsureHost(pkiDir, certServer, ca, serverSpec, o.Advertise, time.Now()); err != nil {
		return nil, fmt.Errorf("datastore: naming %s in etcd's certificate: %w", o.Advertise, err)
	}
	clientURL := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ClientPort))
	peerURL := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(o.PeerPort))
	listenURL := clientURL
	if o.Advertise != "" {
		listenURL = "https://" + net.JoinHostPort("0.0.0.0", strconv.Itoa(o.ClientPort))
		clientURL = "https://" + net.JoinHostPort(o.Advertise, strconv.Itoa(o.ClientPort))
	}
	flags := EtcdFlags(EtcdConfig{
		DataDir: filepath.Join(o.Dir, "etcd"), ListenClientURL: listenURL, ClientURL: clientURL, PeerURL: peerURL,
		CertFile: filepath.Join(pkiDir, certServer+".crt"), KeyFile: filepath.Join(pkiDir, certServer+".key"),
		CAFile: filepath.Join(pkiDir, certCA+".crt"),
		// Many clusters' objects: AKS's control planes get 8 GiB.
		QuotaBytes: 8 << 30,
	})
	proc, err := supervisor.Start(supervisor.Spec{
		Name: "etcd", Path: o.Executable,
		Args:   append([]string{"component", "etcd"}, Args(flags)...),
		Env:    []string{"GOGC=50"},
		Output: logFile,
	})
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("datastore: %w", err)
	}
	s := &Store{dir: o.Dir, endpoints: []string{clientURL}, caFile: filepath.Join(pkiDir, certCA+".crt"), ca: ca, proc: proc, log: logFile,
		loopback: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ClientPort)), peerURL: peerURL}
	if err := s.connect(ctx, root, o.ReadyTimeout); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// connect makes the root client, waits for etcd to answer and enables
// authentication. Until it is enabled etcd lets any certificate its CA
// signed do anything; tenants are only admitted after it is.
func (s *Store) connect(ctx context.Context, root *pki.KeyPair, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Wait for the etcd Slipway just started to listen before dialling:
	// gRPC logs every refused connection of a client made too early. (An
	// external one is up, or some of its endpoints are.)
	if s.proc != nil {
		if err := waitListening(ctx, s.endpoints[0]); err != nil {
			return fmt.Errorf("datastore: etcd not listening after %s: %w (log in %s)", timeout, err, s.LogDir())
		}
	}
	var err error
	s.rootTLS = ClientTLS(s.ca.Cert, root)
	s.root, err = clientv3.New(clientv3.Config{
		Endpoints: s.endpoints, TLS: s.rootTLS, DialTimeout: 5 * time.Second,
		// The client's own log is a chatty zap logger; Slipway reports
		// what fails through the errors it returns.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("datastore: %w", err)
	}
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = s.root.AuthStatus(callCtx)
		callCancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("datastore: etcd not answering after %s: %w (log in %s)", timeout, err, s.LogDir())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return s.enableAuth(ctx)
}

func waitListening(ctx context.Context, endpoint string) error {
	addr := strings.TrimPrefix(endpoint, "https://")
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Store) enableAuth(ctx context.Context) error {
	status, err := s.root.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("datastore: %w", err)
	}
	if status.Enabled {
		return nil
	}
	if _, err := s.root.RoleAdd(ctx, rootUser); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("datastore: adding the root role: %w", err)
	}
	if _, err := s.root.UserAddWithOptions(ctx, rootUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("datastore: adding the root user: %w", err)
	}
	if _, err := s.root.UserGrantRole(ctx, rootUser, rootUser); err != nil {
		return fmt.Errorf("datastore: granting root: %w", err)
	}
	if _, err := s.root.AuthEnable(ctx); err != nil {
		return fmt.Errorf("datastore: enabling authentication: %w", err)
	}
	return nil
}

// Close stops the datastore Slipway runs.
func (s *Store) Close() {
	if s.root != nil {
		s.root.Close()
	}
	if s.proc != nil {
		s.proc.Stop(context.Background())
	}
	if s.log != nil {
		s.log.Close()
	}
}

// Endpoints are the datastore's client URLs.
func (s *Store) Endpoints() []string { return s.endpoints }

// CAFile is the certificate authority that signed the datastore's serving
// certificate, which clients verify it with.
func (s *Store) CAFile() string { return s.caFile }

// LogDir holds etcd's log, etcd.log; empty for an external datastore.
func (s *Store) LogDir() string {
	if s.dir == "" {
		return ""
	}
	return logDir(s.dir)
}

func logDir(dir string) string { return filepath.Join(dir, "logs") }

// Process reports the supervised etcd, nil for a datastore Slipway does
// not run.
func (s *Store) Process() *supervisor.Process { return s.proc }

// Prefix is the key prefix that holds cluster id's objects. The trailing
// slash keeps cluster "a" out of cluster "ab".
func Prefix(id string) string { return "/clusters/" + id + "/" }

// APIServerPrefix is the API server's --etcd-prefix for cluster id.
func APIServerPrefix(id string) string { return Prefix(id) + "registry" }

// User is the etcd user, and role, of cluster id.
func User(id string) string { return "cluster-" + id }

// Admit gives cluster id a user and role that may read and write its prefix
// and nothing else, and a client certificate naming that user. It is
// idempotent: a Create that died halfway admits again.
func (s *Store) Admit(ctx context.Context, id string) (*pki.KeyPair, error) {
	s.fence.RLock()
	defer s.fence.RUnlock()
	user, prefix := User(id), Prefix(id)
	if _, err := s.root.RoleAdd(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return nil, fmt.Errorf("datastore: admitting %s: %w", id, err)
	}
	if _, err := s.root.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		return nil, fmt.Errorf("datastore: admitting %s: %w", id, err)
	}
	if _, err := s.root.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return nil, fmt.Errorf("datastore: admitting %s: %w", id, err)
	}
	if _, err := s.root.UserGrantRole(ctx, user, user); err != nil {
		return nil, fmt.Errorf("datastore: admitting %s: %w", id, err)
	}
	kp, err := s.ca.Issue(pki.LeafSpec{CommonName: user, Usage: pki.ClientAuth}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("datastore: admitting %s: %w", id, err)
	}
	return kp, nil
}

// Remove deletes cluster id's keys, then its user and role, so that its
// certificate opens nothing any more. Removing what is gone is no error.
func (s *Store) Remove(ctx context.Context, id string) error {
	s.fence.RLock()
	defer s.fence.RUnlock()
	user := User(id)
	if _, err := s.root.Delete(ctx, Prefix(id), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("datastore: removing %s's keys: %w", id, err)
	}
	if _, err := s.root.UserDelete(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) {
		return fmt.Errorf("datastore: removing %s's user: %w", id, err)
	}
	if _, err := s.root.RoleDelete(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
		return fmt.Errorf("datastore: removing %s's role: %w", id, err)
	}
	return nil
}

// Freeze holds back Admit and Remove, waiting for those under way, until
// thaw is called: an online backup reads the management plane, then the
// datastore, then the records in between (backup.Online says why that
// agrees). Other hosts of a fleet admit and remove through stores of their
// own, which this one does not hold back.
func (s *Store) Freeze() (thaw func()) {
	s.fence.Lock()
	return s.fence.Unlock
}

// Member is the datastore's etcd as an online backup reaches it: as root,
// on loopback. An external datastore is its owner's to back up: ok is
// false.
func (s *Store) Member() (m Member, ok bool) {
	if s.dir == "" {
		return Member{}, false
	}
	return Member{Dir: filepath.Join(s.dir, "etcd"), PeerURL: s.peerURL, Client: clientv3.Config{
		Endpoints: []string{s.loopback}, TLS: s.rootTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	}}, true
}

// Keys counts the keys under cluster id's prefix.
func (s *Store) Keys(ctx context.Context, id string) (int64, error) {
	resp, err := s.root.Get(ctx, Prefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("datastore: counting %s's keys: %w", id, err)
	}
	return resp.Count, nil
}

// ClientAs is an etcd client of the datastore presenting cert, as a
// cluster's API server reaches it with the certificate Admit gave it.
func (s *Store) ClientAs(cert *pki.KeyPair) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: s.endpoints, TLS: ClientTLS(s.ca.Cert, cert), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// ClientTLS is a client's TLS configuration for an etcd whose serving
// certificate ca signed, presenting cert.
func ClientTLS(ca *x509.Certificate, cert *pki.KeyPair) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key, Leaf: cert.Cert}},
		MinVersion:   tls.VersionTLS12,
	}
}

// Credentials returns the PEM files other hosts need to use a datastore
// Slipway runs (`slipway management serve`'s join file): the CA's
// certificate and key, and the root user's client certificate and key.
func (s *Store) Credentials() (caCert, caKey, cert, key []byte, err error) {
	if s.dir == "" {
		return nil, nil, nil, nil, errors.New("datastore: an external datastore's credentials are its owner's")
	}
	pkiDir := filepath.Join(s.dir, "pki")
	var out [4][]byte
	for i, name := range []string{certCA + ".crt", certCA + ".key", certRoot + ".crt", certRoot + ".key"} {
		if out[i], err = os.ReadFile(filepath.Join(pkiDir, name)); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("datastore: %w", err)
		}
	}
	return out[0], out[1], out[2], out[3], nil
}

// portFree checks that nothing listens on port on any IPv4 address (etcd
// listens on all of them when an address is advertised).
func portFree(port int) error {
	l, err := net.Listen("tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

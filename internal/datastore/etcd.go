package datastore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/slipway-dev/slipway/internal/pki"
)

// EtcdConfig is what differs between the etcds Slipway runs: the shared
// datastore, and the own etcd of the management plane and of clusters made
// before the datastore was shared.
type EtcdConfig struct {
	DataDir            string
	ClientURL, PeerURL string
	// ListenClientURL is where etcd serves clients, if not at ClientURL
	// (a wildcard address behind an advertised one).
	ListenClientURL string
	// CertFile and KeyFile serve clients and peers; CAFile verifies both.
	CertFile, KeyFile, CAFile string
	// QuotaBytes is the database's size limit.
	QuotaBytes int64
}

// EtcdFlags are the flags of one single-member etcd that only accepts
// clients with a certificate its CA signed.
func EtcdFlags(c EtcdConfig) map[string]string {
	return map[string]string{
		"name":                        MemberName,
		"data-dir":                    c.DataDir,
		"listen-client-urls":          cmp.Or(c.ListenClientURL, c.ClientURL),
		"advertise-client-urls":       c.ClientURL,
		"listen-peer-urls":            c.PeerURL,
		"initial-advertise-peer-urls": c.PeerURL,
		"initial-cluster":             MemberName + "=" + c.PeerURL,
		"cert-file":                   c.CertFile,
		"key-file":                    c.KeyFile,
		"trusted-ca-file":             c.CAFile,
		"client-cert-auth":            "true",
		"peer-cert-file":              c.CertFile,
		"peer-key-file":               c.KeyFile,
		"peer-trusted-ca-file":        c.CAFile,
		"peer-client-cert-auth":       "true",
		// A small raft log in memory: etcd keeps up to snapshot-count
		// entries, which dominates its resident memory at idle.
		"snapshot-count": "5000",
		// The write-ahead log is in 64 MB segments, each kept until a
		// snapshot covers it and then up to max-wals of them (default 5):
		// 384 MB of disk per etcd once it has seen some churn. Raft needs
		// only those after the last snapshot, which a single member
		// takes every snapshot-count entries.
		"max-wals":            "2",
		"quota-backend-bytes": strconv.FormatInt(c.QuotaBytes, 10),
		// Compaction keeps the database (and the memory bbolt maps)
		// small. On the shared datastore it is etcd's alone: the API
		// servers' own compaction writes a key outside their prefix.
		"auto-compaction-mode":      "periodic",
		"auto-compaction-retention": "10m",
		"log-level":                 "warn",
	}
}

// Member is one running etcd Slipway runs, as an online backup reaches it:
// through its client API, whose snapshot is a consistent copy of its
// database at one revision.
type Member struct {
	// Dir is its data directory.
	Dir string
	// PeerURL is the URL it advertises to peers; a restore writes it into
	// the member the snapshot becomes.
	PeerURL string
	// Client reaches it at one endpoint with a certificate that may take a
	// snapshot (any client of an etcd without authentication, its root
	// user otherwise).
	Client clientv3.Config
}

// MemberName is the name of every etcd member Slipway runs, each the only
// member of its cluster.
const MemberName = "default"

// Save writes a snapshot of m's database to path, as `etcdctl snapshot
// save` does: one consistent revision, checked against its hash.
func (m Member) Save(ctx context.Context, path string) error {
	cfg := m.Client
	cfg.Context = ctx
	_, err := snapshot.SaveWithVersion(ctx, zap.NewNop(), cfg, path)
	return err
}

// RestoreMember makes dir an etcd data directory from a snapshot that Save
// wrote, as `etcdutl snapshot restore` does: a new single-member cluster
// at the snapshot's revision, named and advertising peerURL as the etcd
// EtcdFlags starts there. dir must not exist or be empty.
func RestoreMember(snapshotPath, dir, peerURL string) error {
	return etcdutl.NewV3(zap.NewNop()).Restore(etcdutl.RestoreConfig{
		SnapshotPath: snapshotPath, OutputDataDir: dir, Name: MemberName,
		PeerURLs: []string{peerURL}, InitialCluster: MemberName + "=" + peerURL,
		// etcd's default, which EtcdFlags leaves as it is.
		InitialClusterToken: "etcd-cluster",
	})
}

// Args turns a flag map into sorted --name=value arguments, so the command
// line is deterministic and easy to read in logs.
func Args(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, "--"+k+"="+v)
	}
	sort.Strings(out)
	return out
}

// serverSpec is etcd's serving certificate, for loopback (a datastore that
// advertises an address adds it, Options.Advertise).
var serverSpec = pki.LeafSpec{
	CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")},
	Usage: pki.ServerAuth | pki.ClientAuth,
}

// ensurePKI writes the datastore's CA, serving certificate and root client
// certificate unless they are there, and returns the CA and the root
// certificate. The root certificate is written last: its presence marks a
// complete set.
func ensurePKI(dir string, now time.Time) (ca, root *pki.KeyPair, err error) {
	if _, err := os.Stat(filepath.Join(dir, certRoot+".crt")); err == nil {
		if ca, err = pki.LoadKeyPair(dir, certCA); err != nil {
			return nil, nil, err
		}
		root, err = pki.LoadKeyPair(dir, certRoot)
		return ca, root, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("checking PKI: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if ca, err = pki.NewCA("slipway-datastore-ca", now); err != nil {
		return nil, nil, err
	}
	server, err := ca.Issue(serverSpec, now)
	if err != nil {
		return nil, nil, err
	}
	if root, err = ca.Issue(pki.LeafSpec{CommonName: rootUser, Usage: pki.ClientAuth}, now); err != nil {
		return nil, nil, err
	}
	for _, f := range []struct {
		name string
		kp   *pki.KeyPair
	}{{certCA, ca}, {certServer, server}, {certRoot, root}} {
		if err := pki.WriteKeyPair(dir, f.name, f.kp); err != nil {
			return nil, nil, err
		}
	}
	return ca, root, nil
}

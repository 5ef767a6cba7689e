package hosting

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/pki"
)

// Identities of the cluster's client certificates.
const (
	// AdminUser is the admin certificate's common name; its organisation
	// system:masters gives it every right, as AKS's clusterAdmin credential.
	AdminUser = "masterclient"
	// ClusterUsersGroup is the cluster-user certificate's organisation. A
	// ClusterRoleBinding made at first start binds it to cluster-admin,
	// which is what a non-AAD AKS cluster's user credential can do; unlike
	// system:masters, the binding can be revoked inside the cluster.
	ClusterUsersGroup = "slipway:cluster-users"
	ClusterUser       = "clusterUser"
)

// Base names of the files in a cluster's pki directory (NAME.crt, NAME.key).
const (
	certCA            = "ca"
	certFrontProxyCA  = "front-proxy-ca"
	certEtcdCA        = "etcd-ca"
	certAPIServer     = "apiserver"
	certAPIServerEtcd = "apiserver-etcd-client"
	// certDatastoreClient is the API server's certificate for the shared
	// datastore, which names the cluster's etcd user.
	certDatastoreClient   = "datastore-client"
	certFrontProxyClient  = "front-proxy-client"
	certEtcdServer        = "etcd-server"
	certAdmin             = "admin"
	certUser              = "user"
	certControllerManager = "kube-controller-manager"
	certScheduler         = "kube-scheduler"
	saKeyFile             = "sa.key"
	saPubFile             = "sa.pub"
)

// AKS's default networks, for clusters that name none.
const (
	DefaultServiceCIDR = "10.0.0.0/16"
	// DefaultPodCIDR is AKS's default pod CIDR for kubenet clusters.
	DefaultPodCIDR = "10.244.0.0/16"
)

// ensurePKI writes the cluster's certificates into dir unless they are there
// already; those of an etcd of its own only if ownEtcd. sa.pub is written
// last, so its presence marks a complete set.
func ensurePKI(dir, fqdn, serviceIP string, now time.Time, ownEtcd bool) error {
	if _, err := os.Stat(filepath.Join(dir, saPubFile)); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking PKI: %w", err)
	}
	ca, err := pki.NewCA("kubernetes-ca", now)
	if err != nil {
		return err
	}
	frontProxyCA, err := pki.NewCA("front-proxy-ca", now)
	if err != nil {
		return err
	}
	type leaf struct {
		name string
		ca   *pki.KeyPair
		spec pki.LeafSpec
	}
	leaves := []leaf{
		{certAPIServer, ca, apiServerSpec(fqdn, serviceIP)},
		{certAdmin, ca, pki.LeafSpec{CommonName: AdminUser, Organizations: []string{"system:masters"}, Usage: pki.ClientAuth}},
		{certUser, ca, pki.LeafSpec{CommonName: ClusterUser, Organizations: []string{ClusterUsersGroup}, Usage: pki.ClientAuth}},
		{certControllerManager, ca, pki.LeafSpec{CommonName: "system:kube-controller-manager", Usage: pki.ClientAuth}},
		{certScheduler, ca, pki.LeafSpec{CommonName: "system:kube-scheduler", Usage: pki.ClientAuth}},
		{certFrontProxyClient, frontProxyCA, pki.LeafSpec{CommonName: "front-proxy-client", Usage: pki.ClientAuth}},
	}
	cas := map[string]*pki.KeyPair{certCA: ca, certFrontProxyCA: frontProxyCA}
	if ownEtcd {
		etcdCA, err := pki.NewCA("etcd-ca", now)
		if err != nil {
			return err
		}
		loopback := []net.IP{net.ParseIP("127.0.0.1")}
		leaves = append(leaves,
			leaf{certEtcdServer, etcdCA, pki.LeafSpec{CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: loopback, Usage: pki.ServerAuth | pki.ClientAuth}},
			leaf{certAPIServerEtcd, etcdCA, pki.LeafSpec{CommonName: "kube-apiserver-etcd-client", Usage: pki.ClientAuth}})
		cas[certEtcdCA] = etcdCA
	}
	for _, l := range leaves {
		kp, err := l.ca.Issue(l.spec, now)
		if err != nil {
			return err
		}
		if err := pki.WriteKeyPair(dir, l.name, kp); err != nil {
			return err
		}
	}
	for name, kp := range cas {
		if err := pki.WriteKeyPair(dir, name, kp); err != nil {
			return err
		}
	}
	saKey, err := pki.NewSigningKey()
	if err != nil {
		return err
	}
	saKeyPEM, err := pki.EncodeKey(saKey)
	if err != nil {
		return err
	}
	saPubPEM, err := pki.EncodePublicKey(saKey.Public())
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, saKeyFile), saKeyPEM, 0o600); err != nil {
		return err
	}
	// sa.pub last: its presence says the set is complete.
	return atomicfile.Write(filepath.Join(dir, saPubFile), saPubPEM, 0o644)
}

// apiServerSpec is the API server's serving certificate: for loopback, the
// cluster's FQDN and the kubernetes Service's names and address (a host
// that advertises an address adds it, Cluster.advertise).
func apiServerSpec(fqdn, serviceIP string) pki.LeafSpec {
	return pki.LeafSpec{
		CommonName: "apiserver",
		DNSNames:   []string{"localhost", fqdn, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        []net.IP{net.ParseIP(loopbackV4), net.ParseIP(serviceIP)},
		Usage:      pki.ServerAuth,
	}
}

func crt(dir, name string) string { return filepath.Join(dir, name+".crt") }
func key(dir, name string) string { return filepath.Join(dir, name+".key") }

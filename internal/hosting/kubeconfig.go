package hosting

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Credential names a client identity of a cluster.
type Credential string

const (
	// Admin is the cluster-admin credential (system:masters).
	Admin Credential = certAdmin
	// User is the cluster-user credential.
	User Credential = certUser
	// The components' own credentials.
	controllerManagerCredential Credential = certControllerManager
	schedulerCredential         Credential = certScheduler
)

// KubeconfigNames names the cluster, user and context inside a kubeconfig.
// AKS names them after the cluster ("clusterAdmin_<group>_<cluster>" and so
// on); the ARM layer chooses, the hosting layer only writes.
type KubeconfigNames struct {
	Cluster, User, Context string
}

// kubeconfig builds a kubeconfig for cred with certificates embedded, so it
// works when copied to another directory or machine; this host's own
// clients (local) reach the API server on loopback, others at the address
// it is served at.
func (c *Cluster) kubeconfig(cred Credential, names KubeconfigNames, local bool) ([]byte, error) {
	pkiDir := c.pkiDir()
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(pkiDir, name)) }
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	server := rec.served()
	if local {
		server = rec.endpoint()
	}
	return buildKubeconfig(read, server, &rec, cred, names)
}

// buildKubeconfig builds a kubeconfig of the cluster rec describes, served
// at server, from its PKI files, which read returns by name.
func buildKubeconfig(read func(name string) ([]byte, error), server string, rec *record, cred Credential, names KubeconfigNames) ([]byte, error) {
	caPEM, err := read(certCA + ".crt")
	if err != nil {
		return nil, fmt.Errorf("reading cluster CA: %w", err)
	}
	certPEM, err := read(string(cred) + ".crt")
	if err != nil {
		return nil, fmt.Errorf("reading %s certificate: %w", cred, err)
	}
	keyPEM, err := read(string(cred) + ".key")
	if err != nil {
		return nil, fmt.Errorf("reading %s key: %w", cred, err)
	}
	if names.Cluster == "" {
		names.Cluster = rec.Name
	}
	if names.User == "" {
		names.User = string(cred)
	}
	if names.Context == "" {
		names.Context = names.Cluster
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[names.Cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[names.User] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[names.Context] = &clientcmdapi.Context{Cluster: names.Cluster, AuthInfo: names.User}
	cfg.CurrentContext = names.Context
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding kubeconfig: %w", err)
	}
	return data, nil
}

// Kubeconfig returns a kubeconfig for cred, for clients anywhere: it
// points at the address the cluster's host advertises.
func (c *Cluster) Kubeconfig(cred Credential, names KubeconfigNames) ([]byte, error) {
	return c.kubeconfig(cred, names, false)
}

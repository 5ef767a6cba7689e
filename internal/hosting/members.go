package hosting

import (
	"fmt"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/slipway-dev/slipway/internal/components"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/pki"
)

// Members are the running etcds of the host's clusters that have one of
// their own (a self-hosted management plane, clusters made before the
// datastore was shared), as an online backup reaches them: on loopback,
// with the API server's client certificate, which such an etcd (no
// authentication, client certificates from its own CA) lets take a
// snapshot.
func (h *Host) Members() ([]datastore.Member, error) {
	var out []datastore.Member
	for _, c := range h.List() {
		if c.rec.Datastore == sharedDatastore || c.rec.Ports.EtcdClient == 0 || !c.runs(components.Etcd) {
			continue
		}
		m, err := c.member()
		if err != nil {
			return nil, fmt.Errorf("hosting: %s: %w", c.rec.ID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (c *Cluster) member() (datastore.Member, error) {
	dir := c.pkiDir()
	ca, err := pki.LoadCert(crt(dir, certEtcdCA))
	if err != nil {
		return datastore.Member{}, err
	}
	cert, err := pki.LoadKeyPair(dir, certAPIServerEtcd)
	if err != nil {
		return datastore.Member{}, err
	}
	return datastore.Member{
		Dir:     filepath.Join(c.dir, "etcd"),
		PeerURL: fmt.Sprintf("https://%s:%d", loopbackV4, c.rec.Ports.EtcdPeer),
		Client: clientv3.Config{
			Endpoints:   []string{fmt.Sprintf("https://%s:%d", loopbackV4, c.rec.Ports.EtcdClient)},
			TLS:         datastore.ClientTLS(ca, cert),
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		},
	}, nil
}

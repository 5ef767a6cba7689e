package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/hosting"
)

// JoinFile is what `slipway management serve` writes into its data
// directory: everything a host needs to join the fleet (`slipway serve
// --join`). It holds credentials, so it is written 0600.
const JoinFile = "join.json"

// Join is join.json: the management plane's kubeconfig and the shared
// datastore's endpoints and credentials, inline so the file can be copied
// to another machine. The datastore's CA key is in it because every host
// admits the clusters it creates (one etcd user and certificate each).
type Join struct {
	ManagementKubeconfig string        `json:"managementKubeconfig"`
	Datastore            JoinDatastore `json:"datastore"`
	// FirstPort and LastPort are the port range the hosts share: cluster
	// ports are allocated from it by the management plane's ledger, past
	// the first hundred, which are the management plane's.
	FirstPort int `json:"firstPort"`
	LastPort  int `json:"lastPort"`
	// Identity are the files that make the hosts one installation
	// (identityFiles), by their path in a data directory.
	Identity map[string][]byte `json:"identity"`
}

// JoinDatastore is the shared etcd: its client URLs, the CA it trusts (with
// key), and a client certificate of its root user, all PEM.
type JoinDatastore struct {
	Endpoints []string `json:"endpoints"`
	CACert    string   `json:"caCert"`
	CAKey     string   `json:"caKey"`
	Cert      string   `json:"cert"`
	Key       string   `json:"key"`
}

func writeJoin(path string, j *Join) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// useJoin reads a join file and points o at the management plane and the
// datastore it names, writing the credentials into the data directory
// (0600) where the clients read them.
func useJoin(path string, o *Options) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the join file: %w", err)
	}
	var j Join
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("join file %s: %w", path, err)
	}
	if j.ManagementKubeconfig == "" || len(j.Datastore.Endpoints) == 0 {
		return fmt.Errorf("join file %s: it names no management plane or no datastore", path)
	}
	dir := filepath.Join(o.DataDir, "join")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []struct{ name, data string }{
		{"management.kubeconfig", j.ManagementKubeconfig},
		{"datastore-ca.crt", j.Datastore.CACert}, {"datastore-ca.key", j.Datastore.CAKey},
		{"datastore-root.crt", j.Datastore.Cert}, {"datastore-root.key", j.Datastore.Key},
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(dir, f.name), []byte(f.data), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	// The installation's identity is the fleet's; a host keeps its copy
	// across restarts (its connection.json also records its endpoints).
	for name, data := range j.Identity {
		if !slices.Contains(identityFiles, name) {
			return fmt.Errorf("join file %s: %q is not one of the installation's identity files", path, name)
		}
		target := filepath.Join(o.DataDir, name)
		if _, err := os.Stat(target); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(target, data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	o.ManagementKubeconfig = filepath.Join(dir, "management.kubeconfig")
	o.Datastore = datastore.External{Endpoints: j.Datastore.Endpoints,
		CACertFile: filepath.Join(dir, "datastore-ca.crt"), CAKeyFile: filepath.Join(dir, "datastore-ca.key"),
		CertFile: filepath.Join(dir, "datastore-root.crt"), KeyFile: filepath.Join(dir, "datastore-root.key")}
	if j.FirstPort != 0 {
		o.Ports = hosting.PortRange{First: j.FirstPort, Last: j.LastPort}
	}
	return nil
}

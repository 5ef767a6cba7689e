package app

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/datastore"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/keyvault"
	"github.com/slipway-dev/slipway/internal/management"
)

// portPlan is how a port range is shared: the first hundred ports are the
// management plane's, the last two of those the shared datastore's, the
// rest the clusters'.
type portPlan struct {
	all                            hosting.PortRange
	management                     hosting.PortRange
	datastoreClient, datastorePeer int
	clusters                       hosting.PortRange
}

func splitPorts(r hosting.PortRange) (portPlan, error) {
	if r == (hosting.PortRange{}) {
		r = hosting.DefaultPortRange
	}
	if r.Last-r.First < 200 {
		return portPlan{}, fmt.Errorf("port range %d-%d: need at least 200 ports", r.First, r.Last)
	}
	return portPlan{
		all:             r,
		management:      hosting.PortRange{First: r.First, Last: r.First + 97},
		datastoreClient: r.First + 98, datastorePeer: r.First + 99,
		clusters: hosting.PortRange{First: r.First + 100, Last: r.Last},
	}, nil
}

// startDatastore runs the clusters' shared etcd in the data directory. Its
// clusters' API servers are given its address at each start; nothing
// records it.
func startDatastore(ctx context.Context, dataDir, executable string, ports portPlan, advertise string) (*datastore.Store, error) {
	return datastore.Start(ctx, datastore.Options{Dir: filepath.Join(dataDir, "datastore"), Executable: executable,
		ClientPort: ports.datastoreClient, PeerPort: ports.datastorePeer, Advertise: advertise})
}

// checkAdvertise refuses an advertised address no client can reach: the
// wildcard is where Slipway listens, not an address to dial.
func checkAdvertise(addr string) error {
	if ip := net.ParseIP(addr); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("--advertise-address %s: give the address clients reach this machine at, not the wildcard", addr)
	}
	return nil
}

// clusterMemory is what a cluster takes at idle, about (README, density):
// a host's default capacity is its memory over this.
const clusterMemory = 256 << 20

// defaultCapacity estimates how many clusters this machine runs: its
// memory over a cluster's, at least one.
func defaultCapacity() int {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kib, _ := strconv.Atoi(f[1])
			return max(1, kib*1024/clusterMemory)
		}
	}
	return 1
}

// ManagementOptions configure `slipway management serve`.
type ManagementOptions struct {
	DataDir    string
	Executable string
	// Ports is the range the fleet shares: the management plane and the
	// datastore take its first hundred, the hosts' clusters the rest.
	Ports hosting.PortRange
	// Advertise, if set, is where hosts on other machines reach the
	// management plane and the datastore (an IP address or a DNS name):
	// both listen on every address and the join file names it.
	Advertise string
	Out       io.Writer
	// Ready, if set, is called with the join file's path once it is
	// written.
	Ready func(joinFile string)
}

// ServeManagement runs the parts hosts share, alone: the management plane
// and the clusters' datastore, and writes the join file hosts start from
// (`slipway serve --join`). It returns when ctx ends.
func ServeManagement(ctx context.Context, o ManagementOptions) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return err
	}
	if err := checkAdvertise(o.Advertise); err != nil {
		return err
	}
	ports, err := splitPorts(o.Ports)
	if err != nil {
		return err
	}
	plane, err := management.Open(ctx, management.Options{DataDir: o.DataDir, Executable: o.Executable, Progress: o.Out,
		Ports: ports.management, Advertise: o.Advertise})
	if err != nil {
		return err
	}
	defer plane.Close()
	kubeconfig, err := plane.Kubeconfig()
	if err != nil {
		return err
	}
	if err := writeManagementKubeconfig(plane, o.DataDir); err != nil {
		return err
	}
	fmt.Fprintln(o.Out, "Starting the clusters' shared datastore (etcd)...")
	store, err := startDatastore(ctx, o.DataDir, o.Executable, ports, o.Advertise)
	if err != nil {
		return err
	}
	defer store.Close()
	etcds := localEtcds{plane: plane, store: store}
	defer serveBackups(o.DataDir, etcds)()
	go datastore.KeepDefragmented(ctx, etcds.members)
	caCert, caKey, cert, key, err := store.Credentials()
	if err != nil {
		return err
	}
	identityFiles, err := fleetIdentity(o.DataDir)
	if err != nil {
		return err
	}
	path := filepath.Join(o.DataDir, JoinFile)
	err = writeJoin(path, &Join{ManagementKubeconfig: string(kubeconfig),
		Datastore: JoinDatastore{Endpoints: store.Endpoints(), CACert: string(caCert), CAKey: string(caKey), Cert: string(cert), Key: string(key)},
		FirstPort: ports.all.First, LastPort: ports.all.Last, Identity: identityFiles})
	if err != nil {
		return fmt.Errorf("writing the join file: %w", err)
	}
	fmt.Fprintf(o.Out, "Slipway's management plane and datastore are serving; hosts join with\n  slipway serve --join %s --host-name NAME --data-dir DIR --listen ADDR\n", path)
	fmt.Fprintf(o.Out, "  join file (credentials included, mode 0600): %s\n", path)
	if o.Ready != nil {
		o.Ready(path)
	}
	<-ctx.Done()
	fmt.Fprintln(o.Out, "Stopping the management plane and the datastore")
	return nil
}

// identityFiles are the files of a data directory that make hosts one
// installation to their clients: the tenant, subscription and bootstrap
// principal (connection.json), the key tokens are signed with, the key Key
// Vault secrets are sealed with, and the CA of ARM's serving certificates.
// A client of one host keeps its credentials, CA and secrets on another.
var identityFiles = []string{"connection.json", "identity/signing-key.pem", "keyvault/sealing.key", "pki/ca.crt", "pki/ca.key"}

// fleetIdentity makes the installation's identity in the management
// plane's data directory, once, and returns its files for the join file.
func fleetIdentity(dataDir string) (map[string][]byte, error) {
	connPath := filepath.Join(dataDir, "connection.json")
	conn, err := loadOrCreateConnection(connPath)
	if err != nil {
		return nil, err
	}
	conn.KeyVaultDNSSuffix = cmp.Or(conn.KeyVaultDNSSuffix, DefaultKeyVaultDNSSuffix)
	if err := conn.write(connPath); err != nil {
		return nil, err
	}
	if _, err := identity.NewSigner(identity.SignerOptions{KeyFile: filepath.Join(dataDir, "identity", "signing-key.pem"),
		Issuers: []string{"unused"}, Audience: conn.Audience}); err != nil {
		return nil, err
	}
	if _, err := keyvault.OpenSealer(filepath.Join(dataDir, "keyvault", "sealing.key")); err != nil {
		return nil, err
	}
	if _, _, err := serverTLS(filepath.Join(dataDir, "pki"), "127.0.0.1", conn.KeyVaultDNSSuffix); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, name := range identityFiles {
		data, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			return nil, err
		}
		files[name] = data
	}
	return files, nil
}

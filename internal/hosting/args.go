package hosting

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/components"
	"github.com/slipway-dev/slipway/internal/datastore"
)

// Ports are the loopback ports a cluster's control plane listens on.
type Ports struct {
	APIServer         int `json:"apiServer"`
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

// all lists the ports held; a cluster on the shared datastore holds no
// etcd ports (zero).
func (p Ports) all() []int {
	var out []int
	for _, port := range []int{p.APIServer, p.EtcdClient, p.EtcdPeer, p.ControllerManager, p.Scheduler} {
		if port != 0 {
			out = append(out, port)
		}
	}
	return out
}

// portCount is how many ports a new cluster needs: five, or three without
// an etcd of its own.
func portCount(ownEtcd bool) int {
	if ownEtcd {
		return 5
	}
	return 3
}

func portsFrom(ps []int, ownEtcd bool) Ports {
	if !ownEtcd {
		return Ports{APIServer: ps[0], ControllerManager: ps[1], Scheduler: ps[2]}
	}
	return Ports{APIServer: ps[0], EtcdClient: ps[1], EtcdPeer: ps[2], ControllerManager: ps[3], Scheduler: ps[4]}
}

// launch is what it takes to run one component: pure data, built from the
// cluster record so that it can be tested without starting anything.
type launch struct {
	name string
	args []string
	env  []string
}

// componentEnv trades a little CPU for memory in every idle child: the
// upstream servers hold mostly caches, and a lower GOGC keeps their heaps
// close to what is live. The API server, with by far the largest heap
// (about 95 MiB live at idle, most of it OpenAPI documents and watch
// caches), runs at 25: 25 MiB less per cluster at no idle CPU measurable by
// `slipway bench cluster`. Busy, each runs at Go's default of 100
// (components.BusyGOGCEnv says why and when).
var (
	componentEnv = []string{"GOGC=50", components.BusyGOGCEnv + "=100"}
	apiServerEnv = []string{"GOGC=25", components.BusyGOGCEnv + "=100"}
)

// profiling is the components' --profiling: off, as AKS's control planes
// do not serve /debug/pprof to their users, unless serve runs with
// SLIPWAY_COMPONENT_PROFILING=1, for a benchmark that profiles them
// (`kubectl get --raw '/debug/pprof/profile?seconds=30'` with the admin
// kubeconfig).
func profiling() string {
	return strconv.FormatBool(os.Getenv("SLIPWAY_COMPONENT_PROFILING") == "1")
}

// endpoint is where the shared datastore answers.
type endpoint interface {
	Endpoints() []string
	CAFile() string
}

// launches returns the cluster's components in start order, the API
// server listening on apiBind.
//
// A cluster on the shared datastore (rec.Datastore) runs no etcd of its own:
// its API server keeps its objects under the cluster's prefix of ds, with
// the client certificate that ds admitted it with.
func launches(rec *record, dir string, ds endpoint, apiBind string) []launch {
	pkiDir := filepath.Join(dir, "pki")
	loop := loopbackV4
	shared := rec.Datastore == sharedDatastore
	etcdURL := fmt.Sprintf("https://%s:%d", loop, rec.Ports.EtcdClient)
	kcmKubeconfig := filepath.Join(dir, "kubeconfig", "kube-controller-manager.kubeconfig")
	schedKubeconfig := filepath.Join(dir, "kubeconfig", "kube-scheduler.kubeconfig")

	apiserver := map[string]string{
		"advertise-address":                  loop,
		"bind-address":                       apiBind,
		"secure-port":                        strconv.Itoa(rec.Ports.APIServer),
		"client-ca-file":                     crt(pkiDir, certCA),
		"tls-cert-file":                      crt(pkiDir, certAPIServer),
		"tls-private-key-file":               key(pkiDir, certAPIServer),
		"service-account-issuer":             rec.issuer(),
		"service-account-key-file":           filepath.Join(pkiDir, saPubFile),
		"service-account-signing-key-file":   filepath.Join(pkiDir, saKeyFile),
		"service-cluster-ip-range":           rec.serviceCIDR(),
		"authorization-mode":                 "Node,RBAC",
		"allow-privileged":                   "true",
		"requestheader-client-ca-file":       crt(pkiDir, certFrontProxyCA),
		"requestheader-allowed-names":        "front-proxy-client",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"proxy-client-cert-file":             crt(pkiDir, certFrontProxyClient),
		"proxy-client-key-file":              key(pkiDir, certFrontProxyClient),
		// The API server advertises 127.0.0.1, which the endpoints of the
		// "kubernetes" service may not hold; simulated pods never dial it.
		"endpoint-reconciler-type": "none",
		// An upgrade starts the new release's API server on this port
		// before the old one stops (Cluster.Upgrade).
		"permit-port-sharing": "true",
		"profiling":           profiling(),
		"feature-gates":       components.APIServerWatchListOff,
	}
	if !shared {
		maps.Copy(apiserver, map[string]string{
			"etcd-servers":  etcdURL,
			"etcd-cafile":   crt(pkiDir, certEtcdCA),
			"etcd-certfile": crt(pkiDir, certAPIServerEtcd),
			"etcd-keyfile":  key(pkiDir, certAPIServerEtcd),
		})
	} else {
		maps.Copy(apiserver, map[string]string{
			"etcd-servers":  strings.Join(ds.Endpoints(), ","),
			"etcd-cafile":   ds.CAFile(),
			"etcd-certfile": crt(pkiDir, certDatastoreClient),
			"etcd-keyfile":  key(pkiDir, certDatastoreClient),
			"etcd-prefix":   datastore.APIServerPrefix(rec.store()),
			// The API servers' compaction takes a lock on a key outside
			// any prefix, which the cluster's etcd user may not write;
			// the datastore compacts itself.
			"etcd-compaction-interval": "0",
		})
	}
	maps.Copy(apiserver, auditFlags(dir))
	controllerManager := map[string]string{
		"kubeconfig":                       kcmKubeconfig,
		"authentication-kubeconfig":        kcmKubeconfig,
		"authorization-kubeconfig":         kcmKubeconfig,
		"bind-address":                     loop,
		"secure-port":                      strconv.Itoa(rec.Ports.ControllerManager),
		"leader-elect":                     "false",
		"use-service-account-credentials":  "true",
		"service-account-private-key-file": filepath.Join(pkiDir, saKeyFile),
		"root-ca-file":                     crt(pkiDir, certCA),
		"cluster-signing-cert-file":        crt(pkiDir, certCA),
		"cluster-signing-key-file":         key(pkiDir, certCA),
		// AKS leaves the controller manager's cluster name at its default,
		// which is why every AKS cluster's load balancer is called
		// "kubernetes" (Azure/AKS#2753); it does not name the cluster, so
		// a spare control plane's controller manager serves any cluster.
		"cluster-name": "kubernetes",
		// Bootstrap tokens are for kubeadm joins, which simulated nodes
		// never do.
		"controllers":   "*,-bootstrapsigner,-tokencleaner",
		"profiling":     profiling(),
		"feature-gates": components.WatchListOff,
		// Each controller's client is limited to 20 requests a second by
		// default: a drain that moves a hundred disks would wait on the
		// attach/detach controller's limiter for its VolumeAttachments.
		"kube-api-qps":   "100",
		"kube-api-burst": "200",
	}
	scheduler := map[string]string{
		"kubeconfig":                schedKubeconfig,
		"authentication-kubeconfig": schedKubeconfig,
		"authorization-kubeconfig":  schedKubeconfig,
		"bind-address":              loop,
		"secure-port":               strconv.Itoa(rec.Ports.Scheduler),
		"leader-elect":              "false",
		"profiling":                 profiling(),
		"feature-gates":             components.WatchListOff,
	}
	var ls []launch
	if !shared {
		etcd := datastore.EtcdFlags(datastore.EtcdConfig{
			DataDir: filepath.Join(dir, "etcd"), ClientURL: etcdURL, PeerURL: fmt.Sprintf("https://%s:%d", loop, rec.Ports.EtcdPeer),
			CertFile: crt(pkiDir, certEtcdServer), KeyFile: key(pkiDir, certEtcdServer), CAFile: crt(pkiDir, certEtcdCA),
			QuotaBytes: 2 << 30,
		})
		ls = append(ls, launch{name: components.Etcd, args: datastore.Args(etcd), env: componentEnv})
	}
	ls = append(ls, launch{name: components.APIServer, args: datastore.Args(apiserver), env: apiServerEnv})
	if rec.APIOnly {
		return ls
	}
	return append(ls,
		launch{name: components.ControllerManager, args: datastore.Args(controllerManager), env: componentEnv},
		launch{name: components.Scheduler, args: datastore.Args(scheduler), env: componentEnv},
	)
}

package hosting

import (
	"fmt"
	"maps"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/slipway-dev/slipway/internal/components"
)

// Ports are the loopback ports a cluster's control plane listens on.
type Ports struct {
	APIServer         int `json:"apiServer"`
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

func (p Ports) all() []int {
	return []int{p.APIServer, p.EtcdClient, p.EtcdPeer, p.ControllerManager, p.Scheduler}
}

func portsFrom(ps []int) Ports {
	return Ports{APIServer: ps[0], EtcdClient: ps[1], EtcdPeer: ps[2], ControllerManager: ps[3], Scheduler: ps[4]}
}

// launch is what it takes to run one component: pure data, built from the
// cluster record so that it can be tested without starting anything.
type launch struct {
	name string
	args []string
	env  []string
}

// componentEnv trades a little CPU for memory in every child: the upstream
// servers hold mostly caches, and a lower GOGC keeps their heaps close to
// what is live. Measured with `slipway bench cluster`.
var componentEnv = []string{"GOGC=50"}

// launches returns the cluster's components in start order.
func launches(rec *record, dir string) []launch {
	pkiDir := filepath.Join(dir, "pki")
	loop := "127.0.0.1"
	etcdURL := fmt.Sprintf("https://%s:%d", loop, rec.Ports.EtcdClient)
	peerURL := fmt.Sprintf("https://%s:%d", loop, rec.Ports.EtcdPeer)
	kcmKubeconfig := filepath.Join(dir, "kubeconfig", "kube-controller-manager.kubeconfig")
	schedKubeconfig := filepath.Join(dir, "kubeconfig", "kube-scheduler.kubeconfig")

	etcd := map[string]string{
		"name":                        "default",
		"data-dir":                    filepath.Join(dir, "etcd"),
		"listen-client-urls":          etcdURL,
		"advertise-client-urls":       etcdURL,
		"listen-peer-urls":            peerURL,
		"initial-advertise-peer-urls": peerURL,
		"initial-cluster":             "default=" + peerURL,
		"cert-file":                   crt(pkiDir, certEtcdServer),
		"key-file":                    key(pkiDir, certEtcdServer),
		"trusted-ca-file":             crt(pkiDir, certEtcdCA),
		"client-cert-auth":            "true",
		"peer-cert-file":              crt(pkiDir, certEtcdServer),
		"peer-key-file":               key(pkiDir, certEtcdServer),
		"peer-trusted-ca-file":        crt(pkiDir, certEtcdCA),
		"peer-client-cert-auth":       "true",
		// A small raft log in memory: etcd keeps up to snapshot-count
		// entries, which dominates its resident memory at idle.
		"snapshot-count":       "5000",
		"quota-backend-bytes":  strconv.Itoa(2 << 30),
		"auto-compaction-mode": "periodic",
		// Compaction keeps the database (and the memory bbolt maps) small.
		"auto-compaction-retention": "10m",
		"log-level":                 "warn",
	}
	apiserver := map[string]string{
		"advertise-address":                  loop,
		"bind-address":                       loop,
		"secure-port":                        strconv.Itoa(rec.Ports.APIServer),
		"etcd-servers":                       etcdURL,
		"etcd-cafile":                        crt(pkiDir, certEtcdCA),
		"etcd-certfile":                      crt(pkiDir, certAPIServerEtcd),
		"etcd-keyfile":                       key(pkiDir, certAPIServerEtcd),
		"client-ca-file":                     crt(pkiDir, certCA),
		"tls-cert-file":                      crt(pkiDir, certAPIServer),
		"tls-private-key-file":               key(pkiDir, certAPIServer),
		"service-account-issuer":             "https://" + rec.FQDN,
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
		"profiling":                "false",
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
		"cluster-name":                     rec.Name,
		// Bootstrap tokens are for kubeadm joins, which simulated nodes
		// never do.
		"controllers": "*,-bootstrapsigner,-tokencleaner",
		"profiling":   "false",
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
		"profiling":                 "false",
	}
	ls := []launch{
		{name: components.Etcd, args: flags(etcd), env: componentEnv},
		{name: components.APIServer, args: flags(apiserver), env: componentEnv},
	}
	if rec.APIOnly {
		return ls
	}
	return append(ls,
		launch{name: components.ControllerManager, args: flags(controllerManager), env: componentEnv},
		launch{name: components.Scheduler, args: flags(scheduler), env: componentEnv},
	)
}

// flags turns a flag map into sorted --name=value arguments, so the command
// line is deterministic and easy to read in logs.
func flags(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, "--"+k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Package components runs the upstream Kubernetes and etcd servers that the
// slipway binary carries. Each runs in a process of its own ("slipway
// component NAME ..."), started by the hosting package: the upstream servers
// keep process-global state (flags, metrics registries, feature gates), so one
// process per component is the only way to run several clusters side by side.
package components

import (
	"fmt"
	"os"
	"sort"
	_ "time/tzdata" // CronJob time zones, as upstream's kube-apiserver and controller-manager mains do

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream mains register it
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream mains register them
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream mains register it
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// Names of the components, as passed to "slipway component".
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

// A hosted API server on the shared datastore cannot serve a LIST as a
// watch stream: that needs etcd's version, and etcd answers Status to its
// root user only, not to a cluster's user confined to its prefix. Upstream
// API servers 1.34+ also turn a plain watch from resourceVersion "" or "0"
// into such a stream, so every client's first watch would fail with "the
// required storage feature RequestWatchProgress is disabled" and relist.
// The server gate off restores the classic watch (initial events from the
// watch cache); the client gate off makes informers list at once.
const (
	// WatchListOff is the --feature-gates of every Kubernetes component
	// but the API server, and is set in Slipway itself.
	WatchListOff = "WatchListClient=false"
	// APIServerWatchListOff is the API server's --feature-gates.
	APIServerWatchListOff = "WatchList=false," + WatchListOff
)

var cobraComponents = map[string]func() *cobra.Command{
	APIServer:         apiserver.NewAPIServerCommand,
	ControllerManager: controllermanager.NewControllerManagerCommand,
	Scheduler:         func() *cobra.Command { return scheduler.NewSchedulerCommand() },
}

// Names lists the components this binary carries.
func Names() []string {
	names := []string{Etcd}
	for n := range cobraComponents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Run runs component name with args (flags only, no program name) and returns
// its exit code. It does not return while the component serves.
func Run(name string, args []string) int {
	tuneGC()
	if name == Etcd {
		// etcdmain.Main parses args[1:] and exits the process itself on error.
		etcdmain.Main(append([]string{Etcd}, args...))
		return 0
	}
	newCmd, ok := cobraComponents[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "slipway component: unknown component %q (have %v)\n", name, Names())
		return 2
	}
	cmd := newCmd()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

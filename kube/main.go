// Command kube runs the Kubernetes control-plane servers of one Kubernetes
// minor other than the one compiled into slipway: "kube-1.35 kube-apiserver
// [flags]". A Go module carries one k8s.io/kubernetes, so each extra minor is
// this same source built against its own module file (go.mod is the newest
// minor, go.<minor>.mod the others; see the Makefile). slipway finds the
// binaries next to itself and runs them as it runs its own components.
package main

import (
	"fmt"
	"os"
	"sort"
	_ "time/tzdata" // CronJob time zones, as upstream's mains link them

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream mains register it
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream mains register them
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream mains register it
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

var servers = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s SERVER [flags]; servers: %v\n", os.Args[0], names())
		os.Exit(2)
	}
	newCmd, ok := servers[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown server %q (have %v)\n", os.Args[0], os.Args[1], names())
		os.Exit(2)
	}
	cmd := newCmd()
	cmd.SetArgs(os.Args[2:])
	os.Exit(cli.Run(cmd))
}

func names() []string {
	var out []string
	for n := range servers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Command slipway is Slipway's one binary: the server, its operator commands,
// and the upstream Kubernetes and etcd servers it runs as child processes.
package main

import (
	"os"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"

	"github.com/slipway-dev/slipway/internal/components"
)

func main() {
	// Components are dispatched before any of Slipway's own flag handling:
	// their command lines belong to upstream.
	if len(os.Args) > 2 && os.Args[1] == "component" {
		os.Exit(components.Run(os.Args[2], os.Args[3:]))
	}
	// The embedded components register process-wide flags when their
	// packages load (component-base's --version=vX.Y.Z sets the version
	// they report); cobra would offer them on Slipway's own commands.
	pflag.CommandLine = pflag.NewFlagSet(os.Args[0], pflag.ExitOnError)
	// Slipway's own informers of hosted clusters list rather than ask for
	// a watch stream, which the clusters' API servers cannot serve (see
	// components.WatchListOff).
	if err := utilfeature.DefaultMutableFeatureGate.Set(components.WatchListOff); err != nil {
		panic(err)
	}
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

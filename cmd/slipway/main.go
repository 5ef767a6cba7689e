// Command slipway is Slipway's one binary: the server, its operator commands,
// and the upstream Kubernetes and etcd servers it runs as child processes.
package main

import (
	"os"

	"github.com/slipway-dev/slipway/internal/components"
)

func main() {
	// Components are dispatched before any of Slipway's own flag handling:
	// their command lines belong to upstream.
	if len(os.Args) > 2 && os.Args[1] == "component" {
		os.Exit(components.Run(os.Args[2], os.Args[3:]))
	}
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

// Package version says which Slipway this is and which upstream releases it
// carries.
package version

import "strings"

// Version is Slipway's own version, set at link time by the Makefile.
var Version = "dev"

// The upstream releases compiled into the binary. They are constants, not
// read from build info, because packages that do not link the components
// (the ARM layer, its tests) must report the same versions; a test checks
// them against go.mod.
const (
	Kubernetes = "v1.36.3"
	Etcd       = "v3.6.8"
)

// KubernetesMinor returns the compiled-in Kubernetes release without its
// patch, e.g. "1.36".
func KubernetesMinor() string {
	v := strings.TrimPrefix(Kubernetes, "v")
	return v[:strings.LastIndex(v, ".")]
}

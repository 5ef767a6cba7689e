// Package testenv gives integration tests what they share: the slipway
// binary that runs the control-plane components.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// BinaryEnv names the variable that points tests at a built slipway binary;
// `make test` sets it.
const BinaryEnv = "SLIPWAY_BINARY"

var build = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv(BinaryEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s: %w", BinaryEnv, err)
		}
		return bin, nil
	}
	// Without the variable, build it as `make build` does (the Go build
	// cache makes this quick after the first time).
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("make", "-s", "-C", root, "build")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building slipway (set %s to skip): %w", BinaryEnv, err)
	}
	return filepath.Join(root, "bin", "slipway"), nil
})

// Binary returns the path of the slipway binary, building it if needed.
func Binary() (string, error) { return build() }

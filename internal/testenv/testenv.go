// Package testenv gives integration tests what they share: the slipway
// binary that runs the control-plane components, and the conformance
// tools they run against it.
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

// CSISanityEnv names the variable that points tests at the csi-sanity
// binary, the CSI conformance suite; `make test` sets it.
const CSISanityEnv = "SLIPWAY_CSI_SANITY"

var csiSanity = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv(CSISanityEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s: %w", CSISanityEnv, err)
		}
		return bin, nil
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("make", "-s", "-C", root, "bin/csi-sanity")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("installing csi-sanity (set %s to skip): %w", CSISanityEnv, err)
	}
	return filepath.Join(root, "bin", "csi-sanity"), nil
})

// CSISanity returns the path of csi-sanity, installing it if needed.
func CSISanity() (string, error) { return csiSanity() }

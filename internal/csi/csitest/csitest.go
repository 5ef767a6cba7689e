// Package csitest runs the CSI conformance suite, csi-sanity (the program,
// at the version the Makefile installs), against Slipway's drivers as a
// user would: `slipway csi disk|file --endpoint` serving on a unix socket,
// its objects kept in a real management plane the test hosts and reads.
package csitest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// ManagementPlane starts a management plane for a test, on ports of its
// own, and returns a client of it and a kubeconfig file naming it.
func ManagementPlane(t *testing.T, ports hosting.PortRange) (client.Client, string) {
	t.Helper()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plane, err := management.Open(context.Background(), management.Options{DataDir: dir, Executable: bin, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plane.Close)
	c, err := client.New(plane.Config, client.Options{Scheme: plane.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := plane.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, management.KubeconfigFile)
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, path
}

// Serve runs `slipway csi DRIVER` with args on a unix socket, its objects
// in the management plane of kubeconfig, until the test ends, and returns
// its endpoint once it answers.
func Serve(t *testing.T, driver, kubeconfig string, args ...string) string {
	t.Helper()
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "csi") // short: a socket path has ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "csi.sock")
	cmd := exec.Command(bin, append([]string{"csi", driver, "--endpoint", "unix://" + sock, "--management-kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	// The socket appears once the driver answers.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return "unix://" + sock
		}
		select {
		case err := <-exited:
			t.Fatalf("slipway csi %s exited: %v", driver, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slipway csi %s: no socket after a minute", driver)
		}
	}
}

// Sanity runs csi-sanity against endpoint, with the class parameters
// params and the flags given, and fails the test if a spec fails.
func Sanity(t *testing.T, endpoint string, params map[string]string, flags ...string) {
	t.Helper()
	bin, err := testenv.CSISanity()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	paramsFile := filepath.Join(dir, "params.yaml")
	data, err := yaml.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paramsFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--csi.endpoint", endpoint,
		"--csi.mountdir", filepath.Join(dir, "target"), "--csi.stagingdir", filepath.Join(dir, "staging"),
		"--csi.testvolumeparameters", paramsFile, "--ginkgo.no-color"}, flags...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("csi-sanity: %v\n%s", err, out)
	}
	// The summary: how many specs ran and passed.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines[max(0, len(lines)-4):] {
		if strings.Contains(l, "Ran ") || strings.Contains(l, "Passed") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

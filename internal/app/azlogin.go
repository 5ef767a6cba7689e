package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// systemBundles are where Debian, Fedora and Alpine keep the system's CA
// bundle; the first that exists is used.
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/cert.pem",
}

// AZLoginOptions configure AZLogin.
type AZLoginOptions struct {
	DataDir string
	// Cloud is the name az knows Slipway's cloud by.
	Cloud string
	// AZ is the az executable.
	AZ string
	// Log receives what AZLogin does, as it does it.
	Log io.Writer
}

// AZLogin points the az CLI at the Slipway serving DataDir: it writes a CA
// bundle holding the system's roots plus Slipway's CA (so az trusts Slipway
// and still trusts everyone it trusted before: REQUESTS_CA_BUNDLE replaces
// the bundle rather than adding to it), registers the cloud (or updates
// it), selects it, and logs in as the bootstrap principal. It returns the
// bundle, which az needs in REQUESTS_CA_BUNDLE from then on.
func AZLogin(ctx context.Context, o AZLoginOptions) (string, error) {
	conn, err := ReadConnection(filepath.Join(o.DataDir, "connection.json"))
	if err != nil {
		return "", fmt.Errorf("finding the server over %s (is slipway serve running there?): %w", o.DataDir, err)
	}
	ca, err := os.ReadFile(conn.CACertFile)
	if err != nil {
		return "", fmt.Errorf("reading Slipway's CA: %w", err)
	}
	var bundle bytes.Buffer
	for _, path := range systemBundles {
		if roots, err := os.ReadFile(path); err == nil {
			fmt.Fprintf(o.Log, "trusting the system's roots from %s\n", path)
			bundle.Write(roots)
			if !bytes.HasSuffix(roots, []byte("\n")) {
				bundle.WriteByte('\n')
			}
			break
		}
	}
	bundle.Write(ca)
	bundlePath := filepath.Join(o.DataDir, "az", "ca-bundle.pem")
	if err := os.MkdirAll(filepath.Dir(bundlePath), 0o700); err != nil {
		return "", err
	}
	if err := atomicfile.Write(bundlePath, bundle.Bytes(), 0o644); err != nil {
		return "", err
	}
	fmt.Fprintf(o.Log, "wrote %s: those roots plus Slipway's CA %s\n", bundlePath, conn.CACertFile)

	az := func(args ...string) (string, error) {
		shown := strings.Join(args, " ")
		if conn.ClientSecret != "" {
			shown = strings.ReplaceAll(shown, conn.ClientSecret, "***")
		}
		fmt.Fprintf(o.Log, "az %s\n", shown)
		cmd := exec.CommandContext(ctx, o.AZ, args...)
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+bundlePath, "AZURE_CORE_COLLECT_TELEMETRY=false")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("az %s: %w: %s", shown, err, strings.TrimSpace(errOut.String()))
		}
		return out.String(), nil
	}
	arm := conn.ARMEndpoint
	if _, err := az("cloud", "show", "-n", o.Cloud, "-o", "none"); err == nil {
		if _, err := az("cloud", "update", "-n", o.Cloud, "--endpoint-resource-manager", arm); err != nil {
			return "", err
		}
	} else if _, err := az("cloud", "register", "-n", o.Cloud, "--endpoint-resource-manager", arm); err != nil {
		return "", err
	}
	if _, err := az("cloud", "set", "-n", o.Cloud); err != nil {
		return "", err
	}
	if _, err := az("login", "--service-principal", "--username", conn.ClientID, "--password="+conn.ClientSecret, "--tenant", conn.TenantID, "-o", "none"); err != nil {
		return "", err
	}
	fmt.Fprintf(o.Log, "logged in to subscription %s as the bootstrap principal %s\n", conn.SubscriptionID, conn.ClientID)
	return bundlePath, nil
}

package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"

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
	endpoints := []string{"--endpoint-resource-manager", arm}
	if u, err := url.Parse(arm); err == nil && conn.KeyVaultDNSSuffix != "" {
		// az makes a vault's URL as https://{name}{suffix}: the port goes
		// in the suffix.
		endpoints = append(endpoints, "--suffix-keyvault-dns", "."+conn.KeyVaultDNSSuffix+":"+u.Port())
	}
	if _, err := az("cloud", "show", "-n", o.Cloud, "-o", "none"); err == nil {
		if _, err := az(append([]string{"cloud", "update", "-n", o.Cloud}, endpoints...)...); err != nil {
			return "", err
		}
	} else if _, err := az(append([]string{"cloud", "register", "-n", o.Cloud}, endpoints...)...); err != nil {
		return "", err
	}
	if _, err := az("cloud", "set", "-n", o.Cloud); err != nil {
		return "", err
	}
	// The secret is typed at az's password prompt on a terminal of our
	// own, never put on its command line, where every local user could
	// read it in ps.
	fmt.Fprintf(o.Log, "az login --service-principal --username %s --tenant %s (password typed at its prompt)\n", conn.ClientID, conn.TenantID)
	env := append(os.Environ(), "REQUESTS_CA_BUNDLE="+bundlePath, "AZURE_CORE_COLLECT_TELEMETRY=false")
	if err := typePassword(ctx, o.AZ, env, conn.ClientSecret, "login", "--service-principal", "--username", conn.ClientID, "--tenant", conn.TenantID, "-o", "none"); err != nil {
		return "", err
	}
	fmt.Fprintf(o.Log, "logged in to subscription %s as the bootstrap principal %s\n", conn.SubscriptionID, conn.ClientID)
	return bundlePath, nil
}

// passwordPromptWait bounds how long az may take to ask for the password
// (it loads its command modules first) and then to log in.
const passwordPromptWait = 2 * time.Minute

// typePassword runs az with a pseudo-terminal as its terminal and types
// secret at its "Password:" prompt. az reads a password it was not given
// on the command line from its terminal (getpass), with echo off.
func typePassword(ctx context.Context, azPath string, env []string, secret string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, passwordPromptWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, azPath, args...)
	cmd.Env = env
	tty, err := pty.Start(cmd)
	if err != nil {
		return fmt.Errorf("starting az on a terminal: %w", err)
	}
	defer tty.Close()
	var mu sync.Mutex
	var out bytes.Buffer
	prompted := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		once := sync.Once{}
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			seen := strings.Contains(out.String(), "Password:")
			mu.Unlock()
			if seen {
				once.Do(func() { close(prompted) })
			}
			if err != nil {
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-prompted:
		if _, err := tty.Write([]byte(secret + "\r")); err != nil {
			return fmt.Errorf("typing the password: %w", err)
		}
	case err := <-waited:
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("az %s ended before asking for the password: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	if err := <-waited; err != nil {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("az %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(strings.ReplaceAll(out.String(), secret, "***")))
	}
	return nil
}

package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"time"

	"github.com/slipway-dev/slipway/internal/pki"
)

// serverTLS loads or makes Slipway's CA and ARM serving certificate. The CA
// stays for the life of the data directory, so clients trust it once; the
// serving certificate is made again when the listen host is not in it.
func serverTLS(dir, host, vaultSuffix string) (*tls.Config, string, error) {
	caFile := filepath.Join(dir, "ca.crt")
	ca, err := pki.LoadKeyPair(dir, "ca")
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = pki.NewCA("Slipway CA", time.Now()); err == nil {
			err = pki.WriteKeyPair(dir, "ca", ca)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("Slipway CA: %w", err)
	}
	serving, err := pki.LoadKeyPair(dir, "server")
	// The key vaults' data planes are served here too, each at its own
	// name under the vault suffix.
	if err != nil || serving.Cert.VerifyHostname(host) != nil || serving.Cert.VerifyHostname("kv."+vaultSuffix) != nil ||
		time.Until(serving.Cert.NotAfter) < 30*24*time.Hour {
		spec := pki.LeafSpec{CommonName: "slipway", DNSNames: []string{"localhost", vaultSuffix, "*." + vaultSuffix},
			IPs: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}, Usage: pki.ServerAuth}
		if host != "" {
			spec = spec.WithHost(host)
		}
		serving, err = ca.Issue(spec, time.Now())
		if err == nil {
			err = pki.WriteKeyPair(dir, "server", serving)
		}
		if err != nil {
			return nil, "", fmt.Errorf("Slipway serving certificate: %w", err)
		}
	}
	keyPEM, err := serving.KeyPEM()
	if err != nil {
		return nil, "", err
	}
	cert, err := tls.X509KeyPair(append(serving.CertPEM(), ca.CertPEM()...), keyPEM)
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile, nil
}

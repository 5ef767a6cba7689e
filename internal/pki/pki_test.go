package pki

import (
	"crypto"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestIssue(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ca, err := NewCA("kubernetes-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA is not a CA: IsCA=%v usage=%v", ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	if got, want := ca.Cert.NotAfter, now.Add(CAValidity); !got.Equal(want) {
		t.Errorf("CA NotAfter = %v, want %v", got, want)
	}

	server, err := ca.Issue(LeafSpec{
		CommonName: "apiserver",
		DNSNames:   []string{"localhost", "demo.hcp.eastus.slipway.local"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1")},
		Usage:      ServerAuth,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(LeafSpec{CommonName: "masterclient", Organizations: []string{"system:masters"}, Usage: ClientAuth}, now)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	tests := []struct {
		name    string
		cert    *x509.Certificate
		opts    x509.VerifyOptions
		wantErr bool
	}{
		{"server for its FQDN", server.Cert, x509.VerifyOptions{DNSName: "demo.hcp.eastus.slipway.local", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false},
		{"server for localhost", server.Cert, x509.VerifyOptions{DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false},
		{"server for 127.0.0.1", server.Cert, x509.VerifyOptions{DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false},
		{"server for another name", server.Cert, x509.VerifyOptions{DNSName: "other.example.com", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, true},
		{"server as a client", server.Cert, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true},
		{"client as a client", client.Cert, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false},
		{"client as a server", client.Cert, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, true},
		{"leaf after expiry", client.Cert, x509.VerifyOptions{CurrentTime: now.Add(LeafValidity + time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true},
		{"leaf just before expiry", client.Cert, x509.VerifyOptions{CurrentTime: now.Add(LeafValidity - time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false},
		{"leaf a minute before issue (clock skew)", client.Cert, x509.VerifyOptions{CurrentTime: now.Add(-time.Minute), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Roots = roots
			if tt.opts.CurrentTime.IsZero() {
				tt.opts.CurrentTime = now
			}
			_, err := tt.cert.Verify(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("Verify() error = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
	if !slices.Equal(client.Cert.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("client organisation = %v", client.Cert.Subject.Organization)
	}
	if _, err := ca.Issue(LeafSpec{CommonName: "nothing"}, now); err == nil {
		t.Error("a leaf without usage was issued")
	}
}

func TestWriteAndLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPair(dir, "ca", ca); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeyPair(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) {
		t.Error("loaded certificate differs")
	}
	leaf, err := got.Issue(LeafSpec{CommonName: "x", Usage: ClientAuth}, time.Now())
	if err != nil {
		t.Fatalf("loaded key cannot sign: %v", err)
	}
	if err := leaf.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Error(err)
	}
	info, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v, want 0600", info.Mode().Perm())
	}
}

func TestEnsureHost(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ca, err := NewCA("kubernetes-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	spec := LeafSpec{CommonName: "apiserver", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usage: ServerAuth}
	leaf, err := ca.Issue(spec, now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteKeyPair(dir, "apiserver", leaf); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"", "127.0.0.1", "localhost"} {
		if changed, err := EnsureHost(dir, "apiserver", ca, spec, host, now); err != nil || changed {
			t.Errorf("EnsureHost(%q) = %v, %v; the certificate names it already", host, changed, err)
		}
	}
	for _, host := range []string{"10.1.2.3", "slipway.example.com"} {
		changed, err := EnsureHost(dir, "apiserver", ca, spec, host, now)
		if err != nil || !changed {
			t.Fatalf("EnsureHost(%q) = %v, %v; want a new certificate", host, changed, err)
		}
		got, err := LoadKeyPair(dir, "apiserver")
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Cert.VerifyHostname(host); err != nil {
			t.Errorf("the new certificate: %v", err)
		}
		if err := got.Cert.VerifyHostname("127.0.0.1"); err != nil {
			t.Errorf("the new certificate lost the spec's names: %v", err)
		}
		if !got.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.Key.Public()) {
			t.Error("the certificate was issued for a new key; the key file was not rewritten")
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		if _, err := got.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now}); err != nil {
			t.Errorf("the new certificate does not verify against the CA: %v", err)
		}
	}
}

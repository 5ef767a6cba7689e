// Package pki issues the certificates and keys a hosted cluster's control
// plane runs on: its CAs, serving and client certificates, and the
// service-account signing key. Keys are ECDSA P-256: every Kubernetes
// component accepts them, and generating one takes microseconds where RSA-2048
// takes tens of milliseconds, which matters when clusters are created by the
// hundred.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// Validity periods, as AKS uses them: cluster CAs for 30 years, leaf
// certificates for two (AKS rotates them with `az aks rotate-certs`).
const (
	CAValidity   = 30 * 365 * 24 * time.Hour
	LeafValidity = 2 * 365 * 24 * time.Hour
)

// clockSkew back-dates NotBefore so that a certificate is valid at once on a
// peer whose clock runs slightly behind.
const clockSkew = 5 * time.Minute

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a self-signed certificate authority.
func NewCA(commonName string, now time.Time) (*KeyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return sign(tmpl, key, nil)
}

// Usage says what a leaf certificate is for.
type Usage int

const (
	// ServerAuth is a TLS serving certificate.
	ServerAuth Usage = 1 << iota
	// ClientAuth is a TLS client certificate.
	ClientAuth
)

// LeafSpec describes a leaf certificate.
type LeafSpec struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	Usage         Usage
}

// Issue signs a new leaf certificate with ca.
func (ca *KeyPair) Issue(spec LeafSpec, now time.Time) (*KeyPair, error) {
	if spec.Usage == 0 {
		return nil, errors.New("pki: a leaf certificate needs a usage")
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	return ca.issue(spec, key, now)
}

func (ca *KeyPair) issue(spec LeafSpec, key crypto.Signer, now time.Time) (*KeyPair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: spec.CommonName, Organization: spec.Organizations},
		DNSNames:              spec.DNSNames,
		IPAddresses:           spec.IPs,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(LeafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	if spec.Usage&ServerAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Usage&ClientAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	return sign(tmpl, key, ca)
}

// WithHost returns spec naming host too, an IP address or a DNS name.
func (spec LeafSpec) WithHost(host string) LeafSpec {
	if ip := net.ParseIP(host); ip != nil {
		if !slices.ContainsFunc(spec.IPs, ip.Equal) {
			spec.IPs = append(slices.Clone(spec.IPs), ip)
		}
	} else if !slices.Contains(spec.DNSNames, host) {
		spec.DNSNames = append(slices.Clone(spec.DNSNames), host)
	}
	return spec
}

// EnsureHost makes the serving certificate base in dir valid for host (an
// IP address or a DNS name; empty: nothing to do). One that is not is
// issued again by ca from spec with host added, for the key it has: only
// the certificate file is replaced, atomically, so a crash never leaves a
// certificate beside a key it does not match. It reports whether it
// replaced the certificate.
func EnsureHost(dir, base string, ca *KeyPair, spec LeafSpec, host string, now time.Time) (bool, error) {
	if host == "" {
		return false, nil
	}
	leaf, err := LoadKeyPair(dir, base)
	if err != nil {
		return false, err
	}
	if leaf.Cert.VerifyHostname(host) == nil {
		return false, nil
	}
	kp, err := ca.issue(spec.WithHost(host), leaf.Key, now)
	if err != nil {
		return false, err
	}
	if err := atomicfile.Write(filepath.Join(dir, base+".crt"), kp.CertPEM(), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// NewSigningKey creates a bare key pair, such as the one that signs
// service-account tokens.
func NewSigningKey() (crypto.Signer, error) { return newKey() }

func newKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	return key, nil
}

func sign(tmpl *x509.Certificate, key crypto.Signer, parent *KeyPair) (*KeyPair, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM encodes the certificate.
func (kp *KeyPair) CertPEM() []byte { return EncodeCert(kp.Cert) }

// KeyPEM encodes the private key.
func (kp *KeyPair) KeyPEM() ([]byte, error) { return EncodeKey(kp.Key) }

// EncodeCert encodes a certificate as PEM.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// EncodeKey encodes a private key as PKCS#8 PEM.
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKey encodes a public key as PKIX PEM.
func EncodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// WriteKeyPair writes base.crt and base.key into dir; the key with mode 0600.
func WriteKeyPair(dir, base string, kp *KeyPair) error {
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, base+".crt"), kp.CertPEM(), 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, base+".key"), keyPEM, 0o600)
}

// LoadKeyPair reads base.crt and base.key from dir.
func LoadKeyPair(dir, base string) (*KeyPair, error) {
	return LoadKeyPairFiles(filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key"))
}

// LoadKeyPairFiles reads a PEM certificate and its PKCS #8 PEM key.
func LoadKeyPairFiles(certFile, keyFile string) (*KeyPair, error) {
	cert, err := LoadCert(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM data", keyFile)
	}
	// Slipway writes PKCS #8; keys made by others (kubeadm's, openssl's)
	// are often PKCS #1 RSA or SEC 1 EC keys.
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", keyFile)
	}
	return &KeyPair{Cert: cert, Key: signer}, nil
}

// LoadCert reads a PEM certificate file.
func LoadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

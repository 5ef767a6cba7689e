// Package identity is Slipway's token service: an OAuth2 client-credentials
// endpoint with OIDC discovery in the two shapes Azure clients speak (ADFS,
// as az uses it, and Entra ID's per-tenant v2.0), JWTs signed with a key kept
// in the data directory, and their verification on every ARM call.
package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// TokenLifetime is how long an access token is valid, as Entra's default.
const TokenLifetime = time.Hour

// Claims are what Slipway puts in and reads from an access token.
type Claims struct {
	jwt.Claims
	TenantID string `json:"tid"`
	// AppID is the client (application) ID of the service principal.
	AppID string `json:"appid"`
	// ObjectID is the principal's object ID, what role assignments name.
	ObjectID string `json:"oid"`
	IdType   string `json:"idtyp,omitempty"`
}

// Signer issues and verifies tokens. Its key lives in a file of the data
// directory (mode 0600), so tokens stay valid across restarts.
type Signer struct {
	keyFile  string
	issuers  []string
	audience string
	// resources are the other audiences tokens are issued for (a key
	// vault's); a token for one of them is no good at ARM.
	resources []string
	now       func() time.Time

	mu     sync.RWMutex
	key    *ecdsa.PrivateKey
	keyID  string
	signer jose.Signer
	// retired are keys rotated out, by key ID: tokens they signed before
	// their rotation stay valid until they expire, and no longer.
	retired map[string]retiredKey
	// rotating serialises rotations, so the key in memory is the key on
	// disk.
	rotating sync.Mutex

	// verified remembers tokens that passed VerifyFor, by a hash of the
	// token and the audiences asked for. A client sends the same token
	// with every request for an hour, and checking its ES256 signature was
	// a tenth of an ARM GET's CPU. Nothing that can happen to a valid
	// token before it expires makes it invalid (a rotated key vouches for
	// what it signed until then; revoking a secret or a principal stops
	// new tokens, and role assignments are checked at every request), so
	// a hit only checks the token's lifetime again.
	verifiedMu sync.Mutex
	verified   map[[sha256.Size]byte]verifiedToken
}

// verifiedToken is a token that passed verification, good until until: its
// expiry, or sooner if a retired key signed it.
type verifiedToken struct {
	claims Claims
	until  time.Time
}

// maxVerified bounds the verified-token cache: past it, expired entries go,
// and if that is not enough, all of them.
const maxVerified = 4096

// retiredKey is a public key rotated out at a time.
type retiredKey struct {
	pub *ecdsa.PublicKey
	at  time.Time
}

// maxSkew is the clock difference tolerated between Slipway and itself
// across a restart, for a token's issue time.
const maxSkew = 5 * time.Minute

// SignerOptions configure a Signer.
type SignerOptions struct {
	// KeyFile holds the signing key; created if missing.
	KeyFile string
	// Issuers are the issuer values Slipway's tokens may carry; the first
	// is the one new tokens get.
	Issuers []string
	// Audience is the ARM audience tokens must be for.
	Audience string
	// Resources are further audiences tokens may be asked for: the key
	// vault data plane's.
	Resources []string
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// NewSigner loads or creates the signing key, and the keys rotated out
// within a token's lifetime.
func NewSigner(o SignerOptions) (*Signer, error) {
	if len(o.Issuers) == 0 || o.Audience == "" {
		return nil, errors.New("identity: a signer needs issuers and an audience")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	s := &Signer{keyFile: o.KeyFile, issuers: o.Issuers, audience: o.Audience, resources: o.Resources, now: now, retired: map[string]retiredKey{}}
	key, err := loadOrCreateKey(o.KeyFile)
	if err != nil {
		return nil, err
	}
	if err := s.use(key); err != nil {
		return nil, err
	}
	if err := s.loadRetired(); err != nil {
		return nil, err
	}
	return s, nil
}

// keyID derives a key's ID from its public key.
func keyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:12]), nil
}

// use makes key the signing key.
func (s *Signer) use(key *ecdsa.PrivateKey) error {
	kid, err := keyID(&key.PublicKey)
	if err != nil {
		return err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	s.mu.Lock()
	s.key, s.keyID, s.signer = key, kid, signer
	s.mu.Unlock()
	return nil
}

// retiredDir holds the public keys rotated out, one PEM file per key ID.
func (s *Signer) retiredDir() string { return filepath.Join(filepath.Dir(s.keyFile), "retired-keys") }

// loadRetired loads the keys retired within a token's lifetime and deletes
// older ones: no unexpired token can need them.
func (s *Signer) loadRetired() error {
	entries, err := os.ReadDir(s.retiredDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(s.retiredDir(), e.Name())
		info, err := e.Info()
		if err != nil {
			continue
		}
		// The file is written when its key is retired: its time is
		// the rotation's.
		if s.now().Sub(info.ModTime()) > TokenLifetime {
			os.Remove(path)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return fmt.Errorf("identity: %s: no PEM data", path)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("identity: %s: %w", path, err)
		}
		if ec, ok := pub.(*ecdsa.PublicKey); ok {
			kid, _ := keyID(ec)
			s.retired[kid] = retiredKey{pub: ec, at: info.ModTime()}
		}
	}
	return nil
}

// Rotate replaces the signing key with a new one. Tokens the old key
// signed stay valid until they expire: its public key is kept (on disk
// too, so a restart keeps it) for a token's lifetime.
func (s *Signer) Rotate() (string, error) {
	s.rotating.Lock()
	defer s.rotating.Unlock()
	s.mu.RLock()
	old, oldID := s.key, s.keyID
	s.mu.RUnlock()
	der, err := x509.MarshalPKIXPublicKey(&old.PublicKey)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.retiredDir(), 0o700); err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.retiredDir(), oldID+".pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	if err := writeKey(s.keyFile, key); err != nil {
		return "", err
	}
	s.forgetRetired(s.now())
	s.mu.Lock()
	s.retired[oldID] = retiredKey{pub: &old.PublicKey, at: s.now()}
	s.mu.Unlock()
	// Tokens remembered as verified were checked with the old key as the
	// signing key; from now on they are held to a retired key's rules.
	s.verifiedMu.Lock()
	clear(s.verified)
	s.verifiedMu.Unlock()
	if err := s.use(key); err != nil {
		return "", err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keyID, nil
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("identity: %s: no PEM data", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity: %s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("identity: %s: not an ECDSA key", path)
		}
		return ec, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("identity: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return key, writeKey(path, key)
}

// writeKey stores a private key, readable by its owner only.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// Issue signs an access token for a principal.
func (s *Signer) Issue(tenantID, appID, objectID, audience string) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(TokenLifetime)
	c := Claims{
		Claims: jwt.Claims{
			Issuer:    s.issuers[0],
			Subject:   objectID,
			Audience:  jwt.Audience{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Minute)),
			Expiry:    jwt.NewNumericDate(exp),
			ID:        newID(),
		},
		TenantID: tenantID, AppID: appID, ObjectID: objectID, IdType: "app",
	}
	s.mu.RLock()
	signer := s.signer
	s.mu.RUnlock()
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing token: %w", err)
	}
	return tok, exp, nil
}

// Errors Verify returns; the ARM layer turns them into 401s.
var (
	ErrInvalidToken  = errors.New("the access token is invalid")
	ErrExpiredToken  = errors.New("the access token has expired")
	ErrWrongAudience = errors.New("the access token has the wrong audience")
	ErrWrongIssuer   = errors.New("the access token is from an unknown issuer")
)

// Verify checks a token's signature, issuer, audience (ARM's) and
// lifetime.
func (s *Signer) Verify(token string) (*Claims, error) { return s.VerifyFor(token, s.audience) }

// Issues says whether tokens are issued for an audience: ARM's or one of
// the resources'.
func (s *Signer) Issues(audience string) bool {
	for _, a := range append([]string{s.audience}, s.resources...) {
		if NormalizeAudience(a) == NormalizeAudience(audience) {
			return true
		}
	}
	return false
}

// VerifyFor checks a token as Verify does, for one of audiences.
func (s *Signer) VerifyFor(token string, audiences ...string) (*Claims, error) {
	key := verifiedKey(token, audiences)
	now := s.now()
	s.verifiedMu.Lock()
	v, hit := s.verified[key]
	s.verifiedMu.Unlock()
	if hit && now.Before(v.until) {
		c := v.claims
		return &c, nil
	}
	// A miss, or a token past its time: verify says which error.
	claims, until, err := s.verify(token, audiences, now)
	if err != nil {
		return nil, err
	}
	s.remember(key, verifiedToken{claims: *claims, until: until}, now)
	return claims, nil
}

func verifiedKey(token string, audiences []string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(token))
	for _, a := range audiences {
		h.Write([]byte{0})
		h.Write([]byte(NormalizeAudience(a)))
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (s *Signer) remember(key [sha256.Size]byte, v verifiedToken, now time.Time) {
	s.verifiedMu.Lock()
	defer s.verifiedMu.Unlock()
	if s.verified == nil {
		s.verified = map[[sha256.Size]byte]verifiedToken{}
	}
	if len(s.verified) >= maxVerified {
		for k, old := range s.verified {
			if !now.Before(old.until) {
				delete(s.verified, k)
			}
		}
		if len(s.verified) >= maxVerified {
			clear(s.verified)
		}
	}
	s.verified[key] = v
}

// verify checks a token's signature and claims, and says until when they
// hold.
func (s *Signer) verify(token string, audiences []string, now time.Time) (*Claims, time.Time, error) {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	if len(parsed.Headers) != 1 {
		return nil, time.Time{}, ErrInvalidToken
	}
	kid := parsed.Headers[0].KeyID
	var pub *ecdsa.PublicKey
	var retiredAt time.Time
	s.mu.RLock()
	if kid == s.keyID {
		pub = &s.key.PublicKey
	} else if r, ok := s.retired[kid]; ok {
		pub, retiredAt = r.pub, r.at
	}
	s.mu.RUnlock()
	if pub == nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	var c Claims
	if err := parsed.Claims(pub, &c); err != nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	// Every token Slipway issues says when, and lives TokenLifetime: one
	// that claims more was not issued by Slipway.
	if c.IssuedAt == nil || c.Expiry == nil || c.IssuedAt.Time().After(now.Add(maxSkew)) ||
		c.Expiry.Time().Sub(c.IssuedAt.Time()) > TokenLifetime+time.Minute {
		return nil, time.Time{}, ErrInvalidToken
	}
	// A retired key vouches only for tokens issued before it was retired
	// (those stay valid until they expire); whoever still holds it can
	// mint nothing new.
	if !retiredAt.IsZero() {
		if c.IssuedAt.Time().After(retiredAt) || !now.Before(retiredAt.Add(TokenLifetime)) {
			s.forgetRetired(now)
			return nil, time.Time{}, ErrInvalidToken
		}
	}
	known := false
	for _, iss := range s.issuers {
		if c.Issuer == iss {
			known = true
		}
	}
	if !known {
		return nil, time.Time{}, ErrWrongIssuer
	}
	audOK := false
	for _, a := range c.Audience {
		for _, want := range audiences {
			if NormalizeAudience(a) == NormalizeAudience(want) {
				audOK = true
			}
		}
	}
	if !audOK {
		return nil, time.Time{}, ErrWrongAudience
	}
	if !now.Before(c.Expiry.Time()) {
		return nil, time.Time{}, ErrExpiredToken
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Time()) {
		return nil, time.Time{}, ErrInvalidToken
	}
	until := c.Expiry.Time()
	if !retiredAt.IsZero() {
		until = minTime(until, retiredAt.Add(TokenLifetime))
	}
	return &c, until, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// NormalizeAudience drops trailing slashes: "https://management.azure.com/"
// and "https://management.azure.com" are the same audience to ARM.
func NormalizeAudience(a string) string { return strings.TrimRight(a, "/") }

// PublicKeys returns the keys that verify tokens: the signing key and the
// ones retired within a token's lifetime.
func (s *Signer) PublicKeys() []jose.JSONWebKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.keyID, Algorithm: string(jose.ES256), Use: "sig"}}
	for kid, r := range s.retired {
		keys = append(keys, jose.JSONWebKey{Key: r.pub, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
	}
	return keys
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// forgetRetired drops retired keys no unexpired token can need, from
// memory and disk.
func (s *Signer) forgetRetired(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for kid, r := range s.retired {
		if !now.Before(r.at.Add(TokenLifetime)) {
			delete(s.retired, kid)
			os.Remove(filepath.Join(s.retiredDir(), kid+".pem"))
		}
	}
}

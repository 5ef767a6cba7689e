// Package identity is Slipway's token service: an OAuth2 client-credentials
// endpoint with OIDC discovery in the two shapes Azure clients speak (ADFS,
// as az uses it, and Entra ID's per-tenant v2.0), JWTs signed with a key kept
// in the data directory, and their verification on every ARM call.
package identity

import (
	"crypto"
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
	key      *ecdsa.PrivateKey
	keyID    string
	signer   jose.Signer
	issuers  []string
	audience string
	now      func() time.Time
}

// SignerOptions configure a Signer.
type SignerOptions struct {
	// KeyFile holds the signing key; created if missing.
	KeyFile string
	// Issuers are the issuer values Slipway's tokens may carry; the first
	// is the one new tokens get.
	Issuers []string
	// Audience is the ARM audience tokens must be for.
	Audience string
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// NewSigner loads or creates the signing key.
func NewSigner(o SignerOptions) (*Signer, error) {
	if len(o.Issuers) == 0 || o.Audience == "" {
		return nil, errors.New("identity: a signer needs issuers and an audience")
	}
	key, err := loadOrCreateKey(o.KeyFile)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Signer{key: key, keyID: kid, signer: signer, issuers: o.Issuers, audience: o.Audience, now: now}, nil
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
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return key, nil
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
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
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

// Verify checks a token's signature, issuer, audience and lifetime.
func (s *Signer) Verify(token string) (*Claims, error) {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, ErrInvalidToken
	}
	var c Claims
	if err := parsed.Claims(&s.key.PublicKey, &c); err != nil {
		return nil, ErrInvalidToken
	}
	known := false
	for _, iss := range s.issuers {
		if c.Issuer == iss {
			known = true
		}
	}
	if !known {
		return nil, ErrWrongIssuer
	}
	audOK := false
	for _, a := range c.Audience {
		if NormalizeAudience(a) == NormalizeAudience(s.audience) {
			audOK = true
		}
	}
	if !audOK {
		return nil, ErrWrongAudience
	}
	now := s.now()
	if c.Expiry == nil || !now.Before(c.Expiry.Time()) {
		return nil, ErrExpiredToken
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Time()) {
		return nil, ErrInvalidToken
	}
	return &c, nil
}

// NormalizeAudience drops trailing slashes: "https://management.azure.com/"
// and "https://management.azure.com" are the same audience to ARM.
func NormalizeAudience(a string) string { return strings.TrimRight(a, "/") }

// PublicKey returns the key that verifies tokens, with its key ID.
func (s *Signer) PublicKey() (crypto.PublicKey, string) { return &s.key.PublicKey, s.keyID }

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

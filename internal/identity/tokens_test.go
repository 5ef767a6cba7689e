package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func newTestSigner(t *testing.T, keyFile string, now *time.Time) *Signer {
	t.Helper()
	s, err := NewSigner(SignerOptions{
		KeyFile:  keyFile,
		Issuers:  []string{"https://127.0.0.1:8443/adfs", "https://127.0.0.1:8443/tenant/v2.0"},
		Audience: "https://management.slipway.local/",
		Now:      func() time.Time { return *now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	keyFile := filepath.Join(t.TempDir(), "identity", "signing-key.pem")
	s := newTestSigner(t, keyFile, &now)

	good, _, err := s.Issue("tenant", "app", "object", "https://management.slipway.local/")
	if err != nil {
		t.Fatal(err)
	}
	noSlash, _, _ := s.Issue("tenant", "app", "object", "https://management.slipway.local")
	otherAudience, _, _ := s.Issue("tenant", "app", "object", "https://graph.example.com/")

	otherKey := newTestSigner(t, filepath.Join(t.TempDir(), "k.pem"), &now)
	forged, _, _ := otherKey.Issue("tenant", "app", "object", "https://management.slipway.local/")

	tests := []struct {
		name    string
		token   string
		at      time.Time
		wantErr error
	}{
		{"valid", good, now, nil},
		{"audience without trailing slash", noSlash, now, nil},
		{"valid until just before expiry", good, now.Add(TokenLifetime - time.Second), nil},
		{"expired", good, now.Add(TokenLifetime), ErrExpiredToken},
		{"wrong audience", otherAudience, now, ErrWrongAudience},
		{"signed by another key", forged, now, ErrInvalidToken},
		{"tampered payload", tamper(good), now, ErrInvalidToken},
		{"not a JWT", "opaque", now, ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			now = tt.at
			defer func() { now = saved }()
			c, err := s.Verify(tt.token)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (c.AppID != "app" || c.ObjectID != "object" || c.TenantID != "tenant") {
				t.Errorf("claims = %+v", c)
			}
		})
	}

	// The key survives a restart: a new signer over the same file accepts
	// tokens the old one issued.
	again := newTestSigner(t, keyFile, &now)
	if _, err := again.Verify(good); err != nil {
		t.Errorf("token refused after restart: %v", err)
	}
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v, want 0600", info.Mode().Perm())
	}
}

func TestWrongIssuer(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	s := newTestSigner(t, filepath.Join(dir, "k.pem"), &now)
	other, err := NewSigner(SignerOptions{KeyFile: filepath.Join(dir, "k.pem"), Issuers: []string{"https://evil.example/"}, Audience: "https://management.slipway.local/"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := other.Issue("t", "a", "o", "https://management.slipway.local/")
	if _, err := s.Verify(tok); !errors.Is(err, ErrWrongIssuer) {
		t.Errorf("Verify() = %v, want ErrWrongIssuer", err)
	}
}

// tamper changes one character of the payload, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[10] == 'A' {
		p[10] = 'B'
	} else {
		p[10] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

// TestKeyRotation: after a rotation new tokens carry the new key, tokens of
// the old key stay valid until they expire (across a restart too), and the
// key files stay private.
func TestKeyRotation(t *testing.T) {
	now := time.Now()
	keyFile := filepath.Join(t.TempDir(), "identity", "signing-key.pem")
	s := newTestSigner(t, keyFile, &now)
	old, _, err := s.Issue("tenant", "app", "obj", "https://management.slipway.local/")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(keyFile)
	kid, err := s.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(keyFile)
	if string(before) == string(after) {
		t.Fatal("the key file did not change")
	}
	fresh, _, err := s.Issue("tenant", "app", "obj", "https://management.slipway.local/")
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := s.Verify(tok); err != nil {
			t.Errorf("%s token after rotation: %v", name, err)
		}
	}
	if len(s.PublicKeys()) != 2 || s.PublicKeys()[0].KeyID != kid {
		t.Errorf("published keys %v, want the new one first and the old one", s.PublicKeys())
	}
	// A restart keeps the retired key.
	restarted := newTestSigner(t, keyFile, &now)
	if _, err := restarted.Verify(old); err != nil {
		t.Errorf("old token after a restart: %v", err)
	}
	// Old tokens still expire, and the retired key goes with them.
	later := now.Add(TokenLifetime + time.Minute)
	expiring := newTestSigner(t, keyFile, &later)
	if _, err := expiring.Verify(old); !errors.Is(err, ErrExpiredToken) && !errors.Is(err, ErrInvalidToken) {
		t.Errorf("old token past its expiry: %v", err)
	}
	if n := len(expiring.PublicKeys()); n != 1 {
		t.Errorf("a token's lifetime after the rotation, %d keys are published, want only the signing key", n)
	}
	for _, f := range []string{keyFile, filepath.Join(filepath.Dir(keyFile), "retired-keys")} {
		entries, _ := os.ReadDir(f)
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is mode %v, want no group or other access", f, info.Mode().Perm())
		}
		for _, e := range entries {
			if i, _ := e.Info(); i.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s/%s is mode %v", f, e.Name(), i.Mode().Perm())
			}
		}
	}
}

// TestRetiredKeyMintsNothing: whoever holds a key that was rotated out
// (it leaked, and that is why it was rotated) cannot use it to sign new
// tokens, nor tokens that live longer than Slipway's.
func TestRetiredKeyMintsNothing(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "identity", "signing-key.pem")
	s := newTestSigner(t, keyFile, &now)
	leaked, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leakedFile := filepath.Join(dir, "leaked.pem")
	if err := os.WriteFile(leakedFile, leaked, 0o600); err != nil {
		t.Fatal(err)
	}
	const aud = "https://management.slipway.local/"
	before, _, _ := s.Issue("tenant", "app", "obj", aud)
	if _, err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	mint := func(at time.Time) string {
		forger := newTestSigner(t, leakedFile, &at)
		tok, _, err := forger.Issue("tenant", "app", "obj", aud)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := s.Verify(before); err != nil {
		t.Errorf("a token issued before the rotation: %v", err)
	}
	if _, err := s.Verify(mint(now.Add(2 * time.Second))); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token minted with the retired key after the rotation: %v, want ErrInvalidToken", err)
	}
	// Backdating the token does not make it live longer than Slipway's own.
	backdated := mint(now.Add(-time.Minute))
	if _, err := s.Verify(backdated); err != nil {
		t.Errorf("a backdated token within the retired key's window: %v", err)
	}
	later := now.Add(TokenLifetime + time.Second)
	s.now = func() time.Time { return later }
	if _, err := s.Verify(backdated); err == nil {
		t.Error("a retired key's token accepted a token's lifetime after the rotation")
	}
	// A token that claims a longer life than Slipway gives is refused,
	// whatever key signed it.
	long := newTestSigner(t, keyFile, &now)
	long.now = func() time.Time { return now }
	tok := signLongLived(t, keyFile, aud)
	if _, err := long.Verify(tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a 10-year token signed with the current key: %v, want ErrInvalidToken", err)
	}
}

// signLongLived signs, with the key in keyFile, a token valid for ten years.
func signLongLived(t *testing.T, keyFile, aud string) string {
	t.Helper()
	key, err := loadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := keyID(&key.PublicKey)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := Claims{Claims: jwt.Claims{Issuer: "https://127.0.0.1:8443/adfs", Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(10 * 365 * 24 * time.Hour))}, ObjectID: "obj"}
	tok, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVerifiedTokensAreRemembered: a token verified once is not verified
// again until it expires, is refused as expired from then on, is never
// taken for another audience, and a rotation makes it verified again under
// the retired key's rules.
func TestVerifiedTokensAreRemembered(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := newTestSigner(t, filepath.Join(t.TempDir(), "k.pem"), &now)
	tok, _, err := s.Issue("tenant", "app", "object", "https://management.slipway.local/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if len(s.verified) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(s.verified))
	}
	c, err := s.Verify(tok)
	if err != nil || c.AppID != "app" {
		t.Fatalf("second Verify: %+v, %v", c, err)
	}
	c.AppID = "changed by a caller"
	if c, _ := s.Verify(tok); c.AppID != "app" {
		t.Error("a caller's change to its claims reached the cache")
	}
	if _, err := s.VerifyFor(tok, "https://vault.example.com"); !errors.Is(err, ErrWrongAudience) {
		t.Errorf("remembered token for another audience: %v, want ErrWrongAudience", err)
	}
	if _, err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if len(s.verified) != 0 {
		t.Errorf("%d tokens remembered after a rotation, want 0", len(s.verified))
	}
	if _, err := s.Verify(tok); err != nil {
		t.Errorf("token signed before the rotation: %v", err)
	}
	now = now.Add(TokenLifetime)
	if _, err := s.Verify(tok); !errors.Is(err, ErrExpiredToken) && !errors.Is(err, ErrInvalidToken) {
		t.Errorf("remembered token at its expiry: %v, want it refused", err)
	}
}

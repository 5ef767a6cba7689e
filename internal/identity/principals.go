package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Store keeps service principals as management objects.
type Store struct {
	Client client.Client
}

var _ Principals = (*Store)(nil)

// Authenticate checks appID's secret against its stored hashes.
func (s *Store) Authenticate(ctx context.Context, appID, secret string) (string, error) {
	sp := &slipwayv1.ServicePrincipal{}
	err := s.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(appID)}, sp)
	if apierrors.IsNotFound(err) {
		return "", ErrBadCredentials
	}
	if err != nil {
		return "", err
	}
	now := time.Now()
	for _, h := range sp.Spec.Secrets {
		if h.Expires != nil && now.After(h.Expires.Time) {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(hashSecret(h.Salt, secret)), []byte(h.Hash)) == 1 {
			return sp.Spec.ObjectID, nil
		}
	}
	return "", ErrBadCredentials
}

// NewSecret makes a random client secret and its stored form. Secrets
// never start with '-': command lines (az login -p) would take them for a
// flag.
func NewSecret() (string, slipwayv1.SecretHash) {
	raw := make([]byte, 32)
	for {
		rand.Read(raw)
		if secret := base64.RawURLEncoding.EncodeToString(raw); secret[0] != '-' {
			return secret, HashFor(secret)
		}
	}
}

// HashFor returns the stored form of a given secret.
func HashFor(secret string) slipwayv1.SecretHash {
	salt := make([]byte, 16)
	rand.Read(salt)
	keyID := make([]byte, 16)
	rand.Read(keyID)
	s := hex.EncodeToString(salt)
	return slipwayv1.SecretHash{KeyID: GUID(keyID), Hint: secret[:3], Salt: s, Hash: hashSecret(s, secret)}
}

func hashSecret(salt, secret string) string {
	sum := sha256.Sum256([]byte(salt + secret))
	return hex.EncodeToString(sum[:])
}

// Ensure creates the principal with appID unless it exists, with secret as
// its one secret, and returns its object ID.
func (s *Store) Ensure(ctx context.Context, appID, objectID, displayName, secret string) error {
	sp := &slipwayv1.ServicePrincipal{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(appID), Namespace: slipwayv1.Namespace},
		Spec: slipwayv1.ServicePrincipalSpec{AppID: appID, ObjectID: objectID, DisplayName: displayName,
			Secrets: []slipwayv1.SecretHash{HashFor(secret)}},
	}
	err := s.Client.Create(ctx, sp)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating service principal %s: %w", appID, err)
	}
	return nil
}

// GUID formats 16 random bytes as a version-4 GUID.
func GUID(b []byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// NewGUID returns a random GUID.
func NewGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return GUID(b)
}

// Create makes a new service principal with one secret, which it returns:
// only its hash is kept, so it is shown this once.
func (s *Store) Create(ctx context.Context, displayName string) (*slipwayv1.ServicePrincipal, string, error) {
	secret, hash := NewSecret()
	appID := NewGUID()
	sp := &slipwayv1.ServicePrincipal{
		ObjectMeta: metav1.ObjectMeta{Name: appID, Namespace: slipwayv1.Namespace},
		Spec: slipwayv1.ServicePrincipalSpec{AppID: appID, ObjectID: NewGUID(), DisplayName: displayName,
			Secrets: []slipwayv1.SecretHash{hash}},
	}
	if err := s.Client.Create(ctx, sp); err != nil {
		return nil, "", fmt.Errorf("creating service principal %q: %w", displayName, err)
	}
	return sp, secret, nil
}

// AddSecret gives a principal one more secret and returns it (once).
func (s *Store) AddSecret(ctx context.Context, appID string) (*slipwayv1.ServicePrincipal, string, error) {
	sp := &slipwayv1.ServicePrincipal{}
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(appID)}, sp); err != nil {
		return nil, "", err
	}
	secret, hash := NewSecret()
	sp.Spec.Secrets = append(sp.Spec.Secrets, hash)
	if err := s.Client.Update(ctx, sp); err != nil {
		return nil, "", fmt.Errorf("adding a secret to %s: %w", appID, err)
	}
	return sp, secret, nil
}

// List lists the service principals.
func (s *Store) List(ctx context.Context) ([]slipwayv1.ServicePrincipal, error) {
	var list slipwayv1.ServicePrincipalList
	if err := s.Client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, err
	}
	return list.Items, nil
}

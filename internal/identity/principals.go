package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
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

// SecretLifetime is how long a new secret is valid unless asked otherwise:
// Entra's default for addPassword.
const SecretLifetime = 2 * 365 * 24 * time.Hour

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

// ErrNotFound says a principal or secret does not exist.
var ErrNotFound = errors.New("not found")

// expiring is a new secret's stored form, valid until end (zero: the
// default lifetime).
func expiring(end time.Time) (string, slipwayv1.SecretHash, error) {
	now := time.Now()
	if end.IsZero() {
		end = now.Add(SecretLifetime)
	}
	if !end.After(now) {
		return "", slipwayv1.SecretHash{}, fmt.Errorf("endDateTime %s is in the past", end.UTC().Format(time.RFC3339))
	}
	secret, hash := NewSecret()
	hash.Expires = &metav1.Time{Time: end.UTC().Truncate(time.Second)}
	return secret, hash, nil
}

// Create makes a new service principal with one secret, which it returns:
// only its hash is kept, so it is shown this once. The secret expires at
// end (zero: after SecretLifetime).
func (s *Store) Create(ctx context.Context, displayName string, end time.Time) (*slipwayv1.ServicePrincipal, string, error) {
	secret, hash, err := expiring(end)
	if err != nil {
		return nil, "", err
	}
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

// AddSecret gives a principal one more secret, valid until end (zero:
// after SecretLifetime), and returns it (once) with its key ID.
func (s *Store) AddSecret(ctx context.Context, appID string, end time.Time) (*slipwayv1.ServicePrincipal, string, string, error) {
	secret, hash, err := expiring(end)
	if err != nil {
		return nil, "", "", err
	}
	sp, err := s.update(ctx, appID, func(sp *slipwayv1.ServicePrincipal) error {
		sp.Spec.Secrets = append(sp.Spec.Secrets, hash)
		return nil
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("adding a secret to %s: %w", appID, err)
	}
	return sp, secret, hash.KeyID, nil
}

// RemoveSecret revokes one secret of a principal: token requests with it
// are refused from then on.
func (s *Store) RemoveSecret(ctx context.Context, appID, keyID string) (*slipwayv1.ServicePrincipal, error) {
	return s.update(ctx, appID, func(sp *slipwayv1.ServicePrincipal) error {
		i := slices.IndexFunc(sp.Spec.Secrets, func(h slipwayv1.SecretHash) bool { return strings.EqualFold(h.KeyID, keyID) })
		if i < 0 {
			return fmt.Errorf("secret %s of %s: %w", keyID, appID, ErrNotFound)
		}
		sp.Spec.Secrets = slices.Delete(sp.Spec.Secrets, i, i+1)
		return nil
	})
}

// Delete deletes a principal, its secrets with it; it returns the deleted
// principal so its role assignments can go too.
func (s *Store) Delete(ctx context.Context, appID string) (*slipwayv1.ServicePrincipal, error) {
	sp := &slipwayv1.ServicePrincipal{}
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(appID)}, sp); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("service principal %s: %w", appID, ErrNotFound)
		}
		return nil, err
	}
	if err := s.Client.Delete(ctx, sp); client.IgnoreNotFound(err) != nil {
		return nil, fmt.Errorf("deleting service principal %s: %w", appID, err)
	}
	return sp, nil
}

// update changes a principal, retrying on conflict.
func (s *Store) update(ctx context.Context, appID string, change func(*slipwayv1.ServicePrincipal) error) (*slipwayv1.ServicePrincipal, error) {
	sp := &slipwayv1.ServicePrincipal{}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(appID)}, sp); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("service principal %s: %w", appID, ErrNotFound)
			}
			return err
		}
		if err := change(sp); err != nil {
			return err
		}
		return s.Client.Update(ctx, sp)
	})
	return sp, err
}

// List lists the service principals.
func (s *Store) List(ctx context.Context) ([]slipwayv1.ServicePrincipal, error) {
	var list slipwayv1.ServicePrincipalList
	if err := s.Client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// CheckCurrent says whether appID can still get a token: it exists and
// holds a secret that has not expired.
func (s *Store) CheckCurrent(ctx context.Context, appID string) error {
	sp := &slipwayv1.ServicePrincipal{}
	err := s.Client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: strings.ToLower(appID)}, sp)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("service principal %s does not exist", appID)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	for _, h := range sp.Spec.Secrets {
		if h.Expires == nil || now.Before(h.Expires.Time) {
			return nil
		}
	}
	return fmt.Errorf("service principal %s has no secret that has not expired", appID)
}

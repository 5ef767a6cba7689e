package keyvault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
)

// Attributes are a secret version's attributes as the data plane speaks
// them (Unix seconds).
type Attributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays *int32 `json:"recoverableDays,omitempty"`
}

// Bundle is a secret version as the data plane returns it: SecretBundle,
// and DeletedSecretBundle's extra fields when deleted.
type Bundle struct {
	Value              *string           `json:"value,omitempty"`
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         Attributes        `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

// secretName is Key Vault's object name rule.
var secretName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// MaxValueBytes is the largest secret value Key Vault takes.
const MaxValueBytes = 25 * 1024

func secretObject(vault, name string) string {
	return "kvs-" + strings.ToLower(vault) + "-" + armid.Label(strings.ToLower(vault)+"/"+strings.ToLower(name))
}

func notFound(name string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "SecretNotFound", Message: fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", name)}
}

func badName(name string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "BadParameter", Message: fmt.Sprintf("The request URI contains an invalid name: %s", name)}
}

// Secrets is one vault's secrets.
type Secrets struct {
	s     *Service
	vault string // lower-cased
	props vaultProps
}

type vaultProps struct {
	softDelete, purgeProtection bool
	retentionDays               int32
}

// SecretsOf is the secrets of a live vault.
func (s *Service) SecretsOf(v *slipwayv1.Vault) (*Secrets, error) {
	m, err := Model(v)
	if err != nil {
		return nil, err
	}
	p := m.Properties
	return &Secrets{s: s, vault: strings.TrimPrefix(v.Name, "kv-"), props: vaultProps{
		softDelete: deref(p.EnableSoftDelete), purgeProtection: deref(p.EnablePurgeProtection), retentionDays: deref(p.SoftDeleteRetentionInDays),
	}}, nil
}

// recoveryLevel is what deleting an object of the vault allows.
func (x *Secrets) recoveryLevel() (string, *int32) {
	if !x.props.softDelete {
		return "Purgeable", to32(0)
	}
	level := "Recoverable"
	if x.props.retentionDays < 90 {
		level = "CustomizedRecoverable"
	}
	if !x.props.purgeProtection {
		level += "+Purgeable"
	}
	return level, to32(x.props.retentionDays)
}

func to32(v int32) *int32 { return &v }

// id is an object's identifier: its URI in the vault.
func (x *Secrets) id(kind, name, version string) string {
	u := x.s.VaultURI(x.vault) + kind + "/" + name
	if version != "" {
		u += "/" + version
	}
	return u
}

func (x *Secrets) aad(name, version string) string {
	return x.vault + "/" + strings.ToLower(name) + "/" + version
}

// get reads a secret's object; nil if none.
func (x *Secrets) get(ctx context.Context, name string) (*slipwayv1.VaultSecret, error) {
	sec := &slipwayv1.VaultSecret{}
	err := x.s.client.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: secretObject(x.vault, name)}, sec)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sec.Spec.Deleted != nil && !x.s.now().Before(sec.Spec.Deleted.ScheduledPurgeDate.Time) {
		if err := x.s.client.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
			return nil, err
		}
		return nil, nil
	}
	return sec, nil
}

// live reads a secret that is not deleted.
func (x *Secrets) live(ctx context.Context, name string) (*slipwayv1.VaultSecret, error) {
	return x.find(ctx, name, false)
}

// deleted reads a soft-deleted secret.
func (x *Secrets) deleted(ctx context.Context, name string) (*slipwayv1.VaultSecret, error) {
	return x.find(ctx, name, true)
}

// find reads a secret that is soft-deleted, or is not: Key Vault's
// 404 otherwise.
func (x *Secrets) find(ctx context.Context, name string, deleted bool) (*slipwayv1.VaultSecret, error) {
	if !secretName.MatchString(name) {
		return nil, badName(name)
	}
	sec, err := x.get(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case deleted && (sec == nil || sec.Spec.Deleted == nil):
		return nil, &Error{Status: http.StatusNotFound, Code: "SecretNotFound", Message: "Deleted Secret not found: " + name}
	case !deleted && (sec == nil || sec.Spec.Deleted != nil):
		return nil, notFound(name)
	}
	return sec, nil
}

// bundle renders a version; with value, opened.
func (x *Secrets) bundle(sec *slipwayv1.VaultSecret, v *slipwayv1.SecretVersion, withValue bool) (*Bundle, error) {
	level, days := x.recoveryLevel()
	created, updated, enabled := v.Created, v.Updated, v.Enabled
	b := &Bundle{ID: x.id("secrets", sec.Spec.Name, v.Version), ContentType: v.ContentType, Tags: v.Tags,
		Attributes: Attributes{Enabled: &enabled, NotBefore: v.NotBefore, Expires: v.Expires, Created: &created, Updated: &updated, RecoveryLevel: level, RecoverableDays: days}}
	if withValue {
		value, err := x.s.sealer.Open(v.Sealed, x.aad(sec.Spec.Name, v.Version))
		if err != nil {
			return nil, err
		}
		b.Value = &value
	}
	if d := sec.Spec.Deleted; d != nil {
		b.RecoveryID = x.id("deletedsecrets", sec.Spec.Name, "")
		del, purge := d.DeletionDate.Unix(), d.ScheduledPurgeDate.Unix()
		b.DeletedDate, b.ScheduledPurgeDate = &del, &purge
	}
	return b, nil
}

// SetParams is a SetSecret body.
type SetParams struct {
	Value       *string           `json:"value"`
	ContentType *string           `json:"contentType,omitempty"`
	Attributes  *Attributes       `json:"attributes,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Set adds a version, the secret's new current one.
func (x *Secrets) Set(ctx context.Context, name string, in *SetParams) (*Bundle, error) {
	if !secretName.MatchString(name) {
		return nil, badName(name)
	}
	if in.Value == nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "BadParameter", Message: "Property value is required."}
	}
	if len(*in.Value) > MaxValueBytes {
		return nil, &Error{Status: http.StatusBadRequest, Code: "BadParameter", Message: fmt.Sprintf("Secret value is too large: %d bytes; the limit is %d.", len(*in.Value), MaxValueBytes)}
	}
	if in.ContentType != nil && len(*in.ContentType) > 255 {
		return nil, &Error{Status: http.StatusBadRequest, Code: "BadParameter", Message: "Content type must be at most 255 characters."}
	}
	sec, err := x.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if sec != nil && sec.Spec.Deleted != nil {
		return nil, &Error{Status: http.StatusConflict, Code: "Conflict", Inner: "ObjectIsDeletedButRecoverable",
			Message: fmt.Sprintf("Secret %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.", name)}
	}
	now := x.s.now().Unix()
	v := slipwayv1.SecretVersion{Version: newVersion(), Enabled: true, Created: now, Updated: now, Tags: in.Tags, ContentType: deref(in.ContentType)}
	if a := in.Attributes; a != nil {
		if a.Enabled != nil {
			v.Enabled = *a.Enabled
		}
		v.NotBefore, v.Expires = a.NotBefore, a.Expires
	}
	v.Sealed = x.s.sealer.Seal(*in.Value, x.aad(name, v.Version))
	if sec == nil {
		sec = &slipwayv1.VaultSecret{
			ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: secretObject(x.vault, name), Labels: map[string]string{slipwayv1.LabelVault: x.vault}},
			Spec:       slipwayv1.VaultSecretSpec{Vault: x.vault, Name: name, Versions: []slipwayv1.SecretVersion{v}},
		}
		err = x.s.client.Create(ctx, sec)
	} else {
		sec.Spec.Versions = append(sec.Spec.Versions, v)
		err = x.s.client.Update(ctx, sec)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return nil, &Error{Status: http.StatusConflict, Code: "Conflict", Message: fmt.Sprintf("There was a conflict setting secret %s: another operation on it is in progress. Retry.", name)}
	}
	if err != nil {
		return nil, fmt.Errorf("setting secret %s: %w", name, err)
	}
	return x.bundle(sec, &sec.Spec.Versions[len(sec.Spec.Versions)-1], true)
}

func newVersion() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// version finds a version of a secret ("" is the current one).
func version(sec *slipwayv1.VaultSecret, version string) (*slipwayv1.SecretVersion, bool) {
	if version == "" {
		return &sec.Spec.Versions[len(sec.Spec.Versions)-1], true
	}
	for i := range sec.Spec.Versions {
		if strings.EqualFold(sec.Spec.Versions[i].Version, version) {
			return &sec.Spec.Versions[i], true
		}
	}
	return nil, false
}

// Get reads a version with its value; a disabled one is refused.
func (x *Secrets) Get(ctx context.Context, name, ver string) (*Bundle, error) {
	sec, err := x.live(ctx, name)
	if err != nil {
		return nil, err
	}
	v, ok := version(sec, ver)
	if !ok {
		return nil, notFound(name + "/" + ver)
	}
	if !v.Enabled {
		return nil, &Error{Status: http.StatusForbidden, Code: "Forbidden", Inner: "SecretDisabled", Message: "Operation get is not allowed on a disabled secret."}
	}
	return x.bundle(sec, v, true)
}

// UpdateParams is an UpdateSecret body.
type UpdateParams struct {
	ContentType *string           `json:"contentType,omitempty"`
	Attributes  *Attributes       `json:"attributes,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Update changes a version's attributes, content type or tags.
func (x *Secrets) Update(ctx context.Context, name, ver string, in *UpdateParams) (*Bundle, error) {
	sec, err := x.live(ctx, name)
	if err != nil {
		return nil, err
	}
	v, ok := version(sec, ver)
	if !ok {
		return nil, notFound(name + "/" + ver)
	}
	if in.ContentType != nil {
		v.ContentType = *in.ContentType
	}
	if in.Tags != nil {
		v.Tags = in.Tags
	}
	if a := in.Attributes; a != nil {
		if a.Enabled != nil {
			v.Enabled = *a.Enabled
		}
		if a.NotBefore != nil {
			v.NotBefore = a.NotBefore
		}
		if a.Expires != nil {
			v.Expires = a.Expires
		}
	}
	v.Updated = x.s.now().Unix()
	if err := x.s.client.Update(ctx, sec); err != nil {
		if apierrors.IsConflict(err) {
			return nil, &Error{Status: http.StatusConflict, Code: "Conflict", Message: fmt.Sprintf("There was a conflict updating secret %s. Retry.", name)}
		}
		return nil, err
	}
	return x.bundle(sec, v, false)
}

// Item is a secret in a list: no value.
type Item struct {
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         Attributes        `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

func (x *Secrets) item(sec *slipwayv1.VaultSecret, v *slipwayv1.SecretVersion, id string) Item {
	b, _ := x.bundle(sec, v, false)
	return Item{ID: id, ContentType: b.ContentType, Attributes: b.Attributes, Tags: b.Tags, RecoveryID: b.RecoveryID, DeletedDate: b.DeletedDate, ScheduledPurgeDate: b.ScheduledPurgeDate}
}

func (x *Secrets) all(ctx context.Context) ([]slipwayv1.VaultSecret, error) {
	var list slipwayv1.VaultSecretList
	if err := x.s.client.List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelVault: x.vault}); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return strings.ToLower(list.Items[i].Spec.Name) < strings.ToLower(list.Items[j].Spec.Name)
	})
	return list.Items, nil
}

// List lists the live secrets, each as its current version, by base ID.
func (x *Secrets) List(ctx context.Context) ([]Item, error) {
	return x.list(ctx, func(sec *slipwayv1.VaultSecret) bool { return sec.Spec.Deleted == nil })
}

// list lists the secrets that keep holds for, each as its current
// version.
func (x *Secrets) list(ctx context.Context, keep func(*slipwayv1.VaultSecret) bool) ([]Item, error) {
	secs, err := x.all(ctx)
	if err != nil {
		return nil, err
	}
	out := []Item{}
	for i := range secs {
		sec := &secs[i]
		if !keep(sec) {
			continue
		}
		v, _ := version(sec, "")
		out = append(out, x.item(sec, v, x.id("secrets", sec.Spec.Name, "")))
	}
	return out, nil
}

// Versions lists a live secret's versions.
func (x *Secrets) Versions(ctx context.Context, name string) ([]Item, error) {
	sec, err := x.live(ctx, name)
	if err != nil {
		return nil, err
	}
	out := []Item{}
	for i := range sec.Spec.Versions {
		v := &sec.Spec.Versions[i]
		out = append(out, x.item(sec, v, x.id("secrets", sec.Spec.Name, v.Version)))
	}
	return out, nil
}

// Delete deletes a secret, all its versions: soft-deleted for the vault's
// retention, or gone when soft delete is off.
func (x *Secrets) Delete(ctx context.Context, name string) (*Bundle, error) {
	sec, err := x.live(ctx, name)
	if err != nil {
		return nil, err
	}
	now := x.s.now().UTC().Truncate(time.Second)
	sec.Spec.Deleted = &slipwayv1.Deletion{DeletionDate: metav1.NewTime(now), ScheduledPurgeDate: metav1.NewTime(now.AddDate(0, 0, int(x.props.retentionDays)))}
	v, _ := version(sec, "")
	b, err := x.bundle(sec, v, false)
	if err != nil {
		return nil, err
	}
	if !x.props.softDelete {
		b.RecoveryID, b.DeletedDate, b.ScheduledPurgeDate = "", nil, nil
		return b, x.s.client.Delete(ctx, sec)
	}
	if err := x.s.client.Update(ctx, sec); err != nil {
		return nil, err
	}
	return b, nil
}

// GetDeleted reads a soft-deleted secret (its current version, no value).
func (x *Secrets) GetDeleted(ctx context.Context, name string) (*Bundle, error) {
	sec, err := x.deleted(ctx, name)
	if err != nil {
		return nil, err
	}
	v, _ := version(sec, "")
	return x.bundle(sec, v, false)
}

// ListDeleted lists the soft-deleted secrets still in their retention.
func (x *Secrets) ListDeleted(ctx context.Context) ([]Item, error) {
	return x.list(ctx, func(sec *slipwayv1.VaultSecret) bool {
		return sec.Spec.Deleted != nil && x.s.now().Before(sec.Spec.Deleted.ScheduledPurgeDate.Time)
	})
}

// Recover brings a soft-deleted secret back, all its versions.
func (x *Secrets) Recover(ctx context.Context, name string) (*Bundle, error) {
	sec, err := x.deleted(ctx, name)
	if err != nil {
		return nil, err
	}
	sec.Spec.Deleted = nil
	if err := x.s.client.Update(ctx, sec); err != nil {
		return nil, err
	}
	v, _ := version(sec, "")
	return x.bundle(sec, v, false)
}

// Purge removes a soft-deleted secret for good.
func (x *Secrets) Purge(ctx context.Context, name string) error {
	if !x.props.softDelete {
		return &Error{Status: http.StatusBadRequest, Code: "NotSupported", Message: `Operation "purge" is not enabled for this vault.`}
	}
	sec, err := x.deleted(ctx, name)
	if err != nil {
		return err
	}
	if x.props.purgeProtection {
		return &Error{Status: http.StatusForbidden, Code: "Forbidden", Message: `Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.`}
	}
	return x.s.client.Delete(ctx, sec)
}

// backup is what a backup blob holds, sealed.
type backup struct {
	Name     string                    `json:"name"`
	Versions []slipwayv1.SecretVersion `json:"versions"`
}

const backupAAD = "slipway key vault secret backup"

// Backup returns a live secret, all its versions, as an opaque blob
// (base64url, no padding, as the SDK decodes it).
func (x *Secrets) Backup(ctx context.Context, name string) (string, error) {
	sec, err := x.live(ctx, name)
	if err != nil {
		return "", err
	}
	b := backup{Name: sec.Spec.Name}
	for _, v := range sec.Spec.Versions {
		value, err := x.s.sealer.Open(v.Sealed, x.aad(sec.Spec.Name, v.Version))
		if err != nil {
			return "", err
		}
		v.Sealed = value
		b.Versions = append(b.Versions, v)
	}
	data, _ := json.Marshal(b)
	return base64.RawURLEncoding.EncodeToString([]byte(x.s.sealer.Seal(string(data), backupAAD))), nil
}

// Restore makes a secret from a backup, in this vault; the name must be
// free.
func (x *Secrets) Restore(ctx context.Context, blob string) (*Bundle, error) {
	invalid := &Error{Status: http.StatusBadRequest, Code: "BadParameter", Message: "Backup blob contains invalid or corrupt version."}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(blob, "="))
	if err != nil {
		return nil, invalid
	}
	data, err := x.s.sealer.Open(string(raw), backupAAD)
	if err != nil {
		return nil, invalid
	}
	var b backup
	if err := json.Unmarshal([]byte(data), &b); err != nil || len(b.Versions) == 0 || !secretName.MatchString(b.Name) {
		return nil, invalid
	}
	if existing, err := x.get(ctx, b.Name); err != nil {
		return nil, err
	} else if existing != nil {
		return nil, &Error{Status: http.StatusConflict, Code: "Conflict", Message: fmt.Sprintf("Secret %s already exists. A secret can only be restored under a name not in use.", b.Name)}
	}
	for i := range b.Versions {
		b.Versions[i].Sealed = x.s.sealer.Seal(b.Versions[i].Sealed, x.aad(b.Name, b.Versions[i].Version))
	}
	sec := &slipwayv1.VaultSecret{
		ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: secretObject(x.vault, b.Name), Labels: map[string]string{slipwayv1.LabelVault: x.vault}},
		Spec:       slipwayv1.VaultSecretSpec{Vault: x.vault, Name: b.Name, Versions: b.Versions},
	}
	if err := x.s.client.Create(ctx, sec); err != nil {
		return nil, err
	}
	v, _ := version(sec, "")
	return x.bundle(sec, v, false)
}

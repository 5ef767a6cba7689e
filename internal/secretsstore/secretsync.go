package secretsstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
)

// SecretSync is upstream's secrets-store-sync-controller API
// (secret-sync.x-k8s.io/v1alpha1): a SecretProviderClass's objects synced
// into the Secret of the SecretSync's name, without a pod mounting them —
// the answer to the driver's most asked-for missing feature. Its module is
// not on the Go module proxy; these are its types, as far as Slipway
// reads and writes them.
type SecretSync struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SecretSyncSpec   `json:"spec,omitempty"`
	Status            SecretSyncStatus `json:"status,omitempty"`
}

// SecretSyncSpec is what to sync, and as whom.
type SecretSyncSpec struct {
	SecretSyncControllerName string           `json:"secretSyncControllerName"`
	SecretProviderClassName  string           `json:"secretProviderClassName"`
	ServiceAccountName       string           `json:"serviceAccountName"`
	SecretObject             SyncSecretObject `json:"secretObject"`
	ForceSynchronization     string           `json:"forceSynchronization,omitempty"`
}

// SyncSecretObject is the Secret to make.
type SyncSecretObject struct {
	Type        string            `json:"type"`
	Data        []SyncSecretData  `json:"data"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SyncSecretData maps a file of the provider's mount to a key.
type SyncSecretData struct {
	SourcePath string `json:"sourcePath"`
	TargetKey  string `json:"targetKey"`
}

// SecretSyncStatus is how the last sync went.
type SecretSyncStatus struct {
	SyncHash               string             `json:"syncHash,omitempty"`
	LastSuccessfulSyncTime *metav1.Time       `json:"lastSuccessfulSyncTime,omitempty"`
	Conditions             []metav1.Condition `json:"conditions,omitempty"`
}

var secretSyncResource = schema.GroupVersionResource{Group: "secret-sync.x-k8s.io", Version: "v1alpha1", Resource: "secretsyncs"}

// SecretSyncLabel names, on a synced Secret, the SecretSync it is from;
// a Secret without it is not the controller's to overwrite.
const SecretSyncLabel = "secrets-store.sync.x-k8s.io/secretsync"

// Condition types and reasons, as upstream's.
const (
	conditionCreate = "Create"
	conditionUpdate = "Update"
)

// syncFailure is a failed sync's condition reason and message.
type syncFailure struct{ reason, message string }

func (f *syncFailure) Error() string { return f.reason + ": " + f.message }

// syncSecret syncs one SecretSync: fetch its class's objects as the
// class's identity, write the Secret of its name (owned by it), and say
// how it went in its status. A sync whose inputs are unchanged since the
// last one, within the poll interval, writes nothing.
func (c *controller) syncSecret(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	u, err := c.dynamic.Resource(secretSyncResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // its Secret is owned by it, and goes with it
	}
	if err != nil {
		return err
	}
	ss := &SecretSync{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ss); err != nil {
		return fmt.Errorf("reading secretsync %s/%s: %w", ns, name, err)
	}
	if ss.DeletionTimestamp != nil {
		return nil
	}
	s := c.settings()
	// With rotation on, a sync is due every poll interval, as upstream's
	// controller rotates.
	last := ss.Status.LastSuccessfulSyncTime
	due := s.Rotation && (last == nil || time.Since(last.Time) >= s.RotationPollInterval)
	data, hash, fail := c.syncData(ctx, ss, s)
	if fail == nil && hash == ss.Status.SyncHash && !due && !c.secretGone(ctx, ss) {
		return nil
	}
	var created, changed bool
	if fail == nil {
		created, changed, fail = c.writeSyncedSecret(ctx, ss, data)
	}
	return c.writeSyncStatus(ctx, ss, hash, created, changed, fail)
}

// secretGone says whether a SecretSync's Secret was deleted under it.
func (c *controller) secretGone(ctx context.Context, ss *SecretSync) bool {
	_, err := c.client.CoreV1().Secrets(ss.Namespace).Get(ctx, ss.Name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

// syncData fetches what a SecretSync's Secret should hold, and the hash
// of its inputs.
func (c *controller) syncData(ctx context.Context, ss *SecretSync, s Settings) (map[string][]byte, string, *syncFailure) {
	if !s.Enabled {
		return nil, "", &syncFailure{"ControllerInternalError", "the Key Vault Secrets Provider add-on is not enabled on this cluster"}
	}
	if _, err := c.client.CoreV1().ServiceAccounts(ss.Namespace).Get(ctx, ss.Spec.ServiceAccountName, metav1.GetOptions{}); err != nil {
		return nil, "", &syncFailure{"ControllerInternalError", fmt.Sprintf("failed to get service account %s: %v", ss.Spec.ServiceAccountName, err)}
	}
	spc, err := c.secretProviderClass(ctx, ss.Namespace, ss.Spec.SecretProviderClassName)
	if err != nil {
		return nil, "", &syncFailure{"ControllerSPCError", fmt.Sprintf("failed to get secret provider class %s: %v", ss.Spec.SecretProviderClassName, err)}
	}
	if spc.Spec.Provider != "azure" {
		return nil, "", &syncFailure{"ControllerSPCError", fmt.Sprintf("provider %q is not installed", spc.Spec.Provider)}
	}
	typ := strings.TrimSpace(ss.Spec.SecretObject.Type)
	if typ == "" {
		typ = string(corev1.SecretTypeOpaque)
	}
	m, err := c.provider.fetch(ctx, spc.Spec.Parameters, s.Identities, nil)
	if err != nil {
		return nil, "", &syncFailure{"ProviderError", fmt.Sprintf("The secret sync failed due to a provider error: %v", err)}
	}
	items := make([]*secretsstorev1.SecretObjectData, 0, len(ss.Spec.SecretObject.Data))
	for _, d := range ss.Spec.SecretObject.Data {
		items = append(items, &secretsstorev1.SecretObjectData{ObjectName: d.SourcePath, Key: d.TargetKey})
	}
	data, err := secretData(items, corev1.SecretType(typ), m.files)
	if err != nil {
		return nil, "", &syncFailure{"UserInputValidationFailed", err.Error()}
	}
	// The hash covers the data and what decides it: the class and the
	// SecretSync as they are now, keyed by the SecretSync's UID.
	h := hmac.New(sha256.New, []byte(ss.UID))
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(data[k]))
		h.Write(data[k])
	}
	fmt.Fprintf(h, "spc=%s/%d;ss=%d;force=%s", spc.UID, spc.Generation, ss.Generation, ss.Spec.ForceSynchronization)
	return data, hex.EncodeToString(h.Sum(nil)), nil
}

// writeSyncedSecret makes or updates the Secret of a SecretSync; a Secret
// of that name that is not the SecretSync's is left alone and said so.
func (c *controller) writeSyncedSecret(ctx context.Context, ss *SecretSync, data map[string][]byte) (created, changed bool, fail *syncFailure) {
	labels := maps.Clone(ss.Spec.SecretObject.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[SecretSyncLabel] = ss.Name
	typ := corev1.SecretType(strings.TrimSpace(ss.Spec.SecretObject.Type))
	if typ == "" {
		typ = corev1.SecretTypeOpaque
	}
	secrets := c.client.CoreV1().Secrets(ss.Namespace)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ss.Name, Namespace: ss.Namespace, Labels: labels, Annotations: ss.Spec.SecretObject.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: secretSyncResource.GroupVersion().String(), Kind: "SecretSync", Name: ss.Name, UID: ss.UID, Controller: ptr.To(true)}}},
		Type: typ, Data: data,
	}
	_, err := secrets.Create(ctx, secret, metav1.CreateOptions{})
	if err == nil {
		return true, true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, false, &syncFailure{"UnknownError", err.Error()}
	}
	old, err := secrets.Get(ctx, ss.Name, metav1.GetOptions{})
	if err != nil {
		return false, false, &syncFailure{"UnknownError", err.Error()}
	}
	if old.Labels[SecretSyncLabel] != ss.Name {
		return false, false, &syncFailure{"InvalidClusterSecretLabelError", fmt.Sprintf("secret %s exists and is not synced by this SecretSync (it lacks the label %s=%s)", ss.Name, SecretSyncLabel, ss.Name)}
	}
	if old.Type != typ {
		return false, false, &syncFailure{"UserInputValidationFailed", fmt.Sprintf("secret %s is of type %s, not %s: a Secret's type cannot change", ss.Name, old.Type, typ)}
	}
	changed = !sameData(old.Data, data)
	old.Data, old.Labels, old.Annotations = data, labels, ss.Spec.SecretObject.Annotations
	if _, err := secrets.Update(ctx, old, metav1.UpdateOptions{}); err != nil {
		return false, false, &syncFailure{"UnknownError", err.Error()}
	}
	return false, changed, nil
}

// writeSyncStatus records a sync in the SecretSync's status, with
// upstream's conditions.
func (c *controller) writeSyncStatus(ctx context.Context, ss *SecretSync, hash string, created, changed bool, fail *syncFailure) error {
	now := metav1.Now()
	cond := metav1.Condition{Type: conditionUpdate, ObservedGeneration: ss.Generation}
	switch {
	case fail != nil:
		cond.Type = conditionUpdate
		if ss.Status.LastSuccessfulSyncTime == nil {
			cond.Type = conditionCreate
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, fail.reason, fail.message
	case created:
		cond.Type, cond.Status, cond.Reason, cond.Message = conditionCreate, metav1.ConditionTrue, "CreateSucceeded", "The secret was created successfully."
	case changed:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "ValueChangeOrForceUpdateDetected", "The secret was updated successfully: a value change or a force update was detected."
	default:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "NoValueChange", "The secret was updated successfully at the end of the poll interval and no value change was detected."
	}
	meta.SetStatusCondition(&ss.Status.Conditions, cond)
	if fail == nil {
		ss.Status.SyncHash, ss.Status.LastSuccessfulSyncTime = hash, &now
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ss)
	if err != nil {
		return err
	}
	if _, err := c.dynamic.Resource(secretSyncResource).Namespace(ss.Namespace).UpdateStatus(ctx, &unstructured.Unstructured{Object: obj}, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing the status of secretsync %s/%s: %w", ss.Namespace, ss.Name, err)
	}
	if fail != nil {
		return errors.New(fail.Error())
	}
	return nil
}

package secretsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/secretutil"

	"github.com/slipway-dev/slipway/internal/simnode"
)

// ManagedLabel marks the Secrets the driver syncs.
const ManagedLabel = "secrets-store.csi.k8s.io/managed"

// Event reasons and the components that sign them, as the kubelet and the
// driver's rotation reconciler do.
const (
	kubelet          = "kubelet"
	rotationReporter = "csi-secrets-store-rotation"
	syncReporter     = "csi-secrets-store-controller"
)

// volumesOf are a pod's Secrets Store volumes.
func volumesOf(pod *corev1.Pod) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == simnode.SecretsStoreDriver {
			out = append(out, v)
		}
	}
	return out
}

// mounted is one volume the provider mounted.
type mounted struct {
	volume corev1.Volume
	spc    *secretsstorev1.SecretProviderClass
	*mount
}

// mountPod mounts a pending pod's Secrets Store volumes and lets it
// start; it says whether to try again later.
func (c *controller) mountPod(ctx context.Context, key string) (retry bool) {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pod, err := c.pods.Pods(ns).Get(name)
	if err != nil || pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodPending ||
		pod.Annotations[simnode.SecretsMountedAnnotation] == "true" {
		return false
	}
	vols := volumesOf(pod)
	s := c.settings()
	if !s.Enabled {
		c.failMount(pod, vols[0].Name, "kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name secrets-store.csi.k8s.io not found in the list of registered CSI drivers")
		return true
	}
	var done []mounted
	for _, vol := range vols {
		m, err := c.mountVolume(ctx, pod, vol, s)
		if err != nil {
			c.failMount(pod, vol.Name, err.Error())
			return true
		}
		done = append(done, m)
	}
	for _, m := range done {
		status, err := c.writeStatus(ctx, pod, m)
		if err != nil {
			slog.Warn("Secrets store: recording a mount", "pod", key, "err", err)
			return true
		}
		if _, err := c.syncSecrets(ctx, pod, m.spc, status, m.files); err != nil {
			// The mount stands, as upstream's: its Secrets are another
			// controller's, which says so on the pod.
			c.recorder(syncReporter, "").Event(pod, corev1.EventTypeWarning, "FailedToCreateSecret", err.Error())
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{simnode.SecretsMountedAnnotation: "true"}}})
	if _, err := c.client.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		slog.Warn("Secrets store: starting a mounted pod", "pod", key, "err", err)
		return true
	}
	return false
}

// failMount says on the pod why its volume did not mount, as the kubelet
// does: the pod stays in ContainerCreating.
func (c *controller) failMount(pod *corev1.Pod, volume, reason string) {
	c.recorder(kubelet, pod.Spec.NodeName).Eventf(pod, corev1.EventTypeWarning, "FailedMount",
		"MountVolume.SetUp failed for volume %q : rpc error: code = Unknown desc = %s", volume, reason)
}

// mountVolume does the driver's NodePublishVolume for one volume: its
// SecretProviderClass, the provider's fetch.
func (c *controller) mountVolume(ctx context.Context, pod *corev1.Pod, vol corev1.Volume, s Settings) (mounted, error) {
	if vol.CSI.ReadOnly == nil || !*vol.CSI.ReadOnly {
		return mounted{}, errors.New("Readonly is not true in request")
	}
	name := vol.CSI.VolumeAttributes["secretProviderClass"]
	if name == "" {
		return mounted{}, errors.New("secretProviderClass is not set")
	}
	spc, err := c.secretProviderClass(ctx, pod.Namespace, name)
	if err != nil {
		return mounted{}, fmt.Errorf("failed to get secretproviderclass %s/%s, error: %w", pod.Namespace, name, err)
	}
	if spc.Spec.Provider != "azure" {
		return mounted{}, fmt.Errorf("failed to mount secrets store objects for pod %s/%s, err: provider not found: provider %q", pod.Namespace, pod.Name, spc.Spec.Provider)
	}
	var creds map[string][]byte
	if ref := vol.CSI.NodePublishSecretRef; ref != nil {
		secret, err := c.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return mounted{}, fmt.Errorf("failed to get node publish secret %s/%s: %w", pod.Namespace, ref.Name, err)
		}
		creds = secret.Data
		if creds == nil {
			creds = map[string][]byte{}
		}
	}
	// The provider sees the class's parameters and the volume's
	// attributes, as the driver merges them.
	params := maps.Clone(spc.Spec.Parameters)
	if params == nil {
		params = map[string]string{}
	}
	maps.Copy(params, vol.CSI.VolumeAttributes)
	m, err := c.provider.fetch(ctx, params, s.Identities, creds)
	if err != nil {
		return mounted{}, fmt.Errorf("failed to mount secrets store objects for pod %s/%s, err: rpc error: code = Unknown desc = failed to mount objects, error: %w", pod.Namespace, pod.Name, err)
	}
	return mounted{volume: vol, spc: spc, mount: m}, nil
}

func (c *controller) secretProviderClass(ctx context.Context, ns, name string) (*secretsstorev1.SecretProviderClass, error) {
	u, err := c.dynamic.Resource(spcResource).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	spc := &secretsstorev1.SecretProviderClass{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, spc); err != nil {
		return nil, fmt.Errorf("reading secretproviderclass %s/%s: %w", ns, name, err)
	}
	return spc, nil
}

// statusName is the SecretProviderClassPodStatus of a pod's mount of a
// class, named as the driver names it.
func statusName(pod *corev1.Pod, spc string) string {
	return pod.Name + "-" + pod.Namespace + "-" + spc
}

// targetPath is where the kubelet would have the driver mount a volume;
// the driver's sync controller checks a status's path against its pod.
func targetPath(pod *corev1.Pod, volume string) string {
	return fmt.Sprintf("/var/lib/kubelet/pods/%s/volumes/kubernetes.io~csi/%s/mount", pod.UID, volume)
}

// sortedObjects are a mount's objects as a status lists them, by ID.
func sortedObjects(objects []secretsstorev1.SecretProviderClassObject) []secretsstorev1.SecretProviderClassObject {
	out := slices.Clone(objects)
	slices.SortFunc(out, func(a, b secretsstorev1.SecretProviderClassObject) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// writeStatus records a mount in its SecretProviderClassPodStatus, owned
// by the pod (and deleted with it).
func (c *controller) writeStatus(ctx context.Context, pod *corev1.Pod, m mounted) (*secretsstorev1.SecretProviderClassPodStatus, error) {
	objects := sortedObjects(m.objects)
	status := &secretsstorev1.SecretProviderClassPodStatus{
		TypeMeta: metav1.TypeMeta{APIVersion: secretsstorev1.GroupVersion.String(), Kind: "SecretProviderClassPodStatus"},
		ObjectMeta: metav1.ObjectMeta{
			Name: statusName(pod, m.spc.Name), Namespace: pod.Namespace,
			Labels:          map[string]string{secretsstorev1.InternalNodeLabel: pod.Spec.NodeName},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}},
		},
		Status: secretsstorev1.SecretProviderClassPodStatusStatus{
			PodName: pod.Name, SecretProviderClassName: m.spc.Name, Mounted: true,
			TargetPath: targetPath(pod, m.volume.Name), Objects: objects,
		},
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return nil, err
	}
	ri := c.dynamic.Resource(spcpsResource).Namespace(pod.Namespace)
	u, err := ri.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A pod of the same name mounted before, or this one's mount is
		// done again: the status is this mount's.
		var old *unstructured.Unstructured
		if old, err = ri.Get(ctx, status.Name, metav1.GetOptions{}); err == nil {
			status.ResourceVersion = old.GetResourceVersion()
			if obj, err = runtime.DefaultUnstructuredConverter.ToUnstructured(status); err == nil {
				u, err = ri.Update(ctx, &unstructured.Unstructured{Object: obj}, metav1.UpdateOptions{})
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("writing secretproviderclasspodstatus %s/%s: %w", pod.Namespace, status.Name, err)
	}
	status.UID = u.GetUID()
	return status, nil
}

// syncSecrets makes or updates the Kubernetes Secrets a class's
// secretObjects ask for, from a mount's files, as the driver's sync
// controller does: labelled as managed, owned by the pod's owners (or, for
// a pod without any, by its mount's status), so that they go when the
// last workload using them goes. It returns the Secrets it changed.
func (c *controller) syncSecrets(ctx context.Context, pod *corev1.Pod, spc *secretsstorev1.SecretProviderClass, status *secretsstorev1.SecretProviderClassPodStatus, files map[string][]byte) ([]string, error) {
	var owners []metav1.OwnerReference
	for _, o := range pod.OwnerReferences {
		owners = append(owners, metav1.OwnerReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID})
	}
	if len(owners) == 0 {
		owners = []metav1.OwnerReference{{APIVersion: secretsstorev1.GroupVersion.String(), Kind: "SecretProviderClassPodStatus", Name: status.Name, UID: status.UID}}
	}
	var changed []string
	var errs []error
	for _, so := range spc.Spec.SecretObjects {
		if so == nil {
			continue
		}
		name := strings.TrimSpace(so.SecretName)
		if err := secretutil.ValidateSecretObject(*so); err != nil {
			errs = append(errs, fmt.Errorf("failed to validate secret object in spc %s/%s, err: %w", spc.Namespace, spc.Name, err))
			continue
		}
		typ := secretutil.GetSecretType(strings.TrimSpace(so.Type))
		data, err := secretData(so.Data, typ, files)
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to get data in spc %s/%s for secret %s, err: %w", spc.Namespace, spc.Name, name, err))
			continue
		}
		labels := maps.Clone(so.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[ManagedLabel] = "true"
		did, err := c.writeSecret(ctx, pod.Namespace, name, typ, data, labels, so.Annotations, owners)
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to create Kubernetes secret %s/%s: %w", pod.Namespace, name, err))
			continue
		}
		if did {
			changed = append(changed, name)
		}
	}
	return changed, errors.Join(errs...)
}

// secretData maps a secret object's keys to the mounted files' contents;
// a TLS Secret takes the key or the certificate part of a PEM file.
func secretData(items []*secretsstorev1.SecretObjectData, typ corev1.SecretType, files map[string][]byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, d := range items {
		if d == nil {
			continue
		}
		object, key := strings.TrimSpace(d.ObjectName), strings.TrimSpace(d.Key)
		if object == "" {
			return nil, errors.New("object name in secretObjects.data is empty")
		}
		if key == "" {
			return nil, errors.New("key in secretObjects.data is empty")
		}
		content, ok := files[object]
		if !ok {
			return nil, fmt.Errorf("file matching objectName %s not found in the pod", object)
		}
		if typ == corev1.SecretTypeTLS {
			part, err := secretutil.GetCertPart(content, key)
			if err != nil {
				return nil, fmt.Errorf("failed to get cert data from file %s, err: %w", object, err)
			}
			content = part
		}
		out[key] = content
	}
	return out, nil
}

// writeSecret creates a synced Secret or brings it to data, adding owners
// it lacks; it says whether it wrote.
func (c *controller) writeSecret(ctx context.Context, ns, name string, typ corev1.SecretType, data map[string][]byte, labels, annotations map[string]string, owners []metav1.OwnerReference) (bool, error) {
	secrets := c.client.CoreV1().Secrets(ns)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations, OwnerReferences: owners},
		Type:       typ, Data: data,
	}
	_, err := secrets.Create(ctx, secret, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		return err == nil, err
	}
	old, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	had := map[types.UID]bool{}
	for _, o := range old.OwnerReferences {
		had[o.UID] = true
	}
	next := old.DeepCopy()
	for _, o := range owners {
		if !had[o.UID] {
			next.OwnerReferences = append(next.OwnerReferences, o)
		}
	}
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	maps.Copy(next.Labels, labels)
	if len(annotations) > 0 && next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	maps.Copy(next.Annotations, annotations)
	next.Data = data
	if sameData(old.Data, data) && len(next.OwnerReferences) == len(old.OwnerReferences) &&
		maps.Equal(old.Labels, next.Labels) && maps.Equal(old.Annotations, next.Annotations) {
		return false, nil
	}
	_, err = secrets.Update(ctx, next, metav1.UpdateOptions{})
	return err == nil, err
}

func sameData(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

// rotatePod fetches a mounted pod's objects again; when a version
// changed, its statuses and Secrets follow, with the events the driver's
// rotation reconciler gives.
func (c *controller) rotatePod(ctx context.Context, pod *corev1.Pod, s Settings) {
	events := c.recorder(rotationReporter, pod.Spec.NodeName)
	for _, vol := range volumesOf(pod) {
		m, err := c.mountVolume(ctx, pod, vol, s)
		if err != nil {
			events.Eventf(pod, corev1.EventTypeWarning, "MountRotationFailed", "failed to rotate objects for pod %s/%s, err: %v", pod.Namespace, pod.Name, err)
			continue
		}
		status := &secretsstorev1.SecretProviderClassPodStatus{}
		old, err := c.dynamic.Resource(spcpsResource).Namespace(pod.Namespace).Get(ctx, statusName(pod, m.spc.Name), metav1.GetOptions{})
		if err == nil {
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(old.Object, status)
		}
		if err != nil || !slices.Equal(status.Status.Objects, sortedObjects(m.objects)) {
			if status, err = c.writeStatus(ctx, pod, m); err != nil {
				events.Eventf(pod, corev1.EventTypeWarning, "MountRotationFailed", "failed to rotate objects for pod %s/%s, err: %v", pod.Namespace, pod.Name, err)
				continue
			}
			events.Eventf(pod, corev1.EventTypeNormal, "MountRotationComplete", "successfully rotated mounted contents for spc %s/%s", pod.Namespace, m.spc.Name)
		}
		changed, err := c.syncSecrets(ctx, pod, m.spc, status, m.files)
		for _, name := range changed {
			events.Eventf(pod, corev1.EventTypeNormal, "SecretRotationComplete", "successfully rotated K8s secret %s", name)
		}
		if err != nil {
			events.Eventf(pod, corev1.EventTypeWarning, "SecretRotationFailed", "failed to rotate K8s secrets, err: %v", err)
		}
	}
}

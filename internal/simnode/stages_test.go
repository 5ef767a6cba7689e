package simnode

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	"sigs.k8s.io/kwok/pkg/utils/lifecycle"
)

// TestPodsWaitForVolumes: KWOK starts a pod without claims at once, and a
// pod with claims (or generic ephemeral volumes) only once its volumes are
// mounted.
func TestPodsWaitForVolumes(t *testing.T) {
	stages, err := defaultStages()
	if err != nil {
		t.Fatal(err)
	}
	lc, err := lifecycle.NewLifecycle(stages[internalversion.StageResourceRef{APIGroup: "v1", Kind: "Pod"}])
	if err != nil {
		t.Fatal(err)
	}
	claim := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}
	ephemeral := corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}}
	config := corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}
	secrets := corev1.Volume{Name: "kv", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: SecretsStoreDriver}}}
	inlineFile := corev1.Volume{Name: "share", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "file.csi.azure.com"}}}
	for _, tc := range []struct {
		name    string
		volumes []corev1.Volume
		mounted string
		secrets string
		starts  bool
	}{
		{"no volumes", nil, "", "", true},
		{"a ConfigMap", []corev1.Volume{config}, "", "", true},
		{"a claim", []corev1.Volume{config, claim}, "", "", false},
		{"a generic ephemeral volume", []corev1.Volume{ephemeral}, "", "", false},
		{"a claim, mounted", []corev1.Volume{claim}, "true", "", true},
		{"an inline share", []corev1.Volume{inlineFile}, "", "", true},
		{"a Secrets Store volume", []corev1.Volume{secrets}, "", "", false},
		{"a Secrets Store volume, mounted", []corev1.Volume{secrets}, "", "true", true},
		{"a claim mounted, secrets not", []corev1.Volume{claim, secrets}, "true", "", false},
		{"secrets mounted, a claim not", []corev1.Volume{claim, secrets}, "", "true", false},
		{"both mounted", []corev1.Volume{claim, secrets}, "true", "true", true},
	} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
			Spec:       corev1.PodSpec{NodeName: "n", Volumes: tc.volumes, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodPending},
		}
		pod.Annotations = map[string]string{}
		if tc.mounted != "" {
			pod.Annotations[VolumesMountedAnnotation] = tc.mounted
		}
		if tc.secrets != "" {
			pod.Annotations[SecretsMountedAnnotation] = tc.secrets
		}
		stage, err := lc.Match(context.Background(), &lifecycle.Event{Labels: pod.Labels, Annotations: pod.Annotations, Data: pod})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		starts := stage != nil && stage.Name() == podReadyStage
		if starts != tc.starts {
			t.Errorf("%s: starts %v, want %v", tc.name, starts, tc.starts)
		}
	}
}

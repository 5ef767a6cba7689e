package simnode

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestGuardPodDeletes: KWOK's delete of a pod marked for deletion goes
// through; the same delete, played again after a successor took the name,
// leaves the successor alone.
func TestGuardPodDeletes(t *testing.T) {
	ctx := context.Background()
	now := metav1.Now()
	marked := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default", UID: "old", DeletionTimestamp: &now, Finalizers: []string{"x"}}}
	cs := fake.NewClientset(marked)
	pods := guardPodDeletes(cs).CoreV1().Pods("default")
	if err := pods.Delete(ctx, "db-0", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatalf("deleting the marked pod: %v", err)
	}
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the marked pod is still there: %v", err)
	}
	successor := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default", UID: "new"}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, successor, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "db-0", *metav1.NewDeleteOptions(0)); !apierrors.IsNotFound(err) {
		t.Errorf("a replayed delete answered %v, want NotFound", err)
	}
	if got, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{}); err != nil || got.UID != "new" {
		t.Errorf("the successor was deleted: %v %v", got, err)
	}
}

package simnode

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// guardPodDeletes wraps KWOK's client so that its pod deletes reach only
// the pod they are meant for. KWOK's delete stage finishes the deletion of
// a pod already marked for deletion, but deletes by name: when a second
// event of the same pod is played after the pod is gone and a StatefulSet
// has made its successor under the same name (at once, as it does), the
// successor was deleted too, and a drained StatefulSet churned for many
// rounds. A pod is deleted here only if it is the one marked for
// deletion, by UID.
func guardPodDeletes(c kubernetes.Interface) kubernetes.Interface { return guardedClient{c} }

var schemaPods = schema.GroupResource{Resource: "pods"}

type guardedClient struct{ kubernetes.Interface }

func (g guardedClient) CoreV1() typedcorev1.CoreV1Interface {
	return guardedCore{g.Interface.CoreV1()}
}

type guardedCore struct{ typedcorev1.CoreV1Interface }

func (g guardedCore) Pods(namespace string) typedcorev1.PodInterface {
	return guardedPods{g.CoreV1Interface.Pods(namespace)}
}

type guardedPods struct{ typedcorev1.PodInterface }

func (g guardedPods) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	if opts.Preconditions == nil || opts.Preconditions.UID == nil {
		pod, err := g.PodInterface.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.DeletionTimestamp == nil {
			// A successor under the same name: not the pod KWOK meant.
			return apierrors.NewNotFound(schemaPods, name)
		}
		opts.Preconditions = &metav1.Preconditions{UID: &pod.UID}
	}
	err := g.PodInterface.Delete(ctx, name, opts)
	if apierrors.IsConflict(err) {
		return apierrors.NewNotFound(schemaPods, name)
	}
	return err
}

// Package nodepods lists the pods bound to a node, as a drain or a VM's
// deletion needs them, from the API server's watch cache: cheap however many
// pods the cluster has.
//
// A LIST with no resourceVersion is a consistent read. Since Kubernetes
// 1.31 the API server serves one from its watch cache once the cache has
// caught up with etcd, but only where it can ask etcd for progress. A hosted
// API server on the shared datastore cannot (it checks etcd's version
// first, which etcd tells its root user only), so each such LIST read every
// pod of the cluster from etcd and filtered them by node: at 1,000 nodes and
// 6,000 pods a scale-in's sixteen drains at a time each waited more than 15 s
// for their list, and the API server held a gigabyte.
//
// Read from the cache instead (resourceVersion "0"), the list is as new as
// the cache, which is newer than or as new as every informer it feeds. So
// every pod a PodDisruptionBudget counts as healthy is in it: the
// disruption controller counts from such an informer, and a pod is healthy
// only after an update later than its binding. A pod bound a moment ago may
// be missing, as it may be from a kubelet's view; a drain lists again
// until none is left, and such a pod, not yet Ready, is no budget's.
package nodepods

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

const byNode = "spec.nodeName="

// List returns the pods bound to node.
func List(ctx context.Context, cs kubernetes.Interface, node string) (*corev1.PodList, error) {
	return list(ctx, cs.CoreV1().Pods(metav1.NamespaceAll), metav1.ListOptions{FieldSelector: byNode + node})
}

// DeleteAll deletes, at once and without grace, the pods bound to node, as
// the node lifecycle controller and Pod GC end up doing for a node whose
// machine is gone. Each delete names the pod's UID: a pod that was replaced
// under the same name since the list (a StatefulSet's) is not deleted.
func DeleteAll(ctx context.Context, cs kubernetes.Interface, node string) error {
	pods, err := List(ctx, cs, node)
	if err != nil {
		return fmt.Errorf("listing the pods of %s: %w", node, err)
	}
	grace := int64(0)
	var g errgroup.Group
	for _, pod := range pods.Items {
		g.Go(func() error {
			err := cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("deleting pod %s/%s of %s: %w", pod.Namespace, pod.Name, node, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// list serves a LIST by node from the watch cache; a LIST of anything
// else, or one that names its resourceVersion, is passed on as it is.
func list(ctx context.Context, pods typedcorev1.PodInterface, opts metav1.ListOptions) (*corev1.PodList, error) {
	if !strings.HasPrefix(opts.FieldSelector, byNode) || opts.ResourceVersion != "" || opts.Continue != "" {
		return pods.List(ctx, opts)
	}
	// The cache answers a node's pods in one piece, from its index by
	// node; a limit would send the LIST to etcd again.
	opts.ResourceVersion, opts.Limit = "0", 0
	return pods.List(ctx, opts)
}

// Cached wraps cs so that its LISTs of pods by node are served as List
// serves them: kubectl's drain library lists a node's pods so, and takes
// no list options.
func Cached(cs kubernetes.Interface) kubernetes.Interface { return cachedClient{cs} }

type cachedClient struct{ kubernetes.Interface }

func (c cachedClient) CoreV1() typedcorev1.CoreV1Interface {
	return cachedCore{c.Interface.CoreV1()}
}

type cachedCore struct{ typedcorev1.CoreV1Interface }

func (c cachedCore) Pods(namespace string) typedcorev1.PodInterface {
	return cachedPods{c.CoreV1Interface.Pods(namespace)}
}

type cachedPods struct{ typedcorev1.PodInterface }

func (p cachedPods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	return list(ctx, p.PodInterface, opts)
}

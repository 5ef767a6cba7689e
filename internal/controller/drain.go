package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/kubectl/pkg/drain"

	"github.com/slipway-dev/slipway/internal/nodepods"
)

// drainAttempt bounds one drain inside a reconcile: a drain that a
// PodDisruptionBudget blocks is retried on the next reconcile rather than
// holding a worker.
const drainAttempt = 15 * time.Second

// Drain pacing. kubectl's drain retries a refused eviction after 5 s and
// checks for evicted pods once a second; simulated pods go in milliseconds,
// so at those fixed intervals the drains, not the VMs, would set the pace
// of an upgrade.
const (
	evictRetry   = 200 * time.Millisecond
	deletionPoll = 50 * time.Millisecond
)

// errDrainTimeout says a drain attempt ended with pods still on the node.
var errDrainTimeout = errors.New("drain attempt timed out")

// cordonAndDrain cordons a node and evicts its pods through the Eviction
// API, so PodDisruptionBudgets are honoured, as kubectl drain does: the
// drain library picks the pods (DaemonSet pods stay, bare pods go: the VM
// under them does) and evicts them; the wait for them to go is ours, at a
// pace that suits simulated pods.
func cordonAndDrain(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := &drain.Helper{
		Ctx:                  ctx,
		Client:               nodepods.Cached(cs),
		Force:                true,
		GracePeriodSeconds:   -1,
		IgnoreAllDaemonSets:  true,
		DeleteEmptyDirData:   true,
		Timeout:              timeout,
		EvictErrorRetryDelay: evictRetry,
		Out:                  io.Discard,
		ErrOut:               io.Discard,
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("draining %s: %w", name, err)
	}
	if err := drain.RunCordonOrUncordon(h, node, true); err != nil {
		return fmt.Errorf("cordoning %s: %w", name, err)
	}
	// The scheduler learns of the cordon from its own watch, so a pod
	// can still land on the node just after it: a replacement of one just
	// evicted, most likely. Drain until a fresh look finds no such pod,
	// or it goes down with the VM and the budget with it. A pod that
	// tolerates the cordon (konnectivity-agent tolerates every NoSchedule
	// taint) is evicted once, as kubectl drain evicts it: its replacement
	// may be placed on the cordoned node again, and waiting for the node
	// to be free of it would never end.
	for first := true; ; first = false {
		list, errs := h.GetPodsForDeletion(name)
		if len(errs) > 0 {
			return fmt.Errorf("draining %s: %w", name, errors.Join(errs...))
		}
		var pods []corev1.Pod
		for _, pod := range list.Pods() {
			if first || !toleratesCordon(&pod) {
				pods = append(pods, pod)
			}
		}
		if len(pods) == 0 {
			return nil
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, pod := range pods {
			g.Go(func() error { return evict(gctx, h, cs, pod) })
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("draining %s: %w", name, err)
		}
	}
}

// evict evicts one pod, retrying while a PodDisruptionBudget refuses, and
// waits until it is gone.
func evict(ctx context.Context, h *drain.Helper, cs kubernetes.Interface, pod corev1.Pod) error {
	for {
		err := h.EvictPod(pod, policyv1.SchemeGroupVersion)
		if err == nil || apierrors.IsNotFound(err) {
			break
		}
		if !apierrors.IsTooManyRequests(err) {
			return fmt.Errorf("evicting %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("evicting %s/%s: %w: %v", pod.Namespace, pod.Name, errDrainTimeout, err)
		case <-time.After(evictRetry):
		}
	}
	for {
		p, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && p.UID != pod.UID {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s/%s to go: %w", pod.Namespace, pod.Name, errDrainTimeout)
		case <-time.After(deletionPoll):
		}
	}
}

// cordonTaint is the taint a cordoned node carries.
var cordonTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

// toleratesCordon says whether the scheduler may place pod on a cordoned
// node.
func toleratesCordon(pod *corev1.Pod) bool {
	for _, t := range pod.Spec.Tolerations {
		if t.ToleratesTaint(klog.Background(), &cordonTaint, false) {
			return true
		}
	}
	return false
}

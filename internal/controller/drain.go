package controller

import (
	"context"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"
)

// drainAttempt bounds one drain inside a reconcile: a drain that a
// PodDisruptionBudget blocks is retried on the next reconcile rather than
// holding a worker.
const drainAttempt = 15 * time.Second

// cordonAndDrain cordons a node and evicts its pods through the Eviction
// API, so PodDisruptionBudgets are honoured, as kubectl drain does.
func cordonAndDrain(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	h := &drain.Helper{
		Ctx:                 ctx,
		Client:              cs,
		Force:               true, // bare pods go too: the VM under them does
		GracePeriodSeconds:  -1,
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		Timeout:             timeout,
		Out:                 io.Discard,
		ErrOut:              io.Discard,
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("draining %s: %w", name, err)
	}
	if err := drain.RunCordonOrUncordon(h, node, true); err != nil {
		return fmt.Errorf("cordoning %s: %w", name, err)
	}
	if err := drain.RunNodeDrain(h, name); err != nil {
		return fmt.Errorf("draining %s: %w", name, err)
	}
	return nil
}

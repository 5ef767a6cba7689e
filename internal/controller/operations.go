package controller

import (
	"context"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// OperationPruner deletes operations that ended more than
// slipwayv1.OperationRetention ago. Running ones are never touched, and a
// finished one is no longer read by any controller: they act on the
// operations their objects name as running.
type OperationPruner struct {
	// Reader lists the operations from the API server: they are not
	// otherwise watched, and a cache of them all would cost memory for
	// nothing.
	Reader client.Reader
	Client client.Client
	// Every is how often to look; the first look is at start.
	Every time.Duration
	Now   func() time.Time
}

// Start prunes until ctx ends; it is a manager.Runnable.
func (p *OperationPruner) Start(ctx context.Context) error {
	tick := time.NewTicker(p.Every)
	defer tick.Stop()
	for {
		if n, err := p.Prune(ctx); err != nil {
			slog.Warn("Pruning finished operations", "err", err)
		} else if n > 0 {
			slog.Info("Pruned finished operations", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Prune deletes the operations past their retention, a page at a time, and
// says how many.
func (p *OperationPruner) Prune(ctx context.Context) (int, error) {
	cutoff := p.Now().Add(-slipwayv1.OperationRetention)
	deleted := 0
	opts := []client.ListOption{client.InNamespace(slipwayv1.Namespace), client.Limit(500)}
	for {
		var list slipwayv1.OperationList
		if err := p.Reader.List(ctx, &list, opts...); err != nil {
			return deleted, err
		}
		for i := range list.Items {
			op := &list.Items[i]
			if !finished(op.Status.Status) || op.Status.EndTime == nil || !op.Status.EndTime.Time.Before(cutoff) {
				continue
			}
			if err := p.Client.Delete(ctx, op); err != nil && !apierrors.IsNotFound(err) {
				return deleted, err
			}
			deleted++
		}
		if list.Continue == "" {
			return deleted, nil
		}
		opts = append(opts[:2], client.Continue(list.Continue))
	}
}

func finished(status string) bool {
	switch status {
	case slipwayv1.OperationSucceeded, slipwayv1.OperationFailed, slipwayv1.OperationCanceled:
		return true
	}
	return false
}

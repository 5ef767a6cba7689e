package controller

import (
	"context"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Pruner deletes what Slipway keeps only for a time: operations that ended
// more than slipwayv1.OperationRetention ago, and usage records of days
// more than slipwayv1.UsageRetention ago. Running operations are never
// touched, and a finished one is no longer read by any controller: they
// act on the operations their objects name as running.
type Pruner struct {
	// Reader lists from the API server: neither kind is otherwise
	// watched, and a cache of them all would cost memory for nothing.
	Reader client.Reader
	Client client.Client
	// Every is how often to look; the first look is at start.
	Every time.Duration
	Now   func() time.Time
}

// Start prunes until ctx ends; it is a manager.Runnable.
func (p *Pruner) Start(ctx context.Context) error {
	tick := time.NewTicker(p.Every)
	defer tick.Stop()
	for {
		if n, err := p.Prune(ctx); err != nil {
			slog.Warn("Pruning finished operations", "err", err)
		} else if n > 0 {
			slog.Info("Pruned finished operations", "count", n)
		}
		if n, err := p.PruneUsage(ctx); err != nil {
			slog.Warn("Pruning usage records", "err", err)
		} else if n > 0 {
			slog.Info("Pruned usage records", "count", n)
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
func (p *Pruner) Prune(ctx context.Context) (int, error) {
	cutoff := p.Now().Add(-slipwayv1.OperationRetention)
	return p.prune(ctx, &slipwayv1.OperationList{}, func(o client.Object) bool {
		op := o.(*slipwayv1.Operation)
		return finished(op.Status.Status) && op.Status.EndTime != nil && op.Status.EndTime.Time.Before(cutoff)
	})
}

// PruneUsage deletes the usage records of days past their retention, and
// says how many.
func (p *Pruner) PruneUsage(ctx context.Context) (int, error) {
	// Dates are YYYY-MM-DD, so they compare as strings.
	cutoff := p.Now().UTC().Add(-slipwayv1.UsageRetention).Format(time.DateOnly)
	return p.prune(ctx, &slipwayv1.UsageRecordList{}, func(o client.Object) bool {
		date := o.(*slipwayv1.UsageRecord).Spec.Date
		return date != "" && date < cutoff
	})
}

// prune deletes the objects of list's kind that expired says are, reading
// a page of 500 at a time.
func (p *Pruner) prune(ctx context.Context, list client.ObjectList, expired func(client.Object) bool) (int, error) {
	deleted := 0
	opts := []client.ListOption{client.InNamespace(slipwayv1.Namespace), client.Limit(500)}
	for {
		if err := p.Reader.List(ctx, list, opts...); err != nil {
			return deleted, err
		}
		err := apimeta.EachListItem(list, func(item runtime.Object) error {
			o := item.(client.Object)
			if !expired(o) {
				return nil
			}
			if err := p.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			deleted++
			return nil
		})
		if err != nil {
			return deleted, err
		}
		if list.GetContinue() == "" {
			return deleted, nil
		}
		opts = append(opts[:2], client.Continue(list.GetContinue()))
	}
}

func finished(status string) bool {
	switch status {
	case slipwayv1.OperationSucceeded, slipwayv1.OperationFailed, slipwayv1.OperationCanceled:
		return true
	}
	return false
}

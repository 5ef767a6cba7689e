package autoscaler

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// New returns the autoscaler of the cluster cs reaches, over informers of
// factory (which the caller starts after New, and which the scheduler
// plugins read too).
func New(ctx context.Context, cs kubernetes.Interface, factory informers.SharedInformerFactory, c Cluster, events record.EventRecorder) (*Autoscaler, error) {
	sim, err := newSimulator(ctx, factory)
	if err != nil {
		return nil, err
	}
	return &Autoscaler{
		cluster: c, client: cs, sim: sim, events: events, now: time.Now,
		nodes: factory.Core().V1().Nodes().Lister(), pods: factory.Core().V1().Pods().Lister(),
		pdbs: factory.Policy().V1().PodDisruptionBudgets().Lister(), cms: factory.Core().V1().ConfigMaps().Lister(),
		unneeded: map[string]time.Time{}, backoff: map[string]backoff{}, draining: map[string]bool{}, scaleUps: map[string]scaleUpRequest{},
	}, nil
}

// Start runs a cluster's autoscaler until the returned stop is called: a
// loop every scan-interval of its profile (real time).
func Start(ctx context.Context, cs kubernetes.Interface, c Cluster) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	events := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "cluster-autoscaler"})
	a, err := New(ctx, cs, factory, c, events)
	if err != nil {
		cancel()
		broadcaster.Shutdown()
		return nil, fmt.Errorf("cluster autoscaler: %w", err)
	}
	// The informers behind the loop's listers, made before the factory
	// starts.
	factory.Core().V1().Nodes().Informer()
	factory.Core().V1().Pods().Informer()
	factory.Policy().V1().PodDisruptionBudgets().Informer()
	factory.Core().V1().ConfigMaps().Informer()
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer broadcaster.Shutdown()
		defer factory.Shutdown()
		for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				klog.FromContext(ctx).Info("Cluster autoscaler: informer did not sync", "type", typ.String())
				return
			}
		}
		log := klog.FromContext(ctx)
		for {
			interval := 10 * time.Second
			s, err := a.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				log.Info("Cluster autoscaler loop failed", "err", err.Error())
			}
			if s.ScanInterval > 0 {
				interval = s.ScanInterval
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

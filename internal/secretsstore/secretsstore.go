// Package secretsstore runs the Key Vault Secrets Provider add-on of a
// cluster in Slipway's process: what the Secrets Store CSI driver and its
// Azure provider do on a real node, for the simulated ones. A pod with a
// secrets-store.csi.k8s.io volume is mounted once its node has it: every
// object its SecretProviderClass names is fetched from the vault as the
// identity the class names, a SecretProviderClassPodStatus records the
// versions, the class's secretObjects are synced as Kubernetes Secrets,
// and only then does the pod start (simnode.SecretsMountedAnnotation). A
// mount that fails keeps the pod in ContainerCreating with the kubelet's
// FailedMount events, and is retried. With rotation on, mounted pods are
// fetched again every poll interval and their Secrets follow.
package secretsstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/simnode"
)

// Settings are what a cluster's profile says about the add-on.
type Settings struct {
	addons.KeyVaultSettings
	// Identities are the user-assigned identities on the cluster's scale
	// sets (the add-on's, the kubelet's), which useVMManagedIdentity may
	// name by client ID.
	Identities []addons.Identity
}

// Options configure one cluster's add-on.
type Options struct {
	// Config is an admin client configuration of the cluster.
	Config *rest.Config
	// Vaults are read as the identity a SecretProviderClass names.
	Vaults     Vaults
	Principals Principals
	// TenantID is the tenant SecretProviderClasses must name.
	TenantID string
	// Settings reads the cluster's add-on settings; asked at every mount
	// and rotation.
	Settings func() Settings
}

var (
	spcResource   = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}
	spcpsResource = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}
)

// Driver is a running cluster's Secrets Store driver.
type Driver struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// controller holds what mounts, syncs and rotations share.
type controller struct {
	client   kubernetes.Interface
	dynamic  dynamic.Interface
	pods     corelisters.PodLister
	provider *provider
	settings func() Settings
	events   record.EventBroadcaster

	// syncs are the SecretSyncs to sync; syncStore their informer's
	// store, once the add-on's CRDs are there to watch (nil until then).
	syncs     workqueue.TypedRateLimitingInterface[string]
	syncStore cache.Store
}

// Start starts the cluster's driver; it runs until Stop.
func Start(ctx context.Context, o Options) (*Driver, error) {
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("secrets store driver: %w", err)
	}
	dc, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("secrets store driver: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	podInf := factory.Core().V1().Pods()
	broadcaster := record.NewBroadcaster(record.WithContext(runCtx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	c := &controller{
		client: cs, dynamic: dc, pods: podInf.Lister(), settings: o.Settings, events: broadcaster,
		provider: &provider{vaults: o.Vaults, principals: o.Principals, tenantID: o.TenantID},
	}
	// A failed mount is retried as the kubelet retries it, backing off
	// (here to 30 s, not the kubelet's 2 minutes: a local cluster should
	// recover as soon as the secret is there).
	mounts := newQueue("secrets-store-mounts")
	c.syncs = newQueue("secret-syncs")
	podChanged := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" || len(volumesOf(pod)) == 0 || pod.Annotations[simnode.SecretsMountedAnnotation] == "true" {
			return
		}
		if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
			mounts.Add(key)
		}
	}
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: podChanged, UpdateFunc: func(_, obj any) { podChanged(obj) }})
	factory.Start(runCtx.Done())
	d := &Driver{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		defer factory.Shutdown()
		defer broadcaster.Shutdown()
		if !cache.WaitForCacheSync(runCtx.Done(), podInf.Informer().HasSynced) {
			return
		}
		work(mounts, 4, func(key string) bool { return c.mountPod(runCtx, key) })
		work(c.syncs, 2, func(key string) bool {
			err := c.syncSecret(runCtx, key)
			if err != nil {
				slog.Debug("Secret sync failed", "secretsync", key, "err", err)
			}
			return err != nil
		})
		go c.rotate(runCtx)
		<-runCtx.Done()
		mounts.ShutDown()
		c.syncs.ShutDown()
	}()
	return d, nil
}

func newQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// work runs n workers on a queue until it shuts down; an item whose sync
// says to retry is retried with back-off.
func work(q workqueue.TypedRateLimitingInterface[string], n int, sync func(key string) (retry bool)) {
	for range n {
		go func() {
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				if sync(key) {
					q.AddRateLimited(key)
				} else {
					q.Forget(key)
				}
				q.Done(key)
			}
		}()
	}
}

// watchSyncs starts watching SecretSyncs once the add-on's CRD serves
// them: a watch of a resource not served would only log failures.
func (c *controller) watchSyncs(ctx context.Context) {
	if c.syncStore != nil {
		return
	}
	if _, err := c.dynamic.Resource(secretSyncResource).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(c.dynamic, secretSyncResource, metav1.NamespaceAll, 10*time.Minute, cache.Indexers{}, nil).Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.syncs.Add(key)
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }})
	go inf.RunWithContext(ctx)
	c.syncStore = inf.GetStore()
}

// Stop stops the driver.
func (d *Driver) Stop() {
	d.cancel()
	<-d.done
}

// rotate fetches the objects of every mounted pod again each poll
// interval while rotation is on, as the driver's rotation reconciler does.
func (c *controller) rotate(ctx context.Context) {
	// The settings are read each second: a cluster's add-on may be
	// turned on, or its interval changed, at any time.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := c.settings()
		if s.Enabled {
			c.watchSyncs(ctx)
		}
		if !s.Enabled || !s.Rotation || time.Since(last) < s.RotationPollInterval {
			continue
		}
		last = time.Now()
		if c.syncStore != nil {
			for _, key := range c.syncStore.ListKeys() {
				c.syncs.Add(key)
			}
		}
		pods, err := c.pods.List(labels.Everything())
		if err != nil {
			slog.Warn("Secrets store rotation: listing pods", "err", err)
			continue
		}
		for _, pod := range pods {
			if ctx.Err() != nil {
				return
			}
			if pod.Annotations[simnode.SecretsMountedAnnotation] != "true" || pod.DeletionTimestamp != nil ||
				pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			c.rotatePod(ctx, pod, s)
		}
	}
}

// recorder records events as component on node, as the kubelet and the
// driver sign theirs.
func (c *controller) recorder(component, node string) record.EventRecorder {
	return c.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: node})
}

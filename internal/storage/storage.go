// Package storage runs a cluster's storage in Slipway's process, as AKS runs
// it in the managed control plane: the Azure Disk CSI driver's controller
// (provisioner and attacher) and, for each simulated node, what the
// kubelet and the driver's node plugin would do there. A cluster's PVC of a
// disk class becomes a managed disk in its node resource group, attached to
// the VM of the node its pod runs on.
package storage

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/slipway-dev/slipway/internal/csi/azuredisk"
	"github.com/slipway-dev/slipway/internal/csi/azurefile"
	"github.com/slipway-dev/slipway/internal/disks"
	"github.com/slipway-dev/slipway/internal/storageaccounts"
	"github.com/slipway-dev/slipway/internal/timing"
)

// Options configure one cluster's storage.
type Options struct {
	// Config is an admin client configuration of the cluster.
	Config *rest.Config
	// Disks keeps the managed disks; Accounts the storage accounts and
	// their file shares.
	Disks    *disks.Service
	Accounts *storageaccounts.Service
	// Subscription, NodeResourceGroup and Location are where the cluster's
	// disks go.
	Subscription, NodeResourceGroup, Location string
	// DiskDriverEnabled and FileDriverEnabled say whether the cluster's
	// storageProfile has each driver on; asked at each provisioning.
	DiskDriverEnabled, FileDriverEnabled func() bool
	// Timing is the VM timing model that attach and detach take.
	Timing timing.Model
}

// Storage is a running cluster's storage controllers.
type Storage struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts the cluster's storage controllers; they run until Stop.
func Start(ctx context.Context, o Options) (*Storage, error) {
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("storage controllers: %w", err)
	}
	sc, err := snapshotclient.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("storage controllers: %w", err)
	}
	on := func() bool { return true }
	if o.DiskDriverEnabled == nil {
		o.DiskDriverEnabled = on
	}
	if o.FileDriverEnabled == nil {
		o.FileDriverEnabled = on
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The libraries log each claim they handle at Info; only their
	// errors are worth a line in serve's log.
	runCtx = klog.NewContext(runCtx, logr.FromSlogHandler(slog.Default().Handler()).V(1))

	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	nodeInf := factory.Core().V1().Nodes()
	podInf := factory.Core().V1().Pods()
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	vaInf := factory.Storage().V1().VolumeAttachments()
	classInf := factory.Storage().V1().StorageClasses()
	nodeVMs := vms{nodes: nodeInf.Lister()}
	driver := azuredisk.New(o.Disks, nodeVMs, azuredisk.Config{
		Subscription: o.Subscription, ResourceGroup: o.NodeResourceGroup, Location: o.Location,
		AttachDelay: o.Timing.Scaled(timing.AttachDisk), DetachDelay: o.Timing.Scaled(timing.DetachDisk),
	})

	files := azurefile.New(o.Accounts, azurefile.Config{
		Subscription: o.Subscription, ResourceGroup: o.NodeResourceGroup, Location: o.Location,
		StoreKey: func(ctx context.Context, namespace, name, account, key string) error {
			return storeKey(ctx, cs, namespace, name, account, key)
		},
	})

	att := &attacher{driver: driver, client: cs, vas: vaInf.Lister(), pvs: pvInf.Lister()}
	for _, inf := range []cache.SharedIndexInformer{podInf.Informer(), vaInf.Informer()} {
		if err := inf.AddIndexers(nodeIndexers); err != nil {
			cancel()
			return nil, fmt.Errorf("storage controllers: %w", err)
		}
	}
	plugin := &nodePlugin{client: cs, nodes: nodeInf.Lister(), pods: podInf.Informer().GetIndexer(), pvcs: pvcInf.Lister(), pvs: pvInf.Lister(), vas: vaInf.Informer().GetIndexer(),
		disks: o.Disks, diskEnabled: o.DiskDriverEnabled, fileEnabled: o.FileDriverEnabled}
	vaQueue := newQueue("volumeattachments")
	nodeQueue := newQueue("csinodes")

	vaInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			va := obj.(*storagev1.VolumeAttachment)
			vaQueue.Add(va.Name)
			nodeQueue.Add(va.Spec.NodeName)
		},
		UpdateFunc: func(_, obj any) {
			va := obj.(*storagev1.VolumeAttachment)
			vaQueue.Add(va.Name)
			nodeQueue.Add(va.Spec.NodeName)
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if va, ok := obj.(*storagev1.VolumeAttachment); ok {
				nodeQueue.Add(va.Spec.NodeName)
			}
		},
	})
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { nodeQueue.Add(obj.(*corev1.Node).Name) },
		UpdateFunc: func(_, obj any) { nodeQueue.Add(obj.(*corev1.Node).Name) },
	})
	podChanged := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		for _, v := range pod.Spec.Volumes {
			if claimName(pod, v) != "" {
				nodeQueue.Add(pod.Spec.NodeName)
				return
			}
		}
	}
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: podChanged, UpdateFunc: func(_, obj any) { podChanged(obj) }, DeleteFunc: podChanged})
	broadcaster := record.NewBroadcaster(record.WithContext(runCtx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	recorder := func(component string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}
	resize := &resizer{drivers: map[string]csi.ControllerServer{azuredisk.DriverName: driver, azurefile.DriverName: files}, client: cs, pvcs: pvcInf.Lister(), pvs: pvInf.Lister(), events: recorder("external-resizer")}
	resizeQueue := newQueue("resizes")

	prov := &provisioning{client: cs, pvcs: pvcInf.Lister(), pvs: pvInf.Lister(), classes: classInf.Lister(), byName: map[string]*provisioner{
		azuredisk.DriverName: {name: azuredisk.DriverName, driver: driver, client: cs, snapshots: sc, events: recorder(azuredisk.DriverName),
			topologyKey: azuredisk.TopologyKey, defaultFSType: "ext4", block: true, enabled: o.DiskDriverEnabled,
			disabled: "the Azure Disk CSI driver is disabled on this cluster: enable it with az aks update --enable-disk-driver"},
		azurefile.DriverName: {name: azurefile.DriverName, driver: files, client: cs, events: recorder(azurefile.DriverName), enabled: o.FileDriverEnabled,
			disabled: "the Azure Files CSI driver is disabled on this cluster: enable it with az aks update --enable-file-driver"},
	}}
	claimQueue, volumeQueue := newQueue("claims"), newQueue("volumes")
	claimChanged := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			resizeQueue.Add(key)
			claimQueue.Add(key)
		}
	}
	pvcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: claimChanged, UpdateFunc: func(_, obj any) { claimChanged(obj) }})
	volumeChanged := func(obj any) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok {
			volumeQueue.Add(pv.Name)
		}
	}
	pvInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: volumeChanged, UpdateFunc: func(_, obj any) { volumeChanged(obj) }})

	// The snapshot controllers wait for the snapshot CRDs, which the
	// add-ons install when storageProfile.snapshotController is on.
	stopSnapshots := runSnapshots(runCtx, cs, sc, factory, driver)
	factory.Start(runCtx.Done())
	s := &Storage{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer factory.Shutdown()
		if !cache.WaitForCacheSync(runCtx.Done(), nodeInf.Informer().HasSynced, podInf.Informer().HasSynced, pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced, vaInf.Informer().HasSynced, classInf.Informer().HasSynced) {
			return
		}
		go work(runCtx, claimQueue, 8, prov.syncClaim)
		go work(runCtx, volumeQueue, 4, prov.syncVolume)
		// Attaches run in parallel (each waits out the VM's update);
		// one VM's are serialised by the disk service.
		go work(runCtx, vaQueue, 16, att.sync)
		go work(runCtx, nodeQueue, 4, plugin.sync)
		go work(runCtx, resizeQueue, 4, resize.sync)
		<-runCtx.Done()
		vaQueue.ShutDown()
		claimQueue.ShutDown()
		volumeQueue.ShutDown()
		nodeQueue.ShutDown()
		resizeQueue.ShutDown()
		broadcaster.Shutdown()
		stopSnapshots()
	}()
	return s, nil
}

// storeKey keeps a storage account's key in the Secret pods' mounts of its
// shares read, as the Azure Files driver's storeAccountKey does.
func storeKey(ctx context.Context, cs kubernetes.Interface, namespace, name, account, key string) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"azurestorageaccountname": account, "azurestorageaccountkey": key},
	}
	_, err := cs.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = cs.CoreV1().Secrets(namespace).Update(ctx, secret, metav1.UpdateOptions{})
	}
	return err
}

// Stop stops the controllers.
func (s *Storage) Stop() {
	s.cancel()
	<-s.done
}

func newQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// work runs n workers on a queue until it shuts down; a failed item is
// retried with back-off.
func work(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], n int, sync func(context.Context, string) error) {
	for range n {
		go func() {
			for {
				key, quit := q.Get()
				if quit {
					return
				}
				if err := sync(ctx, key); err != nil {
					klog.FromContext(ctx).V(2).Info("storage: retrying", "key", key, "err", err.Error())
					q.AddRateLimited(key)
				} else {
					q.Forget(key)
				}
				q.Done(key)
			}
		}()
	}
}

func resourceBytes(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.BinarySI) }

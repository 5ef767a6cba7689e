package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	snapshotscheme "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned/scheme"
	snapshotinformers "github.com/kubernetes-csi/external-snapshotter/client/v8/informers/externalversions"
	commoncontroller "github.com/kubernetes-csi/external-snapshotter/v8/pkg/common-controller"
	"github.com/kubernetes-csi/external-snapshotter/v8/pkg/metrics"
	sidecarcontroller "github.com/kubernetes-csi/external-snapshotter/v8/pkg/sidecar-controller"
	"github.com/kubernetes-csi/external-snapshotter/v8/pkg/snapshotter"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"

	"github.com/slipway-dev/slipway/internal/csi/azuredisk"
)

// snapshots runs external-snapshotter's two controllers, as the library
// they are: the common one (AKS's snapshot controller, binding
// VolumeSnapshots to contents) and the disk driver's sidecar (making and
// deleting the snapshots through the driver, in-process).
func runSnapshots(ctx context.Context, cs kubernetes.Interface, sc snapshotclient.Interface, core informers.SharedInformerFactory, driver *azuredisk.Driver) func() {
	factory := snapshotinformers.NewSharedInformerFactory(sc, 10*time.Minute)
	vs := factory.Snapshot().V1().VolumeSnapshots()
	vsc := factory.Snapshot().V1().VolumeSnapshotContents()
	class := factory.Snapshot().V1().VolumeSnapshotClasses()
	limiter := func() workqueue.TypedRateLimiter[string] {
		return workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second)
	}
	common := commoncontroller.NewCSISnapshotCommonController(sc, cs, vs, vsc, class, nil, nil, nil,
		core.Core().V1().PersistentVolumeClaims(), core.Core().V1().PersistentVolumes(), nil,
		metrics.NewMetricsManager(), 10*time.Minute, limiter(), limiter(), limiter(), limiter(), false, true, false)
	sidecar := sidecarcontroller.NewCSISnapshotSideCarController(sc, cs, azuredisk.DriverName, vsc, class,
		inProcessSnapshotter{driver}, nil, time.Minute, 10*time.Minute, "snapshot", -1, "groupsnapshot", -1, true, limiter(), false, nil, nil, limiter())
	stop := make(chan struct{})
	factory.Start(stop)
	var wg sync.WaitGroup
	go common.Run(4, stop, &wg)
	go sidecar.Run(4, stop, &wg)
	go func() {
		<-ctx.Done()
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	return func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		factory.Shutdown()
	}
}

// init adds the snapshot types to client-go's scheme, which the
// controllers' event recorders use for the objects they report on (the
// snapshot-controller binary does the same in its main). At init, not when
// a cluster's controllers start: every client in the process decodes with
// that scheme, and a write to it while one decodes is a fatal error.
func init() {
	utilruntime.Must(snapshotscheme.AddToScheme(scheme.Scheme))
}

// inProcessSnapshotter is external-snapshotter's Snapshotter over the disk
// driver's controller service, called directly rather than over a socket.
type inProcessSnapshotter struct{ driver *azuredisk.Driver }

var _ snapshotter.Snapshotter = inProcessSnapshotter{}

func (s inProcessSnapshotter) CreateSnapshot(ctx context.Context, name, volumeHandle string, params, _ map[string]string) (string, string, time.Time, int64, bool, error) {
	resp, err := s.driver.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volumeHandle, Parameters: params})
	if err != nil {
		return "", "", time.Time{}, 0, false, err
	}
	sn := resp.GetSnapshot()
	return azuredisk.DriverName, sn.GetSnapshotId(), sn.GetCreationTime().AsTime(), sn.GetSizeBytes(), sn.GetReadyToUse(), nil
}

func (s inProcessSnapshotter) DeleteSnapshot(ctx context.Context, id string, _ map[string]string) error {
	_, err := s.driver.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id})
	return err
}

func (s inProcessSnapshotter) GetSnapshotStatus(ctx context.Context, id string, _ map[string]string) (bool, time.Time, int64, string, error) {
	resp, err := s.driver.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: id})
	if err != nil {
		return false, time.Time{}, 0, "", err
	}
	if len(resp.GetEntries()) == 0 {
		return false, time.Time{}, 0, "", fmt.Errorf("snapshot %s not found", id)
	}
	sn := resp.GetEntries()[0].GetSnapshot()
	return sn.GetReadyToUse(), sn.GetCreationTime().AsTime(), sn.GetSizeBytes(), "", nil
}

// snapshotHandle is the snapshot behind a VolumeSnapshot a claim is
// restored from.
func snapshotHandle(ctx context.Context, sc snapshotclient.Interface, namespace, name string) (string, error) {
	vs, err := sc.SnapshotV1().VolumeSnapshots(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading volume snapshot %s/%s: %w", namespace, name, err)
	}
	if vs.Status == nil || vs.Status.BoundVolumeSnapshotContentName == nil || vs.Status.ReadyToUse == nil || !*vs.Status.ReadyToUse {
		return "", fmt.Errorf("volume snapshot %s/%s is not ready to use", namespace, name)
	}
	content, err := sc.SnapshotV1().VolumeSnapshotContents().Get(ctx, *vs.Status.BoundVolumeSnapshotContentName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading snapshot content %s: %w", *vs.Status.BoundVolumeSnapshotContentName, err)
	}
	if content.Status == nil || content.Status.SnapshotHandle == nil {
		return "", fmt.Errorf("snapshot content %s has no snapshot yet", content.Name)
	}
	return *content.Status.SnapshotHandle, nil
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/slipway-dev/slipway/internal/disks"
)

// volumeClaim is a claim of the given class and size.
func volumeClaim(name, class, size string) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if class != "" {
		pvc.Spec.StorageClassName = &class
	}
	return pvc
}

// podWithClaim is a pod that mounts a claim, on the nodes selector picks.
func podWithClaim(name, claim string, selector map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector: selector,
			Containers: []corev1.Container{{Name: "app", Image: "nginx",
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		},
	}
}

// attachmentOf is the attached VolumeAttachment of a volume, if any.
func attachmentOf(ctx context.Context, cs kubernetes.Interface, pv string) (*storagev1.VolumeAttachment, error) {
	vas, err := cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range vas.Items {
		va := &vas.Items[i]
		if va.Spec.Source.PersistentVolumeName != nil && *va.Spec.Source.PersistentVolumeName == pv && va.Status.Attached && va.DeletionTimestamp == nil {
			return va, nil
		}
	}
	return nil, nil
}

// waitAttached waits until a claim's disk is attached to a node, and
// returns the claim's volume and that node.
func waitAttached(t testing.TB, cs kubernetes.Interface, claim string, timeout time.Duration) (pv *corev1.PersistentVolume, node string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, timeout, "claim "+claim+" bound and attached", func() (bool, string) {
		pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if pvc.Status.Phase != corev1.ClaimBound {
			return false, "claim " + string(pvc.Status.Phase)
		}
		pv, err = cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		va, err := attachmentOf(ctx, cs, pv.Name)
		if err != nil || va == nil {
			return false, fmt.Sprintf("volume %s not attached (%v)", pv.Name, err)
		}
		node = va.Spec.NodeName
		return true, ""
	})
	return pv, node
}

// runningWithDisk waits, on w (a watch of one pod), until the pod runs,
// and fails the test unless its claim's disk was attached to its node by
// then.
func runningWithDisk(t testing.TB, cs kubernetes.Interface, w apiwatch.Interface, claim string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the pod watch ended")
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod || pod.Status.Phase != corev1.PodRunning {
				continue
			}
			ctx := context.Background()
			pvc, err := cs.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, claim, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			va, err := attachmentOf(ctx, cs, pvc.Spec.VolumeName)
			if err != nil {
				t.Fatal(err)
			}
			if va == nil || va.Spec.NodeName != pod.Spec.NodeName {
				t.Fatalf("pod %s runs on %s before its disk is attached there (attachment %v)", pod.Name, pod.Spec.NodeName, va)
			}
			return
		case <-timeout:
			t.Fatal("the pod did not run within a minute")
		}
	}
}

// waitContents waits until a running pod shows what is on its disks.
func waitContents(t testing.TB, cs kubernetes.Interface, pod, want string) {
	t.Helper()
	eventually(t, 30*time.Second, "pod "+pod+" finds "+want+" on its disks", func() (bool, string) {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), pod, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got := p.Annotations[disks.ContentsAnnotation]
		return p.Status.Phase == corev1.PodRunning && got == want, fmt.Sprintf("%s, contents %s", p.Status.Phase, got)
	})
}

func TestCSIStorage(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "disks-rg", "disks-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	data := pool("data", armcontainerservice.AgentPoolModeUser, 2)
	data.VMSize = to.Ptr("Standard_B2s") // four data disks a VM
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), data), nil)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	nodeGroup := *mc.Properties.NodeResourceGroup
	cs := adminClient(t, c, group, name)
	diskClient, err := armcompute.NewDisksClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=data"})
	if err != nil || len(nodes.Items) != 2 {
		t.Fatalf("data nodes: %v %v", nodes, err)
	}
	nodeA, nodeB := nodes.Items[0], nodes.Items[1]
	// Pods are admitted once the namespace has its service account.
	waitServiceAccount(t, cs)
	diskOf := func(pv *corev1.PersistentVolume) armcompute.Disk {
		t.Helper()
		id := pv.Spec.CSI.VolumeHandle
		got, err := diskClient.Get(ctx, nodeGroup, id[strings.LastIndex(id, "/")+1:], nil)
		if err != nil {
			t.Fatalf("disk %s: %v", id, err)
		}
		return got.Disk
	}

	t.Run("node resource group and CSI nodes", func(t *testing.T) {
		g, err := c.groups.Get(ctx, nodeGroup, nil)
		if err != nil {
			t.Fatalf("node resource group %s: %v", nodeGroup, err)
		}
		if !strings.EqualFold(ptr.Deref(g.ManagedBy, ""), *mc.ID) {
			t.Errorf("node resource group managed by %q, want %q", ptr.Deref(g.ManagedBy, ""), *mc.ID)
		}
		// Nodes outside zones: the built-in classes keep LRS disks.
		if sc, err := cs.StorageV1().StorageClasses().Get(ctx, "default", metav1.GetOptions{}); err != nil || sc.Parameters["skuname"] != "StandardSSD_LRS" {
			t.Errorf("default class: %v %v", sc, err)
		}
		eventually(t, 30*time.Second, "CSINode of "+nodeA.Name, func() (bool, string) {
			n, err := cs.StorageV1().CSINodes().Get(ctx, nodeA.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, d := range n.Spec.Drivers {
				if d.Name == "disk.csi.azure.com" {
					ok := d.NodeID == nodeA.Name && d.Allocatable != nil && *d.Allocatable.Count == 4
					return ok, fmt.Sprintf("%+v", d)
				}
			}
			return false, "no disk driver"
		})
	})

	var claimed *corev1.PersistentVolume
	t.Run("a claim gets a disk, attached where its pod runs", func(t *testing.T) {
		start := time.Now()
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, volumeClaim("data-0", "", "10Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Watch the pod from before it exists: it must not run before its
		// disk is attached, as a kubelet mounts the disk first.
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=db-0"})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim("db-0", "data-0", map[string]string{"kubernetes.io/hostname": nodeA.Name}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		runningWithDisk(t, cs, w, "data-0")
		pv, node := waitAttached(t, cs, "data-0", time.Minute)
		t.Logf("claim created → pod Running with its disk attached: %v", time.Since(start).Round(time.Millisecond))
		claimed = pv
		if node != nodeA.Name || pv.Spec.CSI.Driver != "disk.csi.azure.com" || pv.Spec.StorageClassName != "default" {
			t.Errorf("volume %s of %s on node %s", pv.Name, pv.Spec.CSI.Driver, node)
		}
		if got := pv.Spec.Capacity[corev1.ResourceStorage]; got.Value() != 10<<30 {
			t.Errorf("capacity %s", got.String())
		}
		d := diskOf(pv)
		vm := strings.TrimPrefix(nodeA.Spec.ProviderID, "azure://")
		if *d.Properties.DiskState != armcompute.DiskStateAttached || !strings.EqualFold(ptr.Deref(d.ManagedBy, ""), vm) {
			t.Errorf("disk %s: %s, managed by %q, want Attached to %s", *d.Name, *d.Properties.DiskState, ptr.Deref(d.ManagedBy, ""), vm)
		}
		if *d.SKU.Name != armcompute.DiskStorageAccountTypesStandardSSDLRS || *d.Properties.DiskSizeGB != 10 ||
			ptr.Deref(d.Tags["kubernetes.io-created-for-pvc-name"], "") != "data-0" || ptr.Deref(d.Tags["k8s-azure-created-by"], "") != "kubernetes-azure-dd" {
			t.Errorf("disk %s: sku %s, %d GB, tags %v", *d.Name, *d.SKU.Name, *d.Properties.DiskSizeGB, d.Tags)
		}
		// An attached disk cannot be deleted.
		_, err = diskClient.BeginDelete(ctx, nodeGroup, *d.Name, nil)
		expectCode(t, err, http.StatusConflict, "OperationNotAllowed")

		// A new disk holds nothing; what the pod writes stays on it.
		waitContents(t, cs, "db-0", `{"data":""}`)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"written-on-a"}}}`, disks.MarkerAnnotation)
		if _, err := cs.CoreV1().Pods("default").Patch(ctx, "db-0", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitContents(t, cs, "db-0", `{"data":"written-on-a"}`)
	})
	if claimed == nil {
		t.FailNow()
	}

	t.Run("the disk follows its pod to another node", func(t *testing.T) {
		start := time.Now()
		if err := cs.CoreV1().Pods("default").Delete(ctx, "db-0", metav1.DeleteOptions{GracePeriodSeconds: to.Ptr[int64](0)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "db-0 gone", func() (bool, string) {
			_, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim("db-0", "data-0", map[string]string{"kubernetes.io/hostname": nodeB.Name}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "disk attached to "+nodeB.Name, func() (bool, string) {
			va, err := attachmentOf(ctx, cs, claimed.Name)
			if err != nil || va == nil {
				return false, fmt.Sprint("no attachment ", err)
			}
			return va.Spec.NodeName == nodeB.Name, "attached to " + va.Spec.NodeName
		})
		t.Logf("pod deleted → disk attached on the other node: %v", time.Since(start).Round(time.Millisecond))
		// What was written on node A is there on node B.
		waitContents(t, cs, "db-0", `{"data":"written-on-a"}`)
		d := diskOf(claimed)
		if vm := strings.TrimPrefix(nodeB.Spec.ProviderID, "azure://"); !strings.EqualFold(ptr.Deref(d.ManagedBy, ""), vm) {
			t.Errorf("disk managed by %q, want %s", ptr.Deref(d.ManagedBy, ""), vm)
		}
	})

	t.Run("growing the claim grows the disk, attached", func(t *testing.T) {
		patch := []byte(`{"spec":{"resources":{"requests":{"storage":"20Gi"}}}}`)
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Patch(ctx, "data-0", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "claim data-0 at 20Gi", func() (bool, string) {
			pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-0", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			got := pvc.Status.Capacity[corev1.ResourceStorage]
			return got.Value() == 20<<30 && len(pvc.Status.Conditions) == 0, fmt.Sprintf("capacity %s, conditions %v", got.String(), pvc.Status.Conditions)
		})
		if d := diskOf(claimed); *d.Properties.DiskSizeGB != 20 || *d.Properties.DiskState != armcompute.DiskStateAttached {
			t.Errorf("disk after the resize: %d GB, %s", *d.Properties.DiskSizeGB, *d.Properties.DiskState)
		}
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, claimed.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := pv.Spec.Capacity[corev1.ResourceStorage]; got.Value() != 20<<30 {
			t.Errorf("volume capacity %s", got.String())
		}
	})

	t.Run("a snapshot of the disk restores into a new claim", func(t *testing.T) {
		creds, err := c.clusters.ListClusterAdminCredentials(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(creds.Kubeconfigs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		sc := snapshotclient.NewForConfigOrDie(cfg)
		// Slipway ships the class AKS's documentation has users create.
		eventually(t, time.Minute, "the disk snapshot class", func() (bool, string) {
			class, err := sc.SnapshotV1().VolumeSnapshotClasses().Get(ctx, "csi-azuredisk-vsc", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			if class.Driver != "disk.csi.azure.com" || class.DeletionPolicy != snapshotv1.VolumeSnapshotContentDelete || class.Parameters["incremental"] != "true" {
				t.Fatalf("snapshot class %+v", class)
			}
			return true, ""
		})
		snap := &snapshotv1.VolumeSnapshot{
			ObjectMeta: metav1.ObjectMeta{Name: "snap-0", Namespace: "default"},
			Spec: snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To("data-0")},
				VolumeSnapshotClassName: ptr.To("csi-azuredisk-vsc")},
		}
		if _, err := sc.SnapshotV1().VolumeSnapshots("default").Create(ctx, snap, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var handle string
		eventually(t, time.Minute, "snapshot ready", func() (bool, string) {
			vs, err := sc.SnapshotV1().VolumeSnapshots("default").Get(ctx, "snap-0", metav1.GetOptions{})
			if err != nil || vs.Status == nil || vs.Status.ReadyToUse == nil || !*vs.Status.ReadyToUse || vs.Status.BoundVolumeSnapshotContentName == nil {
				if err == nil && vs.Status != nil && vs.Status.Error != nil {
					return false, "snapshot error: " + ptr.Deref(vs.Status.Error.Message, "")
				}
				return false, fmt.Sprint("snapshot not ready ", err)
			}
			content, err := sc.SnapshotV1().VolumeSnapshotContents().Get(ctx, *vs.Status.BoundVolumeSnapshotContentName, metav1.GetOptions{})
			if err != nil || content.Status == nil || content.Status.SnapshotHandle == nil {
				return false, fmt.Sprint("content ", err)
			}
			handle = *content.Status.SnapshotHandle
			return vs.Status.RestoreSize != nil && vs.Status.RestoreSize.Value() == 20<<30, fmt.Sprint("restore size ", vs.Status.RestoreSize)
		})
		snapshots, err := armcompute.NewSnapshotsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
		if err != nil {
			t.Fatal(err)
		}
		got, err := snapshots.Get(ctx, nodeGroup, handle[strings.LastIndex(handle, "/")+1:], nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(*got.Properties.CreationData.SourceResourceID, claimed.Spec.CSI.VolumeHandle) || !*got.Properties.Incremental {
			t.Errorf("snapshot %s of %s, incremental %v", *got.Name, *got.Properties.CreationData.SourceResourceID, *got.Properties.Incremental)
		}

		restored := volumeClaim("restored", "managed-csi", "20Gi")
		restored.Spec.DataSource = &corev1.TypedLocalObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "snap-0"}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, restored, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim("restored", "restored", map[string]string{"kubernetes.io/hostname": nodeB.Name}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pv, _ := waitAttached(t, cs, "restored", time.Minute)
		waitContents(t, cs, "restored", `{"data":"written-on-a"}`)
		d := diskOf(pv)
		if cd := d.Properties.CreationData; *cd.CreateOption != armcompute.DiskCreateOptionCopy || !strings.EqualFold(*cd.SourceResourceID, handle) {
			t.Errorf("restored disk made by %s from %s", *cd.CreateOption, ptr.Deref(cd.SourceResourceID, ""))
		}

		// A snapshot of a Delete class goes with its VolumeSnapshot.
		if err := sc.SnapshotV1().VolumeSnapshots("default").Delete(ctx, "snap-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "ARM snapshot deleted", func() (bool, string) {
			_, err := snapshots.Get(ctx, nodeGroup, *got.Name, nil)
			code, _ := errorCode(err)
			return code == http.StatusNotFound, fmt.Sprint(err)
		})
	})

	t.Run("a node takes as many disks as its size allows", func(t *testing.T) {
		// Node A is free of disks: Standard_B2s takes four.
		for i := range 5 {
			claim := fmt.Sprintf("limit-%d", i)
			if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, volumeClaim(claim, "managed-csi", "1Gi"), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim(claim, claim, map[string]string{"kubernetes.io/hostname": nodeA.Name}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "four disks attached to "+nodeA.Name+", the fifth pod unschedulable", func() (bool, string) {
			vas, err := cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			attached := 0
			for _, va := range vas.Items {
				if va.Spec.NodeName == nodeA.Name && va.Status.Attached {
					attached++
				}
			}
			pending := 0
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, p := range pods.Items {
				if strings.HasPrefix(p.Name, "limit-") && p.Spec.NodeName == "" {
					pending++
				}
			}
			return attached == 4 && pending == 1, fmt.Sprintf("%d attached, %d pending", attached, pending)
		})
	})

	t.Run("a disk made through ARM can be used as a volume", func(t *testing.T) {
		poller, err := diskClient.BeginCreateOrUpdate(ctx, nodeGroup, "static-disk", armcompute.Disk{
			Location: to.Ptr(s.conn.Location),
			SKU:      &armcompute.DiskSKU{Name: to.Ptr(armcompute.DiskStorageAccountTypesPremiumLRS)},
			Properties: &armcompute.DiskProperties{
				CreationData: &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionEmpty)},
				DiskSizeGB:   to.Ptr[int32](5),
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := poller.PollUntilDone(ctx, poll)
		if err != nil {
			t.Fatal(err)
		}
		if *d.Properties.DiskState != armcompute.DiskStateUnattached || *d.Properties.ProvisioningState != "Succeeded" {
			t.Errorf("new disk: %s %s", *d.Properties.DiskState, *d.Properties.ProvisioningState)
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "static-pv"},
			Spec: corev1.PersistentVolumeSpec{
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
					Driver: "disk.csi.azure.com", VolumeHandle: *d.ID, FSType: "ext4"}},
			},
		}
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		claim := volumeClaim("static", "", "5Gi")
		claim.Spec.StorageClassName = to.Ptr("")
		claim.Spec.VolumeName = "static-pv"
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim("static", "static", map[string]string{"kubernetes.io/hostname": nodeB.Name}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, node := waitAttached(t, cs, "static", time.Minute)
		// az 2.45 reads it as armcompute does.
		var shown struct {
			DiskState string `json:"diskState"`
			ManagedBy string `json:"managedBy"`
		}
		newAZ(t, s).json(&shown, "disk", "show", "-g", nodeGroup, "-n", "static-disk")
		if shown.DiskState != "Attached" || !strings.HasSuffix(shown.ManagedBy, "/virtualMachines/"+node[len(node)-1:]) {
			t.Errorf("az disk show: %+v (attached to node %s)", shown, node)
		}
	})

	t.Run("deleting the claim deletes its disk", func(t *testing.T) {
		if err := cs.CoreV1().Pods("default").Delete(ctx, "db-0", metav1.DeleteOptions{GracePeriodSeconds: to.Ptr[int64](0)}); err != nil {
			t.Fatal(err)
		}
		if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		id := claimed.Spec.CSI.VolumeHandle
		eventually(t, time.Minute, "disk "+id+" deleted", func() (bool, string) {
			_, err := diskClient.Get(ctx, nodeGroup, id[strings.LastIndex(id, "/")+1:], nil)
			code, _ := errorCode(err)
			return code == http.StatusNotFound, fmt.Sprint(err)
		})
	})

	t.Run("a file share is shared by pods on two nodes", func(t *testing.T) {
		shareClient, err := armstorage.NewFileSharesClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
		if err != nil {
			t.Fatal(err)
		}
		claim := volumeClaim("shared", "azurefile-csi", "10Gi")
		claim.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []corev1.Node{nodeA, nodeB} {
			if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim("web-"+n.Name[len(n.Name)-1:], "shared", map[string]string{"kubernetes.io/hostname": n.Name}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var pv *corev1.PersistentVolume
		eventually(t, time.Minute, "claim shared bound, both pods running", func() (bool, string) {
			pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "shared", metav1.GetOptions{})
			if err != nil || pvc.Status.Phase != corev1.ClaimBound {
				return false, fmt.Sprint("claim ", pvc.Status.Phase, err)
			}
			if pv, err = cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{}); err != nil {
				return false, err.Error()
			}
			running, err := readyPods(ctx, cs, "")
			if err != nil {
				return false, err.Error()
			}
			for _, n := range []string{"web-" + nodeA.Name[len(nodeA.Name)-1:], "web-" + nodeB.Name[len(nodeB.Name)-1:]} {
				p, err := cs.CoreV1().Pods("default").Get(ctx, n, metav1.GetOptions{})
				if err != nil || p.Status.Phase != corev1.PodRunning {
					return false, fmt.Sprintf("pod %s not running (%d ready)", n, running)
				}
			}
			return true, ""
		})
		if pv.Spec.CSI.Driver != "file.csi.azure.com" {
			t.Fatalf("volume of %s", pv.Spec.CSI.Driver)
		}
		// {group}#{account}#{share}###{namespace}, as upstream's.
		parts := strings.Split(pv.Spec.CSI.VolumeHandle, "#")
		if len(parts) != 6 || !strings.EqualFold(parts[0], nodeGroup) || parts[5] != "default" {
			t.Fatalf("volume handle %q", pv.Spec.CSI.VolumeHandle)
		}
		account, shareName := parts[1], parts[2]
		share, err := shareClient.Get(ctx, nodeGroup, account, shareName, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *share.FileShareProperties.ShareQuota != 10 || *share.FileShareProperties.EnabledProtocols != armstorage.EnabledProtocolsSMB {
			t.Errorf("share %s: quota %d, %s", shareName, *share.FileShareProperties.ShareQuota, *share.FileShareProperties.EnabledProtocols)
		}
		secret, err := cs.CoreV1().Secrets("default").Get(ctx, "azure-storage-account-"+account+"-secret", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		accounts, err := armstorage.NewAccountsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
		if err != nil {
			t.Fatal(err)
		}
		keys, err := accounts.ListKeys(ctx, nodeGroup, account, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(secret.Data["azurestorageaccountkey"]) != *keys.Keys[0].Value || string(secret.Data["azurestorageaccountname"]) != account {
			t.Errorf("secret %v does not hold the account's key", secret.Data)
		}
		if va, err := attachmentOf(ctx, cs, pv.Name); err != nil || va != nil {
			t.Errorf("a share was attached: %v %v", va, err)
		}

		// A share grows with no node step.
		patch := []byte(`{"spec":{"resources":{"requests":{"storage":"20Gi"}}}}`)
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Patch(ctx, "shared", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "share at 20 GiB", func() (bool, string) {
			share, err := shareClient.Get(ctx, nodeGroup, account, shareName, nil)
			if err != nil {
				return false, err.Error()
			}
			pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "shared", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			got := pvc.Status.Capacity[corev1.ResourceStorage]
			return *share.FileShareProperties.ShareQuota == 20 && got.Value() == 20<<30, fmt.Sprintf("quota %d, claim %s", *share.FileShareProperties.ShareQuota, got.String())
		})

		// Deleting the claim deletes the share.
		for _, n := range []corev1.Node{nodeA, nodeB} {
			cs.CoreV1().Pods("default").Delete(ctx, "web-"+n.Name[len(n.Name)-1:], metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
		}
		if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "shared", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "share "+shareName+" deleted", func() (bool, string) {
			_, err := shareClient.Get(ctx, nodeGroup, account, shareName, nil)
			code, _ := errorCode(err)
			return code == http.StatusNotFound, fmt.Sprint(err)
		})
	})

	t.Run("a premium share is at least 100 GiB", func(t *testing.T) {
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, volumeClaim("premium", "azurefile-csi-premium", "1Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "claim premium bound at 100Gi", func() (bool, string) {
			pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "premium", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			got := pvc.Status.Capacity[corev1.ResourceStorage]
			return pvc.Status.Phase == corev1.ClaimBound && got.Value() == 100<<30, fmt.Sprintf("%s %s", pvc.Status.Phase, got.String())
		})
	})

	t.Run("deleting the cluster deletes its node resource group, disks and shares", func(t *testing.T) {
		p, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		_, err = c.groups.Get(ctx, nodeGroup, nil)
		if code, _ := errorCode(err); code != http.StatusNotFound {
			t.Errorf("node resource group after the cluster's delete: %v", err)
		}
		pager := diskClient.NewListPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page.Value {
				if strings.Contains(strings.ToLower(*d.ID), strings.ToLower("/resourceGroups/"+nodeGroup+"/")) {
					t.Errorf("disk %s outlived its cluster", *d.ID)
				}
			}
		}
		accounts, err := armstorage.NewAccountsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
		if err != nil {
			t.Fatal(err)
		}
		accountPager := accounts.NewListPager(nil)
		for accountPager.More() {
			page, err := accountPager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page.Value {
				if strings.Contains(strings.ToLower(*a.ID), strings.ToLower("/resourceGroups/"+nodeGroup+"/")) {
					t.Errorf("storage account %s outlived its cluster", *a.ID)
				}
			}
		}
	})
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"golang.org/x/sync/errgroup"

	"github.com/slipway-dev/slipway/internal/timing"
)

// BenchmarkDiskVolumes measures, at the default time scale, how long a
// claim takes from its creation to its pod Running with the disk attached
// (median of b.N), and how long the disks of a StatefulSet's pods take to
// follow their pods when a drain moves them to another pool's nodes, set
// against the timing model's minimum (one detach, then one attach).
//
//	make bench-storage
func BenchmarkDiskVolumes(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group, replicas = "storagebench-rg", 100
	// The testing package may call a benchmark more than once: each call
	// has a cluster of its own, deleted at its end.
	name := fmt.Sprintf("storagebench-%d", time.Now().UnixNano()%1e9)
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	// Seven D8s_v3 nodes (16 data disks each) a pool hold 100 disks.
	src, dst := pool("src", armcontainerservice.AgentPoolModeUser, 7), pool("dst", armcontainerservice.AgentPoolModeUser, 7)
	src.VMSize, dst.VMSize = to.Ptr("Standard_D8s_v3"), to.Ptr("Standard_D8s_v3")
	dst.NodeTaints = []*string{to.Ptr("bench=later:NoSchedule")}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), src, dst), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if p, err := c.clusters.BeginDelete(ctx, group, name, nil); err == nil {
			p.PollUntilDone(ctx, poll)
		}
	})
	creds, err := c.clusters.ListClusterAdminCredentials(ctx, group, name, nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(creds.Kubeconfigs[0].Value)
	if err != nil {
		b.Fatal(err)
	}
	// kubectl's own limits, not client-go's default of 5 a second: the
	// drain's hundred evictions must not wait on the benchmark's client.
	cfg.QPS, cfg.Burst = 50, 300
	cs := kubernetes.NewForConfigOrDie(cfg)
	waitServiceAccount(b, cs)

	var secs []float64
	for i := 0; i < b.N; i++ {
		claim := fmt.Sprintf("one-%d", i)
		start := time.Now()
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, volumeClaim(claim, "", "1Gi"), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, podWithClaim(claim, claim, map[string]string{"agentpool": "src"}), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitAttached(b, cs, claim, time.Minute)
		eventually(b, time.Minute, claim+" running", func() (bool, string) {
			pod, err := cs.CoreV1().Pods("default").Get(ctx, claim, metav1.GetOptions{})
			return err == nil && pod.Status.Phase == corev1.PodRunning, fmt.Sprint(err)
		})
		secs = append(secs, time.Since(start).Seconds())
	}
	b.ReportMetric(percentile(secs, 50), "s-claim-to-attached-p50")

	b.StopTimer()
	moved := moveByDrain(b, cs, replicas)
	model := timing.Model{Scale: timing.DefaultScale}
	minimum := model.Scaled(timing.DetachDisk + timing.AttachDisk)
	b.Logf("%d pods with disks moved by a drain: %.1f s to all Running with their disks attached (timing model minimum %.1f s, ratio %.1f)",
		replicas, moved.Seconds(), minimum.Seconds(), moved.Seconds()/minimum.Seconds())
	b.ReportMetric(moved.Seconds(), "s-drain-move")
	b.ReportMetric(moved.Seconds()/minimum.Seconds(), "x-model-minimum")
}

// moveByDrain runs a StatefulSet of n pods with a disk each on the src
// pool, then drains src (cordon, and delete every pod as an eviction
// would, no PodDisruptionBudget in the way) with the dst pool open,
// and returns the time from the drain to every pod Running on dst with
// its disk attached there.
func moveByDrain(b *testing.B, cs kubernetes.Interface, n int) time.Duration {
	ctx := context.Background()
	labels := map[string]string{"app": "stateful"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "stateful", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: to.Ptr(int32(n)), ServiceName: "stateful", PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.azure.com/mode": "user"},
					Tolerations:  []corev1.Toleration{{Key: "bench", Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{Name: "app", Image: "nginx",
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{*volumeClaim("data", "managed-csi", "1Gi")},
		},
	}
	// Until the drain, dst takes nothing: it is cordoned.
	nodes := func(pool string) []corev1.Node {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "agentpool=" + pool})
		if err != nil {
			b.Fatal(err)
		}
		return list.Items
	}
	cordon := func(nodes []corev1.Node, on bool) {
		for _, node := range nodes {
			patch := fmt.Appendf(nil, `{"spec":{"unschedulable":%v}}`, on)
			if _, err := cs.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	cordon(nodes("dst"), true)
	if _, err := cs.AppsV1().StatefulSets("default").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	allOn := func(pool string) (bool, string) {
		onPool := map[string]bool{}
		for _, node := range nodes(pool) {
			onPool[node.Name] = true
		}
		vas, err := cs.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		attached := 0
		for _, va := range vas.Items {
			if onPool[va.Spec.NodeName] && va.Status.Attached && va.DeletionTimestamp == nil {
				attached++
			}
		}
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=stateful"})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			if onPool[p.Spec.NodeName] && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		return running == n && attached >= n, fmt.Sprintf("%d of %d running on %s, %d disks attached there", running, n, pool, attached)
	}
	eventually(b, 5*time.Minute, "the StatefulSet on src", func() (bool, string) { return allOn("src") })

	start := time.Now()
	cordon(nodes("dst"), false)
	cordon(nodes("src"), true)
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=stateful"})
	if err != nil {
		b.Fatal(err)
	}
	// All at once, as kubectl drain evicts.
	var g errgroup.Group
	for _, p := range pods.Items {
		// The UID keeps a late delete from hitting the pod's successor,
		// which the StatefulSet makes under the same name.
		g.Go(func() error {
			err := cs.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	// Progress, a line when it changes: where a move spends its time.
	last := ""
	eventually(b, 10*time.Minute, "the StatefulSet on dst", func() (bool, string) {
		done, state := allOn("dst")
		if state != last {
			fmt.Fprintf(os.Stderr, "%5.1f s: %s\n", time.Since(start).Seconds(), state)
			last = state
		}
		return done, state
	})
	return time.Since(start)
}

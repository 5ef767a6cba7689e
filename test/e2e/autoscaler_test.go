package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/slipway-dev/slipway/internal/controller"
)

// hungry is a Deployment of n pods on pool, each asking for most of a
// two-CPU node.
func hungry(name, pool string, n int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: to.Ptr(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"kubernetes.azure.com/agentpool": pool},
					Tolerations:  []corev1.Toleration{{Key: "kubernetes.azure.com/scalesetpriority", Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{Name: "app", Image: "nginx",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1200m")}}}},
				},
			},
		},
	}
}

// runningPods counts a Deployment's running pods.
func runningPods(ctx context.Context, cs kubernetes.Interface, app string) (int, error) {
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n, nil
}

// autoscaledCluster makes a cluster with a System pool of one node and a
// User pool "burst" that autoscales from 0 to 5, its autoscaler scanning
// every second and letting nodes go after unneeded (AKS's defaults are
// minutes).
func autoscaledCluster(t testing.TB, s *server, c clients, group, name, unneeded string) armcontainerservice.ManagedClustersClientCreateOrUpdateResponse {
	t.Helper()
	ctx := context.Background()
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	burst := pool("burst", armcontainerservice.AgentPoolModeUser, 0)
	burst.EnableAutoScaling, burst.MinCount, burst.MaxCount = to.Ptr(true), to.Ptr[int32](0), to.Ptr[int32](5)
	mc := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), burst)
	mc.Properties.AutoScalerProfile = &armcontainerservice.ManagedClusterPropertiesAutoScalerProfile{
		ScanInterval: to.Ptr("1s"), ScaleDownUnneededTime: to.Ptr(unneeded), ScaleDownDelayAfterAdd: to.Ptr("0s"), ScaleDownDelayAfterDelete: to.Ptr("0s"),
	}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// TestClusterAutoscaler: pools that grow for pods that cannot be placed,
// from zero, shrink back when not needed, prefer Spot and fall back, and
// whose counts only the autoscaler changes.
func TestClusterAutoscaler(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "scale-rg", "scale-aks"
	created := autoscaledCluster(t, s, c, group, name, "5s")
	cs := adminClient(t, c, group, name)

	t.Run("the profile shows AKS's defaults and refuses bad values", func(t *testing.T) {
		prof := created.Properties.AutoScalerProfile
		if prof == nil || *prof.ScanInterval != "1s" || *prof.ScaleDownUtilizationThreshold != "0.5" || *prof.Expander != armcontainerservice.ExpanderRandom || *prof.MaxNodeProvisionTime != "15m" {
			t.Fatalf("profile %+v", prof)
		}
		bad := created.ManagedCluster
		bad.Properties.AutoScalerProfile = &armcontainerservice.ManagedClusterPropertiesAutoScalerProfile{ScaleDownUtilizationThreshold: to.Ptr("2")}
		_, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, bad, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")
		// A System pool cannot autoscale from zero.
		sys := armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			Mode: to.Ptr(armcontainerservice.AgentPoolModeSystem), Count: to.Ptr[int32](1), VMSize: to.Ptr("Standard_DS2_v2"),
			EnableAutoScaling: to.Ptr(true), MinCount: to.Ptr[int32](0), MaxCount: to.Ptr[int32](3)}}
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "sys2", sys, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")
	})

	t.Run("a pool grows from zero for pods that cannot be placed", func(t *testing.T) {
		start := time.Now()
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, hungry("web", "burst", 3), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "3 pods running on 3 new burst nodes", func() (bool, string) {
			n, err := runningPods(ctx, cs, "web")
			if err != nil {
				return false, err.Error()
			}
			got, err := c.pools.Get(ctx, group, name, "burst", nil)
			if err != nil {
				return false, err.Error()
			}
			return n == 3 && *got.Properties.Count == 3, fmt.Sprintf("%d running, pool count %d", n, *got.Properties.Count)
		})
		t.Logf("pods Pending → Running on new nodes: %v", time.Since(start).Round(time.Millisecond))
		events, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "source=cluster-autoscaler,reason=TriggeredScaleUp"})
		if err != nil || len(events.Items) == 0 {
			t.Errorf("no TriggeredScaleUp events (%v)", err)
		} else if !strings.Contains(events.Items[0].Message, "pod triggered scale-up: [{aks-burst-") {
			t.Errorf("event %q", events.Items[0].Message)
		}
		cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "cluster-autoscaler-status", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			AutoscalerStatus string `json:"autoscalerStatus"`
			NodeGroups       []struct {
				Name   string `json:"name"`
				Health struct {
					MaxSize int `json:"maxSize"`
				} `json:"health"`
			} `json:"nodeGroups"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["status"]), &st); err != nil || st.AutoscalerStatus != "Running" || len(st.NodeGroups) != 1 || st.NodeGroups[0].Health.MaxSize != 5 {
			t.Errorf("status %s (%v)", cm.Data["status"], err)
		}
	})

	t.Run("a manual scale of an autoscaled pool is refused", func(t *testing.T) {
		got, err := c.pools.Get(ctx, group, name, "burst", nil)
		if err != nil {
			t.Fatal(err)
		}
		got.Properties.Count = to.Ptr(*got.Properties.Count + 1)
		_, err = c.pools.BeginCreateOrUpdate(ctx, group, name, "burst", got.AgentPool, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")
	})

	t.Run("the pool shrinks to zero when its nodes are not needed", func(t *testing.T) {
		start := time.Now()
		scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: 0}}
		if _, err := cs.AppsV1().Deployments("default").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the burst pool back at 0", func() (bool, string) {
			got, err := c.pools.Get(ctx, group, name, "burst", nil)
			if err != nil {
				return false, err.Error()
			}
			nodes := poolNodes(t, cs, "burst")
			return *got.Properties.Count == 0 && len(nodes) == 0, fmt.Sprintf("count %d, %d nodes", *got.Properties.Count, len(nodes))
		})
		t.Logf("deployment at 0 → pool at 0: %v (unneeded time 5s)", time.Since(start).Round(time.Millisecond))
	})

	t.Run("a PodDisruptionBudget holds a scale-down until it allows the eviction", func(t *testing.T) {
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, hungry("big", "burst", 1), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var burstNode string
		eventually(t, 2*time.Minute, "a burst node for the big pod", func() (bool, string) {
			nodes := poolNodes(t, cs, "burst")
			n, _ := runningPods(ctx, cs, "big")
			if len(nodes) == 1 && n == 1 {
				burstNode = nodes[0].Name
			}
			return burstNode != "", fmt.Sprintf("%d nodes, %d running", len(nodes), n)
		})
		// A small pod that would rather run on the burst node, but fits
		// the system node too, and may not be evicted.
		guarded := hungry("guarded", "", 1)
		guarded.Spec.Template.Spec.NodeSelector = nil
		guarded.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}
		guarded.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
			Weight: 100, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{burstNode}}}}}}}}
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, guarded, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "guarded", Namespace: "default"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: to.Ptr(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}}}
		if _, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the guarded pod on the burst node, its budget at 0", func() (bool, string) {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=guarded"})
			if err != nil || len(pods.Items) != 1 {
				return false, fmt.Sprint(err)
			}
			b, err := cs.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "guarded", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			p := pods.Items[0]
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != burstNode {
				t.Fatalf("the guarded pod went to %s, not the burst node", p.Spec.NodeName)
			}
			return p.Status.Phase == corev1.PodRunning && b.Status.ObservedGeneration == b.Generation && b.Status.DisruptionsAllowed == 0, string(p.Status.Phase)
		})
		scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: 0}}
		if _, err := cs.AppsV1().Deployments("default").UpdateScale(ctx, "big", scale, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The autoscaler marks the node and tries to drain it; the budget
		// holds the pod, and so the node.
		eventually(t, time.Minute, "the burst node marked for deletion", func() (bool, string) {
			n, err := cs.CoreV1().Nodes().Get(ctx, burstNode, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, taint := range n.Spec.Taints {
				if taint.Key == "ToBeDeletedByClusterAutoscaler" {
					return true, ""
				}
			}
			return false, fmt.Sprint(n.Spec.Taints)
		})
		time.Sleep(10 * time.Second)
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=guarded"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Spec.NodeName != burstNode || pods.Items[0].DeletionTimestamp != nil {
			t.Fatalf("the guarded pod was evicted despite its budget: %v %v", pods, err)
		}
		if got, err := c.pools.Get(ctx, group, name, "burst", nil); err != nil || *got.Properties.Count != 1 {
			t.Fatalf("the burst pool shrank behind a budget: %v", err)
		}
		// Once the budget allows it, the pod moves and the node goes.
		if err := cs.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "guarded", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the burst pool at 0, the guarded pod moved", func() (bool, string) {
			got, err := c.pools.Get(ctx, group, name, "burst", nil)
			if err != nil {
				return false, err.Error()
			}
			n, _ := runningPods(ctx, cs, "guarded")
			return *got.Properties.Count == 0 && n == 1, fmt.Sprintf("count %d, guarded running %d", *got.Properties.Count, n)
		})
	})

	t.Run("az updates the autoscaler of a pool and the profile", func(t *testing.T) {
		az := newAZ(t, s)
		var ap struct {
			EnableAutoScaling  bool `json:"enableAutoScaling"`
			MinCount, MaxCount int
		}
		az.json(&ap, "aks", "nodepool", "update", "-g", group, "--cluster-name", name, "-n", "burst", "--update-cluster-autoscaler", "--min-count", "0", "--max-count", "4")
		if !ap.EnableAutoScaling || ap.MaxCount != 4 {
			t.Errorf("after --update-cluster-autoscaler: %+v", ap)
		}
		var mc struct {
			AutoScalerProfile map[string]any `json:"autoScalerProfile"`
		}
		az.json(&mc, "aks", "update", "-g", group, "-n", name, "--cluster-autoscaler-profile", "scale-down-unneeded-time=7m", "scan-interval=1s")
		if mc.AutoScalerProfile["scaleDownUnneededTime"] != "7m" && mc.AutoScalerProfile["scale-down-unneeded-time"] != "7m" {
			t.Errorf("profile after az aks update: %v", mc.AutoScalerProfile)
		}
		var off struct {
			EnableAutoScaling  bool `json:"enableAutoScaling"`
			MinCount, MaxCount *int
		}
		az.json(&off, "aks", "nodepool", "update", "-g", group, "--cluster-name", name, "-n", "burst", "--disable-cluster-autoscaler")
		if off.EnableAutoScaling || off.MinCount != nil || off.MaxCount != nil {
			t.Errorf("after --disable-cluster-autoscaler: %+v", off)
		}
	})

	t.Run("Spot first, regular when Spot has no capacity", func(t *testing.T) {
		spot := armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			Mode: to.Ptr(armcontainerservice.AgentPoolModeUser), Count: to.Ptr[int32](0), VMSize: to.Ptr("Standard_DS2_v2"),
			ScaleSetPriority: to.Ptr(armcontainerservice.ScaleSetPrioritySpot), NodeLabels: map[string]*string{"tier": to.Ptr("batch")},
			EnableAutoScaling: to.Ptr(true), MinCount: to.Ptr[int32](0), MaxCount: to.Ptr[int32](3),
			Tags: map[string]*string{controller.CapacityTag: to.Ptr("none")}}}
		regular := armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
			Mode: to.Ptr(armcontainerservice.AgentPoolModeUser), Count: to.Ptr[int32](0), VMSize: to.Ptr("Standard_DS2_v2"),
			NodeLabels:        map[string]*string{"tier": to.Ptr("batch")},
			EnableAutoScaling: to.Ptr(true), MinCount: to.Ptr[int32](0), MaxCount: to.Ptr[int32](3)}}
		for pool, ap := range map[string]armcontainerservice.AgentPool{"spot": spot, "regular": regular} {
			p, err := c.pools.BeginCreateOrUpdate(ctx, group, name, pool, ap, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.PollUntilDone(ctx, poll); err != nil {
				t.Fatal(err)
			}
		}
		priorities := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-autoscaler-priority-expander", Namespace: "kube-system"},
			Data: map[string]string{"priorities": "50:\n  - .*spot.*\n10:\n  - .*\n"}}
		if _, err := cs.CoreV1().ConfigMaps("kube-system").Create(ctx, priorities, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := c.clusters.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got.Properties.AutoScalerProfile.Expander = to.Ptr(armcontainerservice.ExpanderPriority)
		up, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, got.ManagedCluster, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
		batch := hungry("batch", "", 1)
		batch.Spec.Template.Spec.NodeSelector = map[string]string{"tier": "batch"}
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, batch, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the batch pod running on the regular pool", func() (bool, string) {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=batch"})
			if err != nil || len(pods.Items) == 0 {
				return false, fmt.Sprint("no pod ", err)
			}
			p := pods.Items[0]
			return p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Spec.NodeName, "aks-regular-"), p.Spec.NodeName + " " + string(p.Status.Phase)
		})
		events, err := cs.CoreV1().Events("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "source=cluster-autoscaler,reason=FailedToScaleUpGroup"})
		if err != nil || len(events.Items) == 0 || !strings.Contains(events.Items[0].Message, "AllocationFailed") {
			t.Errorf("no FailedToScaleUpGroup event for the Spot pool (%v)", err)
		}
		sp, err := c.pools.Get(ctx, group, name, "spot", nil)
		if err != nil || *sp.Properties.Count != 0 {
			t.Errorf("spot pool: %v", err)
		}
	})
}

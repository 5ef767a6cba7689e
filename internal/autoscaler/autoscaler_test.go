package autoscaler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

// fakePools is a cluster's pools held in memory; what the autoscaler asks
// of them is recorded.
type fakePools struct {
	mu      sync.Mutex
	pools   []Pool
	profile *Profile
	resized []string
	removed []string
}

func (f *fakePools) Pools(context.Context) ([]Pool, *Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Pool, len(f.pools))
	copy(out, f.pools)
	return out, f.profile, nil
}

func (f *fakePools) Resize(_ context.Context, pool string, from, to int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resized = append(f.resized, fmt.Sprintf("%s %d->%d", pool, from, to))
	for i := range f.pools {
		if f.pools[i].Name == pool {
			f.pools[i].Count = to
		}
	}
	return nil
}

func (f *fakePools) RemoveNode(_ context.Context, pool, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, node)
	return nil
}

func (f *fakePools) removedNodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

// template is a node of pool with 2 CPUs and 8 GiB, as nodepool makes it.
func template(pool string, taints ...corev1.Taint) *corev1.Node {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "aks-" + pool + "-12345678-vmss000000", Labels: map[string]string{
			"kubernetes.azure.com/agentpool": pool, corev1.LabelHostname: "aks-" + pool + "-12345678-vmss000000", corev1.LabelOSStable: "linux"}},
		Spec:   corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Capacity: rl, Allocatable: rl, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

func node(pool string, i int) *corev1.Node {
	n := template(pool)
	n.Name = fmt.Sprintf("aks-%s-12345678-vmss%06d", pool, i)
	n.Labels[corev1.LabelHostname] = n.Name
	return n
}

func pendingPod(name, cpu string, selector map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Minute)),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: to.Ptr(true)}}},
		Spec: corev1.PodSpec{NodeSelector: selector, Containers: []corev1.Container{{Name: "c", Image: "i",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}},
	}
}

// newTestAutoscaler runs an autoscaler over a fake API server holding objs.
func newTestAutoscaler(t testing.TB, pools *fakePools, objs ...runtime.Object) (*Autoscaler, *record.FakeRecorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cs := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(cs, 0)
	events := record.NewFakeRecorder(100000)
	a, err := New(ctx, cs, factory, pools, events)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("%v did not sync", typ)
		}
	}
	return a, events
}

func TestScaleUpFromZero(t *testing.T) {
	pools := &fakePools{pools: []Pool{
		{Name: "system", ScaleSet: "aks-system-12345678-vmss", Count: 1, Template: template("system")},
		{Name: "user", ScaleSet: "aks-user-12345678-vmss", Enabled: true, Min: 0, Max: 5, Template: template("user")},
	}}
	// The system node is full; each pod needs most of a node.
	full := pendingPod("system-hog", "1900m", nil)
	full.Spec.NodeName, full.Status.Conditions = node("system", 0).Name, nil
	a, events := newTestAutoscaler(t, pools, node("system", 0), full,
		pendingPod("web-1", "1500m", nil), pendingPod("web-2", "1500m", nil), pendingPod("web-3", "1500m", nil),
		pendingPod("nowhere", "100m", map[string]string{"disk": "nvme"}))
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pools.resized) != "[user 0->3]" {
		for len(events.Events) > 0 {
			t.Log(<-events.Events)
		}
		t.Fatalf("resized %v, want [user 0->3]", pools.resized)
	}
	got := map[string]int{}
	for len(events.Events) > 0 {
		e := <-events.Events
		for _, reason := range []string{"TriggeredScaleUp", "NotTriggerScaleUp"} {
			if strings.HasPrefix(e, "Normal "+reason) {
				got[reason]++
			}
		}
	}
	if got["TriggeredScaleUp"] != 3 || got["NotTriggerScaleUp"] != 0 {
		t.Errorf("events %v", got)
	}

	// A pod no pool's node can take triggers nothing, and says why.
	pools.resized = nil
	a.lastScaleUp = time.Time{}
	pools.pools[1].Count = 3 // made: as upcoming nodes they hold web-1..3
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(pools.resized) != 0 {
		t.Errorf("resized %v for pods that fit the upcoming nodes or no node", pools.resized)
	}
	found := false
	for len(events.Events) > 0 {
		if e := <-events.Events; strings.Contains(e, "NotTriggerScaleUp") && strings.Contains(e, "didn't match Pod's node affinity/selector") {
			found = true
		}
	}
	if !found {
		t.Error("no NotTriggerScaleUp event naming the selector")
	}
}

func TestExpanders(t *testing.T) {
	spot := Pool{Name: "spot", ScaleSet: "aks-spot-12345678-vmss", Enabled: true, Max: 5, Template: template("spot")}
	regular := Pool{Name: "regular", ScaleSet: "aks-regular-12345678-vmss", Enabled: true, Max: 5, Template: template("regular")}
	priorities := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: priorityName, Namespace: "kube-system"},
		Data: map[string]string{"priorities": "50:\n  - .*spot.*\n10:\n  - .*\n"}}
	pools := &fakePools{pools: []Pool{regular, spot}, profile: &Profile{Expander: to.Ptr(armcontainerservice.ExpanderPriority)}}
	a, _ := newTestAutoscaler(t, pools, priorities, pendingPod("web-1", "1", nil))
	for range 5 { // the random tie-break never picks the lower priority
		pools.resized = nil
		pools.pools[0].Count, pools.pools[1].Count = 0, 0
		a.lastScaleUp = time.Time{}
		if _, err := a.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(pools.resized) != "[spot 0->1]" {
			t.Fatalf("resized %v, want the Spot pool first", pools.resized)
		}
	}

	// A Spot pool without capacity fails, backs off, and the next loop
	// falls back to the regular pool.
	pools.resized = nil
	pools.pools[0].Count, pools.pools[1].Count = 0, 0
	pools.pools[1].NoCapacity = "AllocationFailed: no Spot capacity for Standard_D2s_v3 in eastus"
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(pools.resized) != 0 || a.backoff["aks-spot-12345678-vmss"].code != "AllocationFailed" {
		t.Fatalf("resized %v, backoff %+v", pools.resized, a.backoff)
	}
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pools.resized) != "[regular 0->1]" {
		t.Fatalf("resized %v, want the regular pool as fallback", pools.resized)
	}
}

func TestScaleDown(t *testing.T) {
	pools := &fakePools{pools: []Pool{
		{Name: "user", ScaleSet: "aks-user-12345678-vmss", Enabled: true, Min: 2, Max: 5, Count: 3, Template: template("user")},
	}}
	busy := pendingPod("busy", "1800m", nil)
	busy.Spec.NodeName, busy.Status = node("user", 2).Name, corev1.PodStatus{Phase: corev1.PodRunning}
	a, _ := newTestAutoscaler(t, pools, node("user", 0), node("user", 1), node("user", 2), busy)
	a.lastScaleUp, a.lastScaleDown, a.lastFailure = time.Time{}, time.Time{}, time.Time{}
	zero := &Profile{ScaleDownUnneededTime: to.Ptr("0s"), ScaleDownDelayAfterAdd: to.Ptr("0s"), ScaleDownDelayAfterDelete: to.Ptr("0s")}
	pools.profile = zero
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Two empty nodes, a minimum of two: one goes. The busy one is used.
	deadline := time.Now().Add(5 * time.Second)
	for len(pools.removedNodes()) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	removed := pools.removedNodes()
	if len(removed) != 1 || removed[0] == node("user", 2).Name {
		t.Errorf("removed %v, want one of the empty nodes", removed)
	}
}

// TestStaleTaintsGo: a node left tainted by a drain that a restart cut
// short is given back to the scheduler by the next autoscaler.
func TestStaleTaintsGo(t *testing.T) {
	pools := &fakePools{pools: []Pool{{Name: "user", ScaleSet: "aks-user-12345678-vmss", Enabled: true, Min: 1, Max: 5, Count: 1, Template: template("user")}}}
	n := node("user", 0)
	n.Spec.Taints = []corev1.Taint{{Key: taintToBeDeleted, Value: "1700000000", Effect: corev1.TaintEffectNoSchedule}, {Key: "keep", Effect: corev1.TaintEffectNoSchedule}}
	a, _ := newTestAutoscaler(t, pools, n)
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := a.client.CoreV1().Nodes().Get(context.Background(), n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Taints) != 1 || got.Spec.Taints[0].Key != "keep" {
		t.Errorf("taints after a restart: %v", got.Spec.Taints)
	}
}

func TestBalanceSimilarNodeGroups(t *testing.T) {
	pools := &fakePools{pools: []Pool{
		{Name: "a", ScaleSet: "aks-a-12345678-vmss", Enabled: true, Max: 5, Count: 1, Template: template("a")},
		{Name: "b", ScaleSet: "aks-b-12345678-vmss", Enabled: true, Max: 5, Template: template("b")},
		// Tainted: not like the others.
		{Name: "gpu", ScaleSet: "aks-gpu-12345678-vmss", Enabled: true, Max: 5, Template: template("gpu", corev1.Taint{Key: "sku", Value: "gpu", Effect: corev1.TaintEffectNoSchedule})},
	}, profile: &Profile{BalanceSimilarNodeGroups: to.Ptr("true")}}
	busy := pendingPod("busy", "1900m", nil)
	busy.Spec.NodeName, busy.Status = node("a", 0).Name, corev1.PodStatus{Phase: corev1.PodRunning}
	a, _ := newTestAutoscaler(t, pools, node("a", 0), busy,
		pendingPod("web-1", "1500m", nil), pendingPod("web-2", "1500m", nil), pendingPod("web-3", "1500m", nil))
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Three new nodes over a (at 1) and b (at 0): b first, then one each.
	if got := fmt.Sprint(pools.resized); got != "[a 1->2 b 0->2]" {
		t.Errorf("resized %v, want [a 1->2 b 0->2]", got)
	}
	if !similar(&pools.pools[0], &pools.pools[1]) || similar(&pools.pools[0], &pools.pools[2]) {
		t.Error("similarity: a and b are alike, the tainted pool is not")
	}
}

func TestScaleUpTimesOut(t *testing.T) {
	pools := &fakePools{pools: []Pool{{Name: "user", ScaleSet: "aks-user-12345678-vmss", Enabled: true, Max: 5, Template: template("user")}}}
	a, events := newTestAutoscaler(t, pools, pendingPod("web-1", "1500m", nil), pendingPod("web-2", "1500m", nil))
	now := time.Now()
	a.now = func() time.Time { return now }
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No node ever registers. Within the provision time, nothing happens;
	// past it, the pool goes back and backs off.
	now = now.Add(14 * time.Minute)
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pools.resized); got != "[user 0->2 user 2->0]" {
		t.Fatalf("resized %v, want the scale-up undone after 15 minutes", got)
	}
	if b := a.backoff["aks-user-12345678-vmss"]; b.code != "timeout" || !b.until.After(now) {
		t.Errorf("backoff %+v", b)
	}
	found := false
	for len(events.Events) > 0 {
		if e := <-events.Events; strings.HasPrefix(e, "Warning ScaleUpTimedOut Nodes added to group aks-user-12345678-vmss failed to register within 15m0s") {
			found = true
		}
	}
	if !found {
		t.Error("no ScaleUpTimedOut event")
	}
}

func TestUnhealthyClusterDoesNotScale(t *testing.T) {
	pools := &fakePools{pools: []Pool{{Name: "user", ScaleSet: "aks-user-12345678-vmss", Enabled: true, Max: 9, Count: 4, Template: template("user")}}}
	var objs []runtime.Object
	for i := range 4 {
		n := node("user", i)
		n.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
		if i > 0 { // three of four NotReady for an hour: 75% > 45%, 3 ≤ 3
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
			n.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}
		}
		objs = append(objs, n)
	}
	objs = append(objs, pendingPod("web-1", "1500m", nil), pendingPod("web-2", "1500m", nil), pendingPod("web-3", "1500m", nil), pendingPod("web-4", "1500m", nil))
	a, _ := newTestAutoscaler(t, pools, objs...)
	// Three unready nodes are within ok-total-unready-count (3): it scales.
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(pools.resized) != 1 {
		t.Fatalf("resized %v with three unready nodes of four, want a scale-up", pools.resized)
	}
	pools.resized = nil
	pools.pools[0].Count = 4
	a.lastScaleUp = time.Time{}
	a.scaleUps = map[string]scaleUpRequest{}
	pools.profile = &Profile{OkTotalUnreadyCount: to.Ptr("2")}
	if _, err := a.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(pools.resized) != 0 {
		t.Errorf("resized %v with 3 of 4 nodes unready, over both limits", pools.resized)
	}
	cm, err := a.client.CoreV1().ConfigMaps(statusNamespace).Get(context.Background(), statusName, metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["status"], "status: Unhealthy") || !strings.Contains(cm.Data["status"], "unready:\n          total: 3") {
		t.Errorf("status %v (%v)", cm.Data["status"], err)
	}
}

package nodepods

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// lists records the options of every pod LIST.
func lists(cs *fake.Clientset) *[]metav1.ListOptions {
	var seen []metav1.ListOptions
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		seen = append(seen, a.(k8stesting.ListActionImpl).ListOptions)
		return true, &corev1.PodList{}, nil
	})
	return &seen
}

// TestListReadsTheCache: a node's pods are read from the watch cache, in
// one piece.
func TestListReadsTheCache(t *testing.T) {
	cs := fake.NewClientset()
	seen := lists(cs)
	if _, err := List(context.Background(), cs, "aks-a-1-vmss000000"); err != nil {
		t.Fatal(err)
	}
	want := metav1.ListOptions{FieldSelector: "spec.nodeName=aks-a-1-vmss000000", ResourceVersion: "0"}
	if len(*seen) != 1 || (*seen)[0] != want {
		t.Fatalf("LISTs sent %+v, want %+v", *seen, want)
	}
}

// TestCachedLeavesOtherListsAlone: the drain library's LIST of a node's
// pods (paginated, as kubectl's) goes through List; any other LIST, or one
// at a resourceVersion of its own, goes as it was asked.
func TestCachedLeavesOtherListsAlone(t *testing.T) {
	cs := fake.NewClientset()
	seen := lists(cs)
	pods := Cached(cs).CoreV1().Pods(metav1.NamespaceAll)
	ctx := context.Background()
	asked := []metav1.ListOptions{
		{FieldSelector: "spec.nodeName=n", Limit: 500},
		{LabelSelector: "app=web"},
		{FieldSelector: "spec.nodeName=n", ResourceVersion: "17", ResourceVersionMatch: metav1.ResourceVersionMatchExact},
	}
	for _, opts := range asked {
		if _, err := pods.List(ctx, opts); err != nil {
			t.Fatal(err)
		}
	}
	want := []metav1.ListOptions{{FieldSelector: "spec.nodeName=n", ResourceVersion: "0"}, asked[1], asked[2]}
	if len(*seen) != len(want) {
		t.Fatalf("LISTs sent %+v, want %+v", *seen, want)
	}
	for i := range want {
		if (*seen)[i] != want[i] {
			t.Errorf("LIST %d sent %+v, want %+v", i, (*seen)[i], want[i])
		}
	}
}

// TestDeleteAllDeletesTheNodesPodsByUID: every pod the list returns is
// deleted at once, without grace, and only if it is still that pod.
func TestDeleteAllDeletesTheNodesPodsByUID(t *testing.T) {
	cs := fake.NewClientset()
	pods := &corev1.PodList{Items: []corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p1", UID: "u1"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "p2", UID: "u2"}},
	}}
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, pods, nil })
	var mu sync.Mutex
	deleted := map[string]metav1.DeleteOptions{}
	cs.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteActionImpl)
		mu.Lock()
		deleted[d.Namespace+"/"+d.Name] = d.DeleteOptions
		mu.Unlock()
		return true, nil, nil
	})
	if err := DeleteAll(context.Background(), cs, "n"); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		o, ok := deleted[p.Namespace+"/"+p.Name]
		if !ok || o.GracePeriodSeconds == nil || *o.GracePeriodSeconds != 0 || o.Preconditions == nil || *o.Preconditions.UID != p.UID {
			t.Errorf("pod %s/%s: deleted %v with %+v, want grace 0 and UID %s", p.Namespace, p.Name, ok, o, p.UID)
		}
	}
}

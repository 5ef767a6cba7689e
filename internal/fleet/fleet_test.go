package fleet

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/management"
)

func TestChoose(t *testing.T) {
	hosts := []host{{name: "c", capacity: 10, live: true}, {name: "a", capacity: 4, live: true}, {name: "b", capacity: 50, live: false}}
	for _, tc := range []struct {
		placed map[string]int
		want   string
	}{
		{map[string]int{}, "c"},                        // most room
		{map[string]int{"c": 6}, "a"},                  // a ties c at 4: first by name
		{map[string]int{"c": 9}, "a"},                  // b has most room but is dead
		{map[string]int{"c": 12, "a": 5}, "a"},         // everyone full: the least over
		{map[string]int{"c": 10, "a": 4, "b": 0}, "a"}, // full alike: first by name
	} {
		if got := choose(slices.Clone(hosts), tc.placed); got != tc.want {
			t.Errorf("choose with %v placed = %q, want %q", tc.placed, got, tc.want)
		}
	}
	if got := choose([]host{{name: "a", capacity: 1}}, nil); got != "" {
		t.Errorf("no live host: chose %q", got)
	}
}

func newClient(t *testing.T, funcs *interceptor.Funcs, objs ...client.Object) client.WithWatch {
	b := fake.NewClientBuilder().WithScheme(management.NewScheme()).
		WithStatusSubresource(&slipwayv1.ManagedCluster{}, &slipwayv1.Host{}).WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	return b.Build()
}

// member is a registered host and its Lease, renewed last at renewed.
func member(name string, renewed time.Time, capacity int) []client.Object {
	return []client.Object{
		&slipwayv1.Host{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: name},
			Spec: slipwayv1.HostSpec{Capacity: capacity}, Status: slipwayv1.HostStatus{Ready: "True"}},
		&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: leaseName(name),
				Labels: map[string]string{LabelRole: roleHost}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(int32(10)),
				RenewTime: &metav1.MicroTime{Time: renewed}},
		},
	}
}

func cluster(name, host string) *slipwayv1.ManagedCluster {
	return &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Namespace: slipwayv1.Namespace, Name: name},
		Spec:   slipwayv1.ManagedClusterSpec{ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/" + name},
		Status: slipwayv1.ManagedClusterStatus{Host: host}}
}

// TestTakeOver: the clusters of a host whose Lease expired go to the live
// hosts with the most room; a live host's stay.
func TestTakeOver(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	objs := slices.Concat(
		member("a", now.Add(-11*time.Second), 10), // expired: 10 s lease
		member("b", now.Add(-time.Second), 10),
		member("c", now.Add(-9*time.Second), 2), // still live, one slot left
		[]client.Object{cluster("x1", "a"), cluster("x2", "a"), cluster("x3", "a"), cluster("y", "b"), cluster("z", "c")})
	c := newClient(t, nil, objs...)
	f := New(Options{Client: c, Name: "b", Capacity: 10, Now: func() time.Time { return now }})
	if err := f.takeOver(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range []string{"x1", "x2", "x3", "y", "z"} {
		mc := &slipwayv1.ManagedCluster{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: n}, mc); err != nil {
			t.Fatal(err)
		}
		got[n] = mc.Status.Host
	}
	want := map[string]string{"x1": "b", "x2": "b", "x3": "b", "y": "b", "z": "c"}
	// b has 9 slots free to c's 1: all three go to b.
	for n := range want {
		if got[n] != want[n] {
			t.Errorf("cluster %s on %q, want %q (all: %v)", n, got[n], want[n], got)
		}
	}
	for name, want := range map[string]slipwayv1.HostStatus{"a": {Ready: "False"}, "b": {Ready: "True"}} {
		h := &slipwayv1.Host{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: name}, h); err != nil {
			t.Fatal(err)
		}
		if h.Status != want {
			t.Errorf("host %s: status %+v, want %+v", name, h.Status, want)
		}
	}
}

// TestPlace puts a new cluster on the live host with the most room, and
// leaves a placed one where it is.
func TestPlace(t *testing.T) {
	now := time.Now()
	c := newClient(t, nil, slices.Concat(member("a", now, 3), member("b", now, 3), []client.Object{cluster("old", "a"), cluster("new", "")})...)
	f := New(Options{Client: c, Name: "a", Capacity: 3})
	mc := &slipwayv1.ManagedCluster{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "new"}, mc); err != nil {
		t.Fatal(err)
	}
	// b leaves placing to a, the first live host by name.
	if mine, err := New(Options{Client: c, Name: "b", Capacity: 3}).Place(context.Background(), mc.DeepCopy()); mine || err != nil {
		t.Fatalf("host b placed: mine %v, err %v", mine, err)
	}
	mine, err := f.Place(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	if mine || mc.Status.Host != "b" {
		t.Fatalf("new cluster placed on %q (mine %v), want b: a runs one already", mc.Status.Host, mine)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "old"}, mc); err != nil {
		t.Fatal(err)
	}
	if mine, err := f.Place(context.Background(), mc); err != nil || !mine {
		t.Fatalf("a placed cluster moved: mine %v, err %v", mine, err)
	}
}

// TestFenceBeforeExpiry: a host that cannot renew its Lease stops its
// control planes before the others may take its clusters over.
func TestFenceBeforeExpiry(t *testing.T) {
	var failing atomic.Bool
	funcs := &interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		if failing.Load() {
			return errors.New("management plane unreachable")
		}
		return c.Update(ctx, obj, opts...)
	}}
	c := newClient(t, funcs)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	fenced := 0
	f := New(Options{Client: c, Name: "a", Capacity: 1, ARMEndpoint: "https://127.0.0.1:8443/", Now: func() time.Time { return now }, Fence: func() { fenced++ }})
	if err := f.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := &slipwayv1.Host{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "a"}, h); err != nil {
		t.Fatal(err)
	}
	if h.Spec.Capacity != 1 || h.Spec.ARMEndpoint != "https://127.0.0.1:8443/" || h.Status.Ready != "True" {
		t.Fatalf("registered host: %+v", h)
	}
	failing.Store(true)
	var fencedAt time.Duration
	for step := time.Duration(0); step <= 12*time.Second; step += 2 * time.Second {
		now = now.Add(2 * time.Second)
		f.heartbeat(context.Background())
		if fenced > 0 && fencedAt == 0 {
			fencedAt = step + 2*time.Second
		}
	}
	if fenced != 1 {
		t.Fatalf("fenced %d times, want once", fenced)
	}
	if fencedAt >= f.o.LeaseDuration {
		t.Fatalf("fenced %v after the last renewal: another host may have taken over at %v", fencedAt, f.o.LeaseDuration)
	}
	if f.Mine(cluster("x", "a")) {
		t.Fatal("a fenced host still runs its clusters")
	}
	failing.Store(false)
	now = now.Add(2 * time.Second)
	f.heartbeat(context.Background())
	if f.isFenced() || !f.Mine(cluster("x", "a")) {
		t.Fatal("still fenced after a renewal")
	}
}

func TestPortLedger(t *testing.T) {
	ctx := context.Background()
	l := PortLedger{Client: newClient(t, nil)}
	rng := hosting.PortRange{First: 100, Last: 109}
	usable := func(p int) bool { return p != 101 } // something else listens there
	a, err := l.Claim(ctx, "a", 3, rng, usable)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Claim(ctx, "b", 3, rng, usable)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, []int{100, 102, 103}) || !slices.Equal(b, []int{104, 105, 106}) {
		t.Fatalf("claims a=%v b=%v", a, b)
	}
	again, err := l.Claim(ctx, "a", 3, rng, usable)
	if err != nil || !slices.Equal(again, a) {
		t.Fatalf("a's retried claim = %v, %v; want its ports %v", again, err, a)
	}
	if _, err := l.Claim(ctx, "c", 4, rng, usable); err == nil {
		t.Fatal("claimed 4 ports of the 3 left")
	}
	if err := l.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	c, err := l.Claim(ctx, "c", 4, rng, usable)
	if err != nil || !slices.Equal(c, []int{100, 102, 103, 107}) {
		t.Fatalf("after a's release c got %v, %v", c, err)
	}
}

func TestRegistry(t *testing.T) {
	ctx := context.Background()
	r := Registry{Client: newClient(t, nil)}
	if _, err := r.Get(ctx, "x"); !errors.Is(err, hosting.ErrNotFound) {
		t.Fatalf("unknown cluster: %v", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := r.Put(ctx, "x", map[string][]byte{"cluster.json": []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.Get(ctx, "x")
	if err != nil || string(got["cluster.json"]) != "two" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if err := r.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "x"); !errors.Is(err, hosting.ErrNotFound) {
		t.Fatalf("deleted cluster: %v", err)
	}
}

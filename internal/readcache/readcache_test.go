package readcache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/management"
	"github.com/slipway-dev/slipway/internal/readcache"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestReadYourWrites runs against a real management API server and an
// informer cache: every read marked AllowCache right after a write through
// the client sees that write; an object a controller is acting on is read
// fresh; idle reads do not reach the API server at all.
func TestReadYourWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a management API server")
	}
	bin, err := testenv.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	plane, err := management.Open(ctx, management.Options{DataDir: t.TempDir(), Executable: bin, Ports: hosting.PortRange{First: 27100, Last: 27199}})
	if err != nil {
		t.Fatal(err)
	}
	defer plane.Close()
	var apiReads atomic.Int64
	api, err := client.NewWithWatch(plane.Config, client.Options{Scheme: plane.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	direct := interceptor.NewClient(api, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			apiReads.Add(1)
			return c.Get(ctx, key, obj, opts...)
		},
	})
	informers, err := cache.New(plane.Config, cache.Options{Scheme: plane.Scheme, DefaultNamespaces: map[string]cache.Config{slipwayv1.Namespace: {}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := readcache.New(ctx, direct, informers, &slipwayv1.ManagedCluster{})
	if err != nil {
		t.Fatal(err)
	}
	go informers.Start(ctx)
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	read := readcache.AllowCache(ctx)

	mc := &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "ryw", Namespace: slipwayv1.Namespace},
		Spec: slipwayv1.ManagedClusterSpec{ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/ryw", Resource: runtime.RawExtension{Raw: []byte(`{}`)}}}
	if err := c.Create(ctx, mc); err != nil {
		t.Fatal(err)
	}
	const writes = 200
	before := apiReads.Load()
	for i := range writes {
		mc.Annotations = map[string]string{"n": fmt.Sprint(i)}
		if err := c.Update(ctx, mc); err != nil {
			t.Fatal(err)
		}
		got := &slipwayv1.ManagedCluster{}
		if err := c.Get(read, client.ObjectKeyFromObject(mc), got); err != nil {
			t.Fatal(err)
		}
		if got.Annotations["n"] != fmt.Sprint(i) {
			t.Fatalf("read after write %d saw %q", i, got.Annotations["n"])
		}
	}
	t.Logf("%d writes, each read back: %d of the reads went to the API server", writes, apiReads.Load()-before)

	// Idle: served from memory.
	before = apiReads.Load()
	for range 100 {
		if err := c.Get(read, client.ObjectKeyFromObject(mc), &slipwayv1.ManagedCluster{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := apiReads.Load() - before; n != 0 {
		t.Errorf("%d of 100 idle reads went to the API server", n)
	}

	// A controller (another client) starts acting on it: reads go fresh,
	// whatever the cache holds at that moment.
	mc.Spec.Operation = &slipwayv1.OperationRef{ID: "op", Action: "Updating"}
	if err := c.Update(ctx, mc); err != nil {
		t.Fatal(err)
	}
	mc.Status.CompletedOperation = "op"
	if err := direct.Status().Update(ctx, mc); err != nil { // not through c: the cache may trail it
		t.Fatal(err)
	}
	got := &slipwayv1.ManagedCluster{}
	if err := c.Get(read, client.ObjectKeyFromObject(mc), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.CompletedOperation != "op" {
		t.Errorf("an object with an operation under way was read stale: completed %q", got.Status.CompletedOperation)
	}

	// Deleted through the client: gone for the next read.
	if err := c.Delete(ctx, mc); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(read, client.ObjectKeyFromObject(mc), &slipwayv1.ManagedCluster{}); err == nil {
		t.Error("read after delete still found the object")
	}
}

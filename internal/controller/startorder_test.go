package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/hosting"
)

// stoppedHost knows some clusters, none of them running: the state every
// control plane is in right after serve restarts.
type stoppedHost map[string]bool

func (h stoppedHost) Get(id string) (*hosting.Cluster, error) {
	if !h[id] {
		return nil, hosting.ErrNotFound
	}
	return &hosting.Cluster{}, nil
}

func (stoppedHost) Create(context.Context, hosting.ClusterSpec) (*hosting.Cluster, error) {
	panic("not used")
}
func (stoppedHost) Delete(context.Context, string) error { panic("not used") }
func (h stoppedHost) Adopt(_ context.Context, id string) (*hosting.Cluster, error) {
	return h.Get(id)
}
func (stoppedHost) Release(string) { panic("not used") }

// TestBusyClustersStartFirst: after a restart an idle cluster's control
// plane waits while a cluster with work in flight has yet to start its own.
func TestBusyClustersStartFirst(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := slipwayv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cluster := func(name string, op *slipwayv1.OperationRef, stopped bool) *slipwayv1.ManagedCluster {
		return &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: slipwayv1.Namespace},
			Spec: slipwayv1.ManagedClusterSpec{Operation: op, Stopped: stopped}}
	}
	pool := func(cluster string, evictions ...string) *slipwayv1.AgentPool {
		return &slipwayv1.AgentPool{ObjectMeta: metav1.ObjectMeta{Name: cluster + "-pool", Namespace: slipwayv1.Namespace},
			Spec: slipwayv1.AgentPoolSpec{Cluster: cluster, Name: "pool", Evictions: evictions}}
	}
	updating := &slipwayv1.OperationRef{ID: "op-1", Action: "Updating"}
	for _, tc := range []struct {
		name    string
		objects []client.Object
		hosted  stoppedHost
		since   time.Duration
		want    map[string]bool // cluster → held
	}{
		{"a Spot eviction in flight goes first",
			[]client.Object{cluster("idle", nil, false), cluster("evicting", nil, false), pool("idle"), pool("evicting", "aks-spot-1-vmss000000")},
			stoppedHost{"idle": true, "evicting": true}, 0, map[string]bool{"idle": true, "evicting": false}},
		{"an operation in flight goes first",
			[]client.Object{cluster("idle", nil, false), cluster("updating", updating, false)},
			stoppedHost{"idle": true, "updating": true}, 0, map[string]bool{"idle": true, "updating": false}},
		{"a stopped cluster holds no one",
			[]client.Object{cluster("idle", nil, false), cluster("updating", updating, true)},
			stoppedHost{"idle": true, "updating": true}, 0, map[string]bool{"idle": false}},
		{"a cluster still being made holds no one",
			[]client.Object{cluster("idle", nil, false), cluster("creating", updating, false)},
			stoppedHost{"idle": true}, 0, map[string]bool{"idle": false}},
		{"not for ever",
			[]client.Object{cluster("idle", nil, false), cluster("updating", updating, false)},
			stoppedHost{"idle": true, "updating": true}, idleStartHold + time.Second, map[string]bool{"idle": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &ClusterReconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).Build(),
				Hosting: tc.hosted, Started: time.Now().Add(-tc.since)}
			for name, want := range tc.want {
				mc := &slipwayv1.ManagedCluster{}
				if err := r.Client.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: name}, mc); err != nil {
					t.Fatal(err)
				}
				if got, err := r.holdStart(context.Background(), mc); err != nil || got != want {
					t.Errorf("holdStart(%s) = %v, %v; want %v", name, got, err, want)
				}
			}
		})
	}
}

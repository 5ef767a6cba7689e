package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/nodeimage"
)

// frontDoorPUT does what the ARM front door does to accept a cluster PUT:
// refuse while an operation is claimed or a pool's runs, else claim the
// cluster through an update conditional on what it checked.
func frontDoorPUT(ctx context.Context, c client.Client) (accepted bool, err error) {
	for {
		mc := &slipwayv1.ManagedCluster{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: "c1"}, mc); err != nil {
			return false, err
		}
		if f := strings.Fields(mc.Annotations[slipwayv1.AnnotationWriteClaim]); len(f) > 0 {
			op := &slipwayv1.Operation{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: f[0]}, op); err == nil && op.Status.Status == slipwayv1.OperationInProgress {
				return false, nil
			}
		}
		var pools slipwayv1.AgentPoolList
		if err := c.List(ctx, &pools); err != nil {
			return false, err
		}
		for _, p := range pools.Items {
			if busy(p.Spec.Operation, p.Status.CompletedOperation) {
				return false, nil
			}
		}
		mc.Annotations = map[string]string{slipwayv1.AnnotationWriteClaim: slipwayv1.WriteClaim("put-op", "Updating", "")}
		mc.Spec.Operation = &slipwayv1.OperationRef{ID: "put-op", Action: "Updating"}
		err := c.Update(ctx, mc)
		if apierrors.IsConflict(err) {
			continue
		}
		return err == nil, err
	}
}

// TestNodeOSRunRacesAClusterPUT: a cluster PUT reaching the front door
// while the node OS scheduler starts a run it decided on from its cache
// (which may not show the PUT) must not both win: the PUT's pool sync would
// take over the pool the run upgrades. The PUT arrives after each of the
// scheduler's writes to the cluster in turn.
func TestNodeOSRunRacesAClusterPUT(t *testing.T) {
	for putAfter := 0; putAfter <= 3; putAfter++ {
		t.Run(fmt.Sprintf("PUT after write %d", putAfter), func(t *testing.T) {
			scheme := runtime.NewScheme()
			if err := slipwayv1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			mc := &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "c1", Namespace: slipwayv1.Namespace},
				Status: slipwayv1.ManagedClusterStatus{AutoUpgradeRuns: []slipwayv1.AutoUpgradeRun{{ID: "nodeimage-1", Channel: "NodeImage", Status: runPending,
					Pools: []slipwayv1.AutoUpgradePool{{Name: "pool", To: "AKSUbuntu-2204gen2containerd-202611.20.0"}}}}}}
			pool := &slipwayv1.AgentPool{ObjectMeta: metav1.ObjectMeta{Name: "c1-pool", Namespace: slipwayv1.Namespace},
				Spec: slipwayv1.AgentPoolSpec{Cluster: "c1", Name: "pool", ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c1/agentPools/pool"}}
			writes, accepted := 0, false
			ctx := context.Background()
			afterWrite := func(c client.Client, obj client.Object) error {
				if _, ok := obj.(*slipwayv1.ManagedCluster); !ok {
					return nil
				}
				if writes++; writes == putAfter {
					var err error
					accepted, err = frontDoorPUT(ctx, c)
					return err
				}
				return nil
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(mc, pool).
				WithStatusSubresource(&slipwayv1.ManagedCluster{}, &slipwayv1.AgentPool{}, &slipwayv1.Operation{}).
				WithInterceptorFuncs(interceptor.Funcs{
					Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
						if err := c.Update(ctx, obj, opts...); err != nil {
							return err
						}
						return afterWrite(c, obj)
					},
					SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
						if err := c.SubResource(sub).Update(ctx, obj, opts...); err != nil {
							return err
						}
						return afterWrite(c, obj)
					}}).Build()
			r := &NodeOSUpgradeReconciler{Client: c, StartOperation: func(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error) {
				op := &slipwayv1.Operation{ObjectMeta: metav1.ObjectMeta{Name: "auto-op", Namespace: slipwayv1.Namespace}, Spec: slipwayv1.OperationSpec{Action: action}}
				if err := c.Create(ctx, op); err != nil {
					return nil, err
				}
				op.Status.Status = slipwayv1.OperationInProgress
				return op, c.Status().Update(ctx, op)
			}}
			// The scheduler's view: read before any PUT.
			cached := &slipwayv1.ManagedCluster{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(mc), cached); err != nil {
				t.Fatal(err)
			}
			p := &slipwayv1.AgentPool{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(pool), p); err != nil {
				t.Fatal(err)
			}
			startErr := r.start(ctx, cached, &cached.Status.AutoUpgradeRuns[0], "NodeImage", []target{{pool: p, to: nodeimage.Image{}}})
			if putAfter == 0 {
				accepted, _ = frontDoorPUT(ctx, c) // after the run started
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(pool), p); err != nil {
				t.Fatal(err)
			}
			upgrading := busy(p.Spec.Operation, p.Status.CompletedOperation)
			if accepted && upgrading {
				t.Fatalf("both the PUT and the node OS run were accepted (start: %v)", startErr)
			}
			if !accepted && !upgrading {
				t.Fatalf("neither the PUT nor the node OS run went ahead (start: %v)", startErr)
			}
		})
	}
}

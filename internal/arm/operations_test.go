package arm

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// TestRecordDeleteRetriesAControllersWrite: a DELETE that looked the object
// up a moment before its controller wrote it (an operation's end) is
// recorded on the current object, not refused.
func TestRecordDeleteRetriesAControllersWrite(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := slipwayv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	g := &slipwayv1.ResourceGroup{ObjectMeta: metav1.ObjectMeta{Name: "rg", Namespace: "ns"}, Spec: slipwayv1.ResourceGroupSpec{Name: "rg"}}
	conflicts := 1
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(g).WithStatusSubresource(&slipwayv1.Operation{}).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*slipwayv1.ResourceGroup); ok && conflicts > 0 {
				conflicts--
				return apierrors.NewConflict(schema.GroupResource{Resource: "resourcegroups"}, obj.GetName(), nil)
			}
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	s := New(Config{Client: c})
	ctx := context.Background()
	stale := g.DeepCopy()
	op, err := s.DeleteWithOperation(ctx, stale, &stale.Spec.Operation, "/subscriptions/s/resourceGroups/rg", "local")
	if err != nil {
		t.Fatalf("delete after one conflict: %v", err)
	}
	if op.Status.Status != slipwayv1.OperationInProgress {
		t.Fatalf("operation %s, want InProgress", op.Status.Status)
	}
	var got slipwayv1.ResourceGroup
	if err := c.Get(ctx, client.ObjectKeyFromObject(g), &got); !apierrors.IsNotFound(err) {
		t.Fatalf("group after the delete: %v (operation %v)", err, got.Spec.Operation)
	}

	// Conflicts that go on refuse the delete and end its operation.
	g2 := &slipwayv1.ResourceGroup{ObjectMeta: metav1.ObjectMeta{Name: "rg2", Namespace: "ns"}, Spec: slipwayv1.ResourceGroupSpec{Name: "rg2"}}
	if err := c.Create(ctx, g2); err != nil {
		t.Fatal(err)
	}
	conflicts = updateAttempts
	op, err = s.DeleteWithOperation(ctx, g2, &g2.Spec.Operation, "/subscriptions/s/resourceGroups/rg2", "local")
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete under constant conflicts: %v, want a conflict", err)
	}
	var ended slipwayv1.Operation
	if err := c.Get(ctx, client.ObjectKeyFromObject(op), &ended); err != nil {
		t.Fatal(err)
	}
	if ended.Status.Status != slipwayv1.OperationCanceled {
		t.Fatalf("the refused delete's operation is %s, want Canceled", ended.Status.Status)
	}
}

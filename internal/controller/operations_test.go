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
)

// TestPruner: operations that ended past the retention go, however
// many; running ones and recent ones stay.
func TestPruner(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := slipwayv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ended := func(ago time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-ago)); return &t }
	op := func(name, status string, end *metav1.Time) client.Object {
		return &slipwayv1.Operation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: slipwayv1.Namespace},
			Status: slipwayv1.OperationStatus{Status: status, EndTime: end}}
	}
	old := slipwayv1.OperationRetention + time.Hour
	objs := []client.Object{
		op("running", slipwayv1.OperationInProgress, nil),
		op("running-long", "", nil),
		op("recent", slipwayv1.OperationSucceeded, ended(time.Hour)),
	}
	for _, name := range []string{"old-ok", "old-failed", "old-canceled"} {
		status := map[string]string{"old-ok": slipwayv1.OperationSucceeded, "old-failed": slipwayv1.OperationFailed, "old-canceled": slipwayv1.OperationCanceled}[name]
		objs = append(objs, op(name, status, ended(old)))
	}
	for i := range 1200 { // more than a page
		objs = append(objs, op("bulk-"+time.Duration(i).String(), slipwayv1.OperationSucceeded, ended(old)))
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&slipwayv1.Operation{}).Build()
	p := &Pruner{Reader: c, Client: c, Every: time.Hour, Now: func() time.Time { return now }}
	n, err := p.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1203 {
		t.Errorf("pruned %d, want 1203", n)
	}
	var left slipwayv1.OperationList
	if err := c.List(context.Background(), &left); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range left.Items {
		names = append(names, o.Name)
	}
	if len(names) != 3 {
		t.Errorf("left %v, want running, running-long and recent", names)
	}
}

// TestPruneUsage: usage records of days past the retention go; the
// retention's first day and later ones stay.
func TestPruneUsage(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := slipwayv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	rec := func(name string, day time.Time) client.Object {
		return &slipwayv1.UsageRecord{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: slipwayv1.Namespace},
			Spec: slipwayv1.UsageRecordSpec{SubscriptionID: "s", ResourceGroup: "g", Date: day.Format(time.DateOnly)}}
	}
	oldest := now.Add(-slipwayv1.UsageRetention)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		rec("today", now), rec("last-kept", oldest), rec("gone", oldest.AddDate(0, 0, -1)), rec("long-gone", oldest.AddDate(-2, 0, 0)),
	).Build()
	p := &Pruner{Reader: c, Client: c, Every: time.Hour, Now: func() time.Time { return now }}
	n, err := p.PruneUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var left slipwayv1.UsageRecordList
	if err := c.List(context.Background(), &left); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range left.Items {
		names = append(names, r.Name)
	}
	if n != 2 || len(names) != 2 {
		t.Errorf("pruned %d, left %v; want 2 pruned, today and last-kept left", n, names)
	}
}

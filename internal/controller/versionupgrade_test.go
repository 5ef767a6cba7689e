package controller

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/maintenance"
)

// TestVersionAutoUpgrade: the cluster auto-upgrade channel waits for its
// window, then starts the Upgrading operation a PUT would, with the pools
// as they are now (a pool PUT since the cluster's changed one), and
// records how the run ended.
func TestVersionAutoUpgrade(t *testing.T) {
	for _, c := range []struct {
		channel, from, pool, to string
	}{
		{"patch", "1.36.1", "1.36.1", "1.36.3"},
		{"stable", "1.35.4", "1.35.4", "1.36.3"},
		{"rapid", "1.36.3", "1.36.1", "1.37.2"},
	} {
		t.Run(c.channel, func(t *testing.T) {
			// Saturday 2026-11-28 12:00 UTC: outside a Sunday window.
			now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			ctx := context.Background()
			scheme := runtime.NewScheme()
			if err := slipwayv1.AddToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			channel := armcontainerservice.UpgradeChannel(c.channel)
			want, _ := json.Marshal(armcontainerservice.ManagedCluster{Location: new("westeurope"), Properties: &armcontainerservice.ManagedClusterProperties{
				KubernetesVersion:  new(c.from),
				AutoUpgradeProfile: &armcontainerservice.ManagedClusterAutoUpgradeProfile{UpgradeChannel: &channel},
				AgentPoolProfiles:  []*armcontainerservice.ManagedClusterAgentPoolProfile{{Name: new("sys"), Count: new(int32(3)), OrchestratorVersion: new(c.pool)}},
			}})
			window := `{"maintenanceWindow":{"schedule":{"weekly":{"dayOfWeek":"Sunday","intervalWeeks":1}},"durationHours":4,"startTime":"00:00"}}`
			mc := &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "c1", Namespace: slipwayv1.Namespace},
				Spec: slipwayv1.ManagedClusterSpec{ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c1",
					Resource:                  runtime.RawExtension{Raw: want},
					Unmodeled:                 &runtime.RawExtension{Raw: []byte(`{"properties":{"agentPoolProfiles":[{"future":1}]}}`)},
					MaintenanceConfigurations: []slipwayv1.MaintenanceConfiguration{{Name: maintenance.AutoUpgrade, Properties: runtime.RawExtension{Raw: []byte(window)}}}},
				Status: slipwayv1.ManagedClusterStatus{HostedCluster: "h1", CurrentKubernetesVersion: c.from}}
			// A pool PUT since made it five nodes.
			poolProps, _ := json.Marshal(armcontainerservice.ManagedClusterAgentPoolProfileProperties{Count: new(int32(5)), OrchestratorVersion: new(c.pool)})
			pool := &slipwayv1.AgentPool{ObjectMeta: metav1.ObjectMeta{Name: "c1-sys", Namespace: slipwayv1.Namespace, Labels: map[string]string{slipwayv1.LabelCluster: "c1"}},
				Spec: slipwayv1.AgentPoolSpec{Cluster: "c1", Name: "sys", Properties: runtime.RawExtension{Raw: poolProps},
					Unmodeled: &runtime.RawExtension{Raw: []byte(`{"properties":{"future":1}}`)}},
				Status: slipwayv1.AgentPoolStatus{CurrentOrchestratorVersion: c.pool}}
			cl := fake.NewClientBuilder().WithScheme(scheme).WithObjects(mc, pool).
				WithStatusSubresource(&slipwayv1.ManagedCluster{}, &slipwayv1.AgentPool{}, &slipwayv1.Operation{}).Build()
			r := &VersionUpgradeReconciler{Client: cl, Fresh: cl, Now: func() time.Time { return now },
				StartOperation: func(ctx context.Context, resourceID, action, location string, deletes bool) (*slipwayv1.Operation, error) {
					op := &slipwayv1.Operation{ObjectMeta: metav1.ObjectMeta{Name: "auto-op", Namespace: slipwayv1.Namespace}, Spec: slipwayv1.OperationSpec{Action: action}}
					if err := cl.Create(ctx, op); err != nil {
						return nil, err
					}
					op.Status.Status = slipwayv1.OperationInProgress
					return op, cl.Status().Update(ctx, op)
				}}
			reconcile := func() *slipwayv1.ManagedCluster {
				t.Helper()
				key := client.ObjectKeyFromObject(mc)
				if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
					t.Fatal(err)
				}
				got := &slipwayv1.ManagedCluster{}
				if err := cl.Get(ctx, key, got); err != nil {
					t.Fatal(err)
				}
				return got
			}

			got := reconcile()
			run := got.Status.VersionUpgradeRuns[len(got.Status.VersionUpgradeRuns)-1]
			if run.Status != runPending || run.To != c.to || run.NextWindow == nil || run.NextWindow.Weekday() != time.Sunday || got.Spec.Operation != nil {
				t.Fatalf("outside the window: run %+v, operation %v", run, got.Spec.Operation)
			}

			now = now.Add(13 * time.Hour) // Sunday 01:00, inside
			got = reconcile()
			run = got.Status.VersionUpgradeRuns[len(got.Status.VersionUpgradeRuns)-1]
			if run.Status != runInProgress || run.OperationID != "auto-op" || got.Spec.Operation == nil || got.Spec.Operation.Action != slipwayv1.ActionUpgrading {
				t.Fatalf("inside the window: run %+v, operation %v", run, got.Spec.Operation)
			}
			d, err := desired(got)
			if err != nil {
				t.Fatal(err)
			}
			p := d.Properties.AgentPoolProfiles
			if *d.Properties.KubernetesVersion != c.to || len(p) != 1 || *p[0].OrchestratorVersion != c.to || *p[0].Count != 5 {
				t.Errorf("the upgrade asks for kubernetesVersion %s, pools %s", *d.Properties.KubernetesVersion, string(got.Spec.Resource.Raw))
			}
			if u, err := profilesUnmodeled(got); err != nil || len(u) != 1 || string(u[0].Raw) != `{"properties":{"future":1}}` {
				t.Errorf("the pool's unmodeled properties: %v %v", u, err)
			}

			if err := endOperation(ctx, cl, "auto-op", slipwayv1.OperationSucceeded, nil); err != nil {
				t.Fatal(err)
			}
			got = reconcile()
			if run = got.Status.VersionUpgradeRuns[len(got.Status.VersionUpgradeRuns)-1]; run.Status != slipwayv1.OperationSucceeded {
				t.Errorf("after the operation: run %+v", run)
			}
		})
	}
}

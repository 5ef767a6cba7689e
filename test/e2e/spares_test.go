package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/slipway-dev/slipway/internal/addons"
)

// madeFromSpare says whether serve made cluster id's control plane from a
// spare (the cluster controller logs it with the resource ID).
func (s *server) madeFromSpare(t testing.TB, id string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dataDir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		// Resource IDs are case-insensitive, as ARM's.
		if strings.Contains(line, "Control plane made from a spare") && strings.Contains(strings.ToLower(line), "cluster="+strings.ToLower(id)+" ") {
			return true
		}
	}
	return false
}

// TestCreateFromSpare: a create that claims serve's spare control plane
// gives the cluster a cold create would: the snapshot CRDs the spare was
// warmed with stay only if the cluster ships them, without the warm label.
func TestCreateFromSpare(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group = "spare-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	classes := schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}
	for _, tc := range []struct {
		name      string
		snapshots bool
	}{{"spare-nosnap", false}, {"spare-default", true}} {
		s.waitSpare(t)
		mc := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1))
		if !tc.snapshots {
			mc.Properties.StorageProfile = &armcontainerservice.ManagedClusterStorageProfile{
				SnapshotController: &armcontainerservice.ManagedClusterStorageProfileSnapshotController{Enabled: to.Ptr(false)}}
		}
		made := putCluster(t, c, group, tc.name, mc)
		if !s.madeFromSpare(t, *made.ID) {
			t.Fatalf("%s: serve did not make it from its spare control plane", tc.name)
		}
		cfg := adminConfig(t, c, group, tc.name)
		dc := dynamic.NewForConfigOrDie(cfg)
		crd, err := dc.Resource(crds).Get(ctx, "volumesnapshots.snapshot.storage.k8s.io", metav1.GetOptions{})
		switch {
		case !tc.snapshots && !apierrors.IsNotFound(err):
			t.Errorf("%s: the snapshot CRD of a cluster without the snapshot controller: %v", tc.name, err)
		case tc.snapshots && err != nil:
			t.Errorf("%s: the snapshot CRD: %v", tc.name, err)
		case tc.snapshots && crd.GetLabels()[addons.WarmLabel] != "":
			t.Errorf("%s: the snapshot CRD still has the spare's label", tc.name)
		}
		if tc.snapshots {
			if _, err := dc.Resource(classes).Get(ctx, "csi-azuredisk-vsc", metav1.GetOptions{}); err != nil {
				t.Errorf("%s: the disk VolumeSnapshotClass: %v", tc.name, err)
			}
		}
		nodes, err := adminClient(t, c, group, tc.name).CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			t.Errorf("%s: nodes %v (%v), want 1", tc.name, nodes, err)
		}
		del, err := c.clusters.BeginDelete(ctx, group, tc.name, nil)
		if err == nil {
			_, err = del.PollUntilDone(ctx, poll)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/management"
)

// BenchmarkClusterChurn creates and deletes b.N clusters one after another
// (each with one node, through the SDK) and reports what is left behind:
// the management plane's objects and the data directory's size, before and
// after. Issue 19: a server that runs for months must not grow with the
// clusters it has seen come and go. Operations are kept for 14 days, so
// they are counted apart.
//
//	make bench-churn
func BenchmarkClusterChurn(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group = "churn-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	mgmt := s.management(b)
	kinds0 := managementObjects(b, mgmt)
	objects0, ops0 := kinds0.counts()
	parts0 := dirParts(b, s.dataDir)
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("churn-%d", i)
		p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, poll)
		}
		if err != nil {
			b.Fatalf("create %s: %v", name, err)
		}
		d, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err == nil {
			_, err = d.PollUntilDone(ctx, poll)
		}
		if err != nil {
			b.Fatalf("delete %s: %v", name, err)
		}
	}
	b.StopTimer()
	// What a delete leaves goes in the background (the node resource
	// group's contents): give it a moment.
	time.Sleep(5 * time.Second)
	kinds1 := managementObjects(b, mgmt)
	objects1, ops1 := kinds1.counts()
	for kind, n := range kinds1 {
		if n > kinds0[kind] {
			b.Logf("%s: %d before, %d after", kind, kinds0[kind], n)
		}
	}
	parts1 := dirParts(b, s.dataDir)
	for _, part := range slices.Sorted(maps.Keys(parts1)) {
		b.Logf("%-22s %8.1f MiB before, %8.1f MiB after", part, float64(parts0[part])/(1<<20), float64(parts1[part])/(1<<20))
	}
	// Deleted clusters' keys leave the datastore's database at its
	// largest until etcd compacts their history (every ten minutes, of
	// what is older than ten minutes) and serve defragments it (checked
	// every minute): SLIPWAY_CHURN_SETTLE=25m waits up to that long for
	// the database to shrink back and reports the directory then.
	if settle, _ := time.ParseDuration(os.Getenv("SLIPWAY_CHURN_SETTLE")); settle > 0 {
		const db = "datastore etcd db"
		began := time.Now()
		parts := parts1
		for time.Since(began) < settle && parts[db] > 2*parts0[db] {
			time.Sleep(15 * time.Second)
			parts = dirParts(b, s.dataDir)
		}
		for _, part := range slices.Sorted(maps.Keys(parts)) {
			b.Logf("settled: %-22s %8.1f MiB", part, float64(parts[part])/(1<<20))
		}
		b.ReportMetric(float64(total(parts))/(1<<20), "MiB-settled")
		b.ReportMetric(time.Since(began).Seconds(), "settle-s")
	}
	b.ReportMetric(float64(objects0), "objects-before")
	b.ReportMetric(float64(objects1), "objects-after")
	b.ReportMetric(float64(ops1-ops0)/float64(b.N), "operations-kept/cluster")
	b.ReportMetric(float64(total(parts0))/(1<<20), "MiB-before")
	b.ReportMetric(float64(total(parts1))/(1<<20), "MiB-after")
}

// kindCounts counts objects by kind.
type kindCounts map[string]int

// counts are the objects, operations apart, and the operations.
func (k kindCounts) counts() (objects, operations int) {
	for kind, n := range k {
		if kind == "Operation" {
			operations += n
		} else {
			objects += n
		}
	}
	return objects, operations
}

// managementObjects counts Slipway's objects in the management plane by
// kind.
func managementObjects(b *testing.B, c client.Client) kindCounts {
	counts := kindCounts{}
	crds, err := management.CRDs()
	if err != nil {
		b.Fatal(err)
	}
	for _, crd := range crds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: crd.Spec.Group, Version: crd.Spec.Versions[0].Name, Kind: crd.Spec.Names.ListKind})
		var opts []client.ListOption
		if crd.Spec.Scope == apiextensionsv1.NamespaceScoped {
			opts = append(opts, client.InNamespace(slipwayv1.Namespace))
		}
		if err := c.List(context.Background(), list, opts...); err != nil {
			b.Fatalf("listing %s: %v", crd.Spec.Names.Plural, err)
		}
		counts[crd.Spec.Names.Kind] = len(list.Items)
	}
	return counts
}

// dirParts splits the data directory's size by what holds it: each etcd's
// database, write-ahead log and raft snapshots, the logs, the rest.
func dirParts(b *testing.B, dir string) map[string]int64 {
	parts := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file deleted while walking
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		parts[dataPart(filepath.ToSlash(rel))] += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return parts
}

func dataPart(rel string) string {
	owner := "other"
	switch {
	case strings.HasPrefix(rel, "management/"):
		owner = "management"
	case strings.HasPrefix(rel, "datastore/"):
		owner = "datastore"
	case strings.HasPrefix(rel, "clusters/"):
		owner = "clusters"
	}
	switch {
	case strings.Contains(rel, "/etcd/member/snap/db"):
		return owner + " etcd db"
	case strings.Contains(rel, "/etcd/member/wal/"):
		return owner + " etcd wal"
	case strings.Contains(rel, "/etcd/member/snap/"):
		return owner + " etcd snapshots"
	case strings.Contains(rel, "audit"):
		return owner + " audit logs"
	case strings.Contains(rel, "/logs/") || strings.HasSuffix(rel, ".log"):
		return owner + " logs"
	}
	return owner + " files"
}

// total is the size of all the parts.
func total(parts map[string]int64) int64 {
	var n int64
	for _, size := range parts {
		n += size
	}
	return n
}

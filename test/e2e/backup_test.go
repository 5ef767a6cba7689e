package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipway-dev/slipway/internal/app"
)

// TestBackupAndRestore stops the shared server, backs up its data
// directory with `slipway backup`, restores it into a new one with
// `slipway restore` and runs serve over the copy: a cluster made before
// answers through the kubeconfig it had, with its objects, and ARM still
// knows it. The server goes on over the restored directory.
func TestBackupAndRestore(t *testing.T) {
	s := serve(t)
	ctx := context.Background()
	c := newClients(t, s)
	const group, name = "backup-rg", "backup-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)), nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := adminConfig(t, c, group, name)
	cs := adminClient(t, c, group, name)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "default"}, Data: map[string]string{"in": "the backup"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	backupFile := filepath.Join(t.TempDir(), "slipway.backup")
	if out, err := exec.Command(s.bin, "backup", "--data-dir", s.dataDir, "--out", backupFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "is running") {
		t.Errorf("backup of a running server: %v, %s; want it refused as running", err, out)
	}
	s.stop()
	if out, err := exec.Command(s.bin, "backup", "--data-dir", s.dataDir, "--out", backupFile).CombinedOutput(); err != nil {
		t.Fatalf("slipway backup: %v\n%s", err, out)
	} else {
		t.Logf("%s", out)
	}
	restored, err := os.MkdirTemp("", "slipway-e2e-restored-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(s.bin, "restore", "--from", backupFile, "--data-dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("slipway restore: %v\n%s", err, out)
	}
	original := s.dataDir
	s.dataDir = restored
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	// connection.json came back naming the CA file in the old directory;
	// serve writes it anew once it has started.
	eventually(t, time.Minute, "serve rewriting connection.json for the restored directory", func() (bool, string) {
		conn, err := app.ReadConnection(filepath.Join(restored, "connection.json"))
		if err != nil {
			return false, err.Error()
		}
		s.conn = conn
		return strings.HasPrefix(conn.CACertFile, restored+string(filepath.Separator)), conn.CACertFile
	})
	os.RemoveAll(original)

	c = newClients(t, s)
	mc, err := c.clusters.Get(ctx, group, name, nil)
	if err != nil || *mc.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("the cluster after restore: %v", err)
	}
	eventually(t, 2*time.Minute, "the restored cluster's ConfigMap through the old kubeconfig", func() (bool, string) {
		got, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Data["in"] == "the backup", got.Data["in"]
	})
	settled(t, cs, "system", 1)
	d, err := c.clusters.BeginDelete(ctx, group, name, nil)
	if err == nil {
		_, err = d.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
}

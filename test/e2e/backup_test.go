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

// TestBackupAndRestore backs up the shared server's data directory with
// `slipway backup` while it runs, stops it, restores the backup into a new
// directory with `slipway restore` and runs serve over the copy: a cluster
// made before answers through the kubeconfig it had, with the objects it
// had at the backup and not those made after, and ARM still knows it. The
// server goes on over the restored directory. (The offline backup, serve
// stopped, is internal/backup's TestBackupAndRestore.)
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

	// Taken while serve runs: serve snapshots its etcds through their
	// client API. What is written after it is not in it.
	backupFile := filepath.Join(t.TempDir(), "slipway.backup")
	if out, err := exec.Command(s.bin, "backup", "--data-dir", s.dataDir, "--out", backupFile).CombinedOutput(); err != nil || !strings.Contains(string(out), "online") {
		t.Fatalf("slipway backup of a running server: %v\n%s", err, out)
	} else {
		t.Logf("%s", out)
	}
	if info, err := os.Stat(backupFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v; want mode 0600", info, err)
	}
	later := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: "default"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, later, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.stop()
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
	restoredClient := kubernetes.NewForConfigOrDie(cfg)
	if _, err := restoredClient.CoreV1().ConfigMaps("default").Get(ctx, "later", metav1.GetOptions{}); err == nil {
		t.Error("a ConfigMap made after the backup is in the restored cluster")
	}
	if _, err := restoredClient.CoreV1().ConfigMaps("default").Create(ctx, later, metav1.CreateOptions{}); err != nil {
		t.Errorf("writing to the restored cluster: %v", err)
	}
	settled(t, cs, "system", 1)
	d, err := c.clusters.BeginDelete(ctx, group, name, nil)
	if err == nil {
		_, err = d.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatal(err)
	}
}

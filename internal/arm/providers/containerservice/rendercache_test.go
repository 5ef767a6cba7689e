package containerservice

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// TestRenderKey: the key changes with every object a GET is made of and
// with the api-version, and there is none while the answer depends on
// more than the objects.
func TestRenderKey(t *testing.T) {
	get := func(v string) *http.Request { return httptest.NewRequest(http.MethodGet, "/?api-version="+v, nil) }
	mc := &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{UID: "c", ResourceVersion: "10"}}
	pool := slipwayv1.AgentPool{ObjectMeta: metav1.ObjectMeta{UID: "p", ResourceVersion: "11"}}
	pool.Status.NodeImageVersion = "AKSUbuntu-2204gen2containerd-202611.20.0"
	pools := []slipwayv1.AgentPool{pool}

	base := renderKey(get("2025-02-01"), mc, pools)
	if base == "" {
		t.Fatal("an idle cluster with provisioned pools has no key")
	}
	if renderKey(get("2025-02-01"), mc, pools) != base {
		t.Error("the same objects gave two keys")
	}
	if renderKey(get("2022-11-01"), mc, pools) == base {
		t.Error("another api-version gave the same key")
	}
	written := mc.DeepCopy()
	written.ResourceVersion = "12"
	if renderKey(get("2025-02-01"), written, pools) == base {
		t.Error("a write to the cluster kept its key")
	}
	poolWritten := []slipwayv1.AgentPool{*pool.DeepCopy()}
	poolWritten[0].ResourceVersion = "13"
	if renderKey(get("2025-02-01"), mc, poolWritten) == base {
		t.Error("a write to a pool kept the cluster's key")
	}
	if renderKey(get("2025-02-01"), mc, nil) == base {
		t.Error("a pool deleted kept the cluster's key")
	}

	busy := mc.DeepCopy()
	busy.Spec.Operation = &slipwayv1.OperationRef{ID: "op", Action: slipwayv1.ActionUpgrading}
	if k := renderKey(get("2025-02-01"), busy, pools); k != "" {
		t.Errorf("a cluster in an operation has key %q: its state is the operation's", k)
	}
	unprovisioned := []slipwayv1.AgentPool{*pool.DeepCopy()}
	unprovisioned[0].Status.NodeImageVersion = ""
	if k := renderKey(get("2025-02-01"), mc, unprovisioned); k != "" {
		t.Errorf("a pool without an image has key %q: its image is the catalog's", k)
	}
}

func TestRenderCacheBounded(t *testing.T) {
	var c renderCache
	for i := range renderCacheSize * 3 {
		c.put(fmt.Sprint(i), []byte("x"))
	}
	if n := len(c.entries); n > renderCacheSize {
		t.Errorf("%d entries, bound %d", n, renderCacheSize)
	}
	if b, ok := c.get(fmt.Sprint(renderCacheSize*3 - 1)); !ok || string(b) != "x" {
		t.Error("the newest entry is gone")
	}
}

func TestRenderKeyBusyPool(t *testing.T) {
	mc := &slipwayv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{UID: "c", ResourceVersion: "10"}}
	pool := slipwayv1.AgentPool{ObjectMeta: metav1.ObjectMeta{UID: "p", ResourceVersion: "11"}}
	pool.Status.NodeImageVersion = "AKSUbuntu-2204gen2containerd-202611.20.0"
	pool.Spec.Operation = &slipwayv1.OperationRef{ID: "op", Action: slipwayv1.ActionUpgradeNodeImage}
	if k := renderKey(httptest.NewRequest(http.MethodGet, "/?api-version=2025-02-01", nil), mc, []slipwayv1.AgentPool{pool}); k != "" {
		t.Errorf("a pool in an operation has key %q: its state may be the operation's", k)
	}
}

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// TestKillDuringCreate kills slipway serve with SIGKILL right after a
// cluster create was accepted, starts it again over the same data, and
// checks that the operation ends (Succeeded or Failed) instead of hanging,
// and that the cluster is left in a terminal state.
func TestKillDuringCreate(t *testing.T) {
	s := serve(t)
	ctx := context.Background()
	c := newClients(t, s)
	const group, name = "kill-rg", "kill-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	mc := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 2))
	poller, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	resume, err := poller.ResumeToken()
	if err != nil {
		t.Fatal(err)
	}
	// Let the controller get into the middle of making the control plane.
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}

	c = newClients(t, s)
	resumed, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, mc, &armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions{ResumeToken: resume})
	if err != nil {
		t.Fatal(err)
	}
	pollCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	result, err := resumed.PollUntilDone(pollCtx, poll)
	if pollCtx.Err() != nil {
		t.Fatalf("the operation did not end within 3 minutes of the restart: %v", err)
	}
	if err == nil {
		t.Logf("create resumed and ended %s", *result.Properties.ProvisioningState)
	} else {
		t.Logf("create ended with an error: %v", err)
	}
	got, err := c.clusters.Get(ctx, group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	state := *got.Properties.ProvisioningState
	if !strings.EqualFold(state, "Succeeded") && !strings.EqualFold(state, "Failed") {
		t.Fatalf("cluster left in %s", state)
	}
	if state == "Succeeded" {
		for _, p := range got.Properties.AgentPoolProfiles {
			if *p.ProvisioningState != "Succeeded" {
				t.Errorf("pool %s is %s", *p.Name, *p.ProvisioningState)
			}
		}
	}

	// Deleting the group takes the cluster with it.
	d, err := c.groups.BeginDelete(ctx, group, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	_, err = c.clusters.Get(ctx, group, name, nil)
	expectCode(t, err, 404, "ResourceGroupNotFound")
}

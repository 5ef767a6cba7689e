package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func policyScopes(s *server) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{s.conn.Audience + "/.default"}}
}

// addonCluster makes a resource group and in it a cluster of one System
// pool of n nodes with an add-on on (its addonProfiles key), as az aks
// create --enable-addons does.
func addonCluster(t testing.TB, s *server, c clients, group, name, addon string, n int32) armcontainerservice.ManagedCluster {
	t.Helper()
	ctx := context.Background()
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, n))
	spec.Properties.AddonProfiles = map[string]*armcontainerservice.ManagedClusterAddonProfile{addon: {Enabled: to.Ptr(true)}}
	return putCluster(t, c, group, name, spec)
}

// putCluster PUTs a cluster and waits for the operation to end, as the
// SDK's poller does: the cluster as the PUT left it.
func putCluster(t testing.TB, c clients, group, name string, mc armcontainerservice.ManagedCluster) armcontainerservice.ManagedCluster {
	t.Helper()
	p, err := c.clusters.BeginCreateOrUpdate(context.Background(), group, name, mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.PollUntilDone(context.Background(), poll)
	if err != nil {
		t.Fatal(err)
	}
	return done.ManagedCluster
}

// waitServiceAccount waits for a new cluster's default service account:
// pods are admitted once their namespace has it.
func waitServiceAccount(t testing.TB, cs kubernetes.Interface) {
	t.Helper()
	eventually(t, 30*time.Second, "default service account", func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

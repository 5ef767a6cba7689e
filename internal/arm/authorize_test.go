package arm_test

import (
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/arm/providers/authorization"
	"github.com/slipway-dev/slipway/internal/arm/providers/compute"
	"github.com/slipway-dev/slipway/internal/arm/providers/containerservice"
	"github.com/slipway-dev/slipway/internal/arm/providers/resourcehealth"
	"github.com/slipway-dev/slipway/internal/arm/providers/resources"
	"github.com/slipway-dev/slipway/internal/arm/providers/slipwayidentity"
	"github.com/slipway-dev/slipway/internal/arm/providers/storage"
	"github.com/slipway-dev/slipway/internal/health"
)

// allProviders is the core with every provider registered, as serve has it.
func allProviders() *arm.Server {
	s := arm.New(arm.Config{SubscriptionID: "s1"})
	resources.Register(s)
	containerservice.Register(s, nil, nil)
	slipwayidentity.Register(s, nil, nil)
	resourcehealth.Register(s, health.DefaultPolicy(), containerservice.RouteCluster)
	compute.Register(s, nil)
	storage.Register(s, nil)
	authorization.Register(s)
	return s
}

// TestPermissions checks that routes map to the actions and scopes ARM
// uses, which role definitions are written against.
func TestPermissions(t *testing.T) {
	s := allProviders()
	const sub = "/subscriptions/s1"
	const rg = sub + "/resourceGroups/rg1"
	const mc = rg + "/providers/Microsoft.ContainerService/managedClusters/aks1"
	for _, tc := range []struct {
		method, path, action, scope string
	}{
		{"GET", "subscriptions/s1/resourcegroups/rg1", "Microsoft.Resources/subscriptions/resourceGroups/read", rg},
		{"PUT", "subscriptions/s1/resourceGroups/rg1", "Microsoft.Resources/subscriptions/resourceGroups/write", rg},
		{"GET", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters", "Microsoft.ContainerService/managedClusters/read", rg},
		{"GET", "subscriptions/s1/providers/Microsoft.ContainerService/managedClusters", "Microsoft.ContainerService/managedClusters/read", sub},
		{"PUT", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1", "Microsoft.ContainerService/managedClusters/write", mc},
		{"DELETE", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1", "Microsoft.ContainerService/managedClusters/delete", mc},
		{"POST", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/listClusterUserCredential", "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", mc},
		{"POST", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/listClusterAdminCredential", "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action", mc},
		{"GET", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/agentPools/np1", "Microsoft.ContainerService/managedClusters/agentPools/read", mc + "/agentPools/np1"},
		{"POST", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/agentPools/np1/upgradeNodeImageVersion", "Microsoft.ContainerService/managedClusters/agentPools/upgradeNodeImageVersion/action", mc + "/agentPools/np1"},
		{"GET", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/agentPools/np1/upgradeProfiles/default", "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles/read", mc + "/agentPools/np1"},
		{"GET", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/providers/Microsoft.ResourceHealth/availabilityStatuses/current", "Microsoft.ResourceHealth/availabilityStatuses/read", mc},
		{"GET", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/aks1/providers/Microsoft.ResourceHealth/availabilityStatuses", "Microsoft.ResourceHealth/availabilityStatuses/read", mc},
		{"GET", "subscriptions/s1/providers/Microsoft.ResourceHealth/events", "Microsoft.ResourceHealth/events/read", sub},
		{"GET", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ResourceHealth/availabilityStatuses", "Microsoft.ResourceHealth/availabilityStatuses/read", rg},
		{"PUT", "subscriptions/s1/resourceGroups/MC_rg1_aks1_eastus/providers/Microsoft.Compute/disks/pvc-1", "Microsoft.Compute/disks/write", sub + "/resourceGroups/MC_rg1_aks1_eastus/providers/Microsoft.Compute/disks/pvc-1"},
		{"DELETE", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/disks/d1", "Microsoft.Compute/disks/delete", rg + "/providers/Microsoft.Compute/disks/d1"},
		{"GET", "subscriptions/s1/providers/Microsoft.Compute/disks", "Microsoft.Compute/disks/read", sub},
		{"POST", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/f1/listKeys", "Microsoft.Storage/storageAccounts/listKeys/action", rg + "/providers/Microsoft.Storage/storageAccounts/f1"},
		{"PUT", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/f1/fileServices/default/shares/pvc-1", "Microsoft.Storage/storageAccounts/fileServices/shares/write", rg + "/providers/Microsoft.Storage/storageAccounts/f1/fileServices/default/shares/pvc-1"},
		{"PUT", "subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Authorization/roleAssignments/0b4c", "Microsoft.Authorization/roleAssignments/write", rg + "/providers/Microsoft.Authorization/roleAssignments/0b4c"},
	} {
		action, scope, ok := s.Permission(tc.method, tc.path)
		if !ok {
			t.Errorf("%s %s: no route", tc.method, tc.path)
			continue
		}
		if action != tc.action || !strings.EqualFold(scope, tc.scope) {
			t.Errorf("%s %s: %s at %s, want %s at %s", tc.method, tc.path, action, scope, tc.action, tc.scope)
		}
	}
	if got := s.ReadAction(mc + "/agentPools/np1"); got != "Microsoft.ContainerService/managedClusters/agentPools/read" {
		t.Errorf("readAction = %s", got)
	}
}

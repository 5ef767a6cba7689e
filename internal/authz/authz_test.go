package authz

import "testing"

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role   Role
		action string
		want   bool
	}{
		{Owner, "Microsoft.Authorization/roleAssignments/write", true},
		{Contributor, "Microsoft.ContainerService/managedClusters/write", true},
		{Contributor, "Microsoft.Authorization/roleAssignments/write", false},
		{Contributor, "microsoft.authorization/roleassignments/delete", false},
		{Contributor, "Microsoft.Authorization/roleAssignments/read", true},
		{Reader, "Microsoft.ContainerService/managedClusters/read", true},
		{Reader, "Microsoft.ContainerService/managedClusters/agentPools/read", true},
		{Reader, "Microsoft.ContainerService/managedClusters/write", false},
		{Reader, "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", false},
		{AKSClusterUser, "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", true},
		{AKSClusterUser, "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action", false},
		{AKSClusterAdmin, "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action", true},
		{AKSClusterAdmin, "Microsoft.ContainerService/managedClusters/delete", false},
	} {
		if got := tc.role.Allows(tc.action); got != tc.want {
			t.Errorf("%s allows %s = %v, want %v", tc.role.Name, tc.action, got, tc.want)
		}
	}
}

func TestScopesInherit(t *testing.T) {
	sub := "/subscriptions/s1"
	rg := sub + "/resourceGroups/rg1"
	mc := rg + "/providers/Microsoft.ContainerService/managedClusters/aks1"
	for _, tc := range []struct {
		scope, target string
		want          bool
	}{
		{sub, rg, true},
		{sub, mc + "/agentPools/np1", true},
		{rg, mc, true},
		{"/SUBSCRIPTIONS/s1/resourcegroups/RG1", mc, true},
		{rg, sub, false},
		{mc, rg, false},
		{rg, "/subscriptions/s1/resourceGroups/rg10", false},
		{sub, "/subscriptions/s10", false},
		{"/", mc, true},
	} {
		if got := Covers(tc.scope, tc.target); got != tc.want {
			t.Errorf("Covers(%s, %s) = %v, want %v", tc.scope, tc.target, got, tc.want)
		}
	}
	if r, ok := RoleByID("/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"); !ok || r.Name != "Reader" {
		t.Errorf("RoleByID: %v %v", r, ok)
	}
}

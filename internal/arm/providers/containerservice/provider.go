// Package containerservice is the Microsoft.ContainerService provider: managed
// clusters, their agent pools, machines, maintenance configurations, upgrade
// profiles, node image versions and Kubernetes versions, on the official
// SDK's models. It validates and records intent in the management objects;
// the cluster and agent pool controllers carry it out.
package containerservice

import (
	"context"

	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/nodeimage"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.ContainerService"

// APIVersions are the api-versions served: the GA releases from the one
// az 2.45 speaks to the newest in the AKS specs. Their wire formats differ
// only by added fields, which the SDK's newest models cover.
var APIVersions = arm.Versions(
	"2022-11-01", "2023-01-01", "2023-02-01", "2023-03-01", "2023-04-01", "2023-05-01", "2023-06-01",
	"2023-07-01", "2023-08-01", "2023-09-01", "2023-10-01", "2023-11-01", "2024-01-01", "2024-02-01",
	"2024-05-01", "2024-06-01", "2024-07-01", "2024-08-01", "2024-09-01", "2024-10-01", "2025-01-01",
	"2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01", "2025-07-01", "2025-08-01",
	"2025-09-01", "2025-10-01",
)

// orchestratorsAPIVersions: az aks get-versions still reads the
// orchestrators list at its own, older api-versions.
var orchestratorsAPIVersions = arm.Versions("2017-09-30", "2019-04-01", "2019-08-01").Plus(APIVersions)

// Credentials gives the kubeconfigs of hosted clusters.
type Credentials interface {
	// Kubeconfig returns a kubeconfig for the hosted cluster with the given
	// ID; admin selects the cluster-admin credential over the user's.
	Kubeconfig(hostedID string, admin bool, cluster, user, context string) ([]byte, error)
}

// Provider serves Microsoft.ContainerService.
type Provider struct {
	*arm.Server
	credentials Credentials
	images      *nodeimage.Catalog
	rendered    renderCache // clusters' GET answers
}

// Route patterns: a resource group, a managed cluster, an agent pool, and
// the provider of the subscription.
const (
	routeGroup    = "subscriptions/{sub}/resourceGroups/{rg}"
	RouteCluster  = routeGroup + "/providers/Microsoft.ContainerService/managedClusters/{cluster}"
	routePool     = RouteCluster + "/agentPools/{pool}"
	routeProvider = "subscriptions/{sub}/providers/Microsoft.ContainerService"
)

// Register adds the provider's routes and resource types to the core.
func Register(core *arm.Server, credentials Credentials, images *nodeimage.Catalog) *Provider {
	s := &Provider{Server: core, credentials: credentials, images: images}
	v := APIVersions
	h := core.Handle
	h("GET", routeProvider+"/managedClusters", v, s.listManagedClusters)
	h("GET", routeGroup+"/providers/Microsoft.ContainerService/managedClusters", v, s.listManagedClusters)
	h("PUT", RouteCluster, v, s.putManagedCluster)
	h("GET", RouteCluster, v, s.getManagedCluster)
	h("PATCH", RouteCluster, v, s.patchManagedCluster)
	h("DELETE", RouteCluster, v, s.deleteManagedCluster)
	h("POST", RouteCluster+"/listClusterAdminCredential", v, s.listCredential(true))
	h("POST", RouteCluster+"/listClusterUserCredential", v, s.listCredential(false))
	h("POST", RouteCluster+"/start", v, s.startStopCluster(false))
	h("POST", RouteCluster+"/stop", v, s.startStopCluster(true))
	h("POST", RouteCluster+"/abort", v, s.abortCluster)
	h("GET", RouteCluster+"/upgradeProfiles/default", v, s.getClusterUpgradeProfile)
	h("GET", RouteCluster+"/availableAgentPoolVersions", v, s.getAvailableAgentPoolVersions)
	h("GET", RouteCluster+"/agentPools", v, s.listAgentPools)
	h("PUT", routePool, v, s.putAgentPool)
	h("GET", routePool, v, s.getAgentPool)
	h("DELETE", routePool, v, s.deleteAgentPool)
	h("POST", routePool+"/abort", v, s.abortAgentPool)
	h("GET", routePool+"/upgradeProfiles/default", v, s.getAgentPoolUpgradeProfile)
	h("POST", routePool+"/deleteMachines", v, s.deleteMachines)
	h("POST", routePool+"/upgradeNodeImageVersion", v, s.upgradeNodeImageVersion)
	h("GET", RouteCluster+"/maintenanceConfigurations", v, s.listMaintenanceConfigurations)
	h("GET", RouteCluster+"/maintenanceConfigurations/{config}", v, s.getMaintenanceConfiguration)
	h("PUT", RouteCluster+"/maintenanceConfigurations/{config}", v, s.putMaintenanceConfiguration)
	h("DELETE", RouteCluster+"/maintenanceConfigurations/{config}", v, s.deleteMaintenanceConfiguration)
	h("GET", RouteCluster+"/nodeOSUpgradeRuns", v, s.listNodeOSUpgradeRuns)
	h("GET", RouteCluster+"/kubernetesUpgradeRuns", v, s.listKubernetesUpgradeRuns)
	h("GET", routeProvider+"/locations/{loc}/nodeImageVersions", v, s.listNodeImageVersions)
	h("POST", routeProvider+"/locations/{loc}/nodeImageVersions/publish", v, s.publishNodeImage)
	h("POST", routePool+"/machines/{machine}/simulateEviction", v, s.simulateEviction)
	h("GET", routePool+"/machines", v, s.listMachines)
	h("GET", routePool+"/machines/{machine}", v, s.getMachine)
	h("GET", routeProvider+"/locations/{loc}/kubernetesVersions", v, s.listKubernetesVersions)
	h("GET", routeProvider+"/locations/{loc}/orchestrators", orchestratorsAPIVersions, s.listOrchestrators)
	core.OperationRoutes(Namespace, v)

	core.ResourceType(arm.ResourceType{Pattern: RouteCluster, Lookup: func(ctx context.Context, p arm.Params) (*arm.Resource, error) {
		mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
		if err != nil {
			return nil, err
		}
		return &arm.Resource{ID: mc.Spec.ResourceID, Operation: refID(mc.Spec.Operation), Render: func(ctx context.Context) (any, error) { return s.renderCluster(ctx, mc) }}, nil
	}})
	core.ResourceType(arm.ResourceType{Pattern: routePool, Lookup: func(ctx context.Context, p arm.Params) (*arm.Resource, error) {
		mc, pool, err := s.lookupPool(ctx, p)
		if err != nil {
			return nil, err
		}
		return &arm.Resource{ID: pool.Spec.ResourceID, Operation: refID(pool.Spec.Operation), Render: func(ctx context.Context) (any, error) { return s.renderAgentPool(ctx, mc, pool) }}, nil
	}, OperationProperties: func(op *slipwayv1.Operation) any {
		if op.Status.Upgrade == nil {
			return nil
		}
		return map[string]any{"upgradeStatus": upgradeStatus(op.Status.Upgrade)}
	}})
	return s
}

func refID(ref *slipwayv1.OperationRef) string {
	if ref == nil {
		return ""
	}
	return ref.ID
}

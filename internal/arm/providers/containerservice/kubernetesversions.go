package containerservice

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/version"
)

// AKS's version rules, as its API answers them (codes and wording from
// AKS's own errors where they are on record): a control plane moves one
// minor at a time and never back; a pool moves one minor at a time, never
// back, never past its control plane, and never more than three minors
// behind it (Kubernetes' kubelet skew policy).
const maxPoolSkew = 3

// resolveVersion is the release a requested version runs, or AKS's error
// for a version it does not serve.
func resolveVersion(v, target string) (string, error) {
	if err := nodepool.ValidateVersion(v, target); err != nil {
		return "", fromInvalid(err)
	}
	release, _ := version.Resolve(v)
	return release, nil
}

// clusterVersion is the release a cluster's control plane runs: what the
// controller last saw, or what its PUT asked for before that.
func clusterVersion(mc *slipwayv1.ManagedCluster) string {
	if v := mc.Status.CurrentKubernetesVersion; v != "" {
		return v
	}
	var c struct {
		Properties struct {
			KubernetesVersion string `json:"kubernetesVersion"`
		} `json:"properties"`
	}
	if err := arm.DecodeJSON(mc.Spec.Resource.Raw, &c); err == nil {
		if v, ok := version.Resolve(c.Properties.KubernetesVersion); ok {
			return v
		}
	}
	return strings.TrimPrefix(version.Kubernetes, "v")
}

// checkControlPlaneUpgrade refuses a control plane downgrade and a skipped
// minor.
func checkControlPlaneUpgrade(from, to string) error {
	f, t := version.MustParse(from), version.MustParse(to)
	if t.Compare(f) == 0 {
		return nil
	}
	available := "[" + strings.Join(reversed(version.Upgrades(from)), " ") + "]"
	if t.Compare(f) < 0 {
		return arm.BadRequest("OperationNotAllowed", "kubernetesVersion",
			"Downgrading Kubernetes version %s to %s is not allowed. Available upgrades: %s. Please see https://aka.ms/aks-supported-k8s-ver for version details.", from, to, available)
	}
	if t.Minor > f.Minor+1 || t.Major != f.Major {
		return arm.BadRequest("OperationNotAllowed", "kubernetesVersion",
			"Upgrading Kubernetes version %s to %s is not allowed. Available upgrades: %s. Please see https://aka.ms/aks-supported-k8s-ver for version details.", from, to, available)
	}
	return nil
}

// checkPoolVersion checks a pool's move from release from to release to
// under a control plane on controlPlane; from is empty for a new pool.
func checkPoolVersion(from, to, controlPlane string) error {
	t, cp := version.MustParse(to), version.MustParse(controlPlane)
	if from != "" && from != to {
		f := version.MustParse(from)
		if t.Compare(f) < 0 || t.Minor > f.Minor+1 || t.Major != f.Major {
			return arm.BadRequest("AgentPoolUpgradeVersionNotAllowed", "agentPoolProfile.orchestratorVersion",
				"Upgrade agent pool version from %s to %s is not allowed, you can only upgrade one minor version at a time. Please use [az aks get-upgrades] command to get the supported upgrade paths. For more information, please check https://aka.ms/version-skew-policy", from, to)
		}
	}
	switch {
	case t.Minor > cp.Minor:
		return arm.BadRequest("NodePoolMcVersionIncompatible", "agentPoolProfile.orchestratorVersion",
			"Node pool version %s and control plane version %s are incompatible. Minor version of node pool version %d is bigger than control plane version %d. For more information, please check https://aka.ms/version-skew-policy", to, controlPlane, t.Minor, cp.Minor)
	case t.Minor == cp.Minor && t.Patch > cp.Patch:
		return arm.BadRequest("NodePoolMcVersionIncompatible", "agentPoolProfile.orchestratorVersion",
			"Node pool version %s and control plane version %s are incompatible. Node pool version %s is newer than control plane version %s. For more information, please check https://aka.ms/version-skew-policy", to, controlPlane, to, controlPlane)
	case cp.Minor-t.Minor > maxPoolSkew:
		return arm.BadRequest("NodePoolMcVersionIncompatible", "agentPoolProfile.orchestratorVersion",
			"Node pool version %s and control plane version %s are incompatible. Minor version of node pool version %d is more than %d versions behind control plane version %d. For more information, please check https://aka.ms/version-skew-policy", to, controlPlane, t.Minor, maxPoolSkew, cp.Minor)
	}
	return nil
}

// checkVersions applies AKS's version rules to a cluster PUT (normalized:
// every version valid, unset pool versions filled with the control
// plane's) and reports whether it upgrades anything. mc is the stored
// cluster, nil on create.
func checkVersions(mc *slipwayv1.ManagedCluster, p *armcontainerservice.ManagedClusterProperties, pools []slipwayv1.AgentPool) (bool, error) {
	controlPlane, _ := version.Resolve(deref(p.KubernetesVersion))
	upgrade := false
	if mc != nil {
		from := clusterVersion(mc)
		if err := checkControlPlaneUpgrade(from, controlPlane); err != nil {
			return false, err
		}
		upgrade = from != controlPlane
	}
	for _, ap := range p.AgentPoolProfiles {
		if i := slices.IndexFunc(pools, func(p slipwayv1.AgentPool) bool { return p.Spec.Name == deref(ap.Name) }); i >= 0 {
			want, _ := version.Resolve(deref(ap.OrchestratorVersion))
			upgrade = upgrade || want != nodepool.CurrentVersion(&pools[i])
		}
	}
	return upgrade, checkClusterPoolVersions(p.AgentPoolProfiles, pools, controlPlane)
}

// checkClusterPoolVersions applies the cluster PUT's rules to its pool
// profiles: each existing pool keeps its version or takes the new control
// plane's, and every pool fits under the control plane.
func checkClusterPoolVersions(profiles []*armcontainerservice.ManagedClusterAgentPoolProfile, existing []slipwayv1.AgentPool, controlPlane string) error {
	for _, ap := range profiles {
		to, _ := version.Resolve(deref(ap.OrchestratorVersion))
		from := ""
		if i := slices.IndexFunc(existing, func(p slipwayv1.AgentPool) bool { return p.Spec.Name == deref(ap.Name) }); i >= 0 {
			from = nodepool.CurrentVersion(&existing[i])
			if to != from && to != controlPlane {
				return arm.BadRequest("NotAllAgentPoolOrchestratorVersionSpecifiedAndUnchanged", "agentPoolProfiles",
					"Using managed cluster api, all Agent pools' OrchestratorVersion must be all specified or all unspecified. If all specified, they must be stay unchanged or the same with control plane. For agent pool specific change, please use per agent pool operations: https://aka.ms/agent-pool-rest-api")
			}
		}
		if err := checkPoolVersion(from, to, controlPlane); err != nil {
			return err
		}
	}
	// Pools the PUT leaves out keep their versions: they must still fit.
	for i := range existing {
		if !slices.ContainsFunc(profiles, func(ap *armcontainerservice.ManagedClusterAgentPoolProfile) bool {
			return deref(ap.Name) == existing[i].Spec.Name
		}) {
			v := nodepool.CurrentVersion(&existing[i])
			if err := checkPoolVersion(v, v, controlPlane); err != nil {
				return err
			}
		}
	}
	return nil
}

// poolUpgrades are the releases a pool on from may move to under a control
// plane on controlPlane.
func poolUpgrades(from, controlPlane string) []string {
	cp := version.MustParse(controlPlane)
	return slices.DeleteFunc(version.Upgrades(from), func(r string) bool { return version.MustParse(r).Compare(cp) > 0 })
}

// reversed is newest first, as AKS lists available upgrades.
func reversed(releases []string) []string {
	out := slices.Clone(releases)
	slices.Reverse(out)
	return out
}

func clusterUpgradeItems(releases []string) []*armcontainerservice.ManagedClusterPoolUpgradeProfileUpgradesItem {
	out := []*armcontainerservice.ManagedClusterPoolUpgradeProfileUpgradesItem{}
	for _, r := range releases {
		out = append(out, &armcontainerservice.ManagedClusterPoolUpgradeProfileUpgradesItem{KubernetesVersion: to.Ptr(r), IsPreview: to.Ptr(false)})
	}
	return out
}

func (s *Provider) listKubernetesVersions(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var values []*armcontainerservice.KubernetesVersion
	for _, minor := range version.Minors() {
		patches := map[string]*armcontainerservice.KubernetesPatchVersion{}
		for _, release := range version.Patches(minor) {
			upgrades := []*string{}
			for _, u := range version.Upgrades(release) {
				upgrades = append(upgrades, to.Ptr(u))
			}
			patches[release] = &armcontainerservice.KubernetesPatchVersion{Upgrades: upgrades}
		}
		values = append(values, &armcontainerservice.KubernetesVersion{
			Version: to.Ptr(minor), IsDefault: to.Ptr(minor == version.DefaultMinor()), IsPreview: to.Ptr(false),
			Capabilities:  &armcontainerservice.KubernetesVersionCapabilities{SupportPlan: []*armcontainerservice.KubernetesSupportPlan{to.Ptr(armcontainerservice.KubernetesSupportPlanKubernetesOfficial)}},
			PatchVersions: patches,
		})
	}
	arm.WriteJSON(w, http.StatusOK, armcontainerservice.KubernetesVersionListResult{Values: values})
	return nil
}

// listOrchestrators is the older API az aks get-versions uses; the SDK
// no longer models it.
func (s *Provider) listOrchestrators(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	var orchestrators []any
	for _, release := range version.Releases {
		upgrades := []any{}
		for _, u := range version.Upgrades(release) {
			upgrades = append(upgrades, map[string]any{"orchestratorType": "Kubernetes", "orchestratorVersion": u, "isPreview": false})
		}
		orchestrators = append(orchestrators, map[string]any{
			"orchestratorType": "Kubernetes", "orchestratorVersion": release,
			"default": release == version.Default(), "isPreview": false, "upgrades": upgrades,
		})
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{
		"id":         fmt.Sprintf("/subscriptions/%s/providers/Microsoft.ContainerService/locations/%s/orchestrators", s.SubscriptionID(), p["loc"]),
		"name":       "default",
		"type":       "Microsoft.ContainerService/locations/orchestrators",
		"properties": map[string]any{"orchestrators": orchestrators},
	})
	return nil
}

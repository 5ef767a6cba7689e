package containerservice

import (
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/arm"
)

// canonicalAddons are the add-on keys AKS spells one way; a key sent in
// another case is stored under this one, as az renames it.
var canonicalAddons = []string{addons.KeyVaultSecretsProviderAddon, addons.AzurePolicyAddon}

// normalizeAddons checks and fills in addonProfiles: a PUT without them
// keeps those the cluster has (az sends them all on update), keys are
// spelled as AKS spells them, an enabled Key Vault Secrets Provider gets
// AKS's config defaults, and identities are the front door's to render.
func normalizeAddons(p *armcontainerservice.ManagedClusterProperties, old *armcontainerservice.ManagedCluster) error {
	if p.AddonProfiles == nil {
		if old != nil && old.Properties != nil {
			p.AddonProfiles = old.Properties.AddonProfiles
		}
		return nil
	}
	for key, ap := range p.AddonProfiles {
		for _, name := range canonicalAddons {
			if key == name || !strings.EqualFold(key, name) {
				continue
			}
			if _, both := p.AddonProfiles[name]; both {
				return arm.InvalidParameter("addonProfiles", "The value of parameter addonProfiles is invalid: add-on %s is listed twice, as %s and %s.", name, key, name)
			}
			delete(p.AddonProfiles, key)
			p.AddonProfiles[name] = ap
		}
	}
	for key, ap := range p.AddonProfiles {
		if ap == nil || ap.Enabled == nil {
			return arm.InvalidParameter("addonProfiles."+key+".enabled", "The value of parameter addonProfiles.%s.enabled is required.", key)
		}
		ap.Identity = nil // read-only
	}
	if addons.Enabled(p.AddonProfiles, addons.KeyVaultSecretsProviderAddon) {
		return normalizeKeyVaultConfig(p.AddonProfiles[addons.KeyVaultSecretsProviderAddon])
	}
	return nil
}

// normalizeKeyVaultConfig fills in the Key Vault Secrets Provider's
// config with AKS's defaults (rotation off, polled every 2m) and refuses
// values the driver would not start with.
func normalizeKeyVaultConfig(ap *armcontainerservice.ManagedClusterAddonProfile) error {
	if ap.Config == nil {
		ap.Config = map[string]*string{}
	}
	const prefix = "addonProfiles." + addons.KeyVaultSecretsProviderAddon + ".config."
	rotation := ap.Config["enableSecretRotation"]
	switch {
	case rotation == nil || *rotation == "":
		ap.Config["enableSecretRotation"] = to.Ptr("false")
	case strings.EqualFold(*rotation, "true") || strings.EqualFold(*rotation, "false"):
		ap.Config["enableSecretRotation"] = to.Ptr(strings.ToLower(*rotation))
	default:
		return arm.InvalidParameter(prefix+"enableSecretRotation", "The value of parameter %senableSecretRotation is invalid: %q. It must be \"true\" or \"false\".", prefix, *rotation)
	}
	interval := ap.Config["rotationPollInterval"]
	if interval == nil || *interval == "" {
		ap.Config["rotationPollInterval"] = to.Ptr("2m")
		return nil
	}
	if d, err := time.ParseDuration(*interval); err != nil || d <= 0 {
		return arm.InvalidParameter(prefix+"rotationPollInterval", "The value of parameter %srotationPollInterval is invalid: %q. It must be a positive duration such as 2m or 120s.", prefix, *interval)
	}
	return nil
}

// renderAddons shows each enabled add-on's identity: AKS makes the Key
// Vault Secrets Provider's and Azure Policy's in the node resource group
// when the add-on is enabled.
func renderAddons(clusterID string, p *armcontainerservice.ManagedClusterProperties) {
	for name, identity := range map[string]func(string, string) addons.Identity{
		addons.KeyVaultSecretsProviderAddon: addons.KeyVaultSecretsProviderIdentity,
		addons.AzurePolicyAddon:             addons.AzurePolicyIdentity,
	} {
		if !addons.Enabled(p.AddonProfiles, name) {
			continue
		}
		id := identity(clusterID, deref(p.NodeResourceGroup))
		p.AddonProfiles[name].Identity = &armcontainerservice.ManagedClusterAddonProfileIdentity{
			ClientID: to.Ptr(id.ClientID), ObjectID: to.Ptr(id.ObjectID), ResourceID: to.Ptr(id.ResourceID),
		}
	}
}

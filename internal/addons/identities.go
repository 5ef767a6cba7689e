package addons

import (
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/slipway-dev/slipway/internal/armid"
)

// Identity is a user-assigned managed identity AKS makes for a cluster in
// its node resource group and assigns to the cluster's scale sets: what a
// process on the cluster's nodes may act as.
type Identity struct {
	ClientID, ObjectID, ResourceID string
}

// KeyVaultSecretsProviderAddon is the add-on's key in addonProfiles, as az
// spells it (a lower-case v).
const KeyVaultSecretsProviderAddon = "azureKeyvaultSecretsProvider"

// AzurePolicyAddon is the Azure Policy add-on's key in addonProfiles.
const AzurePolicyAddon = "azurepolicy"

// AzurePolicyIdentity is the Azure Policy add-on's identity,
// "azurepolicy-<cluster>" (lower case).
func AzurePolicyIdentity(clusterID, nodeResourceGroup string) Identity {
	return nodeIdentity(clusterID, nodeResourceGroup, "azurepolicy", "azurepolicy-"+strings.ToLower(armid.NameOf(clusterID)))
}

// KubeletIdentity is the kubelet's identity, "<cluster>-agentpool".
func KubeletIdentity(clusterID, nodeResourceGroup string) Identity {
	return nodeIdentity(clusterID, nodeResourceGroup, "kubelet", armid.NameOf(clusterID)+"-agentpool")
}

// KeyVaultSecretsProviderIdentity is the Key Vault Secrets Provider
// add-on's identity, "azurekeyvaultsecretsprovider-<cluster>" (lower
// case, as AKS names it).
func KeyVaultSecretsProviderIdentity(clusterID, nodeResourceGroup string) Identity {
	return nodeIdentity(clusterID, nodeResourceGroup, "azurekeyvaultsecretsprovider", "azurekeyvaultsecretsprovider-"+strings.ToLower(armid.NameOf(clusterID)))
}

// nodeIdentity is an identity whose IDs are derived from the cluster's,
// stable across reads, as Azure's are once made.
func nodeIdentity(clusterID, nodeResourceGroup, role, name string) Identity {
	return Identity{
		ClientID: armid.GUID(clusterID + "/" + role + "/client"),
		ObjectID: armid.GUID(clusterID + "/" + role + "/object"),
		ResourceID: fmt.Sprintf("/subscriptions/%s/resourcegroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s",
			armid.SubscriptionOf(clusterID), nodeResourceGroup, name),
	}
}

// Enabled says whether a cluster's addonProfiles (as the front door
// stored them, keys spelled as AKS spells them) turn an add-on on.
func Enabled(profiles map[string]*armcontainerservice.ManagedClusterAddonProfile, name string) bool {
	ap := profiles[name]
	return ap != nil && ap.Enabled != nil && *ap.Enabled
}

// KeyVaultSettings are the Key Vault Secrets Provider add-on's switch and
// config in a cluster's addonProfiles.
type KeyVaultSettings struct {
	Enabled bool
	// Rotation turns on polling the vault every RotationPollInterval for
	// new versions of the mounted objects.
	Rotation             bool
	RotationPollInterval time.Duration
}

// DefaultRotationPollInterval is the add-on's default poll interval, as
// az writes it.
const DefaultRotationPollInterval = 2 * time.Minute

// KeyVaultSettingsOf reads the add-on's settings from a cluster's
// addonProfiles, as the front door stored them (key canonical, config
// validated).
func KeyVaultSettingsOf(profiles map[string]*armcontainerservice.ManagedClusterAddonProfile) KeyVaultSettings {
	out := KeyVaultSettings{RotationPollInterval: DefaultRotationPollInterval}
	if !Enabled(profiles, KeyVaultSecretsProviderAddon) {
		return out
	}
	ap := profiles[KeyVaultSecretsProviderAddon]
	out.Enabled = true
	if v := ap.Config["enableSecretRotation"]; v != nil {
		out.Rotation = strings.EqualFold(*v, "true")
	}
	if v := ap.Config["rotationPollInterval"]; v != nil {
		if d, err := time.ParseDuration(*v); err == nil && d > 0 {
			out.RotationPollInterval = d
		}
	}
	return out
}

package app

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/hosting"
	"github.com/slipway-dev/slipway/internal/secretsstore"
)

// clusterSecretsStore starts each running cluster's Key Vault Secrets
// Provider (its Secrets Store CSI driver and Azure provider), which acts
// only while the cluster's add-on is enabled.
type clusterSecretsStore struct {
	// client reads through the manager's cache: the settings are asked
	// at every mount and rotation.
	client     client.Reader
	vaults     secretsstore.Vaults
	principals secretsstore.Principals
	tenantID   string
}

func (s clusterSecretsStore) start(ctx context.Context, c *hosting.Cluster) (func(), error) {
	cfg, err := c.RESTConfig(hosting.Admin)
	if err != nil {
		return nil, err
	}
	d, err := secretsstore.Start(ctx, secretsstore.Options{
		Config: cfg, Vaults: s.vaults, Principals: s.principals, TenantID: s.tenantID,
		Settings: func() secretsstore.Settings { return s.settings(c.ID()) },
	})
	if err != nil {
		return nil, err
	}
	return d.Stop, nil
}

// settings are the add-on's settings in the cluster's profile, and the
// identities on its scale sets (off if the cluster cannot be read).
func (s clusterSecretsStore) settings(name string) secretsstore.Settings {
	mc, err := storedCluster(context.Background(), s.client, name)
	if err != nil {
		return secretsstore.Settings{KeyVaultSettings: addons.KeyVaultSettings{RotationPollInterval: addons.DefaultRotationPollInterval}}
	}
	p := mc.Properties
	out := secretsstore.Settings{KeyVaultSettings: addons.KeyVaultSettingsOf(p.AddonProfiles)}
	if out.Enabled {
		out.Identities = append(out.Identities, addons.KeyVaultSecretsProviderIdentity(*mc.ID, *p.NodeResourceGroup))
	}
	if mc.Identity != nil {
		out.Identities = append(out.Identities, addons.KubeletIdentity(*mc.ID, *p.NodeResourceGroup))
	}
	return out
}

package app

import (
	"context"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
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
	// The driver asks every second; the cluster is decoded again only
	// when it changed.
	var mu sync.Mutex
	var version string
	var last secretsstore.Settings
	settings := func() secretsstore.Settings {
		mc := &slipwayv1.ManagedCluster{}
		if err := s.client.Get(context.Background(), client.ObjectKey{Namespace: slipwayv1.Namespace, Name: c.ID()}, mc); err != nil {
			return settingsOf(nil)
		}
		mu.Lock()
		defer mu.Unlock()
		if mc.ResourceVersion != version {
			version, last = mc.ResourceVersion, settingsOf(mc)
		}
		return last
	}
	d, err := secretsstore.Start(ctx, secretsstore.Options{
		Config: cfg, Vaults: s.vaults, Principals: s.principals, TenantID: s.tenantID, Settings: settings,
	})
	if err != nil {
		return nil, err
	}
	return d.Stop, nil
}

// settingsOf are the add-on's settings in a cluster's profile, and the
// identities on its scale sets (off if the cluster is nil or unreadable).
func settingsOf(stored *slipwayv1.ManagedCluster) secretsstore.Settings {
	off := secretsstore.Settings{KeyVaultSettings: addons.KeyVaultSettings{RotationPollInterval: addons.DefaultRotationPollInterval}}
	if stored == nil {
		return off
	}
	mc, err := decodeCluster(stored)
	if err != nil {
		return off
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

package containerservice

import (
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/slipway-dev/slipway/internal/arm"
)

func TestNormalizeAddons(t *testing.T) {
	kv := func(config map[string]*string) map[string]*armcontainerservice.ManagedClusterAddonProfile {
		return map[string]*armcontainerservice.ManagedClusterAddonProfile{"AZUREKeyvaultSecretsProvider": {Enabled: to.Ptr(true), Config: config,
			Identity: &armcontainerservice.ManagedClusterAddonProfileIdentity{ClientID: to.Ptr("sent by the client")}}}
	}
	p := &armcontainerservice.ManagedClusterProperties{AddonProfiles: kv(nil)}
	if err := normalizeAddons(p, nil); err != nil {
		t.Fatal(err)
	}
	got := p.AddonProfiles["azureKeyvaultSecretsProvider"]
	if len(p.AddonProfiles) != 1 || got == nil || *got.Config["enableSecretRotation"] != "false" || *got.Config["rotationPollInterval"] != "2m" || got.Identity != nil {
		t.Errorf("defaults: %+v", p.AddonProfiles)
	}

	// A PUT without add-ons keeps the cluster's.
	next := &armcontainerservice.ManagedClusterProperties{}
	if err := normalizeAddons(next, &armcontainerservice.ManagedCluster{Properties: p}); err != nil || next.AddonProfiles["azureKeyvaultSecretsProvider"] == nil {
		t.Errorf("kept: %+v (%v)", next.AddonProfiles, err)
	}

	for name, profiles := range map[string]map[string]*armcontainerservice.ManagedClusterAddonProfile{
		"rotation not a bool":   kv(map[string]*string{"enableSecretRotation": to.Ptr("yes")}),
		"interval not a time":   kv(map[string]*string{"rotationPollInterval": to.Ptr("2 minutes")}),
		"interval not positive": kv(map[string]*string{"rotationPollInterval": to.Ptr("-1s")}),
		"enabled missing":       {"azureKeyvaultSecretsProvider": {}},
		"listed twice": {"azureKeyvaultSecretsProvider": {Enabled: to.Ptr(true)},
			"azurekeyvaultsecretsprovider": {Enabled: to.Ptr(false)}},
	} {
		err := normalizeAddons(&armcontainerservice.ManagedClusterProperties{AddonProfiles: profiles}, nil)
		var ae *arm.Error
		if !errors.As(err, &ae) || ae.Code != "InvalidParameter" {
			t.Errorf("%s: %v, want InvalidParameter", name, err)
		}
	}
}

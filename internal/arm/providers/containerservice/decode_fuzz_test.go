package containerservice

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// FuzzNormalizeCluster feeds arbitrary bodies through what a managed cluster
// PUT does before anything is stored: decoding with the SDK's models,
// defaulting and validation. It must never panic, and a body it accepts must
// be a cluster Slipway can run: a system pool, every pool valid, and JSON
// that decodes again. Seeds are in testdata/fuzz/FuzzNormalizeCluster.
func FuzzNormalizeCluster(f *testing.F) {
	f.Add([]byte(`{"location":"local","properties":{"dnsPrefix":"aks1","kubernetesVersion":"","agentPoolProfiles":[{"name":"nodepool1","count":1,"mode":"System","vmSize":"Standard_DS2_v2"}]}}`))
	s := &Provider{Server: arm.New(arm.Config{SubscriptionID: "00000000-0000-0000-0000-000000000001", Location: "local"})}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in armcontainerservice.ManagedCluster
		if err := arm.DecodeJSON(body, &in); err != nil {
			if _, ok := err.(*arm.Error); !ok {
				t.Fatalf("decode error is not an ARM error: %v", err)
			}
			return
		}
		if err := s.normalizeCluster(context.Background(), "rg", "aks", &in, nil); err != nil {
			if _, ok := err.(*arm.Error); !ok {
				t.Fatalf("validation error is not an ARM error: %v", err)
			}
			return
		}
		system := false
		for _, ap := range in.Properties.AgentPoolProfiles {
			var props nodepool.Properties
			if err := convert(ap, &props); err != nil {
				t.Fatal(err)
			}
			if err := nodepool.Validate(&props); err != nil {
				t.Fatalf("accepted an invalid pool: %v", err)
			}
			system = system || *props.Mode == armcontainerservice.AgentPoolModeSystem
		}
		if !system {
			t.Fatal("accepted a cluster without a system pool")
		}
		raw, err := json.Marshal(&in)
		if err != nil {
			t.Fatal(err)
		}
		var again armcontainerservice.ManagedCluster
		if err := json.Unmarshal(raw, &again); err != nil {
			t.Fatalf("stored form does not decode: %v", err)
		}
	})
}

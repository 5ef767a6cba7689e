package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// BenchmarkSecretGet measures GetSecret through azsecrets against one
// vault from 16 concurrent clients (each its own client, so each pays one
// challenge round trip first), and reports the median and 99th percentile
// latency of b.N gets per client.
//
//	make bench-keyvault
func BenchmarkSecretGet(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group = "kvbench-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	vaults, err := armkeyvault.NewVaultsClient(s.conn.SubscriptionID, s.credential(b, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		b.Fatal(err)
	}
	name := "kvb-" + strings.ToLower(newGUID()[:8])
	poller, err := vaults.BeginCreateOrUpdate(ctx, group, name, armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr(s.conn.Location),
		Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(s.conn.TenantID), SKU: &armkeyvault.SKU{Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableRbacAuthorization: to.Ptr(true)}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	v, err := poller.PollUntilDone(ctx, poll)
	if err != nil {
		b.Fatal(err)
	}
	s.assign(b, "00482a5a-887f-4fb3-b363-3b7fe8e74483", s.conn.ObjectID, *v.ID) // Key Vault Administrator
	writer := secretsClient(b, s, *v.Properties.VaultURI)
	for {
		if _, err = writer.SetSecret(ctx, "bench", azsecrets.SetSecretParameters{Value: to.Ptr("value")}, nil); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // the role assignment reaches the cache
	}
	clients := 16
	if n, err := strconv.Atoi(os.Getenv("SLIPWAY_KV_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	var mu sync.Mutex
	var latencies []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := secretsClient(b, s, *v.Properties.VaultURI)
			var mine []time.Duration
			for range b.N {
				start := time.Now()
				if _, err := sc.GetSecret(ctx, "bench", "", nil); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	fmt.Printf("GetSecret, %d clients × %d gets: p50 %v, p99 %v\n", clients, b.N, p(0.5).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond))
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// BenchmarkVersionUpgrade upgrades a fresh cluster from 1.35.4 to 1.36.3
// per iteration: the control plane alone, then a pool of 10 nodes running
// one pod each at maxSurge 33%. It prints, and reports as the median over
// the iterations:
//
//   - the control-plane upgrade's time, PUT to Succeeded;
//   - the API server's unavailability during it, twice: the longest stretch
//     a client on a kept-alive connection (kubectl, controllers) saw
//     requests fail, and the longest a client opening a connection per
//     request saw;
//   - the pool upgrade's time against the least the timing model allows
//     (the surge nodes' provisioning plus one reimage per batch), as
//     BenchmarkNodeImageUpgrade does.
//
// make bench-versions runs it three times.
func BenchmarkVersionUpgrade(b *testing.B) {
	t := b
	s := serve(t)
	model := timingModel(b)
	scale := model.Scale
	c := newClients(t, s)
	ctx := context.Background()
	const group, size, surge = "versionbench-rg", 10, "33%"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	batches := (size + surgeCount(surge, size) - 1) / surgeCount(surge, size)
	least := model.NodeReady(armcontainerservice.OSDiskTypeManaged) + time.Duration(batches)*model.Reimage(armcontainerservice.OSDiskTypeManaged)
	fmt.Printf("time scale %g; pool of %d nodes at maxSurge %s: %d batches, at least %.1fs\n", scale, size, surge, batches, least.Seconds())
	fmt.Printf("%4s %14s %17s %16s %12s %6s\n", "run", "control plane s", "kept-alive gap s", "fresh-conn gap s", "pool s", "ratio")
	var cp, kept, fresh, poolWall, ratio []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("versionbench-%d", i)
		work := pool("work", armcontainerservice.AgentPoolModeUser, size)
		work.UpgradeSettings = &armcontainerservice.AgentPoolUpgradeSettings{MaxSurge: to.Ptr(surge)}
		spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), work)
		spec.Properties.KubernetesVersion = to.Ptr("1.35.4")
		putCluster(t, c, group, name, spec)
		cfg := adminConfig(t, c, group, name)
		cs := kubernetes.NewForConfigOrDie(cfg)
		workload(b, cs, "work", size)

		keptGap, freshGap := watchAPI(cs), watchAPIFresh(b, cfg)
		began := time.Now()
		cpOnly := withVersion(spec, "1.36.3")
		for _, p := range cpOnly.Properties.AgentPoolProfiles {
			p.OrchestratorVersion = to.Ptr("1.35.4")
		}
		if _, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, cpOnly, nil); err != nil {
			b.Fatal(err)
		}
		waitSucceeded(b, "cluster "+name, func() (*string, error) {
			got, err := c.clusters.Get(ctx, group, name, nil)
			if err != nil {
				return nil, err
			}
			return got.Properties.ProvisioningState, nil
		})
		cp = append(cp, time.Since(began).Seconds())
		kept, fresh = append(kept, keptGap().Seconds()), append(fresh, freshGap().Seconds())

		got, err := c.pools.Get(ctx, group, name, "work", nil)
		if err != nil {
			b.Fatal(err)
		}
		got.Properties.OrchestratorVersion = to.Ptr("1.36.3")
		began = time.Now()
		if _, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "work", got.AgentPool, nil); err != nil {
			b.Fatal(err)
		}
		waitSucceeded(b, "pool work of "+name, func() (*string, error) {
			got, err := c.pools.Get(ctx, group, name, "work", nil)
			if err != nil {
				return nil, err
			}
			return got.Properties.ProvisioningState, nil
		})
		poolWall = append(poolWall, time.Since(began).Seconds())
		ratio = append(ratio, poolWall[i]/least.Seconds())
		kubeletVersions(t, cs, "work", "v1.36.3")
		fmt.Printf("%4d %14.2f %17.2f %16.2f %12.2f %6.2f\n", i+1, cp[i], kept[i], fresh[i], poolWall[i], ratio[i])

		b.StopTimer()
		del, err := c.clusters.BeginDelete(ctx, group, name, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := del.PollUntilDone(ctx, poll); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	fmt.Printf("%4s %14.2f %17.2f %16.2f %12.2f %6.2f\n", "med", median(cp), median(kept), median(fresh), median(poolWall), median(ratio))
	b.ReportMetric(median(cp), "cp-upgrade-s")
	b.ReportMetric(median(kept), "kept-alive-gap-s")
	b.ReportMetric(median(fresh), "fresh-conn-gap-s")
	b.ReportMetric(median(ratio), "pool-ratio")
}

// median of a sample; the middle one of three.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// watchAPIFresh is watchAPI for a client that opens a new TLS connection
// for each request (a script's curl, a fresh kubectl): it sees what a
// kept-alive client does not, an API server not yet listening or not
// yet ready on the port.
func watchAPIFresh(b *testing.B, cfg *rest.Config) func() time.Duration {
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true}}
	return longestFailure(func() bool {
		req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/readyz", nil)
		if cfg.BearerToken != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitSucceeded polls a provisioning state every 100 ms until its
// operation ends, so that the time measured is the operation's, not the
// SDK's poll interval.
func waitSucceeded(b *testing.B, what string, state func() (*string, error)) {
	for {
		got, err := state()
		if err != nil {
			b.Fatal(err)
		}
		switch *got {
		case "Succeeded":
			return
		case "Failed", "Canceled":
			b.Fatalf("%s: %s", what, *got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

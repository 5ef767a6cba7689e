package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/policyinsights/armpolicyinsights"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armpolicy"
)

// BenchmarkPolicyEnforcement measures, b.N times, the time from an
// assignment's PUT (Deny, cpuLimit 500m, at a cluster with the Azure
// Policy add-on) to the cluster's API server refusing a pod asking 1 CPU
// (a dry-run create, polled every 50 ms), and from its DELETE to the same
// pod admitted again. It reports the medians.
//
//	make bench-policy
func BenchmarkPolicyEnforcement(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group, name = "policybench-rg", "policybench-aks"
	mc := addonCluster(b, s, c, group, name, "azurepolicy", 1)
	assignments, err := armpolicy.NewAssignmentsClient(s.conn.SubscriptionID, s.credential(b, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		b.Fatal(err)
	}
	cs := adminClient(b, c, group, name)
	waitServiceAccount(b, cs)
	greedy := podAsking("default", "greedy", "1", "256Mi")
	until := func(refused bool) time.Duration {
		start := time.Now()
		for time.Since(start) < time.Minute {
			if err := admits(ctx, cs, greedy); (err != nil) == refused {
				return time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.Fatalf("not %v after a minute", map[bool]string{true: "refused", false: "admitted"}[refused])
		return 0
	}
	events, err := armpolicyinsights.NewPolicyEventsClient(s.credential(b, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		b.Fatal(err)
	}
	// recorded is how long a refusal takes to be a policy event: read
	// from the API server's audit log and written to the store.
	recorded := func(assignment, pod string) time.Duration {
		start := time.Now()
		if admits(ctx, cs, podAsking("default", pod, "1", "256Mi")) == nil {
			b.Fatalf("%s admitted", pod)
		}
		for time.Since(start) < time.Minute {
			page, err := events.NewListQueryResultsForResourcePager(armpolicyinsights.PolicyEventsResourceTypeDefault, *mc.ID,
				&armpolicyinsights.QueryOptions{Filter: to.Ptr("policyAssignmentName eq '" + assignment + "'"), Expand: to.Ptr("components")}, nil).NextPage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for _, ev := range page.Value {
				if len(ev.Components) == 1 && *ev.Components[0].Name == pod {
					return time.Since(start)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.Fatalf("no event of %s after a minute", pod)
		return 0
	}
	var enforce, lift, record []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := assignments.Create(ctx, *mc.ID, fmt.Sprintf("bench-%d", i), limitsAssignment("Deny", "500m", "512Mi"), nil); err != nil {
			b.Fatal(err)
		}
		until(true)
		enforce = append(enforce, time.Since(start))
		record = append(record, recorded(fmt.Sprintf("bench-%d", i), fmt.Sprintf("refused-%d", i)))
		start = time.Now()
		if _, err := assignments.Delete(ctx, *mc.ID, fmt.Sprintf("bench-%d", i), nil); err != nil {
			b.Fatal(err)
		}
		until(false)
		lift = append(lift, time.Since(start))
	}
	b.StopTimer()
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	b.ReportMetric(median(enforce).Seconds(), "put-to-enforced-s")
	b.ReportMetric(median(lift).Seconds(), "delete-to-lifted-s")
	b.ReportMetric(median(record).Seconds(), "denial-to-event-s")
	fmt.Printf("Azure Policy, %d assignments: PUT → enforced median %v, DELETE → lifted median %v, denial → policy event median %v\n", b.N,
		median(enforce).Round(time.Millisecond), median(lift).Round(time.Millisecond), median(record).Round(time.Millisecond))
}

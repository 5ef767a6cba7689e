package metering

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// BenchmarkEvaluate answers a month-to-date query over 30 days of 100
// resource groups, each with ten scale sets shared out among five
// namespaces: 3,000 records, 30,000 lines.
func BenchmarkEvaluate(b *testing.B) {
	var records []*slipwayv1.UsageRecord
	start := at("2026-11-01T00:00:00Z")
	for g := range 100 {
		rec := NewRecord("sub", fmt.Sprintf("MC_rg%d_c_eastus", g), start)
		for i := range 10 {
			r := vmRate(fmt.Sprintf("/subscriptions/sub/resourceGroups/MC_rg%d_c_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-p%d-1-vmss", g, i),
				"D2s v3", OnDemand, 3, 0.096, map[string]string{"team": fmt.Sprint(i % 3)})
			for n := range 5 {
				r.Split = append(r.Split, slipwayv1.UsageShare{Namespace: fmt.Sprintf("ns%d", n), Workload: "Deployment/web", PartsPerMillion: 150000})
			}
			rec.Status.Rates = append(rec.Status.Rates, r)
		}
		records = append(records, Advance(rec, start.Add(30*24*time.Hour-time.Hour), Downtime{})...)
	}
	for _, c := range []struct{ name, body string }{
		{"daily-by-group", `{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"granularity":"Daily","aggregation":{"c":{"name":"Cost","function":"Sum"}},"grouping":[{"type":"Dimension","name":"ResourceGroupName"}]}}`},
		{"by-namespace-filtered", `{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"aggregation":{"c":{"name":"Cost","function":"Sum"}},"grouping":[{"type":"Dimension","name":"Namespace"}],"filter":{"tags":{"name":"team","operator":"In","values":["1"]}}}}`},
	} {
		var q Query
		if err := json.Unmarshal([]byte(c.body), &q); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Evaluate(&q, records, at("2026-11-30T23:00:00Z")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

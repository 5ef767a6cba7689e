package metering

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

func vmRate(id, meter, model string, units int64, usdPerHour float64, tags map[string]string) slipwayv1.UsageRate {
	return slipwayv1.UsageRate{
		UsageMeter: slipwayv1.UsageMeter{ResourceID: id, ResourceType: "microsoft.compute/virtualmachinescalesets", ServiceName: "Virtual Machines",
			MeterCategory: "Virtual Machines", Meter: meter, PricingModel: model, UnitOfMeasure: perHour, Tags: tags},
		Units: units, NanoUSDPerUnitHour: nano(usdPerHour),
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestAdvanceSplitsDaysAndSkipsDowntime(t *testing.T) {
	rec := NewRecord("sub", "MC_rg", at("2026-11-29T22:00:00Z"))
	rec.Status.Rates = []slipwayv1.UsageRate{vmRate("/subscriptions/sub/resourceGroups/MC_rg/providers/Microsoft.Compute/virtualMachineScaleSets/a", "D2s v3", OnDemand, 2, 0.1, nil)}
	// Up until 23:30, down until 00:30 the next day, up again to 02:00.
	down := Downtime{From: at("2026-11-29T23:30:00Z"), To: at("2026-11-30T00:30:00Z")}
	recs := Advance(rec, at("2026-11-30T02:00:00Z"), down)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want the old day's and a new one", len(recs))
	}
	if got := recs[0].Status.Lines[0].UnitMillis; got != 2*int64(90*time.Minute/time.Millisecond) {
		t.Errorf("first day: %d unit-ms, want two VMs for 90 minutes", got)
	}
	if got := recs[0].Status.Lines[0].NanoUSD; got != nano(2*0.1*1.5) {
		t.Errorf("first day: %d nano-USD, want %d", got, nano(0.3))
	}
	second := recs[1]
	if second.Spec.Date != "2026-11-30" || second.Name != RecordName("sub", "MC_rg", at("2026-11-30T00:00:00Z")) {
		t.Errorf("second record is %s for %s", second.Name, second.Spec.Date)
	}
	if got := second.Status.Lines[0].UnitMillis; got != 2*int64(90*time.Minute/time.Millisecond) {
		t.Errorf("second day: %d unit-ms, want two VMs for 90 minutes (00:30 to 02:00)", got)
	}
	if len(second.Status.Rates) != 1 || !second.Status.AccruedUntil.Time.Equal(at("2026-11-30T02:00:00Z")) {
		t.Errorf("second record carries rates %v, accrued until %v", second.Status.Rates, second.Status.AccruedUntil)
	}

	// Advancing again to the same moment changes nothing.
	again := Advance(second, at("2026-11-30T02:00:00Z"), down)
	if len(again) != 1 || again[0].Status.Lines[0].UnitMillis != second.Status.Lines[0].UnitMillis {
		t.Errorf("a second advance to the same moment counted again: %+v", again[0].Status.Lines)
	}
}

func TestAdvanceWithoutRatesMakesNoRecordPerDay(t *testing.T) {
	rec := NewRecord("sub", "rg", at("2026-11-01T10:00:00Z"))
	recs := Advance(rec, at("2026-11-30T10:00:00Z"), Downtime{})
	if len(recs) != 2 || recs[1].Spec.Date != "2026-11-30" || len(recs[1].Status.Lines) != 0 {
		t.Fatalf("idle month: %d records, last %+v", len(recs), recs[len(recs)-1].Spec)
	}
}

func TestPoolRates(t *testing.T) {
	props := &nodepool.Properties{VMSize: to.Ptr("Standard_D2s_v3"), OSDiskType: to.Ptr(armcontainerservice.OSDiskTypeManaged), OSDiskSizeGB: to.Ptr[int32](128)}
	p := Pool{Subscription: "sub", NodeResourceGroup: "MC_rg_c_eastus", Location: "eastus", ClusterID: "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
		Name: "np", Props: props, Running: []int{0, 1}, Allocated: []int{0, 1, 2}}
	rates := PoolRates(p)
	if len(rates) != 4 {
		t.Fatalf("got %d rates, want compute and three OS disks: %+v", len(rates), rates)
	}
	vm := rates[0]
	if vm.Units != 2 || vm.Meter != "D2s v3" || vm.MeterSubCategory != "Dsv3 Series" || vm.PricingModel != OnDemand || vm.NanoUSDPerUnitHour != nano(0.096) {
		t.Errorf("compute rate %+v", vm)
	}
	if disk := rates[1]; disk.Meter != "P10 LRS Disk" || disk.UnitOfMeasure != perMonth || disk.NanoUSDPerUnitHour != nano(19.71/HoursPerMonth) || disk.ResourceID == rates[2].ResourceID {
		t.Errorf("OS disk rate %+v", disk)
	}

	props.ScaleSetPriority = to.Ptr(armcontainerservice.ScaleSetPrioritySpot)
	props.OSDiskType = to.Ptr(armcontainerservice.OSDiskTypeEphemeral)
	spot := PoolRates(p)
	if len(spot) != 1 || spot[0].Meter != "D2s v3 Spot" || spot[0].PricingModel != Spot || spot[0].NanoUSDPerUnitHour != nano(0.096*nodepool.SpotDiscount) {
		t.Errorf("Spot pool with ephemeral OS disks: %+v", spot)
	}
}

func TestDiskPrice(t *testing.T) {
	for _, c := range []struct {
		sku   string
		size  int32
		meter string
		month float64
	}{
		{"Premium_LRS", 5, "P2 LRS Disk", 1.54},
		{"Premium_LRS", 128, "P10 LRS Disk", 19.71},
		{"StandardSSD_LRS", 129, "E15 LRS Disk", 19.20},
		{"Standard_LRS", 1, "S4 LRS Disk", 1.54},
		{"Premium_ZRS", 128, "P10 ZRS Disk", 19.71 * 1.5},
		{"PremiumV2_LRS", 100, "PremiumV2 Provisioned Capacity", 8.12},
	} {
		meter, perHour, ok := DiskPrice(c.sku, c.size)
		if !ok || meter != c.meter || math.Abs(perHour*HoursPerMonth-c.month) > 1e-9 {
			t.Errorf("DiskPrice(%s, %d) = %q, %v a month, %v; want %q, %v", c.sku, c.size, meter, perHour*HoursPerMonth, ok, c.meter, c.month)
		}
	}
	if _, _, ok := DiskPrice("Standard_ZRS", 10); ok {
		t.Error("a SKU managed disks do not have was priced")
	}
}

func TestPremiumIO(t *testing.T) {
	for size, want := range map[string]bool{"Standard_D2s_v3": true, "Standard_DS2_v2": true, "Standard_B2s": true, "Standard_D2ds_v5": true,
		"Standard_D2_v3": false, "Standard_A2_v2": false, "Standard_NC6s_v3": true, "Standard_F4s_v2": true} {
		if premiumIO(size) != want {
			t.Errorf("premiumIO(%s) = %v", size, !want)
		}
	}
}

// records is a day of usage in two groups: an on-demand and a Spot pool in
// a node group, tagged by team, and a disk in a user's group.
func records() []*slipwayv1.UsageRecord {
	nodes := NewRecord("sub", "MC_rg_c_eastus", at("2026-11-28T00:00:00Z"))
	nodes.Status.Rates = []slipwayv1.UsageRate{
		vmRate("/subscriptions/sub/resourceGroups/MC_rg_c_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-reg-1-vmss", "D2s v3", OnDemand, 3, 0.096, map[string]string{"team": "a"}),
		vmRate("/subscriptions/sub/resourceGroups/MC_rg_c_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-spot-1-vmss", "D2s v3 Spot", Spot, 3, 0.096*0.2, map[string]string{"Team": "b"}),
	}
	mine := NewRecord("sub", "rg", at("2026-11-28T00:00:00Z"))
	mine.Status.Rates = []slipwayv1.UsageRate{diskRate("/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/disks/d1", "eastus", "P10 LRS Disk", 19.71/HoursPerMonth, nil)}
	var out []*slipwayv1.UsageRecord
	for _, r := range []*slipwayv1.UsageRecord{nodes, mine} {
		out = append(out, Advance(r, at("2026-11-29T12:00:00Z"), Downtime{})...)
	}
	return out
}

func evaluate(t *testing.T, body string) [][]any {
	t.Helper()
	var q Query
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		t.Fatal(err)
	}
	props, err := Evaluate(&q, records(), at("2026-11-29T12:00:00Z"))
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var cols []string
	for _, c := range props.Columns {
		cols = append(cols, *c.Name)
	}
	return append([][]any{{cols}}, props.Rows...)
}

func near(a any, b float64) bool {
	f, ok := a.(float64)
	return ok && math.Abs(f-b) < 1e-6
}

func TestEvaluateGroupsAndFilters(t *testing.T) {
	// Daily by resource group: a full day and half a day.
	rows := evaluate(t, `{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"granularity":"Daily","aggregation":{"totalCost":{"name":"Cost","function":"Sum"}},"grouping":[{"type":"Dimension","name":"ResourceGroupName"}]}}`)
	if got := rows[0][0].([]string); len(got) != 4 || got[0] != "Cost" || got[1] != "UsageDate" || got[2] != "ResourceGroupName" || got[3] != "Currency" {
		t.Fatalf("columns %v", got)
	}
	if len(rows) != 5 {
		t.Fatalf("want 2 days × 2 groups, got %v", rows[1:])
	}
	day := 3 * (0.096 + 0.096*0.2) * 24
	if r := rows[1]; r[1] != 20261128 || r[2] != "mc_rg_c_eastus" || !near(r[0], day) || r[3] != "USD" {
		t.Errorf("first row %v, want %v for the node group on the 28th", r, day)
	}
	if r := rows[4]; r[1] != 20261129 || r[2] != "rg" || !near(r[0], 19.71/HoursPerMonth*12) {
		t.Errorf("last row %v", r)
	}

	// The Spot pool costs a fifth of the regular one, by resource.
	rows = evaluate(t, `{"type":"Usage","timeframe":"Custom","timePeriod":{"from":"2026-11-28T00:00:00+00:00","to":"2026-11-29"},"dataset":{"granularity":"None","aggregation":{"c":{"name":"PreTaxCost","function":"Sum"},"q":{"name":"UsageQuantity","function":"Sum"}},"grouping":[{"type":"Dimension","name":"ResourceId"}],"filter":{"dimensions":{"name":"ServiceName","operator":"In","values":["virtual machines"]}}}}`)
	if len(rows) != 3 {
		t.Fatalf("want the two scale sets, got %v", rows[1:])
	}
	reg, spot := rows[1], rows[2]
	if spot[2].(string) < reg[2].(string) {
		reg, spot = spot, reg
	}
	if !near(spot[0].(float64)/reg[0].(float64), 0.2) || !near(reg[1], 3*36) {
		t.Errorf("regular %v, Spot %v: want a cost ratio of 0.2 and 108 VM-hours each", reg, spot)
	}

	// Tags: keys match case-insensitively, untagged cost has no value.
	rows = evaluate(t, `{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"aggregation":{"t":{"name":"Cost","function":"Sum"}},"grouping":[{"type":"TagKey","name":"team"}]}}`)
	if len(rows) != 4 || rows[1][1] != "team" || rows[1][2] != nil || rows[2][2] != "a" || rows[3][2] != "b" {
		t.Errorf("by tag: %v", rows)
	}

	// and/or.
	rows = evaluate(t, `{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"filter":{"and":[{"tags":{"name":"team","operator":"In","values":["b"]}},{"or":[{"dimensions":{"name":"PricingModel","operator":"In","values":["Spot"]}},{"dimensions":{"name":"ResourceGroup","operator":"In","values":["nope"]}}]}]}}}`)
	if len(rows) != 2 || !near(rows[1][0], 3*0.096*0.2*36) {
		t.Errorf("filtered to the Spot pool: %v", rows)
	}
}

func TestEvaluateRefuses(t *testing.T) {
	for _, body := range []string{
		`{"type":"Forecast","timeframe":"MonthToDate","dataset":{}}`,
		`{"type":"ActualCost","timeframe":"Yesterday","dataset":{}}`,
		`{"type":"ActualCost","timeframe":"Custom","dataset":{}}`,
		`{"type":"ActualCost","timeframe":"Custom","timePeriod":{"from":"2026-11-02","to":"2026-11-01"},"dataset":{}}`,
		`{"type":"ActualCost","timeframe":"Custom","timePeriod":{"from":"2024-11-02","to":"2026-11-01"},"dataset":{}}`,
		`{"type":"ActualCost","timeframe":"MonthToDate"}`,
		`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"granularity":"Hourly"}}`,
		`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"aggregation":{"x":{"name":"Cost","function":"Avg"}}}}`,
		`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"grouping":[{"type":"Dimension","name":"Flavour"}]}}`,
		`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"grouping":[{"type":"Dimension","name":"Meter"},{"type":"Dimension","name":"ResourceId"},{"type":"Dimension","name":"ResourceGroup"}]}}`,
		`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"filter":{"and":[{"dimensions":{"name":"Meter","operator":"In","values":["x"]}}]}}}`,
		`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"filter":{"dimensions":{"name":"Meter","operator":"Contains","values":["x"]}}}}`,
	} {
		var q Query
		if err := json.Unmarshal([]byte(body), &q); err != nil {
			t.Fatal(err)
		}
		_, err := Evaluate(&q, records(), at("2026-11-29T12:00:00Z"))
		if _, ok := err.(*Invalid); !ok {
			t.Errorf("%s: got %v, want an invalid query", body, err)
		}
	}
}

func TestAllocateByRequests(t *testing.T) {
	node := func(name, pool string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{poolLabel: pool}},
			Status: corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}}}
	}
	pod := func(ns, name, node, cpu, mem string, owner *metav1.OwnerReference, labels map[string]string) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}}}}}
		if owner != nil {
			owner.Controller = to.Ptr(true)
			p.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return p
	}
	rs := &metav1.OwnerReference{Kind: "ReplicaSet", Name: "web-5d8f7c", APIVersion: "apps/v1"}
	hash := map[string]string{"pod-template-hash": "5d8f7c"}
	shares := Allocate(
		[]corev1.Node{node("a", "np"), node("b", "np"), node("s", "system")},
		[]corev1.Pod{
			pod("shop", "web-1", "a", "1", "4Gi", rs, hash),
			pod("shop", "web-2", "b", "1", "4Gi", rs, hash),
			pod("shop", "bare", "a", "500m", "0", nil, nil),
			pod("kube-system", "coredns", "s", "2", "8Gi", &metav1.OwnerReference{Kind: "Deployment", Name: "coredns"}, nil),
			pod("shop", "pending", "", "1", "1Gi", nil, nil),
		})
	np := shares["np"]
	if len(np) != 2 || np[0].Namespace != "shop" || np[0].Workload != "" || np[1].Workload != "Deployment/web" {
		t.Fatalf("np shares %+v", np)
	}
	// Half of each node's CPU and memory is half of each node: half the
	// pool. The bare pod has a quarter of one node's CPU, and CPU is
	// 2×0.031611 of the node's 2×0.031611+8×0.004237.
	cpuWeight := 2 * cpuHourWeight / (2*cpuHourWeight + 8*gibHourWeight)
	if np[1].PartsPerMillion != 500000 {
		t.Errorf("web takes %d ppm of the pool, want half", np[1].PartsPerMillion)
	}
	if want := int64(cpuWeight * 0.25 / 2 * 1e6); np[0].PartsPerMillion != want {
		t.Errorf("the bare pod takes %d ppm, want %d", np[0].PartsPerMillion, want)
	}
	if sys := shares["system"]; len(sys) != 1 || sys[0].PartsPerMillion != 1e6 || sys[0].Namespace != "kube-system" {
		t.Errorf("system pool %+v: want all of it to coredns", sys)
	}
}

func TestSplitLinesAddUp(t *testing.T) {
	rec := NewRecord("sub", "MC_rg", at("2026-11-30T00:00:00Z"))
	rate := vmRate("/x/vmss", "D2s v3", OnDemand, 3, 0.096, nil)
	rate.Split = []slipwayv1.UsageShare{{Namespace: "shop", Workload: "Deployment/web", PartsPerMillion: 600000}, {Namespace: "kube-system", PartsPerMillion: 100000}}
	rec.Status.Rates = []slipwayv1.UsageRate{rate}
	Advance(rec, at("2026-11-30T01:00:00Z"), Downtime{})
	rows := func(body string) [][]any {
		var q Query
		if err := json.Unmarshal([]byte(body), &q); err != nil {
			t.Fatal(err)
		}
		props, err := Evaluate(&q, []*slipwayv1.UsageRecord{rec}, at("2026-11-30T01:00:00Z"))
		if err != nil {
			t.Fatal(err)
		}
		return props.Rows
	}
	got := rows(`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{"grouping":[{"type":"Dimension","name":"Namespace"}]}}`)
	want := map[string]float64{"shop": 0.6, "kube-system": 0.1, IdleNamespace: 0.3}
	if len(got) != 3 {
		t.Fatalf("rows %v", got)
	}
	for _, r := range got {
		if !near(r[0], want[r[1].(string)]*3*0.096) {
			t.Errorf("namespace %v costs %v, want %v", r[1], r[0], want[r[1].(string)]*3*0.096)
		}
	}
	if total := rows(`{"type":"ActualCost","timeframe":"MonthToDate","dataset":{}}`); len(total) != 1 || !near(total[0][0], 3*0.096) {
		t.Errorf("the split changed the total: %v", total)
	}
}

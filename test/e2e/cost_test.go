package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/costmanagement/armcostmanagement/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// costRows runs a query with the SDK and returns its rows keyed by their
// column names.
func costRows(t testing.TB, q *armcostmanagement.QueryClient, scope string, def armcostmanagement.QueryDefinition) []map[string]any {
	t.Helper()
	res, err := q.Usage(context.Background(), scope, def, nil)
	if err != nil {
		t.Fatalf("query at %s: %v", scope, err)
	}
	var rows []map[string]any
	for _, r := range res.Properties.Rows {
		row := map[string]any{}
		for i, c := range res.Properties.Columns {
			row[*c.Name] = r[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// byResource is the month's cost and quantity per resource ID, of one
// service.
func byResource(service string) armcostmanagement.QueryDefinition {
	return armcostmanagement.QueryDefinition{
		Type: to.Ptr(armcostmanagement.ExportTypeActualCost), Timeframe: to.Ptr(armcostmanagement.TimeframeTypeMonthToDate),
		Dataset: &armcostmanagement.QueryDataset{
			Aggregation: map[string]*armcostmanagement.QueryAggregation{
				"cost":     {Name: to.Ptr("Cost"), Function: to.Ptr(armcostmanagement.FunctionTypeSum)},
				"quantity": {Name: to.Ptr("UsageQuantity"), Function: to.Ptr(armcostmanagement.FunctionTypeSum)},
			},
			Grouping: []*armcostmanagement.QueryGrouping{{Type: to.Ptr(armcostmanagement.QueryColumnTypeDimension), Name: to.Ptr("ResourceId")}},
			Filter: &armcostmanagement.QueryFilter{Dimensions: &armcostmanagement.QueryComparisonExpression{
				Name: to.Ptr("ServiceName"), Operator: to.Ptr(armcostmanagement.QueryOperatorTypeIn), Values: []*string{to.Ptr(service)}}},
		},
	}
}

// scaleSetRow is the row of a pool's scale set.
func scaleSetRow(rows []map[string]any, pool string) map[string]any {
	for _, r := range rows {
		if strings.Contains(r["ResourceId"].(string), "/virtualmachinescalesets/aks-"+pool+"-") {
			return r
		}
	}
	return nil
}

// TestCostQuery: what a Spot and a regular pool cost, as Cost Management's
// query API answers through the official SDK.
func TestCostQuery(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "cost-rg", "cost-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	regular, spot := pool("regular", armcontainerservice.AgentPoolModeUser, 2), pool("spot", armcontainerservice.AgentPoolModeUser, 2)
	spot.ScaleSetPriority, spot.SpotMaxPrice = to.Ptr(armcontainerservice.ScaleSetPrioritySpot), to.Ptr[float32](-1)
	mc := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), regular, spot)
	mc.SKU = &armcontainerservice.ManagedClusterSKU{Name: to.Ptr(armcontainerservice.ManagedClusterSKUNameBase), Tier: to.Ptr(armcontainerservice.ManagedClusterSKUTierStandard)}
	mc.Tags = map[string]*string{"team": to.Ptr("payments")}
	mc.Properties.MetricsProfile = &armcontainerservice.ManagedClusterMetricsProfile{CostAnalysis: &armcontainerservice.ManagedClusterCostAnalysis{Enabled: to.Ptr(true)}}
	p, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, mc, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	nodeGroup := "/subscriptions/" + s.conn.SubscriptionID + "/resourceGroups/" + *created.Properties.NodeResourceGroup
	clusterScope := *created.ID
	q, err := armcostmanagement.NewQueryClient(s.credential(t, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // let the pools run a while

	t.Run("a Spot VM-hour costs a fifth of a regular one", func(t *testing.T) {
		rows := costRows(t, q, nodeGroup, byResource("Virtual Machines"))
		reg, sp := scaleSetRow(rows, "regular"), scaleSetRow(rows, "spot")
		if reg == nil || sp == nil || scaleSetRow(rows, "system") == nil {
			t.Fatalf("no scale set rows for every pool: %v", rows)
		}
		regRate, spotRate := reg["Cost"].(float64)/reg["UsageQuantity"].(float64), sp["Cost"].(float64)/sp["UsageQuantity"].(float64)
		if math.Abs(spotRate/regRate-0.2) > 1e-3 {
			t.Errorf("Spot %v USD per VM-hour, regular %v: ratio %v, want 0.2", spotRate, regRate, spotRate/regRate)
		}
		// Standard_DS2_v2 is 0.146 USD an hour.
		if math.Abs(regRate-0.146) > 1e-6 {
			t.Errorf("regular pool at %v USD per VM-hour, want 0.146", regRate)
		}
		// Two VMs each, a few seconds: the quantities are VM-hours.
		if h := reg["UsageQuantity"].(float64); h <= 0 || h > 2*float64(time.Minute)/float64(time.Hour) {
			t.Errorf("regular pool ran %v VM-hours", h)
		}
		t.Logf("after about 5 s: regular %.6f USD, Spot %.6f USD", reg["Cost"], sp["Cost"])
	})

	t.Run("a pool at zero stops costing while the others go on", func(t *testing.T) {
		scale(t, c, group, name, "regular", 0)
		before := costRows(t, q, nodeGroup, byResource("Virtual Machines"))
		time.Sleep(2 * time.Second)
		after := costRows(t, q, nodeGroup, byResource("Virtual Machines"))
		if b, a := scaleSetRow(before, "regular")["Cost"].(float64), scaleSetRow(after, "regular")["Cost"].(float64); a != b {
			t.Errorf("the regular pool at zero went on costing: %v then %v", b, a)
		}
		if b, a := scaleSetRow(before, "spot")["Cost"].(float64), scaleSetRow(after, "spot")["Cost"].(float64); a <= b {
			t.Errorf("the running Spot pool stopped costing: %v then %v", b, a)
		}
	})

	t.Run("cost analysis shares the nodes out by namespace and workload", func(t *testing.T) {
		cs := adminClient(t, c, group, name)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		web := hungry("web", "spot", 2)
		web.Namespace = "shop"
		web.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
		if _, err := cs.AppsV1().Deployments("shop").Create(ctx, web, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// One pod's part of one node is what the Deployment takes of the
		// two-node pool, CPU and memory weighted as OpenCost weighs them.
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.azure.com/agentpool=spot"})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("spot nodes: %v (%v)", len(nodes.Items), err)
		}
		capCPU, capMem := float64(nodes.Items[0].Status.Capacity.Cpu().MilliValue())/1000, float64(nodes.Items[0].Status.Capacity.Memory().Value())/(1<<30)
		cpuW, memW := capCPU*0.031611, capMem*0.004237
		want := (cpuW/capCPU + memW/capMem) / (cpuW + memW)

		byNamespace := armcostmanagement.QueryDefinition{
			Type: to.Ptr(armcostmanagement.ExportTypeActualCost), Timeframe: to.Ptr(armcostmanagement.TimeframeTypeMonthToDate),
			Dataset: &armcostmanagement.QueryDataset{
				Aggregation: map[string]*armcostmanagement.QueryAggregation{"cost": {Name: to.Ptr("Cost"), Function: to.Ptr(armcostmanagement.FunctionTypeSum)}},
				Grouping: []*armcostmanagement.QueryGrouping{
					{Type: to.Ptr(armcostmanagement.QueryColumnTypeDimension), Name: to.Ptr("Namespace")},
					{Type: to.Ptr(armcostmanagement.QueryColumnTypeDimension), Name: to.Ptr("Workload")},
				},
				Filter: &armcostmanagement.QueryFilter{Dimensions: &armcostmanagement.QueryComparisonExpression{
					Name: to.Ptr("PricingModel"), Operator: to.Ptr(armcostmanagement.QueryOperatorTypeIn), Values: []*string{to.Ptr("Spot")}}},
			},
		}
		costs := func() (web, total float64) {
			for _, r := range costRows(t, q, clusterScope, byNamespace) {
				if r["Namespace"] == "shop" && r["Workload"] == "Deployment/web" {
					web = r["Cost"].(float64)
				}
				total += r["Cost"].(float64)
			}
			return web, total
		}
		eventually(t, time.Minute, "the shop namespace charged for web", func() (bool, string) {
			n, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
			if err != nil {
				return false, err.Error()
			}
			w, _ := costs()
			return len(n.Items) == 2 && w > 0, fmt.Sprintf("%d pods running, web charged %v", len(n.Items), w)
		})
		time.Sleep(time.Second) // a sample after both pods run
		web0, total0 := costs()
		time.Sleep(3 * time.Second)
		web1, total1 := costs()
		if got := (web1 - web0) / (total1 - total0); math.Abs(got-want) > 0.02 {
			t.Errorf("web took %.4f of the Spot pool's cost over 3 s, want %.4f", got, want)
		}
	})

	t.Run("cost analysis needs the Standard or Premium tier", func(t *testing.T) {
		free := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1))
		free.Properties.MetricsProfile = mc.Properties.MetricsProfile
		_, err := c.clusters.BeginCreateOrUpdate(ctx, group, "cost-free", free, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")
	})

	t.Run("costs survive a kill of serve", func(t *testing.T) {
		before := costRows(t, q, nodeGroup, byResource("Virtual Machines"))
		s.killWhen(t, "pools running", time.Second, func() bool { return true })
		q, err := armcostmanagement.NewQueryClient(s.credential(t, s.conn.ClientSecret), s.clientOptions())
		if err != nil {
			t.Fatal(err)
		}
		after := costRows(t, q, nodeGroup, byResource("Virtual Machines"))
		for _, pool := range []string{"system", "spot"} {
			if b, a := scaleSetRow(before, pool)["Cost"].(float64), scaleSetRow(after, pool)["Cost"].(float64); a < b {
				t.Errorf("pool %s cost %v before the kill, %v after", pool, b, a)
			}
		}
	})

	t.Run("the cluster's scope has its tier and its nodes, tagged", func(t *testing.T) {
		rows := costRows(t, q, clusterScope, armcostmanagement.QueryDefinition{
			Type: to.Ptr(armcostmanagement.ExportTypeActualCost), Timeframe: to.Ptr(armcostmanagement.TimeframeTypeMonthToDate),
			Dataset: &armcostmanagement.QueryDataset{
				Granularity: to.Ptr(armcostmanagement.GranularityTypeDaily),
				Aggregation: map[string]*armcostmanagement.QueryAggregation{"cost": {Name: to.Ptr("PreTaxCost"), Function: to.Ptr(armcostmanagement.FunctionTypeSum)}},
				Grouping: []*armcostmanagement.QueryGrouping{
					{Type: to.Ptr(armcostmanagement.QueryColumnTypeDimension), Name: to.Ptr("ServiceName")},
					{Type: to.Ptr(armcostmanagement.QueryColumnTypeTagKey), Name: to.Ptr("team")},
				},
			},
		})
		services := map[string]bool{}
		today := time.Now().UTC().Format("20060102")
		for _, r := range rows {
			services[r["ServiceName"].(string)] = true
			if fmt.Sprint(int(r["UsageDate"].(float64))) != today || r["Currency"] != "USD" {
				t.Errorf("row %v: want today's date and USD", r)
			}
			if r["TagValue"] != "payments" {
				t.Errorf("a node resource without the cluster's tag: %v", r)
			}
		}
		if !services["Azure Kubernetes Service"] || !services["Virtual Machines"] {
			t.Errorf("services %v: want the Standard tier's charge and the VMs", services)
		}
	})

	t.Run("a query Cost Management refuses is a 400", func(t *testing.T) {
		def := byResource("Virtual Machines")
		def.Dataset.Grouping = append(def.Dataset.Grouping, &armcostmanagement.QueryGrouping{Type: to.Ptr(armcostmanagement.QueryColumnTypeDimension), Name: to.Ptr("Flavour")})
		_, err := q.Usage(ctx, nodeGroup, def, nil)
		expectCode(t, err, http.StatusBadRequest, "BadRequest")
		_, err = q.Usage(ctx, "/subscriptions/"+s.conn.SubscriptionID+"/resourceGroups/no-such-group", byResource("Storage"), nil)
		expectCode(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	})
}

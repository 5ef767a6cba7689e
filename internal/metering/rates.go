// Package metering counts what Slipway's simulated cloud would cost: it
// prices each billable resource (node pool VMs and their managed OS disks,
// data disks, premium file shares, the cluster's AKS tier), accrues that
// usage into daily UsageRecords per resource group, and answers Cost
// Management queries over them.
package metering

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/vmsize"
)

// Pricing models, as Cost Management names them.
const (
	OnDemand = "OnDemand"
	Spot     = "Spot"
)

// Units of measure.
const (
	perHour     = "1 Hour"
	perMonth    = "1/Month"
	perGiBMonth = "1 GB/Month"
)

func nano(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

// ClusterRates are what a cluster itself costs: its AKS tier's hourly
// charge while it runs (nothing on the Free tier, or stopped).
func ClusterRates(mc *slipwayv1.ManagedCluster, c *armcontainerservice.ManagedCluster) []slipwayv1.UsageRate {
	tier := ""
	if c.SKU != nil && c.SKU.Tier != nil {
		tier = string(*c.SKU.Tier)
	}
	price := tierPricePerHour[strings.ToLower(tier)]
	if price == 0 || mc.Spec.Stopped {
		return nil
	}
	return []slipwayv1.UsageRate{{
		UsageMeter: slipwayv1.UsageMeter{
			ResourceID: mc.Spec.ResourceID, ResourceType: strings.ToLower(armid.ManagedClusterType), Location: deref(c.Location),
			ServiceName: "Azure Kubernetes Service", MeterCategory: "Azure Kubernetes Service", MeterSubCategory: "AKS " + tier + " Tier",
			Meter: tier + " Uptime SLA", PricingModel: OnDemand, UnitOfMeasure: perHour, Tags: Tags(c.Tags),
		},
		Units: 1, NanoUSDPerUnitHour: nano(price),
	}}
}

// Pool is a node pool as metered.
type Pool struct {
	// Subscription and NodeResourceGroup place its scale set.
	Subscription, NodeResourceGroup, Location string
	// ClusterID and Name name it.
	ClusterID, Name string
	Props           *nodepool.Properties
	// ClusterTags are the cluster's tags, which AKS puts on every
	// resource in the node group; Tags are those with the pool's over
	// them, which AKS puts on the scale set.
	ClusterTags, Tags map[string]string
	// Running are its running VMs' instances; Allocated also counts the
	// deallocated ones, whose OS disks are still billed.
	Running, Allocated []int
	// Split shares the VMs out among namespaces and workloads, when the
	// cluster's cost analysis is on.
	Split []slipwayv1.UsageShare
}

// ScaleSetID is the ARM ID of the pool's VM scale set.
func (p Pool) ScaleSetID() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/%s",
		p.Subscription, p.NodeResourceGroup, p.scaleSet())
}

func (p Pool) scaleSet() string {
	return armid.ScaleSet(p.ClusterID, p.Name)
}

// PoolRates are what a pool's VMs cost: compute per running instance, at
// the Spot price for Spot pools, and a managed OS disk per allocated
// instance (an ephemeral OS disk lives on the VM's own storage and costs
// nothing).
func PoolRates(p Pool) []slipwayv1.UsageRate {
	size, ok := vmsize.Lookup(deref(p.Props.VMSize))
	if !ok {
		return nil
	}
	var rates []slipwayv1.UsageRate
	if len(p.Running) > 0 {
		model, meter := OnDemand, meterName(size.Name)
		if deref(p.Props.ScaleSetPriority) == armcontainerservice.ScaleSetPrioritySpot {
			model, meter = Spot, meter+" Spot"
		}
		rates = append(rates, slipwayv1.UsageRate{
			UsageMeter: slipwayv1.UsageMeter{
				ResourceID: p.ScaleSetID(), ResourceType: "microsoft.compute/virtualmachinescalesets", Location: p.Location,
				ServiceName: "Virtual Machines", MeterCategory: "Virtual Machines", MeterSubCategory: seriesOf(size.Name),
				Meter: meter, PricingModel: model, UnitOfMeasure: perHour, Tags: p.Tags,
			},
			Units: int64(len(p.Running)), NanoUSDPerUnitHour: nano(nodepool.HourlyCost(p.Props, 1)), Split: p.Split,
		})
	}
	if deref(p.Props.OSDiskType) == armcontainerservice.OSDiskTypeManaged {
		sku := "StandardSSD_LRS"
		if premiumIO(size.Name) {
			sku = "Premium_LRS"
		}
		meter, perHour, ok := DiskPrice(sku, deref(p.Props.OSDiskSizeGB))
		for _, i := range p.Allocated {
			if !ok {
				break
			}
			rates = append(rates, diskRate(p.osDiskID(i), p.Location, meter, perHour, p.ClusterTags))
		}
	}
	return rates
}

// osDiskID is the managed OS disk of instance i, named as Azure names a
// scale set VM's OS disk.
func (p Pool) osDiskID(i int) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/disks/%s_%d_OsDisk_1_%s",
		p.Subscription, p.NodeResourceGroup, p.scaleSet(), i, armid.Label(p.ScaleSetID()+fmt.Sprint(i)))
}

func diskRate(id, location, meter string, perHour float64, tags map[string]string) slipwayv1.UsageRate {
	return slipwayv1.UsageRate{
		UsageMeter: slipwayv1.UsageMeter{
			ResourceID: id, ResourceType: "microsoft.compute/disks", Location: location,
			ServiceName: "Storage", MeterCategory: "Storage", MeterSubCategory: strings.SplitN(meter, " ", 2)[0] + " Disks",
			Meter: meter, PricingModel: OnDemand, UnitOfMeasure: perMonth, Tags: tags,
		},
		Units: 1, NanoUSDPerUnitHour: nano(perHour),
	}
}

// DiskRates are what a managed data disk costs: its tier's monthly price,
// attached or not.
func DiskRates(d *slipwayv1.Disk) ([]slipwayv1.UsageRate, error) {
	var m armcompute.Disk
	if err := json.Unmarshal(d.Spec.Resource.Raw, &m); err != nil {
		return nil, fmt.Errorf("stored disk %s: %w", d.Spec.ResourceID, err)
	}
	sku := string(armcompute.DiskStorageAccountTypesStandardLRS)
	if m.SKU != nil && m.SKU.Name != nil {
		sku = string(*m.SKU.Name)
	}
	var size int32
	if m.Properties != nil {
		size = deref(m.Properties.DiskSizeGB)
	}
	meter, perHour, ok := DiskPrice(sku, size)
	if !ok {
		return nil, nil
	}
	return []slipwayv1.UsageRate{diskRate(d.Spec.ResourceID, deref(m.Location), meter, perHour, Tags(m.Tags))}, nil
}

// ShareRates are what a file share costs: premium shares their provisioned
// GiB; standard shares the data they hold, which a simulated share has
// none of.
func ShareRates(a *slipwayv1.StorageAccount, sh *slipwayv1.FileShare) ([]slipwayv1.UsageRate, error) {
	var acct armstorage.Account
	if err := json.Unmarshal(a.Spec.Resource.Raw, &acct); err != nil {
		return nil, fmt.Errorf("stored account %s: %w", a.Spec.ResourceID, err)
	}
	var props armstorage.FileShareProperties
	if err := json.Unmarshal(sh.Spec.Properties.Raw, &props); err != nil {
		return nil, fmt.Errorf("stored share %s: %w", sh.Spec.ResourceID, err)
	}
	if acct.SKU == nil || acct.SKU.Name == nil {
		return nil, nil
	}
	price, ok := premiumFilesPerGiBMonth[string(*acct.SKU.Name)]
	if !ok || deref(props.ShareQuota) <= 0 {
		return nil, nil
	}
	return []slipwayv1.UsageRate{{
		UsageMeter: slipwayv1.UsageMeter{
			// Azure bills a share's usage to its account.
			ResourceID: a.Spec.ResourceID, ResourceType: "microsoft.storage/storageaccounts", Location: deref(acct.Location),
			ServiceName: "Storage", MeterCategory: "Storage", MeterSubCategory: "Premium Files",
			Meter: strings.TrimPrefix(string(*acct.SKU.Name), "Premium_") + " Provisioned", PricingModel: OnDemand, UnitOfMeasure: perGiBMonth, Tags: Tags(acct.Tags),
		},
		Units: int64(deref(props.ShareQuota)), NanoUSDPerUnitHour: nano(price / HoursPerMonth),
	}}, nil
}

// meterName is a size's meter: Standard_D2s_v3 is "D2s v3".
func meterName(size string) string {
	return strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(size, "Standard_"), "Basic_"), "_", " ")
}

var seriesPattern = regexp.MustCompile(`^([A-Z]+)\d+([a-z]*)(?: (v\d+))?`)

// seriesOf is a size's series: "D2s v3" is of "Dsv3 Series".
func seriesOf(size string) string {
	m := seriesPattern.FindStringSubmatch(meterName(size))
	if m == nil {
		return ""
	}
	return m[1] + m[2] + m[3] + " Series"
}

// premiumIO says whether a size takes premium SSDs: its name carries the
// "s" feature letter (D2s_v3, B2s) or is of a DS/GS series (DS2_v2).
var premiumPattern = regexp.MustCompile(`^(?:[A-Z]*S\d+|[A-Z]+\d+[a-z]*s[a-z]*)(?:_|$)`)

func premiumIO(size string) bool {
	return premiumPattern.MatchString(strings.TrimPrefix(size, "Standard_"))
}

// Tags merges ARM tag maps, later ones over earlier ones, less Slipway's
// own cost tag.
func Tags(maps ...map[string]*string) map[string]string {
	var out map[string]string
	for _, tags := range maps {
		for k, v := range tags {
			if k == nodepool.CostTag {
				continue
			}
			if out == nil {
				out = map[string]string{}
			}
			out[k] = deref(v)
		}
	}
	return out
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

package nodepool

import (
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	"github.com/slipway-dev/slipway/internal/vmsize"
)

// CostTag is the pool tag in which Slipway reports the pool's current
// compute price in USD per hour. It is Slipway's own (AKS has no such
// field); a value a client sends for it is dropped.
const CostTag = "slipway.dev/hourly-cost-usd"

// SpotDiscount is the share of the pay-as-you-go price a Spot VM costs when
// its max price is -1 (capped at on-demand). Azure's Spot prices float; 80%
// off is the middle of the 60-90% savings Microsoft advertises for Spot.
const SpotDiscount = 0.2

// HourlyCost is what running instances of the pool cost per hour: the size's
// price per instance, at the Spot discount for Spot pools, or their max
// price when the user set one.
func HourlyCost(p *Properties, running int) float64 {
	size, ok := vmsize.Lookup(deref(p.VMSize))
	if !ok || running <= 0 {
		return 0
	}
	each := size.PricePerHour
	if deref(p.ScaleSetPriority) == armcontainerservice.ScaleSetPrioritySpot {
		each *= SpotDiscount
		if max := float64(deref(p.SpotMaxPrice)); max > 0 && max < size.PricePerHour {
			each = max
		}
	}
	return each * float64(running)
}

// FormatCost renders a price for the cost tag.
func FormatCost(usd float64) string { return strconv.FormatFloat(usd, 'f', 4, 64) }

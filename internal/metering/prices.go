package metering

import "strings"

// HoursPerMonth is the month Azure's monthly prices are per: 730 hours.
const HoursPerMonth = 730

// Cluster management: the AKS tier's price per cluster-hour (the Free tier
// costs nothing). Azure pricing page for AKS, 2025.
var tierPricePerHour = map[string]float64{"standard": 0.10, "premium": 0.60}

// diskTier is a managed disk performance tier: the largest size it covers
// and its LRS price per month.
type diskTier struct {
	Name     string
	MaxGiB   int32
	PerMonth float64
}

// Managed disk tiers and approximate LRS monthly list prices (Azure managed
// disks pricing, East US, 2025). A disk is billed at the smallest tier that
// holds its size, as Azure bills it.
var diskTiers = map[string][]diskTier{
	"Premium": {
		{"P1", 4, 0.77}, {"P2", 8, 1.54}, {"P3", 16, 3.08}, {"P4", 32, 5.28}, {"P6", 64, 10.21},
		{"P10", 128, 19.71}, {"P15", 256, 38.01}, {"P20", 512, 73.22}, {"P30", 1024, 135.17},
		{"P40", 2048, 259.05}, {"P50", 4096, 495.57}, {"P60", 8192, 946.08}, {"P70", 16384, 1802.55}, {"P80", 32767, 3604.56},
	},
	"StandardSSD": {
		{"E1", 4, 0.30}, {"E2", 8, 0.60}, {"E3", 16, 1.20}, {"E4", 32, 2.40}, {"E6", 64, 4.80},
		{"E10", 128, 9.60}, {"E15", 256, 19.20}, {"E20", 512, 38.40}, {"E30", 1024, 76.80},
		{"E40", 2048, 153.60}, {"E50", 4096, 307.20}, {"E60", 8192, 614.40}, {"E70", 16384, 1228.80}, {"E80", 32767, 2457.60},
	},
	"Standard": {
		{"S4", 32, 1.54}, {"S6", 64, 3.01}, {"S10", 128, 5.89}, {"S15", 256, 11.33}, {"S20", 512, 21.76},
		{"S30", 1024, 40.96}, {"S40", 2048, 77.83}, {"S50", 4096, 143.36}, {"S60", 8192, 262.14},
		{"S70", 16384, 524.29}, {"S80", 32767, 1048.58},
	},
}

// Per-GiB monthly prices of the SKUs billed by capacity, not by tier
// (their IOPS and throughput above the baseline are not charged here).
var capacityPerGiBMonth = map[string]float64{"PremiumV2_LRS": 0.0812, "UltraSSD_LRS": 0.1196}

// zrsFactor is what zone-redundant storage costs over LRS.
var zrsFactor = map[string]float64{"Premium": 1.5, "StandardSSD": 1.25}

// DiskPrice is a managed disk's meter and its price per hour; ok is false
// for a SKU Slipway does not price.
func DiskPrice(sku string, sizeGiB int32) (meter string, perHour float64, ok bool) {
	if per, ok := capacityPerGiBMonth[sku]; ok {
		name := strings.TrimSuffix(sku, "_LRS")
		return name + " Provisioned Capacity", per * float64(sizeGiB) / HoursPerMonth, true
	}
	family, redundancy, _ := strings.Cut(sku, "_")
	tiers := diskTiers[family]
	factor := 1.0
	if redundancy == "ZRS" {
		if factor = zrsFactor[family]; factor == 0 {
			return "", 0, false
		}
	} else if redundancy != "LRS" {
		return "", 0, false
	}
	for _, t := range tiers {
		if sizeGiB <= t.MaxGiB {
			return t.Name + " " + redundancy + " Disk", t.PerMonth * factor / HoursPerMonth, true
		}
	}
	return "", 0, false
}

// Azure Files premium (provisioned) price per GiB-month; standard shares
// are billed on the data they hold, which simulated shares have none of.
var premiumFilesPerGiBMonth = map[string]float64{"Premium_LRS": 0.16, "Premium_ZRS": 0.20}

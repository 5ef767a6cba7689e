package metering

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/costmanagement/armcostmanagement/v2"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// Query is a Cost Management query (the SDK's QueryDefinition, less its
// time period, whose dates clients write in more shapes than the SDK's
// time type reads).
type Query struct {
	Type       string                          `json:"type"`
	Timeframe  string                          `json:"timeframe"`
	TimePeriod *Period                         `json:"timePeriod,omitempty"`
	Dataset    *armcostmanagement.QueryDataset `json:"dataset"`
}

// Period is a custom time period.
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Invalid is a query Cost Management refuses (400 BadRequest).
type Invalid struct{ Message string }

func (e *Invalid) Error() string { return e.Message }

func invalid(format string, args ...any) error {
	return &Invalid{Message: "Invalid query definition: " + fmt.Sprintf(format, args...)}
}

// Columns a query can aggregate, and what each sums.
var measures = map[string]func(*slipwayv1.UsageLine) float64{
	"cost":          costOf,
	"pretaxcost":    costOf,
	"costusd":       costOf,
	"pretaxcostusd": costOf,
	"usagequantity": quantityOf,
}

func costOf(l *slipwayv1.UsageLine) float64 { return float64(l.NanoUSD) / 1e9 }

// quantityOf is a line's usage in its unit of measure.
func quantityOf(l *slipwayv1.UsageLine) float64 {
	hours := float64(l.UnitMillis) / float64(time.Hour/time.Millisecond)
	if l.UnitOfMeasure == perHour {
		return hours
	}
	return hours / HoursPerMonth
}

// entry is what a query sums: a line of a record, or the part of one a
// namespace and workload used.
type entry struct {
	rec                 *slipwayv1.UsageRecord
	line                *slipwayv1.UsageLine
	namespace, workload string
}

// entries are a record's lines; with split, each is shared out as cost
// analysis split it: a part per namespace and workload, and the rest (the
// time the meter was not shared) with neither.
func entries(rec *slipwayv1.UsageRecord, split bool) []entry {
	out := make([]entry, 0, len(rec.Status.Lines))
	for i := range rec.Status.Lines {
		l := &rec.Status.Lines[i]
		if !split || len(l.Split) == 0 {
			out = append(out, entry{rec: rec, line: l})
			continue
		}
		rest := *l
		rest.Split = nil
		for _, sp := range l.Split {
			part := rest
			part.UnitMillis, part.NanoUSD = sp.UnitMillis, sp.NanoUSD
			out = append(out, entry{rec: rec, line: &part, namespace: sp.Namespace, workload: sp.Workload})
			rest.UnitMillis -= sp.UnitMillis
			rest.NanoUSD -= sp.NanoUSD
		}
		if rest.UnitMillis != 0 || rest.NanoUSD != 0 {
			out = append(out, entry{rec: rec, line: &rest})
		}
	}
	return out
}

// dimensions are the columns a query may group or filter by, and their
// value for an entry. Cost Management reports IDs, groups and types in
// lower case. Namespace and Workload are Slipway's: Cost Management's
// query API does not serve the cost analysis add-on's split (Azure/AKS#4417).
var dimensions = map[string]func(*entry) string{
	"resourcegroup":     func(e *entry) string { return strings.ToLower(e.rec.Spec.ResourceGroup) },
	"resourcegroupname": func(e *entry) string { return strings.ToLower(e.rec.Spec.ResourceGroup) },
	"resourceid":        func(e *entry) string { return strings.ToLower(e.line.ResourceID) },
	"resourcetype":      func(e *entry) string { return e.line.ResourceType },
	"resourcelocation":  func(e *entry) string { return strings.ToLower(e.line.Location) },
	"servicename":       func(e *entry) string { return e.line.ServiceName },
	"servicefamily":     func(e *entry) string { return serviceFamily[e.line.ServiceName] },
	"metercategory":     func(e *entry) string { return e.line.MeterCategory },
	"metersubcategory":  func(e *entry) string { return e.line.MeterSubCategory },
	"meter":             func(e *entry) string { return e.line.Meter },
	"pricingmodel":      func(e *entry) string { return e.line.PricingModel },
	"unitofmeasure":     func(e *entry) string { return e.line.UnitOfMeasure },
	"chargetype":        func(*entry) string { return "Usage" },
	"publishertype":     func(*entry) string { return "Azure" },
	"subscriptionid":    func(e *entry) string { return e.rec.Spec.SubscriptionID },
	"subscriptionname":  func(e *entry) string { return e.rec.Spec.SubscriptionID },
	"namespace":         func(e *entry) string { return e.namespace },
	"workload":          func(e *entry) string { return e.workload },
}

var serviceFamily = map[string]string{"Virtual Machines": "Compute", "Storage": "Storage", "Azure Kubernetes Service": "Containers"}

// column is an output column: its name, type, and value for a line.
type column struct {
	name, typ string
	value     func(*entry) any
}

// Evaluate answers q over records (each group's latest already advanced
// to now), as Cost Management answers it at now: the rows of the
// timeframe's days, aggregated and grouped as asked.
func Evaluate(q *Query, records []*slipwayv1.UsageRecord, now time.Time) (*armcostmanagement.QueryProperties, error) {
	switch strings.ToLower(q.Type) {
	case "actualcost", "amortizedcost", "usage":
	case "":
		return nil, invalid("The query type is required.")
	default:
		return nil, invalid("The query type '%s' is not supported. Supported types are ActualCost, AmortizedCost and Usage.", q.Type)
	}
	from, to, err := timeframe(q, now)
	if err != nil {
		return nil, err
	}
	ds := q.Dataset
	if ds == nil {
		return nil, invalid("The dataset is required.")
	}
	keyOf, err := granularity(ds.Granularity)
	if err != nil {
		return nil, err
	}
	aggs, err := aggregations(ds.Aggregation)
	if err != nil {
		return nil, err
	}
	groups, err := groupings(ds.Grouping)
	if err != nil {
		return nil, err
	}
	match, err := filter(ds.Filter)
	if err != nil {
		return nil, err
	}
	// Lines are shared out only for a query that reads the split: the
	// parts of a line add up to it.
	split := false
	for _, g := range ds.Grouping {
		split = split || g != nil && splitDimension(deref(g.Name))
	}
	split = split || filterReadsSplit(ds.Filter)

	type bucket struct {
		key  []any
		sums []float64
	}
	buckets := map[string]*bucket{}
	var order []string
	for _, r := range records {
		day, err := time.Parse(dateLayout, r.Spec.Date)
		if err != nil || day.Before(from) || day.After(to) {
			continue
		}
		for _, e := range entries(r, split) {
			if !match(&e) {
				continue
			}
			var key []any
			if keyOf != nil {
				key = append(key, keyOf(day))
			}
			for _, g := range groups {
				key = append(key, g.value(&e))
			}
			var kb strings.Builder
			for _, v := range key {
				fmt.Fprint(&kb, v, "\x00")
			}
			k := kb.String()
			b := buckets[k]
			if b == nil {
				b = &bucket{key: key, sums: make([]float64, len(aggs))}
				buckets[k] = b
				order = append(order, k)
			}
			for j, a := range aggs {
				b.sums[j] += a.sum(e.line)
			}
		}
	}

	out := &armcostmanagement.QueryProperties{Rows: [][]any{}}
	for _, a := range aggs {
		out.Columns = append(out.Columns, col(a.name, "Number"))
	}
	if keyOf != nil {
		if strings.EqualFold(string(deref(ds.Granularity)), "Monthly") {
			out.Columns = append(out.Columns, col("BillingMonth", "Datetime"))
		} else {
			out.Columns = append(out.Columns, col("UsageDate", "Number"))
		}
	}
	for _, g := range groups {
		out.Columns = append(out.Columns, col(g.name, g.typ))
	}
	out.Columns = append(out.Columns, col("Currency", "String"))
	sort.Slice(order, func(i, j int) bool { return lessKey(buckets[order[i]].key, buckets[order[j]].key) })
	for _, k := range order {
		b := buckets[k]
		row := make([]any, 0, len(out.Columns))
		for _, s := range b.sums {
			row = append(row, s)
		}
		row = append(row, b.key...)
		out.Rows = append(out.Rows, append(row, "USD"))
	}
	return out, nil
}

func col(name, typ string) *armcostmanagement.QueryColumn {
	return &armcostmanagement.QueryColumn{Name: &name, Type: &typ}
}

func lessKey(a, b []any) bool {
	for i := range a {
		x, y := fmt.Sprint(a[i]), fmt.Sprint(b[i])
		if x != y {
			return x < y
		}
	}
	return false
}

// timeframe is the first and last day a query covers.
func timeframe(q *Query, now time.Time) (from, to time.Time, err error) {
	today := now.UTC().Truncate(24 * time.Hour)
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	switch strings.ToLower(q.Timeframe) {
	case "monthtodate", "billingmonthtodate":
		return month, today, nil
	case "thelastmonth", "thelastbillingmonth":
		return month.AddDate(0, -1, 0), month.AddDate(0, 0, -1), nil
	case "weektodate":
		// Cost Management's weeks start on Monday.
		back := (int(today.Weekday()) + 6) % 7
		return today.AddDate(0, 0, -back), today, nil
	case "custom":
		if q.TimePeriod == nil {
			return from, to, invalid("A time period is required when the timeframe is Custom.")
		}
		if from, err = parseDay(q.TimePeriod.From); err != nil {
			return from, to, invalid("The time period's from date '%s' is not a valid date.", q.TimePeriod.From)
		}
		if to, err = parseDay(q.TimePeriod.To); err != nil {
			return from, to, invalid("The time period's to date '%s' is not a valid date.", q.TimePeriod.To)
		}
		if to.Before(from) {
			return from, to, invalid("The time period's from date must not be after its to date.")
		}
		if to.After(from.AddDate(1, 0, 0)) {
			return from, to, invalid("The time period for pulling the data cannot exceed 1 year(s).")
		}
		return from, to, nil
	case "":
		return from, to, invalid("The timeframe is required.")
	default:
		return from, to, invalid("The timeframe '%s' is not supported. Supported timeframes are MonthToDate, BillingMonthToDate, TheLastMonth, TheLastBillingMonth, WeekToDate and Custom.", q.Timeframe)
	}
}

// parseDay reads a date or date-time as the UTC day it falls on.
func parseDay(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05Z", dateLayout} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Truncate(24 * time.Hour), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", s)
}

// granularity is the date column's value for a day, or nil for none.
func granularity(g *armcostmanagement.GranularityType) (func(time.Time) any, error) {
	switch strings.ToLower(string(deref(g))) {
	case "", "none":
		return nil, nil
	case "daily":
		return func(d time.Time) any { n, _ := strconv.Atoi(d.Format("20060102")); return n }, nil
	case "monthly":
		return func(d time.Time) any { return d.Format("2006-01") + "-01T00:00:00" }, nil
	default:
		return nil, invalid("The granularity '%s' is not supported. Supported granularities are None, Daily and Monthly.", *g)
	}
}

type aggregation struct {
	name string
	sum  func(*slipwayv1.UsageLine) float64
}

// aggregations are the summed columns, by alias; with none asked, the cost.
func aggregations(in map[string]*armcostmanagement.QueryAggregation) ([]aggregation, error) {
	if len(in) == 0 {
		return []aggregation{{"PreTaxCost", costOf}}, nil
	}
	if len(in) > 2 {
		return nil, invalid("A query can have up to 2 aggregation clauses.")
	}
	aliases := make([]string, 0, len(in))
	for alias := range in {
		aliases = append(aliases, alias)
	}
	sort.Strings(aliases)
	var out []aggregation
	for _, alias := range aliases {
		a := in[alias]
		if a == nil || a.Name == nil {
			return nil, invalid("The aggregation '%s' has no column name.", alias)
		}
		if f := deref(a.Function); !strings.EqualFold(string(f), "Sum") {
			return nil, invalid("The aggregation function '%s' is not supported. Supported functions are Sum.", f)
		}
		sum, ok := measures[strings.ToLower(*a.Name)]
		if !ok {
			return nil, invalid("The aggregation column '%s' is not supported. Supported columns are PreTaxCost, Cost, CostUSD, PreTaxCostUSD and UsageQuantity.", *a.Name)
		}
		out = append(out, aggregation{*a.Name, sum})
	}
	return out, nil
}

// groupings are the grouping columns: a dimension's one, or a tag's key
// and value.
func groupings(in []*armcostmanagement.QueryGrouping) ([]column, error) {
	if len(in) > 2 {
		return nil, invalid("A query can have up to 2 group by clauses.")
	}
	var out []column
	for _, g := range in {
		if g == nil || g.Name == nil {
			return nil, invalid("A grouping has no name.")
		}
		name := *g.Name
		switch strings.ToLower(string(deref(g.Type))) {
		case "dimension":
			value, ok := dimensions[strings.ToLower(name)]
			if !ok {
				return nil, invalid("The dimension '%s' is not supported for grouping.", name)
			}
			out = append(out, column{name, "String", func(e *entry) any { return value(e) }})
		case "tagkey":
			out = append(out,
				column{"TagKey", "String", func(*entry) any { return name }},
				column{"TagValue", "String", func(e *entry) any {
					if v, ok := tag(e.line, name); ok {
						return v
					}
					return nil
				}})
		default:
			return nil, invalid("The grouping type '%s' is not supported. Supported types are Dimension and TagKey.", deref(g.Type))
		}
	}
	return out, nil
}

// tag is a line's value of a tag, its key matched case-insensitively as
// Azure's tag names are.
func tag(l *slipwayv1.UsageLine, key string) (string, bool) {
	for k, v := range l.Tags {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

type predicate func(*entry) bool

// filter compiles a query filter.
func filter(f *armcostmanagement.QueryFilter) (predicate, error) {
	if f == nil {
		return func(*entry) bool { return true }, nil
	}
	var parts []predicate
	set := 0
	if len(f.And) > 0 || len(f.Or) > 0 {
		subs := f.And
		if len(f.Or) > 0 {
			subs = f.Or
			set++
		}
		if len(f.And) > 0 {
			set++
		}
		if len(subs) < 2 {
			return nil, invalid("A logical expression must have at least 2 items.")
		}
		var preds []predicate
		for _, s := range subs {
			p, err := filter(s)
			if err != nil {
				return nil, err
			}
			preds = append(preds, p)
		}
		// An "or" is true at its first true item, an "and" false at
		// its first false one.
		or := len(f.Or) > 0
		parts = append(parts, func(e *entry) bool {
			for _, p := range preds {
				if p(e) == or {
					return or
				}
			}
			return !or
		})
	}
	if e := f.Dimensions; e != nil {
		set++
		value, ok := dimensions[strings.ToLower(deref(e.Name))]
		if !ok {
			return nil, invalid("The dimension '%s' is not supported for filtering.", deref(e.Name))
		}
		in, err := values(e)
		if err != nil {
			return nil, err
		}
		parts = append(parts, func(e *entry) bool {
			return slices.ContainsFunc(in, func(v string) bool { return strings.EqualFold(v, value(e)) })
		})
	}
	if e := f.Tags; e != nil {
		set++
		in, err := values(e)
		if err != nil {
			return nil, err
		}
		key := deref(e.Name)
		parts = append(parts, func(e *entry) bool {
			v, ok := tag(e.line, key)
			return ok && slices.ContainsFunc(in, func(w string) bool { return strings.EqualFold(w, v) })
		})
	}
	if set != 1 {
		return nil, invalid("A filter expression must have exactly one of and, or, dimensions or tags.")
	}
	return parts[0], nil
}

func values(e *armcostmanagement.QueryComparisonExpression) ([]string, error) {
	if op := deref(e.Operator); !strings.EqualFold(string(op), "In") {
		return nil, invalid("The operator '%s' is not supported. Supported operators are In.", op)
	}
	var out []string
	for _, v := range e.Values {
		out = append(out, deref(v))
	}
	return out, nil
}

// splitDimension says a dimension reads cost analysis's split.
func splitDimension(name string) bool {
	return strings.EqualFold(name, "Namespace") || strings.EqualFold(name, "Workload")
}

func filterReadsSplit(f *armcostmanagement.QueryFilter) bool {
	if f == nil {
		return false
	}
	if f.Dimensions != nil && splitDimension(deref(f.Dimensions.Name)) {
		return true
	}
	for _, sub := range append(slices.Clone(f.And), f.Or...) {
		if filterReadsSplit(sub) {
			return true
		}
	}
	return false
}

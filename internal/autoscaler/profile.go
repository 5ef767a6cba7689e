// Package autoscaler is Slipway's cluster autoscaler: the cluster's
// autoScalerProfile (its keys, AKS's defaults and checks), and the loop
// that grows pools for pods that cannot be scheduled and shrinks them when
// their nodes are not needed, as the upstream cluster autoscaler does on
// AKS.
package autoscaler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

// Profile is the ARM form of the cluster's autoScalerProfile.
type Profile = armcontainerservice.ManagedClusterPropertiesAutoScalerProfile

// Settings is a profile read into the values the autoscaler uses.
// Durations are real time: the simulation's --time-scale does not apply
// to them, as a user tunes them against the autoscaler, not the VMs.
type Settings struct {
	BalanceSimilarNodeGroups          bool
	DaemonsetEvictionForEmptyNodes    bool
	DaemonsetEvictionForOccupiedNodes bool
	IgnoreDaemonsetsUtilization       bool
	Expander                          armcontainerservice.Expander
	MaxEmptyBulkDelete                int
	MaxGracefulTermination            time.Duration
	MaxNodeProvisionTime              time.Duration
	MaxTotalUnreadyPercentage         float64
	NewPodScaleUpDelay                time.Duration
	OkTotalUnreadyCount               int
	ScaleDownDelayAfterAdd            time.Duration
	ScaleDownDelayAfterDelete         time.Duration
	ScaleDownDelayAfterFailure        time.Duration
	ScaleDownUnneededTime             time.Duration
	ScaleDownUnreadyTime              time.Duration
	ScaleDownUtilizationThreshold     float64
	ScanInterval                      time.Duration
	SkipNodesWithLocalStorage         bool
	SkipNodesWithSystemPods           bool
}

// kind is how a string key's value is written.
type kind int

const (
	duration kind = iota
	seconds       // a whole number of seconds
	count         // a whole number, at least 1 unless zero is allowed
	countOrZero
	percent // 0 to 100
	ratio   // 0 to 1
	boolean
)

// key is one string-valued key of the profile.
type key struct {
	name  string
	field func(*Profile) **string
	// def is AKS's default (azure-aks-docs cluster-autoscaler.md).
	def  string
	kind kind
	set  func(*Settings, string)
}

// keys are the profile's string keys, in the SDK's order.
var keys = []key{
	{"balance-similar-node-groups", func(p *Profile) **string { return &p.BalanceSimilarNodeGroups }, "false", boolean,
		func(s *Settings, v string) { s.BalanceSimilarNodeGroups = v == "true" }},
	{"max-empty-bulk-delete", func(p *Profile) **string { return &p.MaxEmptyBulkDelete }, "10", count,
		func(s *Settings, v string) { s.MaxEmptyBulkDelete, _ = strconv.Atoi(v) }},
	{"max-graceful-termination-sec", func(p *Profile) **string { return &p.MaxGracefulTerminationSec }, "600", countOrZero,
		func(s *Settings, v string) {
			n, _ := strconv.Atoi(v)
			s.MaxGracefulTermination = time.Duration(n) * time.Second
		}},
	{"max-node-provision-time", func(p *Profile) **string { return &p.MaxNodeProvisionTime }, "15m", duration,
		func(s *Settings, v string) { s.MaxNodeProvisionTime = parseDuration(v) }},
	{"max-total-unready-percentage", func(p *Profile) **string { return &p.MaxTotalUnreadyPercentage }, "45", percent,
		func(s *Settings, v string) { s.MaxTotalUnreadyPercentage, _ = strconv.ParseFloat(v, 64) }},
	{"new-pod-scale-up-delay", func(p *Profile) **string { return &p.NewPodScaleUpDelay }, "0s", duration,
		func(s *Settings, v string) { s.NewPodScaleUpDelay = parseDuration(v) }},
	{"ok-total-unready-count", func(p *Profile) **string { return &p.OkTotalUnreadyCount }, "3", countOrZero,
		func(s *Settings, v string) { s.OkTotalUnreadyCount, _ = strconv.Atoi(v) }},
	{"scale-down-delay-after-add", func(p *Profile) **string { return &p.ScaleDownDelayAfterAdd }, "10m", duration,
		func(s *Settings, v string) { s.ScaleDownDelayAfterAdd = parseDuration(v) }},
	// AKS's default is the scan interval (upstream's is 0s).
	{"scale-down-delay-after-delete", func(p *Profile) **string { return &p.ScaleDownDelayAfterDelete }, "10s", duration,
		func(s *Settings, v string) { s.ScaleDownDelayAfterDelete = parseDuration(v) }},
	{"scale-down-delay-after-failure", func(p *Profile) **string { return &p.ScaleDownDelayAfterFailure }, "3m", duration,
		func(s *Settings, v string) { s.ScaleDownDelayAfterFailure = parseDuration(v) }},
	{"scale-down-unneeded-time", func(p *Profile) **string { return &p.ScaleDownUnneededTime }, "10m", duration,
		func(s *Settings, v string) { s.ScaleDownUnneededTime = parseDuration(v) }},
	{"scale-down-unready-time", func(p *Profile) **string { return &p.ScaleDownUnreadyTime }, "20m", duration,
		func(s *Settings, v string) { s.ScaleDownUnreadyTime = parseDuration(v) }},
	{"scale-down-utilization-threshold", func(p *Profile) **string { return &p.ScaleDownUtilizationThreshold }, "0.5", ratio,
		func(s *Settings, v string) { s.ScaleDownUtilizationThreshold, _ = strconv.ParseFloat(v, 64) }},
	// The SDK documents whole seconds; AKS's docs and examples write "10s".
	{"scan-interval", func(p *Profile) **string { return &p.ScanInterval }, "10s", seconds,
		func(s *Settings, v string) { s.ScanInterval = parseDuration(v) }},
	// The SDK's comment says true; AKS's documentation table says false.
	{"skip-nodes-with-local-storage", func(p *Profile) **string { return &p.SkipNodesWithLocalStorage }, "false", boolean,
		func(s *Settings, v string) { s.SkipNodesWithLocalStorage = v == "true" }},
	{"skip-nodes-with-system-pods", func(p *Profile) **string { return &p.SkipNodesWithSystemPods }, "true", boolean,
		func(s *Settings, v string) { s.SkipNodesWithSystemPods = v == "true" }},
}

// parseDuration reads a checked duration: Go's form, or whole seconds.
func parseDuration(v string) time.Duration {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	d, _ := time.ParseDuration(v)
	return d
}

// Invalid is a profile value AKS would refuse.
type Invalid struct{ Target, Message string }

func (e *Invalid) Error() string { return e.Target + ": " + e.Message }

// Normalize checks a profile and fills in AKS's defaults, as AKS shows
// them on GET. Booleans are written as "true" or "false".
func Normalize(p *Profile) error {
	for _, k := range keys {
		f := k.field(p)
		if *f == nil || strings.TrimSpace(**f) == "" {
			*f = to.Ptr(k.def)
			continue
		}
		v := strings.TrimSpace(**f)
		if err := check(k, v); err != nil {
			return err
		}
		if k.kind == boolean {
			v = strings.ToLower(v)
		}
		*f = to.Ptr(v)
	}
	if p.Expander == nil || *p.Expander == "" {
		p.Expander = to.Ptr(armcontainerservice.ExpanderRandom)
	}
	if !slices.Contains(armcontainerservice.PossibleExpanderValues(), *p.Expander) {
		return &Invalid{"autoScalerProfile.expander", fmt.Sprintf("The value of parameter autoScalerProfile.expander is invalid: %q. Allowed values are least-waste, most-pods, priority and random.", *p.Expander)}
	}
	if p.DaemonsetEvictionForEmptyNodes == nil {
		p.DaemonsetEvictionForEmptyNodes = to.Ptr(false)
	}
	if p.DaemonsetEvictionForOccupiedNodes == nil {
		p.DaemonsetEvictionForOccupiedNodes = to.Ptr(true)
	}
	if p.IgnoreDaemonsetsUtilization == nil {
		p.IgnoreDaemonsetsUtilization = to.Ptr(false)
	}
	return nil
}

func check(k key, v string) error {
	bad := func(want string) error {
		return &Invalid{"autoScalerProfile." + k.name, fmt.Sprintf("The value of parameter autoScalerProfile.%s is invalid: %q. It must be %s.", k.name, v, want)}
	}
	switch k.kind {
	case duration, seconds:
		if n, err := strconv.Atoi(v); err == nil && k.kind == seconds {
			if n < 1 {
				return bad("a positive duration, such as 10s")
			}
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (k.kind == seconds && d < time.Second) {
			if k.kind == seconds {
				return bad("a duration of at least a second, such as 10s, or a number of seconds")
			}
			return bad("a duration such as 30s, 10m or 1h")
		}
	case count, countOrZero:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || (k.kind == count && n == 0) {
			if k.kind == count {
				return bad("a whole number above 0")
			}
			return bad("a whole number, 0 or more")
		}
	case percent:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 100 {
			return bad("a number from 0 to 100")
		}
	case ratio:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			return bad("a number above 0 and at most 1, such as 0.5")
		}
	case boolean:
		if l := strings.ToLower(v); l != "true" && l != "false" {
			return bad("true or false")
		}
	}
	return nil
}

// Read returns the settings of a profile, AKS's defaults where it is
// silent or nil.
func Read(p *Profile) (Settings, error) {
	var cp Profile
	if p != nil {
		cp = *p
	}
	if err := Normalize(&cp); err != nil {
		return Settings{}, err
	}
	var s Settings
	for _, k := range keys {
		k.set(&s, **k.field(&cp))
	}
	s.Expander = *cp.Expander
	s.DaemonsetEvictionForEmptyNodes = *cp.DaemonsetEvictionForEmptyNodes
	s.DaemonsetEvictionForOccupiedNodes = *cp.DaemonsetEvictionForOccupiedNodes
	s.IgnoreDaemonsetsUtilization = *cp.IgnoreDaemonsetsUtilization
	return s, nil
}

package autoscaler

import (
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

func TestDefaults(t *testing.T) {
	var p Profile
	if err := Normalize(&p); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]*string{
		"scan-interval": p.ScanInterval, "scale-down-delay-after-add": p.ScaleDownDelayAfterAdd,
		"scale-down-delay-after-delete": p.ScaleDownDelayAfterDelete, "scale-down-unneeded-time": p.ScaleDownUnneededTime,
		"scale-down-utilization-threshold": p.ScaleDownUtilizationThreshold, "max-node-provision-time": p.MaxNodeProvisionTime,
		"skip-nodes-with-system-pods": p.SkipNodesWithSystemPods, "max-graceful-termination-sec": p.MaxGracefulTerminationSec,
	} {
		if want == nil || *want == "" {
			t.Errorf("%s: no default", name)
		}
	}
	if *p.Expander != armcontainerservice.ExpanderRandom || *p.ScanInterval != "10s" || *p.ScaleDownUnneededTime != "10m" || !*p.DaemonsetEvictionForOccupiedNodes {
		t.Errorf("defaults: expander %s, scan %s, unneeded %s", *p.Expander, *p.ScanInterval, *p.ScaleDownUnneededTime)
	}
	s, err := Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.ScanInterval != 10*time.Second || s.ScaleDownUnneededTime != 10*time.Minute || s.ScaleDownUtilizationThreshold != 0.5 ||
		s.MaxGracefulTermination != 600*time.Second || !s.SkipNodesWithSystemPods || s.SkipNodesWithLocalStorage || s.MaxEmptyBulkDelete != 10 {
		t.Errorf("settings %+v", s)
	}
}

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Profile
		target string // "" for accepted
	}{
		{"the spec's example", Profile{BalanceSimilarNodeGroups: to.Ptr("true"), Expander: to.Ptr(armcontainerservice.ExpanderPriority),
			MaxNodeProvisionTime: to.Ptr("15m"), NewPodScaleUpDelay: to.Ptr("1m"), ScaleDownDelayAfterAdd: to.Ptr("15m"),
			ScanInterval: to.Ptr("20s"), SkipNodesWithSystemPods: to.Ptr("false")}, ""},
		{"scan interval in seconds", Profile{ScanInterval: to.Ptr("30")}, ""},
		{"scan interval of nothing", Profile{ScanInterval: to.Ptr("0s")}, "autoScalerProfile.scan-interval"},
		{"a word for a duration", Profile{ScaleDownUnneededTime: to.Ptr("soon")}, "autoScalerProfile.scale-down-unneeded-time"},
		{"a threshold above 1", Profile{ScaleDownUtilizationThreshold: to.Ptr("1.5")}, "autoScalerProfile.scale-down-utilization-threshold"},
		{"a percentage above 100", Profile{MaxTotalUnreadyPercentage: to.Ptr("101")}, "autoScalerProfile.max-total-unready-percentage"},
		{"no bulk delete", Profile{MaxEmptyBulkDelete: to.Ptr("0")}, "autoScalerProfile.max-empty-bulk-delete"},
		{"yes for a boolean", Profile{SkipNodesWithLocalStorage: to.Ptr("yes")}, "autoScalerProfile.skip-nodes-with-local-storage"},
		{"upstream's price expander", Profile{Expander: to.Ptr(armcontainerservice.Expander("price"))}, "autoScalerProfile.expander"},
	} {
		err := Normalize(&tc.p)
		var inv *Invalid
		switch {
		case tc.target == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.target != "" && (!errors.As(err, &inv) || inv.Target != tc.target):
			t.Errorf("%s: %v, want an error for %s", tc.name, err, tc.target)
		}
	}
}

package nodepool

import (
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	corev1 "k8s.io/api/core/v1"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/nodeimage"
)

func TestOSDisk(t *testing.T) {
	eph, man := armcontainerservice.OSDiskTypeEphemeral, armcontainerservice.OSDiskTypeManaged
	tests := []struct {
		name     string
		vmSize   string
		diskType *armcontainerservice.OSDiskType
		diskGB   int32
		wantType armcontainerservice.OSDiskType
		wantGB   int32
		wantCode string
	}{
		{"cache holds 128 GiB: ephemeral by default", "Standard_D8s_v3", nil, 0, eph, 128, ""},
		{"cache too small for 128 GiB: managed by default", "Standard_DS2_v2", nil, 0, man, 128, ""},
		{"small disk fits the DS2_v2 cache", "Standard_DS2_v2", nil, 60, eph, 60, ""},
		{"temp disk placement takes the whole temp disk", "Standard_D4ds_v5", nil, 0, eph, 150, ""},
		{"no local disk: managed", "Standard_D2s_v5", nil, 0, man, 128, ""},
		{"8 vCPUs managed default is 256 GiB", "Standard_F8s_v2", to.Ptr(man), 0, man, 256, ""},
		{"explicit ephemeral too big for the cache", "Standard_DS2_v2", to.Ptr(eph), 0, "", 0, "VMCacheSizeTooSmall"},
		{"explicit ephemeral on a size without support", "Standard_D2s_v5", to.Ptr(eph), 0, "", 0, "VMSizeDoesNotSupportEphemeralOS"},
		{"explicit ephemeral that fits", "Standard_D4s_v3", to.Ptr(eph), 100, eph, 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Properties{Mode: to.Ptr(armcontainerservice.AgentPoolModeUser), VMSize: to.Ptr(tt.vmSize), OSDiskType: tt.diskType}
			if tt.diskGB != 0 {
				p.OSDiskSizeGB = to.Ptr(tt.diskGB)
			}
			err := Normalize(p)
			if tt.wantCode != "" {
				inv, ok := err.(*Invalid)
				if !ok || inv.Code != tt.wantCode {
					t.Fatalf("Normalize() = %v, want %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *p.OSDiskType != tt.wantType || *p.OSDiskSizeGB != tt.wantGB {
				t.Errorf("got %s %d GiB, want %s %d GiB", *p.OSDiskType, *p.OSDiskSizeGB, tt.wantType, tt.wantGB)
			}
		})
	}
}

func TestVMCacheSizeTooSmallMessage(t *testing.T) {
	p := &Properties{VMSize: to.Ptr("Standard_DS2_v2"), OSDiskType: to.Ptr(armcontainerservice.OSDiskTypeEphemeral)}
	err := Normalize(p)
	// AKS's own words, with the byte counts it quotes (Azure/AKS#2635).
	want := "The virtual machine size Standard_DS2_v2 has a cache size of 92341796864 bytes, but the OS disk requires 137438953472 bytes. Use a VM size with larger cache or disable ephemeral OS."
	if err == nil || err.(*Invalid).Message != want {
		t.Errorf("message = %v", err)
	}
}

func TestSpot(t *testing.T) {
	spot := func(mutate func(*Properties)) *Properties {
		p := &Properties{Mode: to.Ptr(armcontainerservice.AgentPoolModeUser), VMSize: to.Ptr("Standard_D8s_v3"),
			ScaleSetPriority: to.Ptr(armcontainerservice.ScaleSetPrioritySpot)}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	p := spot(nil)
	if err := Normalize(p); err != nil {
		t.Fatal(err)
	}
	if deref(p.NodeLabels[SpotLabel]) != "spot" || len(p.NodeTaints) != 1 || deref(p.NodeTaints[0]) != SpotTaint {
		t.Errorf("spot label/taint: %v %v", p.NodeLabels, p.NodeTaints)
	}
	if *p.ScaleSetEvictionPolicy != armcontainerservice.ScaleSetEvictionPolicyDelete || *p.SpotMaxPrice != -1 {
		t.Errorf("spot defaults: %s %v", *p.ScaleSetEvictionPolicy, *p.SpotMaxPrice)
	}
	// Normalizing again (a later PUT of the same pool) adds nothing twice.
	if err := Normalize(p); err != nil || len(p.NodeTaints) != 1 {
		t.Errorf("second normalize: %v, taints %v", err, p.NodeTaints)
	}

	for name, p := range map[string]*Properties{
		"system": spot(func(p *Properties) { p.Mode = to.Ptr(armcontainerservice.AgentPoolModeSystem) }),
		"max surge": spot(func(p *Properties) {
			p.UpgradeSettings = &armcontainerservice.AgentPoolUpgradeSettings{MaxSurge: to.Ptr("33%")}
		}),
		"ephemeral deallocate": spot(func(p *Properties) {
			p.ScaleSetEvictionPolicy = to.Ptr(armcontainerservice.ScaleSetEvictionPolicyDeallocate)
		}),
		"price of zero point": spot(func(p *Properties) { p.SpotMaxPrice = to.Ptr[float32](-2) }),
	} {
		if err := Normalize(p); err == nil || err.(*Invalid).Code != "InvalidParameter" {
			t.Errorf("%s: %v", name, err)
		}
	}

	regular := &Properties{VMSize: to.Ptr("Standard_D4s_v3"), ScaleSetEvictionPolicy: to.Ptr(armcontainerservice.ScaleSetEvictionPolicyDelete), SpotMaxPrice: to.Ptr[float32](-1)}
	if err := Normalize(regular); err != nil || regular.ScaleSetEvictionPolicy != nil || regular.SpotMaxPrice != nil {
		t.Errorf("regular pool keeps spot fields: %v", err)
	}
}

func TestCountRules(t *testing.T) {
	for _, tt := range []struct {
		mode  armcontainerservice.AgentPoolMode
		count int32
		ok    bool
	}{
		{armcontainerservice.AgentPoolModeUser, 0, true},
		{armcontainerservice.AgentPoolModeSystem, 0, false},
		{armcontainerservice.AgentPoolModeSystem, 1, true},
		{armcontainerservice.AgentPoolModeUser, 1001, false},
	} {
		p := &Properties{Mode: to.Ptr(tt.mode), Count: to.Ptr(tt.count)}
		err := Normalize(p)
		if (err == nil) != tt.ok {
			t.Errorf("%s count %d: %v", tt.mode, tt.count, err)
		}
		if err != nil && !strings.Contains(err.Error(), "agentPoolProfile.count was") {
			t.Errorf("message: %v", err)
		}
	}
}

func TestNode(t *testing.T) {
	p := &Properties{Mode: to.Ptr(armcontainerservice.AgentPoolModeSystem), VMSize: to.Ptr("Standard_D8s_v3"),
		NodeLabels: map[string]*string{"team": to.Ptr("a")}, NodeTaints: []*string{to.Ptr("dedicated=a:NoSchedule")},
		AvailabilityZones: []*string{to.Ptr("1"), to.Ptr("2")}}
	if err := Normalize(p); err != nil {
		t.Fatal(err)
	}
	family, _ := nodeimage.FamilyOf("Ubuntu")
	image := nodeimage.Shipped(family)[0]
	n := NodeSpec{Pool: "np", Hash: "12345678", Instance: 3, Cluster: "MC_rg_c_eastus", Location: "eastus", Image: image, KubeVersion: "1.36.3", Properties: p}.Node()
	if n.NodeInfo.KernelVersion != image.Kernel || n.NodeInfo.OSImage != "Ubuntu 22.04.5 LTS" {
		t.Errorf("node info %+v", n.NodeInfo)
	}
	if n.Name != "aks-np-12345678-vmss000003" {
		t.Errorf("name %s", n.Name)
	}
	for k, v := range map[string]string{
		"agentpool": "np", "kubernetes.azure.com/mode": "system", "kubernetes.azure.com/storageprofile": "ephemeral",
		"node.kubernetes.io/instance-type": "Standard_D8s_v3", "topology.kubernetes.io/zone": "eastus-2", "team": "a",
		"kubernetes.azure.com/node-image-version": image.Name(), "kubernetes.azure.com/cluster": "MC_rg_c_eastus",
	} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	if len(n.Taints) != 1 || n.Taints[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("taints %v", n.Taints)
	}
	if got := n.Capacity.Cpu().String(); got != "8" {
		t.Errorf("cpu capacity %s", got)
	}
	if got := n.Allocatable.Cpu().MilliValue(); got != 7820 {
		t.Errorf("allocatable cpu %dm, want 7820m (8 cores less 180m)", got)
	}
	// 32 GiB less min(20 MiB*110+50 MiB, 8 GiB) less 100 MiB eviction.
	if got, want := n.Allocatable.Memory().Value(), int64(32<<30)-(2250<<20)-(100<<20); got != want {
		t.Errorf("allocatable memory %d, want %d", got, want)
	}
}

func TestHourlyCost(t *testing.T) {
	regular := &Properties{VMSize: to.Ptr("Standard_D4s_v3")}
	if got := HourlyCost(regular, 3); got < 0.575 || got > 0.577 {
		t.Errorf("3 x D4s_v3 = %v, want 0.576", got)
	}
	spot := &Properties{VMSize: to.Ptr("Standard_D4s_v3"), ScaleSetPriority: to.Ptr(armcontainerservice.ScaleSetPrioritySpot), SpotMaxPrice: to.Ptr[float32](-1)}
	if got := HourlyCost(spot, 1); got < 0.038 || got > 0.039 {
		t.Errorf("spot D4s_v3 = %v", got)
	}
	if got := HourlyCost(regular, 0); got != 0 {
		t.Errorf("scaled to zero costs %v", got)
	}
}

func TestInstanceOf(t *testing.T) {
	if n, ok := InstanceOf("aks-nodepool1-12345678-vmss000012"); !ok || n != 12 {
		t.Errorf("InstanceOf = %d %v", n, ok)
	}
	if _, ok := InstanceOf("some-other-node"); ok {
		t.Error("parsed an instance from a foreign node name")
	}
}

// TestInternalIP: each pool has its own block of the node subnet, so nodes
// of different pools never share an address; a new pool takes the lowest
// free block.
func TestInternalIP(t *testing.T) {
	for _, tc := range []struct {
		slot, instance int
		want           string
	}{
		{0, 0, "10.224.0.4"}, {0, 251, "10.224.0.255"}, {0, 252, "10.224.1.0"}, {1, 0, "10.224.16.4"}, {255, 999, "10.239.243.235"},
	} {
		if got := InternalIP(tc.slot, tc.instance); got != tc.want {
			t.Errorf("InternalIP(%d, %d) = %s, want %s", tc.slot, tc.instance, got, tc.want)
		}
	}
	pools := make([]slipwayv1.AgentPool, 3)
	SetIPSlot(&pools[1], 1)
	SetIPSlot(&pools[2], 3)
	// pools[0] has no slot: made before slots, it holds 0.
	if got := FreeIPSlot(pools); got != 2 {
		t.Errorf("FreeIPSlot = %d, want 2", got)
	}
}

func TestAutoscalingRules(t *testing.T) {
	user, system := armcontainerservice.AgentPoolModeUser, armcontainerservice.AgentPoolModeSystem
	pool := func(mode armcontainerservice.AgentPoolMode, count int32, enable bool, min, max *int32) *Properties {
		return &Properties{Mode: to.Ptr(mode), Count: to.Ptr(count), EnableAutoScaling: to.Ptr(enable), MinCount: min, MaxCount: max}
	}
	for _, tc := range []struct {
		name   string
		p      *Properties
		target string // "" for accepted
	}{
		{"a User pool from zero", pool(user, 0, true, to.Ptr[int32](0), to.Ptr[int32](5)), ""},
		{"a System pool from zero", pool(system, 1, true, to.Ptr[int32](0), to.Ptr[int32](5)), "agentPoolProfile.minCount"},
		{"no minCount", pool(user, 1, true, nil, to.Ptr[int32](5)), "agentPoolProfile.minCount"},
		{"no maxCount", pool(user, 1, true, to.Ptr[int32](1), nil), "agentPoolProfile.maxCount"},
		{"min above max", pool(user, 1, true, to.Ptr[int32](5), to.Ptr[int32](3)), "agentPoolProfile.minCount"},
		{"max above 1000", pool(user, 1, true, to.Ptr[int32](1), to.Ptr[int32](1001)), "agentPoolProfile.maxCount"},
		{"bounds without the autoscaler are dropped", pool(user, 1, false, to.Ptr[int32](5), to.Ptr[int32](3)), ""},
	} {
		err := Normalize(tc.p)
		switch {
		case tc.target == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.target != "" && (err == nil || err.(*Invalid).Target != tc.target):
			t.Errorf("%s: %v, want an error for %s", tc.name, err, tc.target)
		}
		if tc.target == "" && !*tc.p.EnableAutoScaling && (tc.p.MinCount != nil || tc.p.MaxCount != nil) {
			t.Errorf("%s: bounds kept on a pool without the autoscaler", tc.name)
		}
	}
	if err := Normalize(pool(system, 0, true, to.Ptr[int32](0), to.Ptr[int32](3))); err == nil || !strings.Contains(err.Error(), "allowedMinCount") {
		t.Errorf("System pool at 0: %v, want AKS's allowedMinCount message", err)
	}

	// A count the autoscaler owns cannot be set by hand.
	old := pool(user, 3, true, to.Ptr[int32](1), to.Ptr[int32](5))
	for _, tc := range []struct {
		name   string
		old, p *Properties
		msg    string // "" for accepted
	}{
		{"new bounds, same count", old, pool(user, 3, true, to.Ptr[int32](2), to.Ptr[int32](8)), ""},
		{"a manual scale", old, pool(user, 4, true, to.Ptr[int32](1), to.Ptr[int32](5)), "Cannot manually scale AgentPool 'work'"},
		{"enable and scale at once", pool(user, 3, false, nil, nil), pool(user, 4, true, to.Ptr[int32](1), to.Ptr[int32](5)), "Cannot manually scale and enable cluster autoscaler in the same update operation on VMSS Agentpool 'work'"},
		{"disable and scale at once", old, pool(user, 4, false, nil, nil), ""},
	} {
		for _, p := range []*Properties{tc.old, tc.p} {
			p.VMSize, p.OSType, p.OSDiskType, p.ScaleSetPriority = to.Ptr("Standard_D2s_v3"), to.Ptr(armcontainerservice.OSTypeLinux), to.Ptr(armcontainerservice.OSDiskTypeManaged), to.Ptr(armcontainerservice.ScaleSetPriorityRegular)
		}
		err := ValidateUpdate("work", tc.old, tc.p)
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg) || err.(*Invalid).Code != "InvalidParameter"):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}
}

// TestWindows: Windows pools default to Windows Server 2022, are never
// System pools, take Windows SKUs only (and not 2019 past Kubernetes 1.33),
// have names of at most six characters, and make nodes that report
// Windows.
func TestWindows(t *testing.T) {
	windows := func(mode armcontainerservice.AgentPoolMode, sku string) *Properties {
		p := &Properties{Mode: to.Ptr(mode), OSType: to.Ptr(armcontainerservice.OSTypeWindows), VMSize: to.Ptr("Standard_D4s_v3")}
		if sku != "" {
			p.OSSKU = to.Ptr(armcontainerservice.OSSKU(sku))
		}
		return p
	}
	p := windows(armcontainerservice.AgentPoolModeUser, "")
	if err := Normalize(p); err != nil {
		t.Fatal(err)
	}
	if *p.OSSKU != armcontainerservice.OSSKUWindows2022 {
		t.Errorf("default Windows SKU = %s", *p.OSSKU)
	}
	for _, tc := range []struct {
		p      *Properties
		target string
	}{
		{windows(armcontainerservice.AgentPoolModeSystem, ""), "agentPoolProfile.mode"},
		{windows(armcontainerservice.AgentPoolModeUser, "Windows2019"), "agentPoolProfile.osSKU"},
		{windows(armcontainerservice.AgentPoolModeUser, "Ubuntu"), "agentPoolProfile.osSKU"},
		{&Properties{OSType: to.Ptr(armcontainerservice.OSTypeLinux), OSSKU: to.Ptr(armcontainerservice.OSSKUWindows2022)}, "agentPoolProfile.osSKU"},
		{&Properties{OSType: to.Ptr(armcontainerservice.OSType("Plan9"))}, "agentPoolProfile.osType"},
	} {
		var inv *Invalid
		if err := Normalize(tc.p); !errors.As(err, &inv) || inv.Target != tc.target {
			t.Errorf("%s/%s: %v, want an error on %s", deref(tc.p.OSType), deref(tc.p.OSSKU), err, tc.target)
		}
	}
	if err := ValidateNameFor("npwin1", p); err != nil {
		t.Errorf("a six-character Windows pool name: %v", err)
	}
	if err := ValidateNameFor("npwin12", p); err == nil {
		t.Error("a seven-character Windows pool name was accepted")
	}
	if err := ValidateNameFor("nplinux12345", &Properties{OSType: to.Ptr(armcontainerservice.OSTypeLinux)}); err != nil {
		t.Errorf("a twelve-character Linux pool name: %v", err)
	}

	family, _ := nodeimage.FamilyOf("Windows2022")
	image := nodeimage.Shipped(family)[0]
	n := NodeSpec{Pool: "npwin", Hash: "12345678", Instance: 4, Cluster: "MC_rg_c_eastus", Location: "eastus", Image: image, KubeVersion: "1.36.3", Properties: p}.Node()
	if n.Name != "aksnpwin000004" || n.Labels["kubernetes.io/os"] != "windows" || n.Labels["node.kubernetes.io/windows-build"] != "10.0.20348" ||
		n.NodeInfo.OperatingSystem != "windows" || n.NodeInfo.OSImage != "Windows Server 2022 Datacenter" || n.NodeInfo.KernelVersion != image.Kernel {
		t.Errorf("Windows node %s: labels %v, info %+v", n.Name, n.Labels, n.NodeInfo)
	}
	if i, ok := InstanceOf(n.Name); !ok || i != 4 {
		t.Errorf("InstanceOf(%s) = %d %v", n.Name, i, ok)
	}
}

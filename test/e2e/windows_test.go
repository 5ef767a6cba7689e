package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestWindowsPools: a mixed cluster, as AKS runs them. A Linux System pool
// and a Windows pool; the Windows nodes are named, labelled and report
// themselves as AKS's Windows Server nodes do, on AKS's Windows node
// images; a Windows pod lands on them; the Windows profile keeps its
// administrator and never shows the password; and the rules AKS applies to
// Windows pools (six-character names, no System pools, no Windows Server
// 2019 past Kubernetes 1.33) are refused with its errors.
func TestWindowsPools(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "windows-rg", "windows-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	win := pool("npwin", armcontainerservice.AgentPoolModeUser, 2)
	win.OSType = to.Ptr(armcontainerservice.OSTypeWindows)
	spec := newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1), win)
	// Tests beside this one publish Linux node images: no auto-upgrade may
	// hold the pools this test scales.
	spec.Properties.AutoUpgradeProfile = &armcontainerservice.ManagedClusterAutoUpgradeProfile{NodeOSUpgradeChannel: to.Ptr(armcontainerservice.NodeOSUpgradeChannelNone)}
	spec.Properties.WindowsProfile = &armcontainerservice.ManagedClusterWindowsProfile{
		AdminUsername: to.Ptr("winadmin"), AdminPassword: to.Ptr("Slipway-Windows-2025!"),
	}
	putCluster(t, c, group, name, spec)

	got, err := c.clusters.Get(ctx, group, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wp := got.Properties.WindowsProfile; wp == nil || deref(wp.AdminUsername) != "winadmin" || wp.AdminPassword != nil || !deref(wp.EnableCSIProxy) {
		t.Errorf("windowsProfile = %s", asJSON(wp))
	}
	p, err := c.pools.Get(ctx, group, name, "npwin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if deref(p.Properties.OSSKU) != armcontainerservice.OSSKUWindows2022 || !strings.HasPrefix(deref(p.Properties.NodeImageVersion), "AKSWindows-2022-containerd-20348.") {
		t.Errorf("Windows pool: osSKU %s, node image %s", deref(p.Properties.OSSKU), deref(p.Properties.NodeImageVersion))
	}

	cs := adminClient(t, c, group, name)
	var nodes []corev1.Node
	eventually(t, 2*time.Minute, "two Ready Windows nodes", func() (bool, string) {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/os=windows"})
		if err != nil {
			return false, err.Error()
		}
		nodes = list.Items
		ready := 0
		for _, n := range nodes {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == 2, fmt.Sprintf("%d nodes, %d Ready", len(nodes), ready)
	})
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for i, n := range nodes {
		info := n.Status.NodeInfo
		if want := fmt.Sprintf("aksnpwin%06d", i); n.Name != want {
			t.Errorf("Windows node %d is %s, want %s", i, n.Name, want)
		}
		if info.OperatingSystem != "windows" || info.OSImage != "Windows Server 2022 Datacenter" || !strings.HasPrefix(info.KernelVersion, "10.0.20348.") ||
			n.Labels["node.kubernetes.io/windows-build"] != "10.0.20348" || n.Labels["kubernetes.azure.com/os-sku"] != "Windows2022" || n.Labels["agentpool"] != "npwin" {
			t.Errorf("node %s: info %+v labels %v", n.Name, info, n.Labels)
		}
	}
	linux, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/os=linux"})
	if err != nil || len(linux.Items) != 1 {
		t.Errorf("Linux nodes: %d, %v", len(linux.Items), err)
	}

	waitServiceAccount(t, cs)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "iis", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector: map[string]string{"kubernetes.io/os": "windows"},
			Containers:   []corev1.Container{{Name: "iis", Image: "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022"}},
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the Windows pod Running on a Windows node", func() (bool, string) {
		got, err := cs.CoreV1().Pods("default").Get(ctx, "iis", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Status.Phase == corev1.PodRunning && strings.HasPrefix(got.Spec.NodeName, "aksnpwin"), string(got.Status.Phase) + " on " + got.Spec.NodeName
	})

	// Scaling numbers new Windows nodes on.
	scale(t, c, group, name, "npwin", 3)
	eventually(t, time.Minute, "a third Windows node", func() (bool, string) {
		_, err := cs.CoreV1().Nodes().Get(ctx, "aksnpwin000002", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})

	// Windows Server 2025 runs on its own image.
	w25 := armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
		Count: to.Ptr[int32](1), VMSize: to.Ptr("Standard_D4s_v3"), OSType: to.Ptr(armcontainerservice.OSTypeWindows), OSSKU: to.Ptr(armcontainerservice.OSSKU("Windows2025")),
	}}
	pp, err := c.pools.BeginCreateOrUpdate(ctx, group, name, "win25", w25, nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := pp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	if img := deref(done.Properties.NodeImageVersion); !strings.HasPrefix(img, "AKSWindows-2025-containerd-26100.") {
		t.Errorf("Windows 2025 pool's node image = %s", img)
	}

	// AKS's rules for Windows pools.
	for _, tc := range []struct {
		pool string
		mode armcontainerservice.AgentPoolMode
		os   armcontainerservice.OSType
		sku  string
		want string
	}{
		{"winlong", armcontainerservice.AgentPoolModeUser, armcontainerservice.OSTypeWindows, "", "can not be longer than 6 characters"},
		{"winsys", armcontainerservice.AgentPoolModeSystem, armcontainerservice.OSTypeWindows, "", "cannot be System pools"},
		{"win19", armcontainerservice.AgentPoolModeUser, armcontainerservice.OSTypeWindows, "Windows2019", "Windows2019 is not supported"},
		{"linwin", armcontainerservice.AgentPoolModeUser, armcontainerservice.OSTypeLinux, "Windows2022", "Allowed values for Linux"},
	} {
		props := &armcontainerservice.ManagedClusterAgentPoolProfileProperties{Count: to.Ptr[int32](1), Mode: to.Ptr(tc.mode), OSType: to.Ptr(tc.os)}
		if tc.sku != "" {
			props.OSSKU = to.Ptr(armcontainerservice.OSSKU(tc.sku))
		}
		_, err := c.pools.BeginCreateOrUpdate(ctx, group, name, tc.pool, armcontainerservice.AgentPool{Properties: props}, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a message with %q", tc.pool, err, tc.want)
		}
	}
	// The administrator's name never changes.
	got.Properties.WindowsProfile.AdminUsername = to.Ptr("otheradmin")
	_, err = c.clusters.BeginCreateOrUpdate(ctx, group, name, got.ManagedCluster, nil)
	expectCode(t, err, http.StatusBadRequest, "PropertyChangeNotAllowed")
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

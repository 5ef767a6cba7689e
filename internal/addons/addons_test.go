package addons

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestObjects(t *testing.T) {
	objs, err := Objects(Spec{ServiceCIDR: "10.96.0.0/16", PodCIDR: "10.244.0.0/16", APIServerFQDN: "c.hcp.local", KubernetesVersion: "v1.36.3", DiskCSIDriver: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, u := range objs {
		if _, ok := resources[u.GetKind()]; !ok {
			t.Errorf("%s %s: kind without a resource", u.GetKind(), u.GetName())
		}
		if u.GetLabels()[ModeLabel] == "" {
			t.Errorf("%s %s has no %s label", u.GetKind(), u.GetName(), ModeLabel)
		}
		seen[u.GetKind()+"/"+u.GetName()] = true
	}
	for _, want := range []string{"Deployment/coredns", "Deployment/coredns-autoscaler", "Deployment/metrics-server", "Deployment/konnectivity-agent",
		"DaemonSet/kube-proxy", "DaemonSet/cloud-node-manager", "DaemonSet/azure-ip-masq-agent", "DaemonSet/csi-azuredisk-node", "Service/kube-dns", "PodDisruptionBudget/coredns-pdb"} {
		if !seen[want] {
			t.Errorf("no %s", want)
		}
	}
	if seen["DaemonSet/csi-azurefile-node"] || seen["CSIDriver/file.csi.azure.com"] || seen["StorageClass/azurefile"] {
		t.Error("the file CSI driver's objects are there with the driver disabled")
	}
	for _, want := range []string{"CSIDriver/disk.csi.azure.com", "StorageClass/default", "StorageClass/managed-csi-premium", "StorageClass/managed-premium"} {
		if !seen[want] {
			t.Errorf("no %s", want)
		}
	}
	defaults := 0
	for _, u := range objs {
		if u.GetKind() == "StorageClass" && u.GetAnnotations()["storageclass.kubernetes.io/is-default-class"] == "true" {
			defaults++
			if u.GetName() != "default" {
				t.Errorf("%s is a default class", u.GetName())
			}
		}
	}
	if defaults != 1 {
		t.Errorf("%d default StorageClasses, want 1", defaults)
	}
	for _, u := range objs {
		if u.GetName() == "kube-dns" {
			if ip, _, _ := unstructured.NestedString(u.Object, "spec", "clusterIP"); ip != "10.96.0.10" {
				t.Errorf("kube-dns at %q, want 10.96.0.10", ip)
			}
		}
	}
}

func TestCoreWorkloads(t *testing.T) {
	core := CoreWorkloads()
	if len(core) != 7 || core[0] != (Workload{"Deployment", "coredns"}) {
		t.Errorf("core workloads %v, want CoreDNS first and seven in all", core)
	}
	for _, w := range core {
		if strings.HasPrefix(w.Name, "csi-") {
			t.Errorf("%s is a core workload, but it follows storageProfile", w.Name)
		}
	}
}

func TestDNSServiceIP(t *testing.T) {
	for cidr, want := range map[string]string{"10.0.0.0/16": "10.0.0.10", "172.16.4.0/22": "172.16.4.10", "10.1.2.3/24": "10.1.2.10"} {
		if got, err := DNSServiceIP(cidr); err != nil || got != want {
			t.Errorf("DNSServiceIP(%s) = %s, %v; want %s", cidr, got, err, want)
		}
	}
	if _, err := DNSServiceIP("10.0.0.0/29"); err == nil {
		t.Error("a /29 has no tenth address, yet no error")
	}
}

// TestZoneRedundantDiskClasses: a cluster whose nodes span zones gets the
// built-in disk classes with ZRS SKUs, every one of them; others get LRS.
func TestZoneRedundantDiskClasses(t *testing.T) {
	for _, zrs := range []bool{false, true} {
		objs, err := Objects(Spec{ServiceCIDR: "10.0.0.0/16", PodCIDR: "10.244.0.0/16", APIServerFQDN: "c", KubernetesVersion: "v1.36.3", DiskCSIDriver: true, ZoneRedundant: zrs})
		if err != nil {
			t.Fatal(err)
		}
		classes := 0
		for _, u := range objs {
			if u.GetKind() != "StorageClass" {
				continue
			}
			if p, _, _ := unstructured.NestedString(u.Object, "provisioner"); p != "disk.csi.azure.com" {
				continue
			}
			classes++
			params, _, _ := unstructured.NestedStringMap(u.Object, "parameters")
			sku := params["skuname"] + params["storageaccounttype"]
			if got := strings.HasSuffix(sku, "_ZRS"); got != zrs {
				t.Errorf("zone-redundant %v: class %s has %s", zrs, u.GetName(), sku)
			}
		}
		if classes != 5 {
			t.Errorf("zone-redundant %v: %d disk classes, want 5", zrs, classes)
		}
	}
}

// TestSnapshotClass: the disk VolumeSnapshotClass comes with the snapshot
// controller and the disk driver, and only with both.
func TestSnapshotClass(t *testing.T) {
	for _, tc := range []struct {
		snapshots, disks, want bool
	}{{true, true, true}, {true, false, false}, {false, true, false}} {
		objs, err := Objects(Spec{ServiceCIDR: "10.96.0.0/16", PodCIDR: "10.244.0.0/16", APIServerFQDN: "c.hcp.local", KubernetesVersion: "v1.36.3", SnapshotController: tc.snapshots, DiskCSIDriver: tc.disks})
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, u := range objs {
			if u.GetKind() == "VolumeSnapshotClass" {
				got = true
				if d, _, _ := unstructured.NestedString(u.Object, "driver"); d != "disk.csi.azure.com" || u.GetName() != "csi-azuredisk-vsc" || u.GetLabels()[ModeLabel] != "EnsureExists" {
					t.Errorf("snapshot class %s of %s, mode %s", u.GetName(), d, u.GetLabels()[ModeLabel])
				}
			}
		}
		if got != tc.want {
			t.Errorf("snapshot controller %v, disk driver %v: class %v, want %v", tc.snapshots, tc.disks, got, tc.want)
		}
	}
}

// Package addons holds the system add-ons AKS runs in every cluster's
// kube-system (CoreDNS, metrics-server, konnectivity-agent, kube-proxy and
// the other node DaemonSets) and applies them, as AKS's add-on manager
// does: objects labelled addonmanager.kubernetes.io/mode=Reconcile are
// server-side applied (a user's change to them is undone on the next
// apply), those labelled EnsureExists are only created.
package addons

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

//go:embed manifests.yaml
var manifests string

// snapshotCRDs are external-snapshotter's VolumeSnapshot CRDs, as its
// client module ships them (hack/snapshot-crds.sh copies them).
//
//go:embed snapshotcrds/*.yaml
var snapshotCRDs embed.FS

// secretsStoreCRDs are the Secrets Store CSI driver's SecretProviderClass
// and SecretProviderClassPodStatus CRDs, as its module ships them
// (hack/secrets-store-crds.sh copies them).
//
//go:embed secretsstorecrds/*.yaml
var secretsStoreCRDs embed.FS

var tmpl = template.Must(template.New("addons").Option("missingkey=error").Parse(manifests))

// ModeLabel is the add-on manager's label; every add-on object carries it.
const ModeLabel = "addonmanager.kubernetes.io/mode"

// FieldManager is the owner of the fields the add-ons set.
const FieldManager = "aks-addon-manager"

// Spec is what the add-ons depend on in a cluster's profile.
type Spec struct {
	// ServiceCIDR and PodCIDR are the cluster's networks; DNSServiceIP is
	// kube-dns's address ("" for the service CIDR's tenth address, AKS's
	// default).
	ServiceCIDR, PodCIDR, DNSServiceIP string
	// APIServerFQDN is the name konnectivity agents dial.
	APIServerFQDN string
	// KubernetesVersion tags kube-proxy's image, as "v1.36.3".
	KubernetesVersion string
	// DiskCSIDriver and FileCSIDriver follow storageProfile: their node
	// DaemonSets, CSIDriver objects and StorageClasses are there only when
	// the driver is enabled.
	DiskCSIDriver, FileCSIDriver bool
	// ZoneRedundant makes the built-in disk classes zone-redundant
	// (StandardSSD_ZRS, Premium_ZRS), as AKS does from Kubernetes 1.29 on
	// for clusters whose nodes span zones: a disk then follows its pod to
	// a node of any zone.
	ZoneRedundant bool
	// SnapshotController installs the VolumeSnapshot CRDs (the snapshot
	// controller itself runs in Slipway, as AKS runs it in the managed
	// control plane).
	SnapshotController bool
	// KeyVaultSecretsProvider follows addonProfiles.azureKeyvaultSecretsProvider:
	// the Secrets Store CSI driver's CSIDriver object, CRDs and node
	// DaemonSets (what mounts runs in Slipway, internal/secretsstore).
	// SecretRotation and RotationPollInterval are its config, as the
	// driver's flags show them.
	KeyVaultSecretsProvider bool
	SecretRotation          bool
	RotationPollInterval    string
	// AzurePolicy follows addonProfiles.azurepolicy: the add-on's agent
	// in kube-system (what it does runs in Slipway: the policy
	// controller writes the cluster's admission policies).
	AzurePolicy bool
}

// The built-in StorageClasses of AKS, with their parameters exactly as AKS
// writes them (lower-case keys for the disk classes).
var (
	diskClasses = map[string]string{
		"default":             "{skuname: StandardSSD_LRS}",
		"managed-csi":         "{skuname: StandardSSD_LRS}",
		"managed-csi-premium": "{skuname: Premium_LRS}",
		"managed":             "{cachingmode: ReadOnly, kind: Managed, storageaccounttype: StandardSSD_LRS}",
		"managed-premium":     "{cachingmode: ReadOnly, kind: Managed, storageaccounttype: Premium_LRS}",
	}
	fileClasses = map[string]string{
		"azurefile":             "Standard_LRS",
		"azurefile-csi":         "Standard_LRS",
		"azurefile-premium":     "Premium_LRS",
		"azurefile-csi-premium": "Premium_LRS",
	}
)

// DNSServiceIP is the tenth address of a service CIDR, where AKS puts
// kube-dns unless networkProfile.dnsServiceIP says otherwise.
func DNSServiceIP(serviceCIDR string) (string, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return "", fmt.Errorf("service CIDR %q: %w", serviceCIDR, err)
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !p.Contains(a) {
		return "", fmt.Errorf("service CIDR %s is too small for kube-dns", serviceCIDR)
	}
	return a.String(), nil
}

// Objects renders the add-on objects for spec, in the order they are
// applied (accounts and roles before the workloads that use them).
func Objects(spec Spec) ([]*unstructured.Unstructured, error) {
	spec.RotationPollInterval = cmp.Or(spec.RotationPollInterval, "2m")
	if spec.DNSServiceIP == "" {
		ip, err := DNSServiceIP(spec.ServiceCIDR)
		if err != nil {
			return nil, err
		}
		spec.DNSServiceIP = ip
	}
	var buf bytes.Buffer
	disks := diskClasses
	if spec.ZoneRedundant {
		disks = map[string]string{}
		for name, params := range diskClasses {
			disks[name] = strings.ReplaceAll(params, "_LRS", "_ZRS")
		}
	}
	data := struct {
		Spec
		DiskClasses, FileClasses map[string]string
	}{spec, disks, fileClasses}
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("rendering add-ons: %w", err)
	}
	out, err := decode(&buf)
	if err != nil {
		return nil, err
	}
	if spec.KeyVaultSecretsProvider {
		crds, err := crdsIn(secretsStoreCRDs, "secretsstorecrds")
		if err != nil {
			return nil, err
		}
		out = append(out, crds...)
	}
	if spec.SnapshotController {
		crds, err := crdsIn(snapshotCRDs, "snapshotcrds")
		if err != nil {
			return nil, err
		}
		out = append(out, crds...)
		if spec.DiskCSIDriver {
			vsc, err := decode(strings.NewReader(diskSnapshotClass))
			if err != nil {
				return nil, err
			}
			out = append(out, vsc...)
		}
	}
	return out, nil
}

// crdsIn decodes the CRDs of an embedded folder. They are made once and
// left: removing a CRD would delete every object of its kind with it (a
// cluster's snapshots, its SecretProviderClasses).
func crdsIn(files embed.FS, dir string) ([]*unstructured.Unstructured, error) {
	names, _ := fs.Glob(files, dir+"/*.yaml")
	var out []*unstructured.Unstructured
	for _, f := range names {
		data, err := files.ReadFile(f)
		if err != nil {
			return nil, err
		}
		crds, err := decode(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		for _, u := range crds {
			labels := u.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels[ModeLabel] = "EnsureExists"
			u.SetLabels(labels)
		}
		out = append(out, crds...)
	}
	return out, nil
}

// diskSnapshotClass is the VolumeSnapshotClass Slipway ships for disks,
// exactly as AKS's documentation has users create it, so applying that
// manifest changes nothing. AKS itself ships none; a class to snapshot
// with from the start is what a user expects of a snapshot controller
// that is on. Created once: the user's to edit or delete.
const diskSnapshotClass = `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-azuredisk-vsc
  labels: {addonmanager.kubernetes.io/mode: EnsureExists, kubernetes.io/cluster-service: "true"}
driver: disk.csi.azure.com
deletionPolicy: Delete
parameters: {incremental: "true"}
`

func decode(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("add-on manifests: %w", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// Workload is a Deployment or DaemonSet of the add-ons.
type Workload struct{ Kind, Name string }

// CoreWorkloads are the workloads every cluster runs whatever its profile
// (the CSI node DaemonSets follow storageProfile and are not among them):
// the core services Resource Health expects to find.
var CoreWorkloads = sync.OnceValue(func() []Workload {
	objs, err := Objects(Spec{ServiceCIDR: "10.0.0.0/16", PodCIDR: "10.244.0.0/16", APIServerFQDN: "cluster", KubernetesVersion: "v1"})
	if err != nil {
		panic(err) // the embedded manifests are rendered by the tests
	}
	var out []Workload
	for _, u := range objs {
		if k := u.GetKind(); k == "Deployment" || k == "DaemonSet" {
			out = append(out, Workload{k, u.GetName()})
		}
	}
	return out
})

// resources maps the kinds the manifests use to their API resources.
var resources = map[string]string{
	"ServiceAccount":           "serviceaccounts",
	"ConfigMap":                "configmaps",
	"Service":                  "services",
	"ClusterRole":              "clusterroles",
	"ClusterRoleBinding":       "clusterrolebindings",
	"Deployment":               "deployments",
	"DaemonSet":                "daemonsets",
	"PodDisruptionBudget":      "poddisruptionbudgets",
	"CSIDriver":                "csidrivers",
	"StorageClass":             "storageclasses",
	"CustomResourceDefinition": "customresourcedefinitions",
	"VolumeSnapshotClass":      "volumesnapshotclasses",
}

// customKinds are add-on kinds served by an add-on's CRDs: applied last,
// once their CRDs are established.
var customKinds = map[string]bool{"VolumeSnapshotClass": true}

// Apply brings the add-ons of a cluster to spec. Accounts, roles,
// configuration and services go first, all at once, then the workloads
// that use them: a pod made before its service account would wait out the
// ReplicaSet controller's backoff. What the spec does not ship is removed
// meanwhile (prune, and CRDs a spare control plane was warmed with): those
// objects are not among the ones applied.
func Apply(ctx context.Context, dc dynamic.Interface, spec Spec) error {
	objs, err := Objects(spec)
	if err != nil {
		return err
	}
	shipped := map[string]bool{}
	for _, u := range objs {
		shipped[u.GetKind()+"/"+u.GetName()] = true
	}
	removals, rctx := errgroup.WithContext(ctx)
	removals.Go(func() error { return settleWarmed(rctx, dc, shipped) })
	removals.Go(func() error { return prune(rctx, dc, spec, shipped) })
	var first, workloads, custom []*unstructured.Unstructured
	for _, u := range objs {
		switch k := u.GetKind(); {
		case k == "Deployment" || k == "DaemonSet":
			workloads = append(workloads, u)
		case customKinds[k]:
			custom = append(custom, u)
		default:
			first = append(first, u)
		}
	}
	for _, batch := range [][]*unstructured.Unstructured{first, workloads, custom} {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for _, u := range batch {
			if customKinds[u.GetKind()] {
				g.Go(func() error { return applyWhenServed(gctx, dc, u) })
				continue
			}
			g.Go(func() error { return apply(gctx, dc, u) })
		}
		if err := g.Wait(); err != nil {
			removals.Wait()
			return err
		}
	}
	return removals.Wait()
}

// prune deletes the Reconcile objects of add-ons the spec turned off (a
// CSI driver disabled): the add-on manager removes what it no longer
// ships. EnsureExists objects (the StorageClasses) are the user's once
// made, and stay.
func prune(ctx context.Context, dc dynamic.Interface, spec Spec, kept map[string]bool) error {
	all := spec
	all.DiskCSIDriver, all.FileCSIDriver, all.SnapshotController, all.KeyVaultSecretsProvider, all.AzurePolicy = true, true, true, true, true
	every, err := Objects(all)
	if err != nil {
		return err
	}
	for _, u := range every {
		if kept[u.GetKind()+"/"+u.GetName()] || u.GetLabels()[ModeLabel] != "Reconcile" {
			continue
		}
		ri, err := resourceFor(dc, u)
		if err != nil {
			return err
		}
		if err := ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing add-on %s %s: %w", strings.ToLower(u.GetKind()), u.GetName(), err)
		}
	}
	return nil
}

// resourceFor is the dynamic client of an add-on object's resource.
func resourceFor(dc dynamic.Interface, u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return nil, err
	}
	res, ok := resources[u.GetKind()]
	if !ok {
		return nil, fmt.Errorf("add-on %s: no resource known for kind %s", u.GetName(), u.GetKind())
	}
	if ns := u.GetNamespace(); ns != "" {
		return dc.Resource(gv.WithResource(res)).Namespace(ns), nil
	}
	return dc.Resource(gv.WithResource(res)), nil
}

// applyWhenServed applies an object of a CRD just made: the API server
// serves the kind a moment after the CRD is established.
func applyWhenServed(ctx context.Context, dc dynamic.Interface, u *unstructured.Unstructured) error {
	var err error
	for range 60 {
		if err = apply(ctx, dc, u); !apierrors.IsNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return err
}

// apply server-side applies one add-on object, or creates it if its mode
// is EnsureExists.
func apply(ctx context.Context, dc dynamic.Interface, u *unstructured.Unstructured) error {
	ri, err := resourceFor(dc, u)
	if err != nil {
		return err
	}
	if u.GetLabels()[ModeLabel] == "EnsureExists" {
		_, err = ri.Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	} else {
		_, err = ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	}
	if err != nil {
		return fmt.Errorf("applying add-on %s %s: %w", strings.ToLower(u.GetKind()), u.GetName(), err)
	}
	return nil
}

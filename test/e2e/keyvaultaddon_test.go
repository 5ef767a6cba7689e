package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

var (
	spcGVR   = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}
	spcpsGVR = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}
	// secretSyncGVR is upstream's secrets-store-sync-controller API.
	secretSyncGVR = schema.GroupVersionResource{Group: "secret-sync.x-k8s.io", Version: "v1alpha1", Resource: "secretsyncs"}
)

// secretProviderClass is a SecretProviderClass for the add-on's identity,
// as AKS's documentation writes one, syncing its first object into a
// Secret if secret is set.
func secretProviderClass(name, vault, tenant, clientID, secret string, objects ...string) *unstructured.Unstructured {
	var list strings.Builder
	list.WriteString("array:\n")
	for _, o := range objects {
		fmt.Fprintf(&list, "  - |\n    objectName: %s\n    objectType: secret\n", o)
	}
	spec := map[string]any{
		"provider": "azure",
		"parameters": map[string]any{
			"usePodIdentity": "false", "useVMManagedIdentity": "true", "userAssignedIdentityID": clientID,
			"keyvaultName": vault, "tenantID": tenant, "objects": list.String(),
		},
	}
	if secret != "" {
		spec["secretObjects"] = []any{map[string]any{
			"secretName": secret, "type": "Opaque", "labels": map[string]any{"app": "shop"},
			"data": []any{map[string]any{"objectName": objects[0], "key": "password"}},
		}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
		"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": spec,
	}}
}

// secretsPodSpec mounts a SecretProviderClass as AKS's documentation's
// busybox does.
func secretsPodSpec(spc string) corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{Name: "busybox", Image: "registry.k8s.io/e2e-test-images/busybox:1.29-4",
			VolumeMounts: []corev1.VolumeMount{{Name: "secrets-store01-inline", MountPath: "/mnt/secrets-store", ReadOnly: true}}}},
		Volumes: []corev1.Volume{{Name: "secrets-store01-inline", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: "secrets-store.csi.k8s.io", ReadOnly: to.Ptr(true), VolumeAttributes: map[string]string{"secretProviderClass": spc}}}}},
	}
}

// podEvent finds an event of reason on a pod whose message has want.
func podEvent(ctx context.Context, cs kubernetes.Interface, pod, reason, want string) (bool, string) {
	evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod + ",reason=" + reason})
	if err != nil {
		return false, err.Error()
	}
	last := fmt.Sprintf("no %s event", reason)
	for _, e := range evs.Items {
		if strings.Contains(e.Message, want) {
			return true, ""
		}
		last = e.Message
	}
	return false, last
}

// TestKeyVaultSecretsProvider: the add-on turned on by a PUT of an existing
// cluster; a Deployment's pod mounts a vault's secret with the add-on's
// identity and gets it as a synced Secret; rotation follows a new version;
// a missing secret holds the pod with FailedMount until it is set; the
// Secret goes with the Deployment; the add-on turned off removes it.
func TestKeyVaultSecretsProvider(t *testing.T) {
	s := serve(t)
	c := newClients(t, s)
	ctx := context.Background()
	const group, name = "kvaddon-rg", "kvaddon-aks"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		t.Fatal(err)
	}
	mc := putCluster(t, c, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, 1)))

	// A vault with RBAC, and its secret set by the subscription's owner.
	vaultName := "kva-" + strings.ToLower(newGUID()[:8])
	vault := newVault(t, s, group, vaultName)
	s.assign(t, "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", s.conn.ObjectID, *vault.ID) // Key Vault Secrets Officer
	secrets := secretsClient(t, s, *vault.Properties.VaultURI)
	setSecret(t, secrets, "db-password", "hunter2")

	var addon *armcontainerservice.ManagedClusterAddonProfile
	t.Run("a PUT turns the add-on on, with AKS's defaults and identity", func(t *testing.T) {
		bad := mc
		bad.Properties = to.Ptr(*mc.Properties)
		bad.Properties.AddonProfiles = map[string]*armcontainerservice.ManagedClusterAddonProfile{
			"azureKeyvaultSecretsProvider": {Enabled: to.Ptr(true), Config: map[string]*string{"rotationPollInterval": to.Ptr("soon")}}}
		_, err := c.clusters.BeginCreateOrUpdate(ctx, group, name, bad, nil)
		expectCode(t, err, http.StatusBadRequest, "InvalidParameter")

		mc.Properties.AddonProfiles = map[string]*armcontainerservice.ManagedClusterAddonProfile{
			// az sends the key as it spells it; a client that spells
			// it otherwise is stored under AKS's name.
			"AzureKeyVaultSecretsProvider": {Enabled: to.Ptr(true), Config: map[string]*string{"enableSecretRotation": to.Ptr("true"), "rotationPollInterval": to.Ptr("2s")}}}
		mc = putCluster(t, c, group, name, mc)
		addon = mc.Properties.AddonProfiles["azureKeyvaultSecretsProvider"]
		if addon == nil || addon.Identity == nil || len(mc.Properties.AddonProfiles) != 1 {
			t.Fatalf("add-on profiles %+v", mc.Properties.AddonProfiles)
		}
		wantID := fmt.Sprintf("/subscriptions/%s/resourcegroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azurekeyvaultsecretsprovider-%s",
			s.conn.SubscriptionID, *mc.Properties.NodeResourceGroup, name)
		if *addon.Identity.ResourceID != wantID || *addon.Identity.ClientID == "" || *addon.Identity.ObjectID == "" ||
			*addon.Config["enableSecretRotation"] != "true" || *addon.Config["rotationPollInterval"] != "2s" {
			t.Errorf("add-on %+v, identity %+v", addon.Config, *addon.Identity)
		}
	})
	if addon == nil {
		t.FailNow()
	}
	cs := adminClient(t, c, group, name)
	dc := dynamic.NewForConfigOrDie(adminConfig(t, c, group, name))

	t.Run("the driver and provider run in kube-system", func(t *testing.T) {
		if d, err := cs.StorageV1().CSIDrivers().Get(ctx, "secrets-store.csi.k8s.io", metav1.GetOptions{}); err != nil || !*d.Spec.RequiresRepublish || *d.Spec.AttachRequired {
			t.Errorf("CSIDriver: %+v %v", d, err)
		}
		eventually(t, 60*time.Second, "the add-on's pods running", func() (bool, string) {
			pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app in (secrets-store-csi-driver,secrets-store-provider-azure)"})
			if err != nil {
				return false, err.Error()
			}
			running := 0
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			return running == 2, fmt.Sprintf("%d of %d running", running, len(pods.Items))
		})
		eventually(t, 30*time.Second, "SecretProviderClass served", func() (bool, string) {
			_, err := dc.Resource(spcGVR).Namespace("default").List(ctx, metav1.ListOptions{})
			return err == nil, fmt.Sprint(err)
		})
		waitServiceAccount(t, cs)
	})

	// The add-on's identity may read the vault's secrets.
	s.assign(t, "4633458b-17de-408a-b874-0445c86b69e6", *addon.Identity.ObjectID, *vault.ID) // Key Vault Secrets User
	spc := secretProviderClass("azure-kvname", vaultName, s.conn.TenantID, *addon.Identity.ClientID, "db", "db-password")
	if _, err := dc.Resource(spcGVR).Namespace("default").Create(ctx, spc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: to.Ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}}, Spec: secretsPodSpec("azure-kvname")},
		},
	}
	var podName string
	t.Run("a pod mounts the secret and it is synced as a Secret", func(t *testing.T) {
		// The role assignment holds a moment after it is made: the first
		// mount may be refused and retried, as on AKS.
		if _, err := cs.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "the pod running", func() (bool, string) {
			pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
			if err != nil || len(pods.Items) != 1 {
				return false, fmt.Sprint(len(pods.Items), err)
			}
			podName = pods.Items[0].Name
			return pods.Items[0].Status.Phase == corev1.PodRunning, string(pods.Items[0].Status.Phase)
		})
		st, err := dc.Resource(spcpsGVR).Namespace("default").Get(ctx, podName+"-default-azure-kvname", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("SecretProviderClassPodStatus: %v", err)
		}
		objects, _, _ := unstructured.NestedSlice(st.Object, "status", "objects")
		mounted, _, _ := unstructured.NestedBool(st.Object, "status", "mounted")
		if len(objects) != 1 || objects[0].(map[string]any)["id"] != "secret/db-password" || !mounted || st.GetOwnerReferences()[0].Name != podName {
			t.Errorf("status %+v", st.Object)
		}
		secret, err := cs.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(secret.Data["password"]) != "hunter2" || secret.Labels["secrets-store.csi.k8s.io/managed"] != "true" || secret.Labels["app"] != "shop" ||
			len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].Kind != "ReplicaSet" {
			t.Errorf("synced Secret: data %q, labels %v, owners %+v", secret.Data["password"], secret.Labels, secret.OwnerReferences)
		}
	})

	t.Run("rotation follows a new version within two poll intervals", func(t *testing.T) {
		if _, err := secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("correct-horse")}, nil); err != nil {
			t.Fatal(err)
		}
		// Two intervals of 2 s, and slack for a busy machine.
		start := time.Now()
		eventually(t, 2*2*time.Second+5*time.Second, "the Secret rotated", func() (bool, string) {
			secret, err := cs.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return string(secret.Data["password"]) == "correct-horse", string(secret.Data["password"])
		})
		t.Logf("rotation took %s against a 2s poll interval", time.Since(start).Round(time.Millisecond))
		eventually(t, 10*time.Second, "MountRotationComplete", func() (bool, string) {
			return podEvent(ctx, cs, podName, "MountRotationComplete", "successfully rotated mounted contents for spc default/azure-kvname")
		})
	})

	t.Run("a SecretSync syncs without a pod, and rotates", func(t *testing.T) {
		ss := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "secret-sync.x-k8s.io/v1alpha1", "kind": "SecretSync",
			"metadata": map[string]any{"name": "db-synced", "namespace": "default"},
			"spec": map[string]any{"secretProviderClassName": "azure-kvname", "serviceAccountName": "default",
				"secretObject": map[string]any{"type": "Opaque", "data": []any{map[string]any{"sourcePath": "db-password", "targetKey": "password"}}}},
		}}
		if _, err := dc.Resource(secretSyncGVR).Namespace("default").Create(ctx, ss, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		synced := func(want, reason string) func() (bool, string) {
			return func() (bool, string) {
				secret, err := cs.CoreV1().Secrets("default").Get(ctx, "db-synced", metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				got, err := dc.Resource(secretSyncGVR).Namespace("default").Get(ctx, "db-synced", metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
				reasons := ""
				for _, c := range conds {
					reasons += fmt.Sprint(c.(map[string]any)["reason"]) + " "
				}
				return string(secret.Data["password"]) == want && strings.Contains(reasons, reason) &&
					secret.Labels["secrets-store.sync.x-k8s.io/secretsync"] == "db-synced", fmt.Sprintf("%q, conditions %s", secret.Data["password"], reasons)
			}
		}
		start := time.Now()
		eventually(t, 30*time.Second, "the SecretSync's Secret", synced("correct-horse", "CreateSucceeded"))
		t.Logf("SecretSync's Secret made in %s", time.Since(start).Round(time.Millisecond))
		if _, err := secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("battery-staple")}, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*2*time.Second+5*time.Second, "the SecretSync's Secret rotated", synced("battery-staple", "ValueChangeOrForceUpdateDetected"))
		if err := dc.Resource(secretSyncGVR).Namespace("default").Delete(ctx, "db-synced", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		defer func() { t.Logf("SecretSync's Secret collected in %s", time.Since(start).Round(time.Millisecond)) }()
		eventually(t, 60*time.Second, "the SecretSync's Secret collected with it", func() (bool, string) {
			_, err := cs.CoreV1().Secrets("default").Get(ctx, "db-synced", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	})

	t.Run("a missing secret holds the pod with FailedMount until it is set", func(t *testing.T) {
		spc := secretProviderClass("later", vaultName, s.conn.TenantID, *addon.Identity.ClientID, "", "not-yet")
		if _, err := dc.Resource(spcGVR).Namespace("default").Create(ctx, spc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "waits", Namespace: "default"}, Spec: secretsPodSpec("later")}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "FailedMount", func() (bool, string) {
			return podEvent(ctx, cs, "waits", "FailedMount", "objectName:not-yet, objectVersion:: RESPONSE 404: SecretNotFound")
		})
		if got, _ := cs.CoreV1().Pods("default").Get(ctx, "waits", metav1.GetOptions{}); got.Status.Phase != corev1.PodPending {
			t.Fatalf("pod with an unmountable volume is %s", got.Status.Phase)
		}
		if _, err := secrets.SetSecret(ctx, "not-yet", azsecrets.SetSecretParameters{Value: to.Ptr("now")}, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 45*time.Second, "the pod running once the secret is there", func() (bool, string) {
			got, err := cs.CoreV1().Pods("default").Get(ctx, "waits", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return got.Status.Phase == corev1.PodRunning, string(got.Status.Phase)
		})
	})

	t.Run("the synced Secret goes with the Deployment", func(t *testing.T) {
		if err := cs.AppsV1().Deployments("default").Delete(ctx, "shop", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "the Secret collected", func() (bool, string) {
			_, err := cs.CoreV1().Secrets("default").Get(ctx, "db", metav1.GetOptions{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
	})

	t.Run("turning the add-on off removes the driver", func(t *testing.T) {
		mc.Properties.AddonProfiles["azureKeyvaultSecretsProvider"] = &armcontainerservice.ManagedClusterAddonProfile{Enabled: to.Ptr(false)}
		mc = putCluster(t, c, group, name, mc)
		if a := mc.Properties.AddonProfiles["azureKeyvaultSecretsProvider"]; a == nil || *a.Enabled || a.Identity != nil {
			t.Errorf("disabled add-on %+v", a)
		}
		if _, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "aks-secrets-store-csi-driver", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("driver DaemonSet after the add-on is off: %v", err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "no-driver", Namespace: "default"}, Spec: secretsPodSpec("later")}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "FailedMount without the driver", func() (bool, string) {
			return podEvent(ctx, cs, "no-driver", "FailedMount", "driver name secrets-store.csi.k8s.io not found in the list of registered CSI drivers")
		})
	})
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// newVault makes an RBAC vault in group through armkeyvault.
func newVault(t testing.TB, s *server, group, name string) armkeyvault.Vault {
	t.Helper()
	vaults, err := armkeyvault.NewVaultsClient(s.conn.SubscriptionID, s.credential(t, s.conn.ClientSecret), s.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	poller, err := vaults.BeginCreateOrUpdate(context.Background(), group, name, armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr(s.conn.Location),
		Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(s.conn.TenantID), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableRbacAuthorization: to.Ptr(true)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := poller.PollUntilDone(context.Background(), poll)
	if err != nil {
		t.Fatal(err)
	}
	return v.Vault
}

// setSecret sets a secret once the caller's data role, just assigned,
// holds (assignments reach the authorizer's cache a moment later).
func setSecret(t testing.TB, c *azsecrets.Client, name, value string) {
	t.Helper()
	eventually(t, 10*time.Second, "secret "+name+" set", func() (bool, string) {
		_, err := c.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil)
		return err == nil, fmt.Sprint(err)
	})
}

// BenchmarkSecretGet measures GetSecret through azsecrets against one
// vault from 16 concurrent clients (each its own client, so each pays one
// challenge round trip first), and reports the median and 99th percentile
// latency of b.N gets per client.
//
//	make bench-keyvault
func BenchmarkSecretGet(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group = "kvbench-rg"
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	v := newVault(b, s, group, "kvb-"+strings.ToLower(newGUID()[:8]))
	s.assign(b, "00482a5a-887f-4fb3-b363-3b7fe8e74483", s.conn.ObjectID, *v.ID) // Key Vault Administrator
	setSecret(b, secretsClient(b, s, *v.Properties.VaultURI), "bench", "value")
	clients := 16
	if n, err := strconv.Atoi(os.Getenv("SLIPWAY_KV_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	var mu sync.Mutex
	var latencies []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := secretsClient(b, s, *v.Properties.VaultURI)
			var mine []time.Duration
			for range b.N {
				start := time.Now()
				if _, err := sc.GetSecret(ctx, "bench", "", nil); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	fmt.Printf("GetSecret, %d clients × %d gets: p50 %v, p99 %v\n", clients, b.N, p(0.5).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond))
}

// BenchmarkSecretsProviderMount measures the Key Vault Secrets Provider
// add-on on a cluster created with it: for b.N pods made one after
// another, each mounting its own SecretProviderClass that syncs a Secret,
// the time from the pod bound to a node (the scheduler's binding, seen by
// a watch) to its Secret synced, and to the pod Running. It reports the
// medians.
//
//	make bench-keyvault
func BenchmarkSecretsProviderMount(b *testing.B) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group, name = "kvmount-rg", "kvmount-aks"
	mc := addonCluster(b, s, c, group, name, "azureKeyvaultSecretsProvider", 2)
	addon := mc.Properties.AddonProfiles["azureKeyvaultSecretsProvider"].Identity
	vaultName := "kvm-" + strings.ToLower(newGUID()[:8])
	v := newVault(b, s, group, vaultName)
	s.assign(b, "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", s.conn.ObjectID, *v.ID) // Key Vault Secrets Officer
	s.assign(b, "4633458b-17de-408a-b874-0445c86b69e6", *addon.ObjectID, *v.ID) // Key Vault Secrets User
	setSecret(b, secretsClient(b, s, *v.Properties.VaultURI), "db-password", "hunter2")
	cs := adminClient(b, c, group, name)
	dc := dynamic.NewForConfigOrDie(adminConfig(b, c, group, name))
	waitServiceAccount(b, cs)
	eventually(b, 60*time.Second, "SecretProviderClass served", func() (bool, string) {
		_, err := dc.Resource(spcGVR).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil, fmt.Sprint(err)
	})

	pods, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=mount"})
	if err != nil {
		b.Fatal(err)
	}
	defer pods.Stop()
	synced, err := cs.CoreV1().Secrets("default").Watch(ctx, metav1.ListOptions{LabelSelector: "secrets-store.csi.k8s.io/managed=true"})
	if err != nil {
		b.Fatal(err)
	}
	defer synced.Stop()
	// mountOne makes pod i and waits for its binding, Secret and start.
	// (The framework runs a benchmark more than once: each run's names
	// are its own.)
	run := strings.ToLower(newGUID()[:6])
	mountOne := func(i int) (toSecret, toRunning time.Duration) {
		secretName := fmt.Sprintf("synced-%s-%d", run, i)
		spc := secretProviderClass(fmt.Sprintf("spc-%s-%d", run, i), vaultName, s.conn.TenantID, *addon.ClientID, secretName, "db-password")
		if _, err := dc.Resource(spcGVR).Namespace("default").Create(ctx, spc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("mount-%s-%d", run, i), Namespace: "default", Labels: map[string]string{"bench": "mount"}},
			Spec: secretsPodSpec(spc.GetName())}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		var bound, secret, running time.Time
		timeout := time.After(2 * time.Minute)
		for secret.IsZero() || running.IsZero() {
			select {
			case ev := <-pods.ResultChan():
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || p.Name != pod.Name {
					continue
				}
				if bound.IsZero() && p.Spec.NodeName != "" {
					bound = time.Now()
				}
				if running.IsZero() && p.Status.Phase == corev1.PodRunning {
					running = time.Now()
				}
			case ev := <-synced.ResultChan():
				if sec, ok := ev.Object.(*corev1.Secret); ok && sec.Name == secretName && secret.IsZero() {
					secret = time.Now()
				}
			case <-timeout:
				b.Fatalf("pod %s: bound %v, Secret synced %v, running %v after 2 minutes", pod.Name, !bound.IsZero(), !secret.IsZero(), !running.IsZero())
			}
		}
		return secret.Sub(bound), running.Sub(bound)
	}
	mountOne(-1) // the add-on identity's role reaches the authorizer's cache
	b.ResetTimer()
	var toSecret, toRunning []time.Duration
	for i := range b.N {
		sec, run := mountOne(i)
		toSecret, toRunning = append(toSecret, sec), append(toRunning, run)
	}
	b.StopTimer()
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	b.ReportMetric(float64(median(toSecret).Microseconds())/1000, "bound-to-secret-ms")
	b.ReportMetric(float64(median(toRunning).Microseconds())/1000, "bound-to-running-ms")
	fmt.Printf("Secrets Store mount, %d pods: pod bound → Secret synced median %v, → Running median %v\n",
		b.N, median(toSecret).Round(time.Millisecond), median(toRunning).Round(time.Millisecond))
}

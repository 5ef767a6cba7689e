package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// portalBench is the benchmark's cluster and signed-in client, made once:
// the benchmark function runs again for each b.N.
var portalBench struct {
	once sync.Once
	hc   *http.Client
	base string
}

func portalBenchSetup(b *testing.B) (*http.Client, string) {
	s := serve(b)
	c := newClients(b, s)
	ctx := context.Background()
	const group, name, nodes, pods = "portalbench-rg", "portalbench-aks", 1000, 5000
	if _, err := c.groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr(s.conn.Location)}, nil); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	putCluster(b, c, group, name, newCluster(s.conn.Location, pool("system", armcontainerservice.AgentPoolModeSystem, nodes)))
	fmt.Printf("a cluster of %d nodes in %s\n", nodes, time.Since(start).Round(time.Second))
	cs := adminClient(b, c, group, name)
	waitServiceAccount(b, cs)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "many", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: to.Ptr[int32](pods), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "many"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "many"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	// The pages' cost is in the objects listed, so the figures are taken
	// once all 5,000 exist, whatever their phase (reported).
	start = time.Now()
	running := 0
	eventually(b, 20*time.Minute, "5,000 pods made", func() (bool, string) {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=many"})
		if err != nil {
			return false, err.Error()
		}
		running = 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return len(list.Items) >= pods, fmt.Sprint(len(list.Items))
	})
	fmt.Printf("%d pods made in %s, %d of them Running\n", pods, time.Since(start).Round(time.Second), running)
	// Measured once the cluster is quiet: all pods Running, or none more
	// for 30 s (the figures are the portal's, not a busy scheduler's).
	last, still := -1, 0
	for still < 6 && running < pods {
		time.Sleep(5 * time.Second)
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=many", ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		running = 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running == last {
			still++
		} else {
			last, still = running, 0
		}
	}
	fmt.Printf("measuring with %d of %d pods Running, %s after they were made\n", running, pods, time.Since(start).Round(time.Second))

	out, err := exec.Command(s.bin, "portal", "--data-dir", s.dataDir).Output()
	if err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := s.httpClient()
	hc.Jar = jar
	resp, err := hc.Get(strings.TrimSpace(string(out)))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	return hc, "https://" + s.listen + "/portal/clusters/" + group + "/" + name
}

// BenchmarkPortalPages measures the portal's pages of a cluster of 1,000
// nodes and 5,000 pods, as a signed-in browser asks for them: the
// cluster's overview (with its pools' Ready nodes counted), a page of
// nodes and a page of pods. Each b.N is one request of each page; the
// figures are medians.
func BenchmarkPortalPages(b *testing.B) {
	portalBench.once.Do(func() { portalBench.hc, portalBench.base = portalBenchSetup(b) })
	if portalBench.hc == nil {
		b.Fatal("setup failed")
	}
	hc, base := portalBench.hc, portalBench.base
	pages := []struct{ name, url, want string }{
		{"cluster", base, `data-pool="system"`},
		{"nodes", base + "/k8s/core/v1/nodes", "AKSUbuntu"},
		{"pods", base + "/k8s/core/v1/pods", "many-"},
	}
	times := map[string][]time.Duration{}
	fetch := func(url, want string) time.Duration {
		start := time.Now()
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			b.Fatalf("%s: %d, without %q", url, resp.StatusCode, want)
		}
		return took
	}
	for _, pg := range pages {
		fetch(pg.url, pg.want) // the credential and discovery, made once per session
	}
	b.ResetTimer()
	for range b.N {
		for _, pg := range pages {
			times[pg.name] = append(times[pg.name], fetch(pg.url, pg.want))
		}
	}
	b.StopTimer()
	for _, pg := range pages {
		d := times[pg.name]
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, pg.name+"-ms")
		fmt.Printf("portal %s page, 1,000 nodes and 5,000 pods: median %v (%d requests)\n", pg.name, d[len(d)/2].Round(100*time.Microsecond), len(d))
	}
}

package metering

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
)

// OpenCost's default prices of a vCPU-hour and a GiB-hour of memory: not
// what anything costs, but how a node's price is split between its CPU and
// its memory.
const cpuHourWeight, gibHourWeight = 0.031611, 0.004237

// poolLabel names a node's pool.
const poolLabel = "kubernetes.azure.com/agentpool"

// Allocate shares each pool's VMs out among the pods on them, as OpenCost
// allocates a node's cost: a pod takes its CPU request's part of the
// node's CPU and its memory request's part of the memory, the two weighted
// by what CPU and memory cost; what no pod requested is idle. The shares
// are of a pool's whole compute cost, by namespace and workload.
func Allocate(nodes []corev1.Node, pods []corev1.Pod) map[string][]slipwayv1.UsageShare {
	type node struct {
		pool                 string
		cpu, mem, cpuW, memW float64
	}
	byName := map[string]node{}
	perPool := map[string]int{}
	for _, n := range nodes {
		pool := n.Labels[poolLabel]
		cpu, mem := float64(n.Status.Capacity.Cpu().MilliValue()), float64(n.Status.Capacity.Memory().Value())
		if pool == "" || cpu <= 0 || mem <= 0 {
			continue
		}
		cpuW := cpu / 1000 * cpuHourWeight
		memW := mem / (1 << 30) * gibHourWeight
		byName[n.Name] = node{pool: pool, cpu: cpu, mem: mem, cpuW: cpuW / (cpuW + memW), memW: memW / (cpuW + memW)}
		perPool[pool]++
	}
	type key struct{ pool, namespace, workload string }
	used := map[key]float64{}
	for i := range pods {
		p := &pods[i]
		n, ok := byName[p.Spec.NodeName]
		if !ok || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		req := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
		share := n.cpuW*min(1, float64(req.Cpu().MilliValue())/n.cpu) + n.memW*min(1, float64(req.Memory().Value())/n.mem)
		if share <= 0 {
			continue
		}
		used[key{n.pool, p.Namespace, workloadOf(p)}] += share / float64(perPool[n.pool])
	}
	out := map[string][]slipwayv1.UsageShare{}
	for k, share := range used {
		out[k.pool] = append(out[k.pool], slipwayv1.UsageShare{Namespace: k.namespace, Workload: k.workload, PartsPerMillion: int64(share * 1e6)})
	}
	for _, shares := range out {
		slices.SortFunc(shares, func(a, b slipwayv1.UsageShare) int {
			return strings.Compare(a.Namespace+"/"+a.Workload, b.Namespace+"/"+b.Workload)
		})
	}
	return out
}

// workloadOf is a pod's top controller as Kind/name: a ReplicaSet's pods
// are their Deployment's (its name less the pod template hash).
func workloadOf(p *corev1.Pod) string {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return ""
	}
	if ref.Kind == "ReplicaSet" {
		if hash := p.Labels["pod-template-hash"]; hash != "" && strings.HasSuffix(ref.Name, "-"+hash) {
			return "Deployment/" + strings.TrimSuffix(ref.Name, "-"+hash)
		}
	}
	return ref.Kind + "/" + ref.Name
}

package autoscaler

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"k8s.io/kubectl/pkg/drain"

	"github.com/slipway-dev/slipway/internal/nodepods"
)

// requests is what a pod asks of a node's CPU (millicores) and memory
// (bytes), as the scheduler counts it.
func requests(p *corev1.Pod) (cpu, mem int64) {
	for _, c := range p.Spec.Containers {
		cpu += c.Resources.Requests.Cpu().MilliValue()
		mem += c.Resources.Requests.Memory().Value()
	}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cpu += c.Resources.Requests.Cpu().MilliValue()
			mem += c.Resources.Requests.Memory().Value()
		}
	}
	if p.Spec.Overhead != nil {
		cpu += p.Spec.Overhead.Cpu().MilliValue()
		mem += p.Spec.Overhead.Memory().Value()
	}
	return cpu, mem
}

// daemonSetPod says a pod is a DaemonSet's: it goes with its node.
func daemonSetPod(p *corev1.Pod) bool {
	owner := metav1.GetControllerOf(p)
	return owner != nil && owner.Kind == "DaemonSet"
}

// mirrorPod says a pod is a static pod's mirror.
func mirrorPod(p *corev1.Pod) bool {
	_, ok := p.Annotations[corev1.MirrorPodAnnotationKey]
	return ok
}

// utilization is a node's: the larger of its pods' CPU and memory
// requests over what it can allocate.
func utilization(n *corev1.Node, pods []*corev1.Pod, ignoreDaemonSets bool) float64 {
	var cpu, mem int64
	for _, p := range pods {
		if ignoreDaemonSets && daemonSetPod(p) {
			continue
		}
		c, m := requests(p)
		cpu += c
		mem += m
	}
	u := 0.0
	if a := n.Status.Allocatable.Cpu().MilliValue(); a > 0 {
		u = float64(cpu) / float64(a)
	}
	if a := n.Status.Allocatable.Memory().Value(); a > 0 {
		u = max(u, float64(mem)/float64(a))
	}
	return u
}

// blocking says why a pod keeps its node, as upstream's drain rules do,
// or "" if it can move.
func (a *Autoscaler) blocking(p *corev1.Pod, s Settings) string {
	safe := p.Annotations[annSafeToEvict]
	if safe == "false" {
		return "NotSafeToEvictAnnotation"
	}
	if safe == "true" {
		return ""
	}
	if metav1.GetControllerOf(p) == nil {
		return "NotReplicated"
	}
	if s.SkipNodesWithLocalStorage {
		for _, v := range p.Spec.Volumes {
			if v.HostPath != nil || (v.EmptyDir != nil && v.EmptyDir.Medium != corev1.StorageMediumMemory) {
				return "LocalStorageRequested"
			}
		}
	}
	if s.SkipNodesWithSystemPods && p.Namespace == metav1.NamespaceSystem && !a.hasPDB(p) {
		return "UnmovableKubeSystemPod"
	}
	return ""
}

// hasPDB says a PodDisruptionBudget covers the pod.
func (a *Autoscaler) hasPDB(p *corev1.Pod) bool {
	pdbs, err := a.pdbs.PodDisruptionBudgets(p.Namespace).List(labels.Everything())
	if err != nil {
		return false
	}
	for _, b := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			return true
		}
	}
	return false
}

// scaleDown finds the nodes not needed for long enough and removes them:
// empty ones together, one with pods at a time, drained through the
// Eviction API so PodDisruptionBudgets hold.
func (a *Autoscaler) scaleDown(ctx context.Context, v *view, s Settings, now time.Time) error {
	if now.Sub(a.lastScaleUp) < s.ScaleDownDelayAfterAdd || now.Sub(a.lastScaleDown) < s.ScaleDownDelayAfterDelete ||
		now.Sub(a.lastFailure) < s.ScaleDownDelayAfterFailure {
		a.status.scaleDownCandidates = 0
		return nil
	}
	podsOn := map[string][]*corev1.Pod{}
	for _, p := range v.pods {
		podsOn[p.Spec.NodeName] = append(podsOn[p.Spec.NodeName], p)
	}
	a.mu.Lock()
	draining := maps.Clone(a.draining)
	a.mu.Unlock()
	removing := map[string]int{} // pool -> nodes leaving
	for n := range draining {
		removing[v.poolOf[n]]++
	}

	// Which nodes could go: under the threshold, with every pod able to
	// move to a node that stays.
	var candidates []*corev1.Node
	seen := map[string]bool{}
	for _, n := range v.nodes {
		pool, ok := v.poolOf[n.Name]
		p := v.pools[pool]
		if !ok || !p.Enabled || p.Busy || draining[n.Name] || n.DeletionTimestamp != nil || n.Annotations[annScaleDownDisabled] == "true" {
			continue
		}
		if utilization(n, podsOn[n.Name], s.IgnoreDaemonsetsUtilization) >= s.ScaleDownUtilizationThreshold {
			continue
		}
		candidates = append(candidates, n)
	}
	var unneeded []*corev1.Node
	gone := map[string]bool{}
	for n := range draining {
		gone[n] = true
	}
	for _, n := range candidates {
		if a.movable(ctx, v, n, podsOn[n.Name], gone, s) {
			unneeded = append(unneeded, n)
			gone[n.Name] = true
			seen[n.Name] = true
			if _, ok := a.unneeded[n.Name]; !ok {
				a.unneeded[n.Name] = now
			}
		}
	}
	for n := range a.unneeded {
		if !seen[n] {
			delete(a.unneeded, n)
		}
	}
	a.status.scaleDownCandidates = len(unneeded)

	// Remove those unneeded long enough, keeping each pool at its minimum.
	var empty []*corev1.Node
	var occupied *corev1.Node
	sort.Slice(unneeded, func(i, j int) bool { return a.unneeded[unneeded[i].Name].Before(a.unneeded[unneeded[j].Name]) })
	for _, n := range unneeded {
		wait := s.ScaleDownUnneededTime
		if !ready(n) {
			wait = s.ScaleDownUnreadyTime
		}
		if now.Sub(a.unneeded[n.Name]) < wait {
			continue
		}
		pool := v.poolOf[n.Name]
		p := v.pools[pool]
		if p.Count-removing[pool] <= p.Min {
			continue
		}
		moving := slices.DeleteFunc(slices.Clone(podsOn[n.Name]), func(p *corev1.Pod) bool { return daemonSetPod(p) || mirrorPod(p) })
		switch {
		case len(moving) == 0 && len(empty) < s.MaxEmptyBulkDelete:
			empty = append(empty, n)
			removing[pool]++
		case len(moving) > 0 && occupied == nil && len(draining) == 0:
			occupied = n
			removing[pool]++
		}
	}
	for _, n := range append(empty, occupied) {
		if n == nil {
			continue
		}
		a.remove(ctx, v.poolOf[n.Name], n.Name, s, len(podsOn[n.Name]) > 0)
		delete(a.unneeded, n.Name)
	}
	return nil
}

// movable says whether every pod on node n could be placed on the nodes
// that stay (not in gone); the places found are taken in the snapshot, so
// two nodes never count on the same room.
func (a *Autoscaler) movable(ctx context.Context, v *view, n *corev1.Node, pods []*corev1.Pod, gone map[string]bool, s Settings) bool {
	var others []*corev1.Node
	for _, o := range v.nodes {
		if o.Name != n.Name && !gone[o.Name] && !o.Spec.Unschedulable {
			others = append(others, o)
		}
	}
	moving := slices.DeleteFunc(slices.Clone(pods), func(p *corev1.Pod) bool { return daemonSetPod(p) || mirrorPod(p) })
	if len(moving) == 0 {
		return true
	}
	for _, p := range moving {
		if p.Spec.Priority != nil && *p.Spec.Priority < expendableCutoff {
			continue
		}
		if a.blocking(p, s) != "" {
			return false
		}
	}
	// The node's pods leave the snapshot, then each must find a place.
	var rest []*corev1.Pod
	for _, p := range v.pods {
		if p.Spec.NodeName != n.Name {
			rest = append(rest, p)
		}
	}
	saved := v.pods
	v.pods = rest
	a.sim.use(v.snapshot())
	v.pods = saved
	var placed []*corev1.Pod
	for _, p := range moving {
		orphan := p.DeepCopy()
		orphan.Spec.NodeName = ""
		node := a.place(ctx, orphan, others)
		if node == "" {
			return false
		}
		if err := a.sim.assume(orphan, node); err != nil {
			return false
		}
		moved := orphan.DeepCopy()
		moved.Spec.NodeName = node
		placed = append(placed, moved)
	}
	// Keep the room taken for the next candidates.
	v.pods = append(rest, placed...)
	return true
}

// remove drains node (if it has pods) and deletes its VM, in the
// background: a drain waits for PodDisruptionBudgets.
func (a *Autoscaler) remove(ctx context.Context, pool, node string, s Settings, hasPods bool) {
	a.mu.Lock()
	a.draining[node] = true
	a.mu.Unlock()
	a.lastScaleDown = a.now()
	reason := "ScaleDownEmpty"
	if hasPods {
		reason = "ScaleDown"
	}
	a.event(nil, corev1.EventTypeNormal, reason, "Scale-down: removing node %s", node)
	go func() {
		defer func() {
			a.mu.Lock()
			delete(a.draining, node)
			a.mu.Unlock()
		}()
		log := klog.FromContext(ctx)
		if err := a.drain(ctx, node, s, !hasPods); err != nil {
			log.Info("Scale-down drain failed", "node", node, "err", err.Error())
			a.untaint(ctx, node)
			a.mu.Lock()
			a.lastFailure = a.now()
			a.mu.Unlock()
			a.event(nil, corev1.EventTypeWarning, "ScaleDownFailed", "failed to drain node %s: %v", node, err)
			return
		}
		if err := a.cluster.RemoveNode(ctx, pool, node); err != nil {
			log.Info("Scale-down: removing the VM failed", "node", node, "err", err.Error())
			a.untaint(ctx, node)
			a.mu.Lock()
			a.lastFailure = a.now()
			a.mu.Unlock()
			return
		}
		a.event(nil, corev1.EventTypeNormal, reason, "Scale-down: node %s removed", node)
	}()
}

// drainTimeout is how long a scale-down drain retries evictions that a
// PodDisruptionBudget refuses, as upstream's does.
const drainTimeout = 2 * time.Minute

// drain taints the node so nothing new lands on it, then evicts its pods
// (DaemonSets' too, as the profile's daemonset-eviction-for-* keys say),
// giving each at most max-graceful-termination-sec.
func (a *Autoscaler) drain(ctx context.Context, node string, s Settings, empty bool) error {
	n, err := a.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == taintToBeDeleted }) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: taintToBeDeleted, Value: fmt.Sprint(a.now().Unix()), Effect: corev1.TaintEffectNoSchedule})
		if _, err := a.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("tainting %s: %w", node, err)
		}
	}
	evictDaemonSets := s.DaemonsetEvictionForOccupiedNodes
	if empty {
		if !s.DaemonsetEvictionForEmptyNodes {
			return nil // nothing but DaemonSet pods, which go with the node
		}
		evictDaemonSets = true
	}
	// kubectl's drain refuses DaemonSet pods; they are evicted after the
	// others, best effort, as upstream does (the taint keeps their
	// DaemonSets from putting them back).
	h := &drain.Helper{
		Ctx: ctx, Client: a.client, Force: true, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
		GracePeriodSeconds: int(s.MaxGracefulTermination.Seconds()), Timeout: drainTimeout,
		Out: io.Discard, ErrOut: io.Discard,
	}
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return errs[0]
	}
	if err := h.DeleteOrEvictPods(list.Pods()); err != nil {
		return err
	}
	if !evictDaemonSets {
		return nil
	}
	pods, err := nodepods.List(ctx, a.client, node)
	if err != nil {
		return nil
	}
	for _, p := range pods.Items {
		if daemonSetPod(&p) && p.DeletionTimestamp == nil {
			h.EvictPod(p, policyv1.SchemeGroupVersion)
		}
	}
	return nil
}

// cleanTaints removes the ToBeDeleted taint from every node this
// autoscaler is not draining.
func (a *Autoscaler) cleanTaints(ctx context.Context) error {
	nodes, err := a.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	a.mu.Lock()
	draining := maps.Clone(a.draining)
	a.mu.Unlock()
	for _, n := range nodes {
		if !draining[n.Name] && slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == taintToBeDeleted }) {
			a.untaint(ctx, n.Name)
		}
	}
	return nil
}

// untaint gives a node whose removal failed back to the scheduler.
func (a *Autoscaler) untaint(ctx context.Context, node string) {
	n, err := a.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return
	}
	n.Spec.Taints = slices.DeleteFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == taintToBeDeleted })
	a.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
}

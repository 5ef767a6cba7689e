package autoscaler

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/klog/v2"
)

// scaleUpRequest is a scale-up the autoscaler made and waits to see
// through: the pool's nodes are to reach target by the deadline.
type scaleUpRequest struct {
	from, target int
	deadline     time.Time
}

// nodeCensus counts the cluster's registered nodes, as upstream's cluster
// state does.
type nodeCensus struct {
	total, ready, notStarted, unready, beingDeleted int
}

// census counts nodes. A node that is not Ready is still starting while
// younger than the provision time; a cordoned one (a stopped pool's
// deallocated VM, a node being drained) is not counted unready.
func census(nodes []*corev1.Node, s Settings, now time.Time) nodeCensus {
	var c nodeCensus
	for _, n := range nodes {
		c.total++
		switch {
		case n.DeletionTimestamp != nil || hasTaint(n, taintToBeDeleted):
			c.beingDeleted++
		case ready(n):
			c.ready++
		case now.Sub(n.CreationTimestamp.Time) < s.MaxNodeProvisionTime:
			c.notStarted++
		case n.Spec.Unschedulable:
		default:
			c.unready++
		}
	}
	return c
}

// healthy says the cluster is fit to autoscale: no more unready nodes than
// ok-total-unready-count, or than max-total-unready-percentage of them.
// Past that, upstream stops scaling until the nodes recover.
func (c nodeCensus) healthy(s Settings) bool {
	return c.unready <= s.OkTotalUnreadyCount || float64(c.unready) <= s.MaxTotalUnreadyPercentage/100*float64(c.total)
}

func hasTaint(n *corev1.Node, key string) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key })
}

// checkProvisioning ends the scale-ups whose nodes are up, and gives up on
// those whose nodes did not come up within max-node-provision-time: the
// pool goes back to the nodes it has, and backs off, as upstream removes
// long-unregistered nodes and backs their group off.
func (a *Autoscaler) checkProvisioning(ctx context.Context, v *view, s Settings, now time.Time) error {
	readyIn := map[string]int{}
	for _, n := range v.nodes {
		if pool, ok := v.poolOf[n.Name]; ok && ready(n) && !strings.HasPrefix(n.Name, "template-node-for-") {
			readyIn[pool]++
		}
	}
	for name, req := range a.scaleUps {
		p, ok := v.pools[name]
		switch {
		case !ok || p.Count != req.target || readyIn[name] >= req.target:
			// Done, or overtaken: someone else sized the pool since.
			delete(a.scaleUps, name)
		case now.After(req.deadline):
			delete(a.scaleUps, name)
			up := max(readyIn[name], req.from)
			msg := fmt.Sprintf("Nodes added to group %s failed to register within %s", p.ScaleSet, s.MaxNodeProvisionTime)
			a.event(nil, corev1.EventTypeWarning, "ScaleUpTimedOut", "%s", msg)
			klog.FromContext(ctx).Info("Scale-up timed out", "pool", name, "target", req.target, "ready", readyIn[name])
			a.fail(p, now, "timeout", msg)
			if err := a.cluster.Resize(ctx, name, p.Count, up); err != nil {
				return err
			}
			p.Count = up
		}
	}
	return nil
}

// Labels that say which pool or zone a node is in, not what it offers:
// two pools that differ only in them are similar.
var poolSpecificLabel = []string{"kubernetes.azure.com/", "agentpool", corev1.LabelHostname, corev1.LabelTopologyZone,
	corev1.LabelFailureDomainBetaZone, "topology.disk.csi.azure.com/zone", "cluster-autoscaler.kubernetes.io/"}

// similar says two pools' nodes are interchangeable, as upstream's
// balance-similar-node-groups judges them: the same capacity (memory
// within 1.5%), the same taints, the same labels but for those naming the
// pool or zone.
func similar(a, b *Pool) bool {
	ta, tb := a.Template, b.Template
	if ta == nil || tb == nil || !equality.Semantic.DeepEqual(ta.Spec.Taints, tb.Spec.Taints) {
		return false
	}
	if ta.Status.Capacity.Cpu().Cmp(*tb.Status.Capacity.Cpu()) != 0 {
		return false
	}
	ma, mb := float64(ta.Status.Capacity.Memory().Value()), float64(tb.Status.Capacity.Memory().Value())
	if math.Abs(ma-mb) > 0.015*max(ma, mb) {
		return false
	}
	own := func(labels map[string]string) map[string]string {
		out := maps.Clone(labels)
		maps.DeleteFunc(out, func(k, _ string) bool {
			return slices.ContainsFunc(poolSpecificLabel, func(p string) bool { return strings.HasPrefix(k, p) })
		})
		return out
	}
	return maps.Equal(own(ta.Labels), own(tb.Labels))
}

// balance spreads n new nodes over similar groups, each to the smallest
// group with room, as upstream's BalanceScaleUpBetweenGroups does. It
// returns each group's new size, in the groups' order.
func balance(groups []*Pool, n int) []int {
	sizes := make([]int, len(groups))
	for i, g := range groups {
		sizes[i] = g.Count
	}
	for ; n > 0; n-- {
		best := -1
		for i, g := range groups {
			if sizes[i] < g.Max && (best < 0 || sizes[i] < sizes[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		sizes[best]++
	}
	return sizes
}

// similarOptions are the groups a scale-up for best may be balanced over:
// best's pool and those of the other options that are similar to it and
// would take every pod best takes.
func similarOptions(best option, options []option) []*Pool {
	groups := []*Pool{best.pool}
	for _, o := range options {
		if o.pool == best.pool || o.pool.NoCapacity != "" || !similar(best.pool, o.pool) {
			continue
		}
		takesAll := true
		for _, pod := range best.pods {
			if !slices.Contains(o.pods, pod) {
				takesAll = false
				break
			}
		}
		if takesAll {
			groups = append(groups, o.pool)
		}
	}
	slices.SortFunc(groups, func(x, y *Pool) int { return strings.Compare(x.Name, y.Name) })
	return groups
}

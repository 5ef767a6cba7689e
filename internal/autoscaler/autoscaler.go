package autoscaler

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
)

// Pool is a node pool as the autoscaler sees it: a node group.
type Pool struct {
	// Name is the pool's name; ScaleSet its scale set's, the node group's
	// ID in the status ConfigMap, events and the priority expander.
	Name, ScaleSet string
	// Enabled says the pool autoscales, between Min and Max nodes.
	Enabled  bool
	Min, Max int
	// Count is the pool's target size.
	Count int
	// Template is a node of the pool as its VMs register it: labels,
	// taints, capacity. Simulated new nodes are copies of it.
	Template *corev1.Node
	// Busy says an operation (an upgrade, a user's scale) holds the pool:
	// the autoscaler leaves it alone until it ends.
	Busy bool
	// NoCapacity, if set, is why the pool cannot grow now (a Spot pool
	// without capacity): a scale-up fails with it, as Azure's would.
	NoCapacity string
}

// Cluster is what the autoscaler reads and changes of one cluster's pools.
type Cluster interface {
	// Pools returns the cluster's pools and its autoScalerProfile.
	Pools(ctx context.Context) ([]Pool, *Profile, error)
	// Resize sets a pool's count from one size to another; it fails if
	// the pool is no longer at from.
	Resize(ctx context.Context, pool string, from, to int) error
	// RemoveNode deletes a drained node's VM; the pool's count goes down
	// by one.
	RemoveNode(ctx context.Context, pool, node string) error
}

// Autoscaler is one cluster's cluster autoscaler.
type Autoscaler struct {
	cluster Cluster
	client  kubernetes.Interface
	nodes   corelisters.NodeLister
	pods    corelisters.PodLister
	pdbs    policylisters.PodDisruptionBudgetLister
	cms     corelisters.ConfigMapLister
	sim     *simulator
	events  record.EventRecorder
	now     func() time.Time

	// What earlier loops decided, as the upstream autoscaler keeps it.
	lastScaleUp, lastScaleDown, lastFailure time.Time
	unneeded                                map[string]time.Time      // node -> unneeded since
	backoff                                 map[string]backoff        // scale set -> backoff
	scaleUps                                map[string]scaleUpRequest // pool -> the scale-up under way
	mu                                      sync.Mutex
	draining                                map[string]bool // nodes being drained for removal
	cleaned                                 bool            // stale ToBeDeleted taints removed
	status                                  status
}

// backoff keeps a node group that failed to grow out of scale-ups for a
// while, doubling from 5 minutes to 30, as upstream does.
type backoff struct {
	until    time.Time
	duration time.Duration
	code     string
	message  string
}

// Annotations and taints of the upstream autoscaler that users set or see.
const (
	annScaleDownDisabled = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
	annSafeToEvict       = "cluster-autoscaler.kubernetes.io/safe-to-evict"
	annPodScaleUpDelay   = "cluster-autoscaler.kubernetes.io/pod-scale-up-delay"
	taintToBeDeleted     = "ToBeDeletedByClusterAutoscaler"
	// expendableCutoff: pods below this priority neither trigger a
	// scale-up nor block a scale-down.
	expendableCutoff = -10
)

// templateName is a simulated new node of a group.
func templateName(scaleSet string, i int) string {
	return fmt.Sprintf("template-node-for-%s-%d", scaleSet, i)
}

// fromTemplate is the i-th simulated new node of a pool.
func fromTemplate(p *Pool, i int) *corev1.Node {
	n := p.Template.DeepCopy()
	n.Name = templateName(p.ScaleSet, i)
	n.UID = ""
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[corev1.LabelHostname] = n.Name
	n.Labels["cluster-autoscaler.kubernetes.io/template-node"] = "true"
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	// Taints a booting node sheds once it is up are not the template's.
	n.Spec.Taints = slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable || t.Key == "node.cloudprovider.kubernetes.io/uninitialized"
	})
	return n
}

// ready says a node is Ready.
func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unschedulable says the scheduler has given up on a pod for now.
func unschedulable(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// view is the cluster as one loop sees it: the pools by name, which pool
// each node is in, and the snapshot's nodes and pods.
type view struct {
	pools      map[string]*Pool
	poolOf     map[string]string // node -> pool
	nodes      []*corev1.Node    // snapshot nodes: real, and upcoming ones
	registered []*corev1.Node    // the real nodes, as they are
	pods       []*corev1.Pod     // pods on the snapshot's nodes
}

// snapshot builds a fresh scheduler snapshot of the view, plus extra
// nodes.
func (v *view) snapshot(extra ...*corev1.Node) *cache.Snapshot {
	return cache.NewSnapshot(v.pods, append(slices.Clone(v.nodes), extra...))
}

// RunOnce is one loop of the autoscaler: read, scale up or down, report.
func (a *Autoscaler) RunOnce(ctx context.Context) (Settings, error) {
	pools, profile, err := a.cluster.Pools(ctx)
	if err != nil {
		return Settings{}, err
	}
	settings, err := Read(profile)
	if err != nil {
		return Settings{}, err
	}
	if !a.cleaned {
		// A drain cut short by a restart left its node tainted; as
		// upstream does at start, the taint goes, and the node is judged
		// afresh.
		if err := a.cleanTaints(ctx); err != nil {
			return settings, err
		}
		a.cleaned = true
	}
	now := a.now()
	v, err := a.look(pools, settings, now)
	if err != nil {
		return settings, err
	}
	anyEnabled := slices.ContainsFunc(pools, func(p Pool) bool { return p.Enabled })
	a.status = status{time: now, groups: map[string]*groupStatus{}}
	for _, p := range v.pools {
		if p.Enabled {
			a.status.groups[p.ScaleSet] = &groupStatus{pool: p}
		}
	}
	if !anyEnabled {
		return settings, a.writeStatus(ctx, false)
	}

	if err := a.checkProvisioning(ctx, v, settings, now); err != nil {
		return settings, err
	}
	a.status.census = census(v.registered, settings, now)
	if !a.status.census.healthy(settings) {
		// Too many nodes are broken for the picture to be trusted:
		// neither up nor down until they recover.
		a.status.unhealthy = true
		klog.FromContext(ctx).Info("Cluster is not ready for autoscaling", "unready", a.status.census.unready, "total", a.status.census.total)
		return settings, a.writeStatus(ctx, true)
	}

	pending, err := a.pending(settings, now)
	if err != nil {
		return settings, err
	}
	// Pods that fit where there is room, or will be once the nodes being
	// made are up, need no new node.
	snap := v.snapshot()
	a.sim.use(snap)
	var stranded []*corev1.Pod
	// Room only shrinks as pods are placed: once a pod fits no node, its
	// equivalents (same controller, same scheduling constraints) do not
	// either, as upstream's equivalence groups have it.
	fitsNowhere := map[string]bool{}
	for _, pod := range pending {
		key := equivalence(pod)
		if fitsNowhere[key] {
			stranded = append(stranded, pod)
			continue
		}
		if node := a.place(ctx, pod, v.nodes); node != "" {
			if err := a.sim.assume(pod, node); err != nil {
				return settings, err
			}
			p := pod.DeepCopy()
			p.Spec.NodeName = node
			v.pods = append(v.pods, p)
			continue
		}
		fitsNowhere[key] = true
		stranded = append(stranded, pod)
	}
	a.status.scaleUpNeeded = len(stranded) > 0
	scaledUp := false
	if len(stranded) > 0 {
		if scaledUp, err = a.scaleUp(ctx, v, stranded, settings, now); err != nil {
			return settings, err
		}
	}
	if !scaledUp {
		if err := a.scaleDown(ctx, v, settings, now); err != nil {
			return settings, err
		}
	}
	return settings, a.writeStatus(ctx, true)
}

// look reads the nodes and pods into a view. A pool's nodes that are
// still booting (younger than the provision time), and those it is yet to
// make, stand in the snapshot as copies of its template: the pods waiting
// for them are not stranded. A node unready for longer is what it is.
func (a *Autoscaler) look(pools []Pool, s Settings, now time.Time) (*view, error) {
	v := &view{pools: map[string]*Pool{}, poolOf: map[string]string{}}
	for i := range pools {
		v.pools[pools[i].Name] = &pools[i]
	}
	nodes, err := a.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	v.registered = nodes
	registered := map[string]int{}
	for _, n := range nodes {
		pool := n.Labels["kubernetes.azure.com/agentpool"]
		if p, ok := v.pools[pool]; ok {
			v.poolOf[n.Name] = pool
			registered[pool]++
			starting := now.Sub(n.CreationTimestamp.Time) < s.MaxNodeProvisionTime
			if !ready(n) && starting && n.DeletionTimestamp == nil && p.Template != nil && !n.Spec.Unschedulable {
				t := fromTemplate(p, 0)
				t.Name, t.Labels[corev1.LabelHostname] = n.Name, n.Name
				v.nodes = append(v.nodes, t)
				continue
			}
		}
		v.nodes = append(v.nodes, n)
	}
	for _, p := range v.pools {
		if p.Template == nil {
			continue
		}
		for i := registered[p.Name]; i < p.Count; i++ {
			v.nodes = append(v.nodes, fromTemplate(p, 100000+i))
		}
	}
	pods, err := a.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.Spec.NodeName != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			v.pods = append(v.pods, p)
		}
	}
	return v, nil
}

// pending lists the unschedulable pods that may trigger a scale-up:
// old enough, and not expendable, oldest first.
func (a *Autoscaler) pending(s Settings, now time.Time) ([]*corev1.Pod, error) {
	pods, err := a.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if !unschedulable(p) || (p.Spec.Priority != nil && *p.Spec.Priority < expendableCutoff) {
			continue
		}
		delay := s.NewPodScaleUpDelay
		if v, ok := p.Annotations[annPodScaleUpDelay]; ok {
			if d, err := time.ParseDuration(v); err == nil {
				delay = d
			}
		}
		if now.Sub(p.CreationTimestamp.Time) < delay {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out, nil
}

// equivalence is the key of a pod's equivalence group: pods of one
// controller with the same scheduling constraints and requests fit the
// same nodes.
func equivalence(p *corev1.Pod) string {
	owner := ""
	if ref := metav1.GetControllerOf(p); ref != nil {
		owner = string(ref.UID)
	} else {
		owner = p.Namespace + "/" + p.Name // a bare pod is its own group
	}
	constraints, _ := json.Marshal(struct {
		Labels      map[string]string
		Selector    map[string]string
		Affinity    *corev1.Affinity
		Tolerations []corev1.Toleration
		Spread      []corev1.TopologySpreadConstraint
		Containers  []corev1.Container
		Volumes     []corev1.Volume
	}{p.Labels, p.Spec.NodeSelector, p.Spec.Affinity, p.Spec.Tolerations, p.Spec.TopologySpreadConstraints, p.Spec.Containers, p.Spec.Volumes})
	return owner + "/" + string(constraints)
}

// place finds a node of the current snapshot that takes pod, or "".
func (a *Autoscaler) place(ctx context.Context, pod *corev1.Pod, nodes []*corev1.Node) string {
	state, allowed, err := a.sim.preFilter(ctx, pod)
	if err != nil {
		return ""
	}
	for _, n := range nodes {
		if ok, _ := a.sim.fits(ctx, state, allowed, pod, n.Name); ok {
			return n.Name
		}
	}
	return ""
}

// option is what growing one pool would do.
type option struct {
	pool  *Pool
	nodes int
	pods  []*corev1.Pod
	// waste is the share of the new nodes' CPU and memory left idle.
	waste float64
}

// scaleUp grows the pool the expander picks for the stranded pods. It
// says whether a pool was grown.
func (a *Autoscaler) scaleUp(ctx context.Context, v *view, stranded []*corev1.Pod, s Settings, now time.Time) (bool, error) {
	log := klog.FromContext(ctx)
	var options []option
	// Why each pool was passed over, for NotTriggerScaleUp: per pod, the
	// reasons counted over the pools.
	skipped := map[string]int{}
	rejected := map[*corev1.Pod]map[string]int{}
	names := make([]string, 0, len(v.pools))
	for name := range v.pools {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := v.pools[name]
		switch {
		case !p.Enabled || p.Template == nil:
			continue
		case p.Busy:
			skipped["not ready for scale-up"]++
			continue
		case now.Before(a.backoff[p.ScaleSet].until):
			skipped["in backoff after failed scale-up"]++
			a.status.groups[p.ScaleSet].backoff = a.backoff[p.ScaleSet]
			continue
		case p.Count >= p.Max:
			skipped["max node group size reached"]++
			continue
		}
		room := min(p.Max-p.Count, len(stranded))
		opt := a.estimate(ctx, v, p, stranded, room, rejected)
		if opt.nodes > 0 {
			options = append(options, opt)
		}
	}
	if len(options) == 0 {
		for _, pod := range stranded {
			reasons := map[string]int{}
			for r, n := range skipped {
				reasons[r] += n
			}
			for r, n := range rejected[pod] {
				reasons[r] += n
			}
			a.event(pod, corev1.EventTypeNormal, "NotTriggerScaleUp", "pod didn't trigger scale-up: %s", summarize(reasons))
		}
		return false, nil
	}
	best := a.expand(options, string(s.Expander))
	p := best.pool
	if p.NoCapacity != "" {
		a.fail(p, now, "AllocationFailed", p.NoCapacity)
		a.event(nil, corev1.EventTypeWarning, "FailedToScaleUpGroup", "Scale-up failed for group %s: %s", p.ScaleSet, p.NoCapacity)
		log.Info("Scale-up failed: no capacity", "pool", p.Name, "reason", p.NoCapacity)
		// The next loop tries the next option, this pool backed off.
		return false, nil
	}
	groups, targets := []*Pool{p}, []int{p.Count + best.nodes}
	if s.BalanceSimilarNodeGroups {
		groups = similarOptions(best, options)
		targets = balance(groups, best.nodes)
	}
	var grown []string
	for i, g := range groups {
		if targets[i] == g.Count {
			continue
		}
		a.event(nil, corev1.EventTypeNormal, "ScaledUpGroup", "Scale-up: setting group %s size to %d instead of %d (max: %d)", g.ScaleSet, targets[i], g.Count, g.Max)
		if err := a.cluster.Resize(ctx, g.Name, g.Count, targets[i]); err != nil {
			a.fail(g, now, "ScaleUpFailed", err.Error())
			a.event(nil, corev1.EventTypeWarning, "FailedToScaleUpGroup", "Scale-up failed for group %s: %v", g.ScaleSet, err)
			continue
		}
		log.Info("Scaled up", "pool", g.Name, "from", g.Count, "to", targets[i], "pods", len(best.pods))
		a.event(nil, corev1.EventTypeNormal, "ScaledUpGroup", "Scale-up: group %s size set to %d instead of %d (max: %d)", g.ScaleSet, targets[i], g.Count, g.Max)
		grown = append(grown, fmt.Sprintf("{%s %d->%d (max: %d)}", g.ScaleSet, g.Count, targets[i], g.Max))
		a.scaleUps[g.Name] = scaleUpRequest{from: g.Count, target: targets[i], deadline: now.Add(s.MaxNodeProvisionTime)}
		delete(a.backoff, g.ScaleSet)
		g.Count = targets[i]
	}
	if len(grown) == 0 {
		return false, nil
	}
	for _, pod := range best.pods {
		a.event(pod, corev1.EventTypeNormal, "TriggeredScaleUp", "pod triggered scale-up: [%s]", strings.Join(grown, " "))
	}
	a.lastScaleUp = now
	a.status.scaleUpInProgress = true
	return true, nil
}

// estimate packs the stranded pods onto up to room new nodes of p, as
// upstream's binpacking estimator does: each pod goes on a new node
// already in use if it fits there, or on the next one.
func (a *Autoscaler) estimate(ctx context.Context, v *view, p *Pool, stranded []*corev1.Pod, room int, rejected map[*corev1.Pod]map[string]int) option {
	news := make([]*corev1.Node, room)
	for i := range news {
		news[i] = fromTemplate(p, i)
	}
	a.sim.use(v.snapshot(news...))
	opt := option{pool: p}
	// First fit: an equivalent of a pod placed on new node i fits none
	// before i, so it starts looking there.
	from := map[string]int{}
	for _, pod := range stranded {
		state, allowed, err := a.sim.preFilter(ctx, pod)
		if err != nil {
			reject(rejected, pod, err.Error())
			continue
		}
		key := equivalence(pod)
		placed, why := -1, ""
		for i := from[key]; i <= min(opt.nodes, room-1); i++ {
			ok, reason := a.sim.fits(ctx, state, allowed, pod, news[i].Name)
			if ok {
				placed = i
				break
			}
			why = reason
		}
		if placed < 0 {
			reject(rejected, pod, why)
			continue
		}
		if err := a.sim.assume(pod, news[placed].Name); err != nil {
			reject(rejected, pod, err.Error())
			continue
		}
		from[key] = placed
		opt.pods = append(opt.pods, pod)
		opt.nodes = max(opt.nodes, placed+1)
	}
	opt.waste = waste(p.Template, opt.nodes, opt.pods)
	return opt
}

func reject(rejected map[*corev1.Pod]map[string]int, pod *corev1.Pod, why string) {
	if why == "" {
		return
	}
	if rejected[pod] == nil {
		rejected[pod] = map[string]int{}
	}
	rejected[pod][why]++
}

// summarize renders reasons as upstream does: "2 Insufficient cpu, 1 max
// node group size reached".
func summarize(reasons map[string]int) string {
	if len(reasons) == 0 {
		return "it wouldn't fit if a new node is added"
	}
	var parts []string
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// waste is the share of new nodes' CPU and memory the pods leave idle,
// the least-waste expander's score.
func waste(t *corev1.Node, nodes int, pods []*corev1.Pod) float64 {
	if nodes == 0 {
		return 1
	}
	cpu := float64(t.Status.Allocatable.Cpu().MilliValue()) * float64(nodes)
	mem := float64(t.Status.Allocatable.Memory().Value()) * float64(nodes)
	var usedCPU, usedMem float64
	for _, p := range pods {
		c, m := requests(p)
		usedCPU += float64(c)
		usedMem += float64(m)
	}
	w := 0.0
	if cpu > 0 {
		w += (cpu - usedCPU) / cpu
	}
	if mem > 0 {
		w += (mem - usedMem) / mem
	}
	return w / 2
}

// expand picks one option, as the profile's expander does.
func (a *Autoscaler) expand(options []option, expander string) option {
	switch expander {
	case "most-pods":
		best := options[0]
		for _, o := range options[1:] {
			if len(o.pods) > len(best.pods) {
				best = o
			}
		}
		return best
	case "least-waste":
		best := options[0]
		for _, o := range options[1:] {
			if o.waste < best.waste {
				best = o
			}
		}
		return best
	case "priority":
		if picked, ok := a.byPriority(options); ok {
			return picked
		}
	}
	return options[rand.IntN(len(options))]
}

// fail backs a pool off after a failed scale-up.
func (a *Autoscaler) fail(p *Pool, now time.Time, code, message string) {
	b := a.backoff[p.ScaleSet]
	b.duration = min(max(2*b.duration, 5*time.Minute), 30*time.Minute)
	b.until, b.code, b.message = now.Add(b.duration), code, message
	a.backoff[p.ScaleSet] = b
	a.lastFailure = now
	if g := a.status.groups[p.ScaleSet]; g != nil {
		g.backoff = b
	}
}

// event records an event as the cluster autoscaler; one without an object
// goes on the status ConfigMap, as upstream's do.
func (a *Autoscaler) event(obj *corev1.Pod, kind, reason, format string, args ...any) {
	if obj != nil {
		a.events.Eventf(obj, kind, reason, format, args...)
		return
	}
	cm, err := a.cms.ConfigMaps(statusNamespace).Get(statusName)
	if apierrors.IsNotFound(err) {
		// The first loop's events come before its status: the ConfigMap
		// is made now, as upstream's starts out Initializing.
		cm, err = a.client.CoreV1().ConfigMaps(statusNamespace).Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: statusName, Namespace: statusNamespace},
			Data:       map[string]string{"status": "autoscalerStatus: Initializing\n"},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cm, err = a.client.CoreV1().ConfigMaps(statusNamespace).Get(context.Background(), statusName, metav1.GetOptions{})
		}
	}
	if err == nil {
		a.events.Eventf(cm, kind, reason, format, args...)
	}
}

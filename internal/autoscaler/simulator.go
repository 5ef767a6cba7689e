package autoscaler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/latest"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedulermetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
)

// simulator decides whether a pod fits a node the way kube-scheduler does:
// with the default profile's PreFilter and Filter plugins, run over a
// snapshot of nodes and pods that the autoscaler builds and changes
// (adding nodes a pool would make, placing pods on them). No fit logic is
// Slipway's own.
type simulator struct {
	fw     framework.Framework
	lister *snapshotLister
}

// unsupported are default plugins the simulation leaves out: dynamic
// resource allocation needs a DRA manager Slipway's clusters have no use
// for (no devices on simulated nodes).
var unsupported = []string{names.DynamicResources}

// newSimulator builds the scheduler framework over the cluster's informers
// (the volume and topology plugins read claims, classes, CSINodes and
// workloads through them).
func newSimulator(ctx context.Context, factory informers.SharedInformerFactory) (*simulator, error) {
	initMetrics()
	cfg, err := latest.Default()
	if err != nil {
		return nil, fmt.Errorf("scheduler defaults: %w", err)
	}
	profile := cfg.Profiles[0]
	disable(&profile, unsupported...)
	lister := &snapshotLister{Snapshot: cache.NewEmptySnapshot()}
	fw, err := frameworkruntime.NewFramework(ctx, plugins.NewInTreeRegistry(), &profile,
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithSnapshotSharedLister(lister),
		frameworkruntime.WithParallelism(1))
	if err != nil {
		return nil, fmt.Errorf("scheduler framework: %w", err)
	}
	return &simulator{fw: fw, lister: lister}, nil
}

// initMetrics makes the scheduler's metrics, which the framework records
// to; they are never registered in serve (its kube-schedulers are other
// processes).
var initMetrics = sync.OnceFunc(schedulermetrics.InitMetrics)

// disable takes plugins out of a profile: out of its multi-point set (the
// defaults enable them there) and out of every extension point.
func disable(p *config.KubeSchedulerProfile, plugins ...string) {
	for _, set := range []*config.PluginSet{&p.Plugins.MultiPoint, &p.Plugins.PreFilter, &p.Plugins.Filter, &p.Plugins.PostFilter,
		&p.Plugins.PreScore, &p.Plugins.Score, &p.Plugins.Reserve, &p.Plugins.PreBind, &p.Plugins.Bind, &p.Plugins.PreEnqueue} {
		set.Enabled = slices.DeleteFunc(set.Enabled, func(pl config.Plugin) bool { return slices.Contains(plugins, pl.Name) })
		for _, name := range plugins {
			set.Disabled = append(set.Disabled, config.Plugin{Name: name})
		}
	}
}

// snapshotLister is the framework's view of the cluster: the snapshot of
// the simulation in progress.
type snapshotLister struct{ *cache.Snapshot }

// use makes snap the snapshot the plugins read.
func (s *simulator) use(snap *cache.Snapshot) { s.lister.Snapshot = snap }

// preFilter runs the PreFilter plugins for pod on the current snapshot:
// the state its Filter calls need, and the nodes it may go to (nil for
// all). A pod that no node could take says why.
func (s *simulator) preFilter(ctx context.Context, pod *corev1.Pod) (fwk.CycleState, sets.Set[string], error) {
	state := framework.NewCycleState()
	res, status, _ := s.fw.RunPreFilterPlugins(ctx, state, pod)
	if !status.IsSuccess() {
		return nil, nil, fmt.Errorf("%s", status.Message())
	}
	if res == nil || res.AllNodes() {
		return state, nil, nil
	}
	return state, res.NodeNames, nil
}

// fits runs the Filter plugins for pod on one node of the snapshot, with
// the state preFilter returned; a refusal says why.
func (s *simulator) fits(ctx context.Context, state fwk.CycleState, allowed sets.Set[string], pod *corev1.Pod, node string) (bool, string) {
	if allowed != nil && !allowed.Has(node) {
		return false, "node(s) didn't satisfy the pod's pre-filter"
	}
	ni, err := s.lister.Get(node)
	if err != nil {
		return false, err.Error()
	}
	// Filter plugins only read the cycle state, so one state serves every
	// node, as in kube-scheduler's own filtering.
	status := s.fw.RunFilterPlugins(ctx, state, pod, ni)
	if status.IsSuccess() {
		return true, ""
	}
	if reasons := status.Reasons(); len(reasons) > 0 {
		return false, strings.Join(reasons, ", ")
	}
	return false, status.Message()
}

// assume places pod on node in the snapshot, as the scheduler's cache
// assumes a pod it has bound.
func (s *simulator) assume(pod *corev1.Pod, node string) error {
	p := pod.DeepCopy()
	p.Spec.NodeName = node
	info, err := framework.NewPodInfo(p)
	if err != nil {
		return err
	}
	return s.lister.AssumePod(info)
}

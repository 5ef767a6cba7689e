package autoscaler

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The ConfigMaps of the upstream autoscaler on AKS, in kube-system.
const (
	statusNamespace = metav1.NamespaceSystem
	statusName      = "cluster-autoscaler-status"
	priorityName    = "cluster-autoscaler-priority-expander"
	// lastUpdated is the status ConfigMap's annotation, in Go's time
	// layout as upstream writes it.
	lastUpdated = "cluster-autoscaler.kubernetes.io/last-updated"
)

// status is what a loop found, for the status ConfigMap.
type status struct {
	time                time.Time
	groups              map[string]*groupStatus
	scaleUpNeeded       bool
	scaleUpInProgress   bool
	scaleDownCandidates int
	census              nodeCensus
	// unhealthy says too many nodes are unready to autoscale.
	unhealthy bool
}

type groupStatus struct {
	pool    *Pool
	backoff backoff
}

// The status document, as upstream's clusterstate/api types render it
// (YAML since cluster-autoscaler 1.30).
type (
	statusDoc struct {
		Time             string        `json:"time"`
		AutoscalerStatus string        `json:"autoscalerStatus"`
		ClusterWide      clusterWide   `json:"clusterWide"`
		NodeGroups       []nodeGroupSt `json:"nodeGroups,omitempty"`
	}
	clusterWide struct {
		Health    healthSt    `json:"health"`
		ScaleUp   scaleUpSt   `json:"scaleUp"`
		ScaleDown scaleDownSt `json:"scaleDown"`
	}
	healthSt struct {
		Status              string      `json:"status"`
		NodeCounts          *nodeCounts `json:"nodeCounts,omitempty"`
		CloudProviderTarget *int        `json:"cloudProviderTarget,omitempty"`
		MinSize             *int        `json:"minSize,omitempty"`
		MaxSize             *int        `json:"maxSize,omitempty"`
		LastProbeTime       string      `json:"lastProbeTime"`
	}
	nodeCounts struct {
		Registered struct {
			Total        int `json:"total"`
			Ready        int `json:"ready"`
			NotStarted   int `json:"notStarted"`
			BeingDeleted int `json:"beingDeleted"`
			Unready      struct {
				Total int `json:"total"`
			} `json:"unready"`
		} `json:"registered"`
	}
	scaleUpSt struct {
		Status        string     `json:"status"`
		BackoffInfo   *backoffSt `json:"backoffInfo,omitempty"`
		LastProbeTime string     `json:"lastProbeTime"`
	}
	backoffSt struct {
		ErrorCode    string `json:"errorCode"`
		ErrorMessage string `json:"errorMessage"`
	}
	scaleDownSt struct {
		Status        string `json:"status"`
		Candidates    int    `json:"candidates,omitempty"`
		LastProbeTime string `json:"lastProbeTime"`
	}
	nodeGroupSt struct {
		Name      string      `json:"name"`
		Health    healthSt    `json:"health"`
		ScaleUp   scaleUpSt   `json:"scaleUp"`
		ScaleDown scaleDownSt `json:"scaleDown"`
	}
)

// writeStatus writes kube-system/cluster-autoscaler-status; with no pool
// autoscaling, there is none, as on a cluster without the autoscaler.
func (a *Autoscaler) writeStatus(ctx context.Context, running bool) error {
	cms := a.client.CoreV1().ConfigMaps(statusNamespace)
	if !running {
		if _, err := a.cms.ConfigMaps(statusNamespace).Get(statusName); apierrors.IsNotFound(err) {
			return nil // none, as the cache shows: no call
		}
		err := cms.Delete(ctx, statusName, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	st := a.status
	probe := st.time.UTC().Format(time.RFC3339)
	doc := statusDoc{Time: st.time.UTC().Format("2006-01-02 15:04:05.999999999 -0700 MST"), AutoscalerStatus: "Running"}
	counts := &nodeCounts{}
	counts.Registered.Total, counts.Registered.Ready, counts.Registered.NotStarted = st.census.total, st.census.ready, st.census.notStarted
	counts.Registered.BeingDeleted, counts.Registered.Unready.Total = st.census.beingDeleted, st.census.unready
	doc.ClusterWide.Health = healthSt{Status: "Healthy", NodeCounts: counts, LastProbeTime: probe}
	if st.unhealthy {
		doc.ClusterWide.Health.Status = "Unhealthy"
	}
	doc.ClusterWide.ScaleUp = scaleUpSt{Status: "NoActivity", LastProbeTime: probe}
	switch {
	case st.scaleUpInProgress:
		doc.ClusterWide.ScaleUp.Status = "InProgress"
	case st.scaleUpNeeded:
		doc.ClusterWide.ScaleUp.Status = "Needed"
	}
	doc.ClusterWide.ScaleDown = scaleDownSt{Status: "NoCandidates", LastProbeTime: probe}
	if st.scaleDownCandidates > 0 {
		doc.ClusterWide.ScaleDown = scaleDownSt{Status: "CandidatesPresent", Candidates: st.scaleDownCandidates, LastProbeTime: probe}
	}
	var names []string
	for name := range st.groups {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g := st.groups[name]
		p := g.pool
		ng := nodeGroupSt{Name: name}
		target, minSize, maxSize := p.Count, p.Min, p.Max
		ng.Health = healthSt{Status: "Healthy", CloudProviderTarget: &target, MinSize: &minSize, MaxSize: &maxSize, LastProbeTime: probe}
		ng.ScaleUp = scaleUpSt{Status: "NoActivity", LastProbeTime: probe}
		if !g.backoff.until.IsZero() && st.time.Before(g.backoff.until) {
			ng.ScaleUp.Status = "Backoff"
			ng.ScaleUp.BackoffInfo = &backoffSt{ErrorCode: g.backoff.code, ErrorMessage: g.backoff.message}
		}
		ng.ScaleDown = scaleDownSt{Status: "NoCandidates", LastProbeTime: probe}
		doc.NodeGroups = append(doc.NodeGroups, ng)
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: statusName, Namespace: statusNamespace,
			Annotations: map[string]string{lastUpdated: doc.Time}},
		Data: map[string]string{"status": string(data)},
	}
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	}
	return err
}

// byPriority picks among options with the priority ConfigMap: the
// highest priority whose regular expressions match a scale set; options
// no entry matches are not considered; a missing or broken map leaves
// the choice to chance.
func (a *Autoscaler) byPriority(options []option) (option, bool) {
	cm, err := a.cms.ConfigMaps(statusNamespace).Get(priorityName)
	if err != nil {
		return option{}, false
	}
	var prios map[string][]string
	if err := yaml.Unmarshal([]byte(cm.Data["priorities"]), &prios); err != nil {
		a.events.Eventf(cm, corev1.EventTypeWarning, "PriorityConfigMapInvalid", "Wrong configuration for priority expander: %v", err)
		return option{}, false
	}
	best, bestPrio := []option(nil), -1<<31
	for _, o := range options {
		prio, matched := 0, false
		for key, patterns := range prios {
			n, err := strconv.Atoi(key)
			if err != nil {
				continue
			}
			for _, pat := range patterns {
				re, err := regexp.Compile(pat)
				if err == nil && re.MatchString(o.pool.ScaleSet) && (!matched || n > prio) {
					prio, matched = n, true
				}
			}
		}
		switch {
		case !matched:
			continue
		case prio > bestPrio:
			best, bestPrio = []option{o}, prio
		case prio == bestPrio:
			best = append(best, o)
		}
	}
	if len(best) == 0 {
		a.events.Eventf(cm, corev1.EventTypeWarning, "PriorityConfigMapNotMatchedGroup", "Priority expander: no node group matched: %s", fmt.Sprint(scaleSets(options)))
		return option{}, false
	}
	return a.expand(best, "random"), true
}

func scaleSets(options []option) []string {
	var out []string
	for _, o := range options {
		out = append(out, o.pool.ScaleSet)
	}
	return out
}

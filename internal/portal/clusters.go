package portal

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resourcehealth/armresourcehealth"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// clusterRow is a cluster on the subscription page.
type clusterRow struct {
	Group, Name, Location, Version, Power, State, Health string
	Nodes                                                int32
	Pools                                                int
	// Cost is the pools' compute price per hour (USD), as their cost
	// tags report it.
	Cost float64
}

type groupRow struct {
	Name, Location, State string
	Clusters              []clusterRow
}

// home is the subscription: its resource groups and their clusters.
func (p *Portal) home(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	pg := &page{Title: "Kubernetes services", Session: ss, Crumbs: []crumb{{"Subscription " + p.o.SubscriptionID, "/portal/"}}}
	groups, err := p.groups(ctx, ss)
	if err != nil {
		pg.Error = armMessage(err)
	}
	pg.Data = groups
	p.render(w, r, "home", pg)
}

func (p *Portal) groups(ctx context.Context, ss *session) ([]*groupRow, error) {
	cred, opts := p.credential(ss), p.clientOptions()
	rgs, err := armresources.NewResourceGroupsClient(p.o.SubscriptionID, cred, opts)
	if err != nil {
		return nil, err
	}
	byName := map[string]*groupRow{}
	var out []*groupRow
	for pager := rgs.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, g := range page.Value {
			row := &groupRow{Name: *g.Name, Location: ptr.Deref(g.Location, "")}
			if g.Properties != nil {
				row.State = ptr.Deref(g.Properties.ProvisioningState, "")
			}
			byName[strings.ToLower(row.Name)] = row
			out = append(out, row)
		}
	}
	health := p.healthBySubscription(ctx, ss)
	clusters, err := armcontainerservice.NewManagedClustersClient(p.o.SubscriptionID, cred, opts)
	if err != nil {
		return nil, err
	}
	for pager := clusters.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return out, err
		}
		for _, mc := range page.Value {
			_, group, _ := armid.GroupOf(*mc.ID)
			row := clusterRow{Group: group, Name: *mc.Name, Location: ptr.Deref(mc.Location, ""), Health: cmp.Or(health[strings.ToLower(*mc.ID)], "Unknown")}
			if pr := mc.Properties; pr != nil {
				row.Version = ptr.Deref(pr.CurrentKubernetesVersion, ptr.Deref(pr.KubernetesVersion, ""))
				row.State = ptr.Deref(pr.ProvisioningState, "")
				if pr.PowerState != nil && pr.PowerState.Code != nil {
					row.Power = string(*pr.PowerState.Code)
				}
				for _, ap := range pr.AgentPoolProfiles {
					row.Pools++
					row.Nodes += ptr.Deref(ap.Count, 0)
					row.Cost += costOf(ap.Tags)
				}
			}
			g := byName[strings.ToLower(group)]
			if g == nil {
				g = &groupRow{Name: group}
				byName[strings.ToLower(group)] = g
				out = append(out, g)
			}
			g.Clusters = append(g.Clusters, row)
		}
	}
	slices.SortFunc(out, func(a, b *groupRow) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// costOf reads a pool's cost tag.
func costOf(tags map[string]*string) float64 {
	v, _ := strconv.ParseFloat(ptr.Deref(tags[nodepool.CostTag], ""), 64)
	return v
}

// healthBySubscription is the availability state of every resource, by
// lower-cased ID (empty if the principal may not read it).
func (p *Portal) healthBySubscription(ctx context.Context, ss *session) map[string]string {
	out := map[string]string{}
	c, err := armresourcehealth.NewAvailabilityStatusesClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		return out
	}
	for pager := c.NewListBySubscriptionIDPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return out
		}
		for _, st := range page.Value {
			if st.ID == nil || st.Properties == nil || st.Properties.AvailabilityState == nil {
				continue
			}
			id, _, _ := strings.Cut(strings.ToLower(*st.ID), "/providers/microsoft.resourcehealth/")
			out[id] = string(*st.Properties.AvailabilityState)
		}
	}
	return out
}

// poolRow is a node pool on the cluster page.
type poolRow struct {
	Name, Mode, VMSize, OSDiskType, Priority, State, Power string
	Image, LatestImage, Version                            string
	Count                                                  int32
	Cost                                                   float64
	Ready                                                  int
	ReadyKnown                                             bool
	Autoscale                                              bool
	Min, Max                                               int32
}

// healthDay is one day of the 30-day health timeline: the worst state
// seen that day.
type healthDay struct {
	Day   string
	State string
}

type clusterData struct {
	Group, Name, ID string
	Cluster         *armcontainerservice.ManagedCluster
	Addons          []string
	Pools           []poolRow
	Health          string
	HealthSummary   string
	Timeline        []healthDay
	Kube            *kubeAccess
	KubeError       string
	Sections        []section
	Power           string
	Operations      []operationRow
	Windows         []windowRow
	Runs            []slipwayv1.AutoUpgradeRun
}

// operationRow is an operation on the cluster or one of its pools.
type operationRow struct {
	Action, Target, Status, Progress, Error string
	Percent                                 int32
	Started                                 string
	Running                                 bool
}

// windowRow is a maintenance configuration.
type windowRow struct{ Name, Schedule string }

// cluster is a cluster's overview: properties, health, node pools (live)
// and the actions on them.
func (p *Portal) cluster(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	group, name := r.PathValue("group"), r.PathValue("name")
	pg := &page{Title: name, Session: ss, Crumbs: []crumb{{"Subscription", "/portal/"}, {group + "/" + name, clusterURL(group, name)}}}
	d, err := p.clusterData(ctx, ss, group, name, r.URL.Query().Get("fragment"))
	if err != nil {
		pg.Error = armMessage(err)
		w.WriteHeader(http.StatusNotFound)
	}
	pg.Data = d
	p.render(w, r, "cluster", pg)
}

func clusterURL(group, name string) string {
	return "/portal/clusters/" + group + "/" + name
}

// clusterData reads what the cluster page shows, or only what one of its
// fragments shows when htmx refreshes it (every 2 s: the pools' Ready
// nodes, say, need no health history).
func (p *Portal) clusterData(ctx context.Context, ss *session, group, name, fragment string) (*clusterData, error) {
	want := func(f string) bool { return fragment == "" || fragment == f }
	cred, opts := p.credential(ss), p.clientOptions()
	d := &clusterData{Group: group, Name: name, Sections: sections}
	clusters, err := armcontainerservice.NewManagedClustersClient(p.o.SubscriptionID, cred, opts)
	if err != nil {
		return d, err
	}
	got, err := clusters.Get(ctx, group, name, nil)
	if err != nil {
		return d, err
	}
	mc := got.ManagedCluster
	d.Cluster, d.ID = &mc, *mc.ID
	if mc.Properties.PowerState != nil && mc.Properties.PowerState.Code != nil {
		d.Power = string(*mc.Properties.PowerState.Code)
	}
	for n, a := range mc.Properties.AddonProfiles {
		if a != nil && ptr.Deref(a.Enabled, false) {
			d.Addons = append(d.Addons, n)
		}
	}
	slices.Sort(d.Addons)
	if want("status") || want("pools") {
		if ka, err := p.kube(ctx, ss, group, name); err != nil {
			d.KubeError = err.Error()
		} else if d.Power != "Stopped" {
			d.Kube = ka
		}
	}
	if want("pools") {
		d.Pools = p.pools(ctx, ss, group, name, d.Kube)
	}
	if want("status") {
		p.health(ctx, ss, d, fragment == "")
	}
	if want("operations") {
		d.Operations, d.Runs = p.operations(ctx, d.ID)
	}
	if fragment == "" {
		d.Windows = p.windows(ctx, ss, group, name)
	}
	return d, nil
}

// pools are a cluster's node pools, with the nodes Ready in each when the
// principal can read the cluster's nodes.
func (p *Portal) pools(ctx context.Context, ss *session, group, name string, ka *kubeAccess) []poolRow {
	c, err := armcontainerservice.NewAgentPoolsClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		return nil
	}
	var out []poolRow
	for pager := c.NewListPager(group, name, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return out
		}
		for _, ap := range page.Value {
			pr := ap.Properties
			row := poolRow{Name: *ap.Name, Count: ptr.Deref(pr.Count, 0), VMSize: ptr.Deref(pr.VMSize, ""),
				Image: ptr.Deref(pr.NodeImageVersion, ""),
				State: ptr.Deref(pr.ProvisioningState, ""), Autoscale: ptr.Deref(pr.EnableAutoScaling, false),
				Min: ptr.Deref(pr.MinCount, 0), Max: ptr.Deref(pr.MaxCount, 0)}
			row.Cost = costOf(pr.Tags)
			if pr.Mode != nil {
				row.Mode = string(*pr.Mode)
			}
			if pr.OSDiskType != nil {
				row.OSDiskType = string(*pr.OSDiskType)
			}
			row.Priority = "Regular"
			if pr.ScaleSetPriority != nil {
				row.Priority = string(*pr.ScaleSetPriority)
			}
			if pr.PowerState != nil && pr.PowerState.Code != nil {
				row.Power = string(*pr.PowerState.Code)
			}
			if up, err := c.GetUpgradeProfile(ctx, group, name, row.Name, nil); err == nil && up.Properties != nil {
				row.LatestImage = ptr.Deref(up.Properties.LatestNodeImageVersion, "")
			}
			if ka != nil {
				row.Ready, row.ReadyKnown = readyNodes(ctx, ka, row.Name)
			}
			out = append(out, row)
		}
	}
	return out
}

// readyNodes counts a pool's Ready nodes: its nodes by the agentpool
// label, as Table cells alone (no objects: a page of a 1,000-node pool
// is then tens of kilobytes, not megabytes).
func readyNodes(ctx context.Context, ka *kubeAccess, pool string) (int, bool) {
	t, err := ka.table(ctx, gvr("", "v1", "nodes"), listOptions{labelSelector: "agentpool=" + pool, limit: 5000, cells: true})
	if err != nil {
		return 0, false
	}
	status := columnIndex(t, "Status")
	if status < 0 {
		return 0, false
	}
	n := 0
	for _, row := range t.Rows {
		if s := fmt.Sprint(row.Cells[status]); s == "Ready" || strings.HasPrefix(s, "Ready,") {
			n++
		}
	}
	return n, true
}

// health fills the cluster's Resource Health: now, and with history a
// 30-day timeline.
func (p *Portal) health(ctx context.Context, ss *session, d *clusterData, history bool) {
	c, err := armresourcehealth.NewAvailabilityStatusesClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		return
	}
	if cur, err := c.GetByResource(ctx, d.ID, nil); err == nil && cur.Properties != nil {
		d.Health = string(ptr.Deref(cur.Properties.AvailabilityState, ""))
		d.HealthSummary = ptr.Deref(cur.Properties.Summary, "")
	}
	if !history {
		return
	}
	now := time.Now().UTC()
	worst := map[string]string{}
	rank := map[string]int{"Available": 1, "Unknown": 2, "Degraded": 3, "Unavailable": 4}
	for pager := c.NewListPager(d.ID, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			break
		}
		for _, st := range page.Value {
			if st.Properties == nil || st.Properties.OccurredTime == nil {
				continue
			}
			day := st.Properties.OccurredTime.UTC().Format("2006-01-02")
			state := string(ptr.Deref(st.Properties.AvailabilityState, ""))
			if rank[state] > rank[worst[day]] {
				worst[day] = state
			}
		}
	}
	for i := 29; i >= 0; i-- {
		day := now.AddDate(0, 0, -i).Format("2006-01-02")
		d.Timeline = append(d.Timeline, healthDay{Day: day, State: cmp.Or(worst[day], "None")})
	}
}

// clusterAction stops, starts a cluster or aborts its operation.
func (p *Portal) clusterAction(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	group, name := r.PathValue("group"), r.PathValue("name")
	c, err := armcontainerservice.NewManagedClustersClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		back(w, r, clusterURL(group, name), "", err)
		return
	}
	var msg string
	switch r.PathValue("action") {
	// The portal starts operations and shows their progress; it does not
	// wait on them.
	case "stop":
		_, err = c.BeginStop(ctx, group, name, nil)
		msg = "Stopping the cluster."
	case "start":
		_, err = c.BeginStart(ctx, group, name, nil)
		msg = "Starting the cluster."
	case "abort":
		_, err = c.BeginAbortLatestOperation(ctx, group, name, nil)
		msg = "Aborting the cluster's operation."
	default:
		http.NotFound(w, r)
		return
	}
	back(w, r, clusterURL(group, name), msg, err)
}

// poolAction scales a pool, upgrades its node image or deletes it.
func (p *Portal) poolAction(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	group, name, pool := r.PathValue("group"), r.PathValue("name"), r.PathValue("pool")
	dest := clusterURL(group, name)
	c, err := armcontainerservice.NewAgentPoolsClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		back(w, r, dest, "", err)
		return
	}
	switch r.PathValue("action") {
	case "scale":
		count, perr := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("count")), 10, 32)
		if perr != nil || count < 0 {
			back(w, r, dest, "", fmt.Errorf("the node count must be a whole number, 0 or more"))
			return
		}
		got, err := c.Get(ctx, group, name, pool, nil)
		if err != nil {
			back(w, r, dest, "", err)
			return
		}
		ap := got.AgentPool
		ap.Properties.Count = to32(count)
		_, err = c.BeginCreateOrUpdate(ctx, group, name, pool, ap, nil)
		back(w, r, dest, fmt.Sprintf("Scaling node pool %s to %d nodes.", pool, count), err)
	case "upgrade-image":
		_, err := c.BeginUpgradeNodeImageVersion(ctx, group, name, pool, nil)
		back(w, r, dest, "Upgrading node pool "+pool+" to the latest node image.", err)
	case "delete":
		_, err := c.BeginDelete(ctx, group, name, pool, nil)
		back(w, r, dest, "Deleting node pool "+pool+".", err)
	default:
		http.NotFound(w, r)
	}
}

func to32(n int64) *int32 { return to.Ptr(int32(n)) }

// addPool adds a node pool.
func (p *Portal) addPool(w http.ResponseWriter, r *http.Request, ss *session) {
	ctx := r.Context()
	group, name := r.PathValue("group"), r.PathValue("name")
	dest := clusterURL(group, name)
	pool := strings.TrimSpace(r.PostFormValue("name"))
	count, err := strconv.ParseInt(cmp.Or(strings.TrimSpace(r.PostFormValue("count")), "1"), 10, 32)
	if err != nil || count < 0 {
		back(w, r, dest, "", fmt.Errorf("the node count must be a whole number, 0 or more"))
		return
	}
	props := &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
		Count: to32(count), VMSize: to.Ptr(cmp.Or(strings.TrimSpace(r.PostFormValue("vmSize")), "Standard_D2s_v3")),
		Mode: to.Ptr(armcontainerservice.AgentPoolMode(cmp.Or(r.PostFormValue("mode"), "User"))),
	}
	if r.PostFormValue("spot") != "" {
		props.ScaleSetPriority = to.Ptr(armcontainerservice.ScaleSetPrioritySpot)
		props.SpotMaxPrice = to.Ptr[float32](-1)
		props.ScaleSetEvictionPolicy = to.Ptr(armcontainerservice.ScaleSetEvictionPolicyDelete)
	}
	if t := r.PostFormValue("osDiskType"); t != "" {
		props.OSDiskType = to.Ptr(armcontainerservice.OSDiskType(t))
	}
	c, err := armcontainerservice.NewAgentPoolsClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err == nil {
		_, err = c.BeginCreateOrUpdate(ctx, group, name, pool, armcontainerservice.AgentPool{Properties: props}, nil)
	}
	back(w, r, dest, "Adding node pool "+pool+".", err)
}

// kubeconfig downloads the credential the principal may have: the
// cluster-user one, as az aks get-credentials writes it.
func (p *Portal) kubeconfig(w http.ResponseWriter, r *http.Request, ss *session) {
	group, name := r.PathValue("group"), r.PathValue("name")
	c, err := armcontainerservice.NewManagedClustersClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		back(w, r, clusterURL(group, name), "", err)
		return
	}
	creds, err := c.ListClusterUserCredentials(r.Context(), group, name, nil)
	if err != nil || len(creds.Kubeconfigs) == 0 {
		back(w, r, clusterURL(group, name), "", cmp.Or(err, error(errNoClusterRole)))
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.kubeconfig"`)
	_, _ = w.Write(creds.Kubeconfigs[0].Value)
}

// maxOperations is how many of a cluster's latest operations its page
// shows.
const maxOperations = 8

// operations are the latest operations on a cluster and its pools, the
// running ones with their progress, and its node OS auto-upgrade runs
// (newest first). ARM lists neither (AKS's portal reads the activity
// log); the portal reads Slipway's records, and only for a cluster ARM
// has just let the principal read.
func (p *Portal) operations(ctx context.Context, clusterID string) ([]operationRow, []slipwayv1.AutoUpgradeRun) {
	if p.o.Store == nil {
		return nil, nil
	}
	var runs []slipwayv1.AutoUpgradeRun
	clusters := &slipwayv1.ManagedClusterList{}
	if err := p.o.Store.List(ctx, clusters, client.InNamespace(slipwayv1.Namespace)); err == nil {
		for _, mc := range clusters.Items {
			if strings.EqualFold(mc.Spec.ResourceID, clusterID) {
				runs = slices.Clone(mc.Status.AutoUpgradeRuns)
				slices.Reverse(runs)
			}
		}
	}
	list := &slipwayv1.OperationList{}
	if err := p.o.Store.List(ctx, list, client.InNamespace(slipwayv1.Namespace)); err != nil {
		return nil, runs
	}
	lower := strings.ToLower(clusterID)
	var ops []slipwayv1.Operation
	for _, op := range list.Items {
		id := strings.ToLower(op.Spec.ResourceID)
		if id == lower || strings.HasPrefix(id, lower+"/") {
			ops = append(ops, op)
		}
	}
	slices.SortFunc(ops, func(a, b slipwayv1.Operation) int { return b.Status.StartTime.Compare(a.Status.StartTime.Time) })
	var out []operationRow
	for _, op := range ops[:min(len(ops), maxOperations)] {
		row := operationRow{Action: op.Spec.Action, Target: op.Spec.ResourceID[strings.LastIndex(op.Spec.ResourceID, "/")+1:],
			Status: op.Status.Status, Percent: op.Status.PercentComplete, Started: op.Status.StartTime.UTC().Format("2006-01-02 15:04:05"),
			Running: op.Status.EndTime == nil}
		if u := op.Status.Upgrade; u != nil {
			row.Progress = fmt.Sprintf("%d of %d nodes upgraded to %s (%s)", u.Upgraded, u.Total, u.Target, u.Phase)
		}
		if e := op.Status.Error; e != nil {
			row.Error = e.Code + ": " + e.Message
		}
		out = append(out, row)
	}
	return out, runs
}

// windows are the cluster's maintenance configurations, through ARM.
func (p *Portal) windows(ctx context.Context, ss *session, group, name string) []windowRow {
	c, err := armcontainerservice.NewMaintenanceConfigurationsClient(p.o.SubscriptionID, p.credential(ss), p.clientOptions())
	if err != nil {
		return nil
	}
	var out []windowRow
	for pager := c.NewListByManagedClusterPager(group, name, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return out
		}
		for _, mc := range page.Value {
			out = append(out, windowRow{Name: ptr.Deref(mc.Name, ""), Schedule: describeWindow(mc.Properties)})
		}
	}
	return out
}

// describeWindow says when a maintenance configuration lets work run.
func describeWindow(p *armcontainerservice.MaintenanceConfigurationProperties) string {
	if p == nil {
		return ""
	}
	w := p.MaintenanceWindow
	if w == nil {
		var parts []string
		for _, t := range p.TimeInWeek {
			if t != nil && t.Day != nil {
				var hours []string
				for _, h := range t.HourSlots {
					hours = append(hours, fmt.Sprint(ptr.Deref(h, 0)))
				}
				parts = append(parts, fmt.Sprintf("%s at %s:00 UTC", *t.Day, strings.Join(hours, ":00, ")))
			}
		}
		return strings.Join(parts, "; ")
	}
	b, _ := json.Marshal(w.Schedule)
	return fmt.Sprintf("%s, %dh at %s UTC%s", strings.Trim(string(b), "{}"), ptr.Deref(w.DurationHours, 0), ptr.Deref(w.StartTime, ""), ptr.Deref(w.UTCOffset, ""))
}

// Package costmanagement is the Microsoft.CostManagement provider's query
// API: what Slipway's simulated resources cost, by day, grouped and
// filtered as Cost Management answers it. The metering controller keeps
// the usage records; this package reads them, adds the usage since their
// last write, and shapes the answer with the Cost Management SDK's models.
package costmanagement

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/costmanagement/armcostmanagement/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/identity"
	"github.com/slipway-dev/slipway/internal/metering"
)

// Namespace is the provider's namespace.
const Namespace = "Microsoft.CostManagement"

// versions are the query API's stable api-versions (the SDK,
// armcostmanagement v2.1.0, sends 2022-10-01); the query's shape is the
// same in all of them.
var versions = arm.Versions("2019-01-01", "2019-10-01", "2019-11-01", "2020-06-01", "2021-10-01", "2022-10-01", "2023-03-01", "2023-08-01", "2023-11-01", "2024-08-01", "2025-03-01")

// queryAction is what a query needs: a read, which Reader and Cost
// Management Reader hold, though the call is a POST.
const queryAction = Namespace + "/query/read"

// Provider serves Microsoft.CostManagement.
type Provider struct {
	*arm.Server
	downtime func() metering.Downtime
	now      func() time.Time
}

// Register adds the query at subscription and resource group scope, and at
// a managed cluster's: the cluster and its node resource group.
func Register(core *arm.Server, downtime func() metering.Downtime, cluster string) *Provider {
	s := &Provider{Server: core, downtime: downtime, now: time.Now}
	const query = "/providers/" + Namespace + "/query"
	core.Handle("POST", "subscriptions/{sub}"+query, versions, s.query, arm.AuthorizeInHandler)
	core.Handle("POST", "subscriptions/{sub}/resourceGroups/{rg}"+query, versions, s.query, arm.AuthorizeInHandler)
	core.Handle("POST", cluster+query, versions, s.query, arm.AuthorizeInHandler)
	return s
}

func (s *Provider) query(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	scope := r.URL.Path[:strings.Index(strings.ToLower(r.URL.Path), "/providers/microsoft.costmanagement/query")]
	if err := s.Authorize(ctx, queryAction, scope); err != nil {
		return err
	}
	var q metering.Query
	if err := arm.DecodeBody(r, &q); err != nil {
		return err
	}
	records, err := s.records(ctx, p)
	if err != nil {
		return err
	}
	now := s.now()
	props, err := metering.Evaluate(&q, s.advance(records, now), now)
	var invalid *metering.Invalid
	if errors.As(err, &invalid) {
		return arm.BadRequest("BadRequest", "", "%s", invalid.Message)
	}
	if err != nil {
		return err
	}
	name := identity.NewGUID()
	arm.WriteJSON(w, http.StatusOK, &armcostmanagement.QueryResult{
		ID: to.Ptr(strings.TrimPrefix(scope, "/") + "/providers/" + Namespace + "/query/" + name), Name: &name,
		Type: to.Ptr(Namespace + "/query"), Properties: props,
	})
	return nil
}

// records are the usage records a scope covers.
func (s *Provider) records(ctx context.Context, p arm.Params) ([]*slipwayv1.UsageRecord, error) {
	sub := p["sub"]
	if p["rg"] == "" {
		return s.list(ctx, client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub)})
	}
	rg, err := s.LookupResourceGroup(ctx, p["rg"])
	if err != nil {
		return nil, err
	}
	inGroup := func(group string) client.MatchingLabels {
		return client.MatchingLabels{slipwayv1.LabelSubscription: armid.Label(sub), slipwayv1.LabelResourceGroup: armid.Label(group)}
	}
	if p["cluster"] == "" {
		return s.list(ctx, inGroup(rg.Spec.Name))
	}
	// A cluster's cost: its own lines in its group, and all of its node
	// resource group.
	res, err := s.Lookup(ctx, armid.ManagedCluster(sub, p["rg"], p["cluster"]))
	if err != nil {
		return nil, err
	}
	mc := &slipwayv1.ManagedCluster{}
	if err := s.Client().Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(res.ID)}, mc); err != nil {
		return nil, err
	}
	var c armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mc.Spec.Resource.Raw, &c); err != nil {
		return nil, err
	}
	own, err := s.list(ctx, inGroup(rg.Spec.Name))
	if err != nil {
		return nil, err
	}
	for _, rec := range own {
		lines := rec.Status.Lines[:0:0]
		for _, l := range rec.Status.Lines {
			if strings.EqualFold(l.ResourceID, res.ID) {
				lines = append(lines, l)
			}
		}
		rec.Status.Lines = lines
		rates := rec.Status.Rates[:0:0]
		for _, r := range rec.Status.Rates {
			if strings.EqualFold(r.ResourceID, res.ID) {
				rates = append(rates, r)
			}
		}
		rec.Status.Rates = rates
	}
	var nodes []*slipwayv1.UsageRecord
	if c.Properties != nil && c.Properties.NodeResourceGroup != nil {
		if nodes, err = s.list(ctx, inGroup(*c.Properties.NodeResourceGroup)); err != nil {
			return nil, err
		}
	}
	return append(own, nodes...), nil
}

func (s *Provider) list(ctx context.Context, labels client.MatchingLabels) ([]*slipwayv1.UsageRecord, error) {
	var list slipwayv1.UsageRecordList
	if err := s.Client().List(ctx, &list, client.InNamespace(slipwayv1.Namespace), labels); err != nil {
		return nil, err
	}
	out := make([]*slipwayv1.UsageRecord, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// advance adds to each group's latest record the usage since it was last
// written, as the metering controller would record it now.
func (s *Provider) advance(records []*slipwayv1.UsageRecord, now time.Time) []*slipwayv1.UsageRecord {
	latest := map[string]int{}
	for i, rec := range records {
		k := rec.Spec.SubscriptionID + "/" + strings.ToLower(rec.Spec.ResourceGroup)
		if j, ok := latest[k]; !ok || rec.Spec.Date > records[j].Spec.Date {
			latest[k] = i
		}
	}
	out := make([]*slipwayv1.UsageRecord, 0, len(records))
	for i, rec := range records {
		k := rec.Spec.SubscriptionID + "/" + strings.ToLower(rec.Spec.ResourceGroup)
		if latest[k] != i {
			out = append(out, rec)
			continue
		}
		out = append(out, metering.Advance(rec, now, s.downtime())...)
	}
	return out
}

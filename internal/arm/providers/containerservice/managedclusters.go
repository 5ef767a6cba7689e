package containerservice

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/addons"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/arm/schema"
	"github.com/slipway-dev/slipway/internal/armid"
	"github.com/slipway-dev/slipway/internal/autoscaler"
	"github.com/slipway-dev/slipway/internal/nodepool"
	"github.com/slipway-dev/slipway/internal/version"
)

var clusterName = regexp.MustCompile(`^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$`)

func (s *Provider) clusterID(group, name string) string {
	return armid.ManagedCluster(s.SubscriptionID(), group, name)
}

func (s *Provider) lookupCluster(ctx context.Context, group, name string) (*slipwayv1.ManagedCluster, error) {
	mc := &slipwayv1.ManagedCluster{}
	err := s.Client().Get(ctx, client.ObjectKey{Namespace: slipwayv1.Namespace, Name: armid.ObjectName(s.clusterID(group, name))}, mc)
	if apierrors.IsNotFound(err) {
		if _, gerr := s.LookupResourceGroup(ctx, group); gerr != nil {
			return nil, gerr
		}
		return nil, arm.ResourceNotFound(armid.ManagedClusterType, name, group)
	}
	if err != nil {
		return nil, err
	}
	return mc, nil
}

// clusterLocation is the location a cluster was created in.
func clusterLocation(mc *slipwayv1.ManagedCluster) string {
	var r struct {
		Location string `json:"location"`
	}
	json.Unmarshal(mc.Spec.Resource.Raw, &r)
	return r.Location
}

// busyWith returns the in-progress action of an object, or "".
func busyWith(op *slipwayv1.OperationRef, completed string) string {
	if op != nil && op.ID != completed {
		return op.Action
	}
	return ""
}

// provisioningState derives ARM's provisioningState: the running
// operation's action, else how the last one ended.
func provisioningState(op *slipwayv1.OperationRef, completed, ended string) string {
	if a := busyWith(op, completed); a != "" {
		return a
	}
	if ended == "" {
		return "Succeeded"
	}
	return ended
}

// clusterState is the cluster's provisioningState (see resourceState).
func (s *Provider) clusterState(ctx context.Context, mc *slipwayv1.ManagedCluster) string {
	return s.resourceState(ctx, mc.Spec.Operation, mc.Status.CompletedOperation, mc.Status.ProvisioningState)
}

// resourceState is a cluster's or pool's provisioningState. The
// controllers end an operation before they record the end on the resource,
// so a client that saw the operation succeed or fail may GET the resource
// in between: the operation's own end is taken then, not the action it no
// longer runs. An aborted operation is ended at once, by the abort, and
// the controller then winds the work down (uncordons, removes surge
// nodes): until it has, the resource is Canceling, as on AKS.
func (s *Provider) resourceState(ctx context.Context, op *slipwayv1.OperationRef, completed, stored string) string {
	state := provisioningState(op, completed, stored)
	if busyWith(op, completed) == "" || op.Action == slipwayv1.ActionDeleting {
		return state // a resource being deleted is never shown done
	}
	o, err := s.GetOperation(ctx, op.ID)
	if err != nil {
		return state
	}
	switch o.Status.Status {
	case slipwayv1.OperationSucceeded, slipwayv1.OperationFailed:
		return o.Status.Status
	case slipwayv1.OperationCanceled:
		return "Canceling"
	}
	return state
}

// poolsOf lists the agent pool objects of a cluster.
func (s *Provider) poolsOf(ctx context.Context, mc *slipwayv1.ManagedCluster) ([]slipwayv1.AgentPool, error) {
	var list slipwayv1.AgentPoolList
	if err := s.Client().List(ctx, &list, client.InNamespace(slipwayv1.Namespace), client.MatchingLabels{slipwayv1.LabelCluster: mc.Name}); err != nil {
		return nil, err
	}
	// In the order they were made, as AKS lists them.
	sort.SliceStable(list.Items, func(i, j int) bool {
		a, b := list.Items[i].CreationTimestamp, list.Items[j].CreationTimestamp
		if a.Equal(&b) {
			return list.Items[i].Spec.Name < list.Items[j].Spec.Name
		}
		return a.Before(&b)
	})
	return list.Items, nil
}

// clusterBusy says which operation, on the cluster or one of its pools,
// blocks a new one.
func (s *Provider) clusterBusy(ctx context.Context, mc *slipwayv1.ManagedCluster) error {
	return s.clusterBusyExcept(ctx, mc, "", "")
}

// clusterBusyExcept is clusterBusy, except that pools other than self
// running action do not block (pools upgrade their node images side by
// side: az aks upgrade --node-image-only starts them all at once).
func (s *Provider) clusterBusyExcept(ctx context.Context, mc *slipwayv1.ManagedCluster, action, self string) error {
	if a := busyWith(mc.Spec.Operation, mc.Status.CompletedOperation); a != "" {
		return arm.OperationNotAllowed("Operation is not allowed: Another operation (%s) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details", a)
	}
	if a, pool, err := s.claimBusy(ctx, mc); err != nil {
		return err
	} else if a != "" && !(action != "" && a == action && pool != "" && pool != self) {
		return arm.OperationNotAllowed("Operation is not allowed because there's an in progress agentpool operation: Another agentpool operation (%s - %s) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details", pool, a)
	}
	pools, err := s.poolsOf(ctx, mc)
	if err != nil {
		return err
	}
	for _, p := range pools {
		if a := busyWith(p.Spec.Operation, p.Status.CompletedOperation); a != "" && !(action != "" && a == action && p.Spec.Name != self) {
			return arm.OperationNotAllowed("Operation is not allowed because there's an in progress agentpool operation: Another agentpool operation (%s - %s) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details", p.Spec.Name, a)
		}
	}
	return nil
}

// clusterView is a cluster as clients see it: the SDK's model, with the
// unmodeled properties of the cluster and of each of its pools laid over it.
type clusterView struct {
	*armcontainerservice.ManagedCluster
	unmodeled any   // the cluster's, agentPoolProfiles left out
	pools     []any // each profile's, in the order of the model's profiles
}

func (v clusterView) sdkShaped() bool {
	// A pool's entry is a map, nil when it has nothing unmodeled: a nil map
	// in an interface is not a nil interface.
	return v.unmodeled == nil && !slices.ContainsFunc(v.pools, func(p any) bool { m, _ := p.(map[string]any); return len(m) > 0 })
}

func (v clusterView) MarshalJSON() ([]byte, error) {
	if v.sdkShaped() {
		return json.Marshal(v.ManagedCluster)
	}
	doc, err := schema.Generic(v.ManagedCluster)
	if err != nil {
		return nil, err
	}
	schema.Overlay(doc, v.unmodeled)
	if profiles, ok := propertiesOf(doc)["agentPoolProfiles"].([]any); ok && len(profiles) == len(v.pools) {
		for i := range profiles {
			schema.Overlay(profiles[i], v.pools[i])
		}
	}
	return json.Marshal(doc)
}

// clusterUnmodeled is a cluster's stored unmodeled properties, without the
// pools' (the pools keep their own once made).
func clusterUnmodeled(mc *slipwayv1.ManagedCluster) (any, error) {
	u, err := decodeRaw(mc.Spec.Unmodeled)
	if err != nil {
		return nil, err
	}
	if props := propertiesOf(u); props != nil {
		delete(props, "agentPoolProfiles")
		if len(props) == 0 {
			delete(u.(map[string]any), "properties")
		}
	}
	if m, ok := u.(map[string]any); ok && len(m) == 0 {
		return nil, nil
	}
	return u, nil
}

// renderCluster builds the ARM ManagedCluster a client sees.
func (s *Provider) renderCluster(ctx context.Context, mc *slipwayv1.ManagedCluster) (*clusterView, error) {
	pools, err := s.poolsOf(ctx, mc)
	if err != nil {
		return nil, err
	}
	return s.renderClusterWith(ctx, mc, pools)
}

// renderClusterWith is renderCluster of a cluster whose pools are listed.
func (s *Provider) renderClusterWith(ctx context.Context, mc *slipwayv1.ManagedCluster, pools []slipwayv1.AgentPool) (*clusterView, error) {
	var out armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mc.Spec.Resource.Raw, &out); err != nil {
		return nil, fmt.Errorf("stored cluster %s: %w", mc.Name, err)
	}
	unmodeled, err := clusterUnmodeled(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", mc.Name, err)
	}
	view := &clusterView{ManagedCluster: &out, unmodeled: unmodeled}
	if out.Properties == nil {
		out.Properties = &armcontainerservice.ManagedClusterProperties{}
	}
	p := out.Properties
	id := mc.Spec.ResourceID
	segs := strings.Split(id, "/")
	out.ID, out.Name, out.Type = to.Ptr(id), to.Ptr(segs[len(segs)-1]), to.Ptr(armid.ManagedClusterType)
	if etag := mc.Annotations[arm.ETagAnnotation]; etag != "" {
		out.ETag = to.Ptr(etag)
	}
	out.SystemData = renderSystemData(mc.Spec.SystemData)
	p.ProvisioningState = to.Ptr(s.clusterState(ctx, mc))
	power := armcontainerservice.CodeRunning
	if mc.Status.PowerState == string(armcontainerservice.CodeStopped) {
		power = armcontainerservice.CodeStopped
	}
	p.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(power)}
	p.CurrentKubernetesVersion = to.Ptr(clusterVersion(mc))
	p.Fqdn = to.Ptr(clusterFQDN(mc))
	p.AzurePortalFQDN = to.Ptr(strings.Replace(clusterFQDN(mc), ".hcp.", ".portal.hcp.", 1))
	if ap := p.APIServerAccessProfile; ap != nil && deref(ap.EnablePrivateCluster) {
		// A private cluster's API server name in its private DNS zone,
		// shaped as AKS's (<prefix>-<hash>.<guid>.privatelink.<location>...).
		p.PrivateFQDN = to.Ptr(strings.Replace(clusterFQDN(mc), ".hcp.", "."+armid.GUID(id+"/private")+".privatelink.", 1))
	}
	p.MaxAgentPools = to.Ptr[int32](100)
	if p.NetworkProfile != nil {
		defaultNetwork(p.NetworkProfile)
		// The public IPs AKS makes for outbound traffic, in the node
		// resource group: the load balancer's or the managed NAT gateway's.
		outboundIPs := func(count int32) []*armcontainerservice.ResourceReference {
			var refs []*armcontainerservice.ResourceReference
			for i := range count {
				refs = append(refs, &armcontainerservice.ResourceReference{ID: to.Ptr(fmt.Sprintf(
					"/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/publicIPAddresses/%s", s.SubscriptionID(), deref(p.NodeResourceGroup), armid.GUID(fmt.Sprintf("%s/outbound/%d", id, i))))})
			}
			return refs
		}
		if lb := p.NetworkProfile.LoadBalancerProfile; lb != nil && lb.ManagedOutboundIPs != nil {
			lb.EffectiveOutboundIPs = outboundIPs(deref(lb.ManagedOutboundIPs.Count))
		}
		if ng := p.NetworkProfile.NatGatewayProfile; ng != nil && ng.ManagedOutboundIPProfile != nil {
			ng.EffectiveOutboundIPs = outboundIPs(deref(ng.ManagedOutboundIPProfile.Count))
		}
	}
	if p.SupportPlan == nil {
		p.SupportPlan = to.Ptr(armcontainerservice.KubernetesSupportPlanKubernetesOfficial)
	}
	p.ResourceUID = to.Ptr(string(mc.UID))
	// az needs servicePrincipalProfile on every cluster it reads; AKS
	// shows "msi" for clusters with a managed identity and never a secret.
	if p.ServicePrincipalProfile == nil || out.Identity != nil {
		p.ServicePrincipalProfile = &armcontainerservice.ManagedClusterServicePrincipalProfile{ClientID: to.Ptr("msi")}
	}
	p.ServicePrincipalProfile.Secret = nil
	if out.Identity != nil && out.Identity.Type != nil && *out.Identity.Type == armcontainerservice.ResourceIdentityTypeSystemAssigned {
		out.Identity.PrincipalID = to.Ptr(armid.GUID(id + "/identity"))
		out.Identity.TenantID = to.Ptr(s.TenantID())
	}
	if out.Identity != nil && p.IdentityProfile == nil {
		// The kubelet's identity AKS makes in the node resource group for
		// a cluster with a managed identity; az aks update reads it on
		// every run (for --attach-acr), and fails without it.
		k := addons.KubeletIdentity(id, deref(p.NodeResourceGroup))
		p.IdentityProfile = map[string]*armcontainerservice.UserAssignedIdentity{"kubeletidentity": {
			ResourceID: to.Ptr(k.ResourceID), ClientID: to.Ptr(k.ClientID), ObjectID: to.Ptr(k.ObjectID),
		}}
	}
	renderAddons(id, p)
	p.AgentPoolProfiles = nil
	for i := range pools {
		props, err := s.renderPoolProperties(ctx, mc, &pools[i])
		if err != nil {
			return nil, err
		}
		poolUnmodeled, err := decodeRaw(pools[i].Spec.Unmodeled)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %w", pools[i].Spec.ResourceID, err)
		}
		view.pools = append(view.pools, propertiesOf(poolUnmodeled))
		var profile armcontainerservice.ManagedClusterAgentPoolProfile
		if err := convert(props, &profile); err != nil {
			return nil, err
		}
		profile.Name = to.Ptr(pools[i].Spec.Name)
		p.AgentPoolProfiles = append(p.AgentPoolProfiles, &profile)
		if deref(profile.OSType) == armcontainerservice.OSTypeWindows && p.WindowsProfile == nil {
			// A Windows pool added on its own: the account AKS makes.
			p.WindowsProfile = &armcontainerservice.ManagedClusterWindowsProfile{AdminUsername: to.Ptr("azureuser"), EnableCSIProxy: to.Ptr(true)}
		}
		if deref(profile.EnableAutoScaling) && p.AutoScalerProfile == nil {
			// A cluster whose pools autoscale shows the profile in force.
			p.AutoScalerProfile = &armcontainerservice.ManagedClusterPropertiesAutoScalerProfile{}
			autoscaler.Normalize(p.AutoScalerProfile)
		}
		// az aks upgrade --node-image-only starts every pool's upgrade and
		// shows the cluster upgrading while they run.
		if *p.ProvisioningState == "Succeeded" && busyWith(pools[i].Spec.Operation, pools[i].Status.CompletedOperation) == slipwayv1.ActionUpgradeNodeImage {
			p.ProvisioningState = to.Ptr(slipwayv1.ActionUpgradeNodeImage)
		}
	}
	return view, nil
}

// clusterFQDN is the API server's DNS name, shaped as AKS's
// (<dnsPrefix>-<hash>.hcp.<location>.azmk8s.io) under Slipway's domain.
func clusterFQDN(mc *slipwayv1.ManagedCluster) string {
	var r struct {
		Location   string `json:"location"`
		Properties struct {
			DNSPrefix string `json:"dnsPrefix"`
		} `json:"properties"`
	}
	json.Unmarshal(mc.Spec.Resource.Raw, &r)
	return fmt.Sprintf("%s-%s.hcp.%s.slipway.local", strings.ToLower(r.Properties.DNSPrefix), strings.ToLower(mc.Name[1:9]), r.Location)
}

// ClusterFQDN is clusterFQDN for the controllers, which give it to the
// hosting layer for the API server's certificate.
func ClusterFQDN(mc *slipwayv1.ManagedCluster) string { return clusterFQDN(mc) }

// convert moves a value between SDK model types that share JSON names.
func convert(from, to any) error {
	data, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, to)
}

func (s *Provider) listManagedClusters(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	opts := []client.ListOption{client.InNamespace(slipwayv1.Namespace)}
	if group, ok := p["rg"]; ok {
		if _, err := s.LookupResourceGroup(r.Context(), group); err != nil {
			return err
		}
		opts = append(opts, client.MatchingLabels{slipwayv1.LabelResourceGroup: armid.Label(group)})
	}
	var list slipwayv1.ManagedClusterList
	if err := s.Client().List(r.Context(), &list, opts...); err != nil {
		return err
	}
	value := []*clusterView{}
	for i := range list.Items {
		mc, err := s.renderCluster(r.Context(), &list.Items[i])
		if err != nil {
			return err
		}
		value = append(value, mc)
	}
	return respondList(w, r, typeCluster, value)
}

func (s *Provider) getManagedCluster(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	pools, err := s.poolsOf(r.Context(), mc)
	if err != nil {
		return err
	}
	key := renderKey(r, mc, pools)
	if body, ok := s.rendered.get(key); key != "" && ok {
		arm.WriteEncoded(w, http.StatusOK, body)
		return nil
	}
	out, err := s.renderClusterWith(r.Context(), mc, pools)
	if err != nil {
		return err
	}
	doc, err := inShape(treeOf(r), typeCluster, out)
	if err != nil {
		return err
	}
	body, err := arm.EncodeJSON(doc)
	if err != nil {
		return err
	}
	if key != "" {
		s.rendered.put(key, body)
	}
	arm.WriteEncoded(w, http.StatusOK, body)
	return nil
}

func (s *Provider) putManagedCluster(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	group, name := p["rg"], p["cluster"]
	if !clusterName.MatchString(name) {
		return arm.InvalidParameter("resourceName", "The value of parameter resourceName is invalid: %q. It must be 1-63 letters, digits, '-' and '_', starting and ending with a letter or digit.", name)
	}
	if _, err := s.WritableResourceGroup(ctx, group); err != nil {
		return err
	}
	body, err := arm.ReadBody(r)
	if err != nil {
		return err
	}
	var in armcontainerservice.ManagedCluster
	if err := arm.DecodeJSON(body, &in); err != nil {
		return err // the body's own errors, as the model reads it
	}
	doc, err := readVersioned(r, body, typeCluster)
	if err != nil {
		return err
	}
	existing, err := s.lookupCluster(ctx, group, name)
	exists := err == nil
	if err != nil && !arm.IsNotFound(err) {
		return err
	}
	etag := ""
	if exists {
		etag = existing.Annotations[arm.ETagAnnotation]
	}
	if err := arm.CheckETag(r, etag, exists); err != nil {
		return err
	}
	if exists && existing.DeletionTimestamp != nil {
		return arm.OperationNotAllowed("Operation is not allowed: Another operation (Deleting) is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
	}
	var old *armcontainerservice.ManagedCluster
	var pools []slipwayv1.AgentPool
	if exists {
		if err := s.clusterBusy(ctx, existing); err != nil {
			return err
		}
		old = &armcontainerservice.ManagedCluster{}
		if err := json.Unmarshal(existing.Spec.Resource.Raw, old); err != nil {
			return fmt.Errorf("stored cluster %s: %w", existing.Spec.ResourceID, err)
		}
		if pools, err = s.poolsOf(ctx, existing); err != nil {
			return err
		}
		stored, err := storedDoc(existing.Spec.Resource.Raw, existing.Spec.Unmodeled)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", existing.Spec.ResourceID, err)
		}
		// Pools are matched by name, not position.
		if err := carryPools(r, doc, pools); err != nil {
			return err
		}
		delete(propertiesOf(stored), "agentPoolProfiles")
		carry(r, doc, stored, typeCluster)
	}
	in = armcontainerservice.ManagedCluster{}
	if err := decodeModel(doc, &in); err != nil {
		return err
	}
	unmodeled, err := encodeRaw(unmodeledOf(doc, typeCluster))
	if err != nil {
		return err
	}
	if err := s.normalizeCluster(ctx, group, name, &in, old); err != nil {
		return err
	}
	if err := checkPoolUpdates(in.Properties.AgentPoolProfiles, pools); err != nil {
		return err
	}
	upgrade, err := checkVersions(existing, in.Properties, pools)
	if err != nil {
		return err
	}
	if !exists {
		if err := s.checkNewNodeResourceGroup(ctx, *in.Properties.NodeResourceGroup); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(&in)
	if err != nil {
		return err
	}
	action := "Creating"
	if exists {
		action = "Updating"
		if upgrade {
			action = slipwayv1.ActionUpgrading
		}
	}
	id := s.clusterID(group, name)
	op, err := s.StartOperation(ctx, id, action, *in.Location, false)
	if err != nil {
		return err
	}
	ref := &slipwayv1.OperationRef{ID: op.Name, Action: action}
	var mc *slipwayv1.ManagedCluster
	if exists {
		mc = existing
		mc.Spec.Resource = runtime.RawExtension{Raw: raw}
		mc.Spec.Unmodeled = unmodeled
		mc.Spec.Operation = ref
		mc.Spec.SystemData = arm.Touched(ctx, mc.Spec.SystemData)
		mc.Annotations[arm.ETagAnnotation] = arm.NewOperationID()
		err = s.Client().Update(ctx, mc)
	} else {
		mc = &slipwayv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{
				Name: armid.ObjectName(id), Namespace: slipwayv1.Namespace,
				Labels: map[string]string{
					slipwayv1.LabelSubscription:  armid.Label(s.SubscriptionID()),
					slipwayv1.LabelResourceGroup: armid.Label(group),
				},
				Annotations: map[string]string{arm.ETagAnnotation: arm.NewOperationID()},
				Finalizers:  []string{slipwayv1.Finalizer},
			},
			Spec: slipwayv1.ManagedClusterSpec{ResourceID: id, Resource: runtime.RawExtension{Raw: raw}, Unmodeled: unmodeled, Operation: ref, SystemData: arm.Touched(ctx, nil)},
		}
		err = s.Client().Create(ctx, mc)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		s.CancelRefused(ctx, op, "Another operation started first.")
		return arm.OperationNotAllowed("Operation is not allowed: Another operation is in progress, please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details")
	}
	if err != nil {
		return err
	}
	out, err := s.renderCluster(ctx, mc)
	if err != nil {
		return err
	}
	// The pools do not exist yet on create: show the requested ones.
	if !exists {
		out.Properties.AgentPoolProfiles = in.Properties.AgentPoolProfiles
		for _, ap := range out.Properties.AgentPoolProfiles {
			ap.ProvisioningState = to.Ptr(action)
		}
		out.pools, err = profilesUnmodeled(mc)
		if err != nil {
			return err
		}
	}
	s.Accepted(w, r, op, Namespace, false)
	status := http.StatusOK
	if !exists {
		status = http.StatusCreated
	}
	return respond(w, r, status, typeCluster, out)
}

// carryPools carries into each pool profile of a cluster PUT what the
// stored pool of its name holds that the request's api-version cannot say.
func carryPools(r *http.Request, doc map[string]any, pools []slipwayv1.AgentPool) error {
	profiles, _ := propertiesOf(doc)["agentPoolProfiles"].([]any)
	for _, p := range profiles {
		profile, ok := p.(map[string]any)
		if !ok {
			continue
		}
		for i := range pools {
			if pools[i].Spec.Name != profile["name"] {
				continue
			}
			stored, err := storedPoolProperties(&pools[i])
			if err != nil {
				return err
			}
			carry(r, profile, stored, typeProfile)
		}
	}
	return nil
}

// profilesUnmodeled is the unmodeled properties of each pool profile of a
// cluster's last PUT, in order; the controller hands them to the pools.
func profilesUnmodeled(mc *slipwayv1.ManagedCluster) ([]any, error) {
	u, err := decodeRaw(mc.Spec.Unmodeled)
	if err != nil {
		return nil, err
	}
	profiles, _ := propertiesOf(u)["agentPoolProfiles"].([]any)
	return profiles, nil
}

// normalizeCluster validates a PUT body and applies AKS's defaults. old is
// the stored cluster on update.
func (s *Provider) normalizeCluster(ctx context.Context, group, name string, in, old *armcontainerservice.ManagedCluster) error {
	if in.Location == nil || *in.Location == "" {
		if old == nil {
			return arm.BadRequest("LocationRequired", "location", "The location property is required for this definition.")
		}
		in.Location = old.Location
	}
	in.Location = to.Ptr(arm.NormalizeLocation(*in.Location))
	if *in.Location != s.Location() && (old == nil || *in.Location != *old.Location) {
		return arm.BadRequest("LocationNotAvailableForResourceType", "location", "The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.", *in.Location, armid.ManagedClusterType, s.Location())
	}
	if old != nil && *in.Location != *old.Location {
		return arm.InvalidParameter("location", "Changing property 'location' is not allowed: the cluster is in %s.", *old.Location)
	}
	in.ID, in.Name, in.Type, in.SystemData, in.ETag = nil, nil, nil, nil, nil
	if in.Properties == nil {
		return arm.InvalidParameter("properties", "The request must have properties.")
	}
	p := in.Properties
	if p.DNSPrefix == nil || *p.DNSPrefix == "" {
		if old != nil {
			p.DNSPrefix = old.Properties.DNSPrefix
		} else {
			p.DNSPrefix = to.Ptr(defaultDNSPrefix(name, group, s.SubscriptionID()))
		}
	}
	if old == nil && !dnsPrefixPattern.MatchString(*p.DNSPrefix) {
		return arm.InvalidParameter("dnsPrefix", "The value of parameter dnsPrefix is invalid: %q. It must be 1-54 letters, digits and hyphens, starting and ending with a letter or digit. Please see https://aka.ms/aks-naming-rules for more details.", *p.DNSPrefix)
	}
	if old != nil && !strings.EqualFold(*p.DNSPrefix, deref(old.Properties.DNSPrefix)) {
		return &arm.Error{Status: http.StatusBadRequest, Code: "PropertyChangeNotAllowed", Target: "dnsPrefix",
			Message: fmt.Sprintf("Changing property 'dnsPrefix' is not allowed. Provided value is %s, please use current value %s.", *p.DNSPrefix, deref(old.Properties.DNSPrefix))}
	}
	if p.KubernetesVersion == nil || *p.KubernetesVersion == "" {
		if old != nil {
			p.KubernetesVersion = old.Properties.KubernetesVersion
		} else {
			p.KubernetesVersion = to.Ptr(version.Default())
		}
	}
	if _, err := resolveVersion(deref(p.KubernetesVersion), "kubernetesVersion"); err != nil {
		return err
	}
	if p.NodeResourceGroup == nil || *p.NodeResourceGroup == "" {
		if old != nil {
			p.NodeResourceGroup = old.Properties.NodeResourceGroup
		} else {
			p.NodeResourceGroup = to.Ptr(fmt.Sprintf("MC_%s_%s_%s", group, name, *in.Location))
		}
	}
	if old == nil {
		if err := checkNodeResourceGroupName(group, *p.NodeResourceGroup); err != nil {
			return err
		}
	} else if !strings.EqualFold(*p.NodeResourceGroup, deref(old.Properties.NodeResourceGroup)) {
		return &arm.Error{Status: http.StatusBadRequest, Code: "PropertyChangeNotAllowed", Target: "nodeResourceGroup",
			Message: fmt.Sprintf("Changing property 'nodeResourceGroup' is not allowed. Provided value is %s, please use current value %s.", *p.NodeResourceGroup, deref(old.Properties.NodeResourceGroup))}
	}
	if p.EnableRBAC == nil {
		p.EnableRBAC = to.Ptr(true)
	}
	defaultStorageProfile(p, old)
	if err := normalizeAddons(p, old); err != nil {
		return err
	}
	if p.AutoScalerProfile != nil {
		if err := autoscaler.Normalize(p.AutoScalerProfile); err != nil {
			var inv *autoscaler.Invalid
			if errors.As(err, &inv) {
				return arm.InvalidParameter(inv.Target, "%s", inv.Message)
			}
			return err
		}
	} else if old != nil {
		p.AutoScalerProfile = old.Properties.AutoScalerProfile
	}
	if in.Identity == nil && p.ServicePrincipalProfile == nil {
		in.Identity = &armcontainerservice.ManagedClusterIdentity{Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned)}
	}
	if p.ServicePrincipalProfile != nil {
		p.ServicePrincipalProfile.Secret = nil // never stored, never shown
	}
	if err := normalizeWindowsProfile(p, old); err != nil {
		return err
	}
	if in.SKU == nil {
		in.SKU = &armcontainerservice.ManagedClusterSKU{Name: to.Ptr(armcontainerservice.ManagedClusterSKUNameBase), Tier: to.Ptr(armcontainerservice.ManagedClusterSKUTierFree)}
	}
	if err := checkCostAnalysis(in); err != nil {
		return err
	}
	if p.NetworkProfile == nil {
		p.NetworkProfile = &armcontainerservice.NetworkProfile{}
	}
	np := p.NetworkProfile
	if np.NetworkPlugin == nil || *np.NetworkPlugin == "" {
		np.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginKubenet)
	}
	if np.PodCidr == nil || *np.PodCidr == "" {
		np.PodCidr = to.Ptr("10.244.0.0/16")
	}
	if np.ServiceCidr == nil || *np.ServiceCidr == "" {
		np.ServiceCidr = to.Ptr("10.0.0.0/16")
	}
	if np.DNSServiceIP == nil || *np.DNSServiceIP == "" {
		// The service CIDR's tenth address, as AKS picks it; a CIDR too
		// small for it is refused by checkNetwork below.
		ip, _ := addons.DNSServiceIP(*np.ServiceCidr)
		np.DNSServiceIP = to.Ptr(ip)
	}
	if err := checkEnums(in); err != nil {
		return err
	}
	if err := checkNetwork(np); err != nil {
		return err
	}
	if np.NatGatewayProfile != nil {
		np.NatGatewayProfile.EffectiveOutboundIPs = nil // read-only: rendered
	}
	if np.LoadBalancerProfile != nil {
		np.LoadBalancerProfile.EffectiveOutboundIPs = nil // read-only: rendered
	}
	defaultNetwork(np)
	if p.SupportPlan == nil || *p.SupportPlan == "" {
		p.SupportPlan = to.Ptr(armcontainerservice.KubernetesSupportPlanKubernetesOfficial)
	}
	if aad := p.AADProfile; aad != nil && deref(aad.TenantID) == "" {
		aad.TenantID = to.Ptr(s.TenantID()) // the subscription's tenant, as AKS fills it
	}
	if ap := p.APIServerAccessProfile; ap != nil && deref(ap.EnablePrivateCluster) && deref(ap.PrivateDNSZone) == "" {
		ap.PrivateDNSZone = to.Ptr("system")
	}
	p.ProvisioningState, p.PowerState, p.Fqdn, p.AzurePortalFQDN, p.CurrentKubernetesVersion = nil, nil, nil, nil, nil
	p.MaxAgentPools, p.PrivateFQDN, p.ResourceUID = nil, nil, nil

	// Agent pools: required on create; on update, those listed are created
	// or updated and the others left alone, as AKS does.
	if old == nil && len(p.AgentPoolProfiles) == 0 {
		return arm.BadRequest("MustDefineAtLeastOneSystemPool", "agentPoolProfiles", "Must define at least one system pool.")
	}
	seen := map[string]bool{}
	hasSystem := false
	for i, ap := range p.AgentPoolProfiles {
		if ap == nil {
			return arm.InvalidParameter("agentPoolProfiles", "The value of parameter agentPoolProfiles is invalid: an entry is null.")
		}
		poolName := deref(ap.Name)
		if err := nodepool.ValidateName(poolName); err != nil {
			return fromInvalid(err)
		}
		if seen[poolName] {
			return arm.InvalidParameter("agentPoolProfile.name", "The value of parameter agentPoolProfile.name is invalid: pool %s is listed twice.", poolName)
		}
		seen[poolName] = true
		if old == nil && i == 0 && (ap.Mode == nil || *ap.Mode == "") {
			// A new cluster's first pool is its System pool unless told.
			ap.Mode = to.Ptr(armcontainerservice.AgentPoolModeSystem)
		}
		var props nodepool.Properties
		if err := convert(ap, &props); err != nil {
			return err
		}
		if err := nodepool.CheckVMSize(poolName, *in.Location, deref(props.VMSize)); err != nil {
			return fromInvalid(err)
		}
		if err := nodepool.Normalize(&props); err != nil {
			return fromInvalid(err)
		}
		// A pool whose version the PUT leaves unset follows the control
		// plane (AKS: all unset, or each unchanged or the control plane's).
		if props.OrchestratorVersion == nil || *props.OrchestratorVersion == "" {
			props.OrchestratorVersion = to.Ptr(deref(p.KubernetesVersion))
		}
		if err := nodepool.ValidateNameFor(poolName, &props); err != nil {
			return fromInvalid(err)
		}
		if old == nil && i == 0 && *props.ScaleSetPriority == armcontainerservice.ScaleSetPrioritySpot {
			return arm.InvalidParameter("agentPoolProfile.scaleSetPriority", "The value of parameter agentPoolProfile.scaleSetPriority is invalid. Error details: the cluster's first (default) node pool cannot be a Spot pool.")
		}
		if *props.Mode == armcontainerservice.AgentPoolModeSystem {
			hasSystem = true
		}
		if err := convert(&props, ap); err != nil {
			return err
		}
		ap.Name = to.Ptr(poolName)
	}
	if old == nil && !hasSystem {
		return arm.BadRequest("MustDefineAtLeastOneSystemPool", "agentPoolProfiles", "Must define at least one system pool.")
	}
	return nil
}

func defaultDNSPrefix(name, group, sub string) string {
	prefix := fmt.Sprintf("%s-%s-%s", name, group, strings.ReplaceAll(sub, "-", "")[:6])
	prefix = regexp.MustCompile(`[^a-zA-Z0-9-]`).ReplaceAllString(prefix, "")
	if len(prefix) > 54 {
		prefix = prefix[:54]
	}
	return strings.Trim(prefix, "-")
}

func fromInvalid(err error) error {
	if inv, ok := err.(*nodepool.Invalid); ok {
		return &arm.Error{Status: http.StatusBadRequest, Code: inv.Code, Target: inv.Target, Message: inv.Message}
	}
	return err
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// patchManagedCluster updates tags, the one thing PATCH changes.
func (s *Provider) patchManagedCluster(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	if err := arm.CheckETag(r, mc.Annotations[arm.ETagAnnotation], true); err != nil {
		return err
	}
	var body struct {
		Tags map[string]*string `json:"tags"`
	}
	if err := arm.DecodeBody(r, &body); err != nil {
		return err
	}
	var stored armcontainerservice.ManagedCluster
	if err := json.Unmarshal(mc.Spec.Resource.Raw, &stored); err != nil {
		return err
	}
	stored.Tags = body.Tags
	raw, err := json.Marshal(&stored)
	if err != nil {
		return err
	}
	mc.Spec.Resource = runtime.RawExtension{Raw: raw}
	mc.Spec.SystemData = arm.Touched(ctx, mc.Spec.SystemData)
	mc.Annotations[arm.ETagAnnotation] = arm.NewOperationID()
	if err := s.Client().Update(ctx, mc); err != nil {
		if apierrors.IsConflict(err) {
			return arm.OperationNotAllowed("Operation is not allowed: the cluster changed while its tags were updated; retry.")
		}
		return err
	}
	out, err := s.renderCluster(ctx, mc)
	if err != nil {
		return err
	}
	return respond(w, r, http.StatusOK, typeCluster, out)
}

// deleteManagedCluster starts the deletion; it takes over from any running
// operation, as AKS lets a delete do.
func (s *Provider) deleteManagedCluster(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	ctx := r.Context()
	mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
	if arm.IsNotFound(err) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	var op *slipwayv1.Operation
	if mc.DeletionTimestamp != nil && mc.Spec.Operation != nil && mc.Spec.Operation.Action == "Deleting" {
		op, err = s.GetOperation(ctx, mc.Spec.Operation.ID)
	} else {
		op, err = s.DeleteWithOperation(ctx, mc, &mc.Spec.Operation, mc.Spec.ResourceID, clusterLocation(mc))
	}
	if apierrors.IsConflict(err) {
		return arm.OperationNotAllowed("Operation is not allowed: the cluster changed while it was being deleted; retry.")
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	s.Accepted(w, r, op, Namespace, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// startStopCluster is POST .../start and .../stop.
func (s *Provider) startStopCluster(stop bool) arm.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p arm.Params) error {
		ctx := r.Context()
		mc, err := s.lookupCluster(ctx, p["rg"], p["cluster"])
		if err != nil {
			return err
		}
		if err := s.clusterBusy(ctx, mc); err != nil {
			return err
		}
		action := "Starting"
		if stop {
			action = "Stopping"
		}
		op, err := s.StartOperation(ctx, mc.Spec.ResourceID, action, clusterLocation(mc), false)
		if err != nil {
			return err
		}
		first := true
		return s.AcceptUpdate(w, r, mc, op, Namespace, func() error {
			if !first {
				if err := s.clusterBusy(ctx, mc); err != nil {
					return err
				}
			}
			first = false
			mc.Spec.Stopped = stop
			mc.Spec.Operation = &slipwayv1.OperationRef{ID: op.Name, Action: action}
			return nil
		})
	}
}

// abortCluster is POST .../abort.
func (s *Provider) abortCluster(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	return s.abort(w, r, mc.Spec.Operation, mc.Status.CompletedOperation)
}

// abort cancels a running operation: the controller that owns it sees the
// operation Canceled and stops at the next safe point.
func (s *Provider) abort(w http.ResponseWriter, r *http.Request, ref *slipwayv1.OperationRef, completed string) error {
	if busyWith(ref, completed) == "" {
		return arm.NewError(http.StatusConflict, "OperationNotAllowed", "", "There is no operation in progress to abort.")
	}
	op, err := s.GetOperation(r.Context(), ref.ID)
	if err != nil {
		return err
	}
	if op.Status.Status != "" && op.Status.Status != slipwayv1.OperationInProgress {
		return arm.NewError(http.StatusConflict, "OperationNotAllowed", "", "The operation already ended %s and cannot be aborted.", op.Status.Status)
	}
	if err := s.FinishOperation(r.Context(), op, slipwayv1.OperationCanceled, &slipwayv1.ErrorDetail{Code: "Canceled", Message: "The operation was aborted by the user."}); err != nil {
		return err
	}
	abortOp, err := s.StartOperation(r.Context(), op.Spec.ResourceID, "Canceling", op.Spec.Location, false)
	if err != nil {
		return err
	}
	if err := s.FinishOperation(r.Context(), abortOp, slipwayv1.OperationSucceeded, nil); err != nil {
		return err
	}
	s.Accepted(w, r, abortOp, Namespace, true)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Provider) listCredential(admin bool) arm.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p arm.Params) error {
		group, name := p["rg"], p["cluster"]
		mc, err := s.lookupCluster(r.Context(), group, name)
		if err != nil {
			return err
		}
		if mc.Status.HostedCluster == "" {
			return arm.NewError(http.StatusConflict, "OperationNotAllowed", "", "The cluster's control plane is not provisioned yet; retry when the cluster has been created.")
		}
		credName, user, ctxName := "clusterUser", "clusterUser_"+group+"_"+name, name
		if admin {
			credName, user, ctxName = "clusterAdmin", "clusterAdmin_"+group+"_"+name, name+"-admin"
		}
		kubeconfig, err := s.credentials.Kubeconfig(mc.Status.HostedCluster, admin, name, user, ctxName)
		if err != nil {
			return err
		}
		// Value is []byte: encoding/json writes it as standard base64, which
		// is what the SDK and az decode.
		arm.WriteJSON(w, http.StatusOK, armcontainerservice.CredentialResults{Kubeconfigs: []*armcontainerservice.CredentialResult{{Name: to.Ptr(credName), Value: kubeconfig}}})
		return nil
	}
}

func (s *Provider) getClusterUpgradeProfile(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	current := clusterVersion(mc)
	prof := armcontainerservice.ManagedClusterUpgradeProfile{
		ID:   to.Ptr(mc.Spec.ResourceID + "/upgradeProfiles/default"),
		Name: to.Ptr("default"),
		Type: to.Ptr(armid.ManagedClusterType + "/upgradeprofiles"),
		Properties: &armcontainerservice.ManagedClusterUpgradeProfileProperties{
			ControlPlaneProfile: &armcontainerservice.ManagedClusterPoolUpgradeProfile{
				KubernetesVersion: to.Ptr(current), Name: to.Ptr(""), OSType: to.Ptr(armcontainerservice.OSTypeLinux),
				Upgrades: clusterUpgradeItems(version.Upgrades(current)),
			},
		},
	}
	pools, err := s.poolsOf(r.Context(), mc)
	if err != nil {
		return err
	}
	for _, pool := range pools {
		v := nodepool.CurrentVersion(&pool)
		prof.Properties.AgentPoolProfiles = append(prof.Properties.AgentPoolProfiles, &armcontainerservice.ManagedClusterPoolUpgradeProfile{
			KubernetesVersion: to.Ptr(v), Name: to.Ptr(pool.Spec.Name), OSType: to.Ptr(armcontainerservice.OSTypeLinux),
			Upgrades: clusterUpgradeItems(poolUpgrades(v, current)),
		})
	}
	arm.WriteJSON(w, http.StatusOK, prof)
	return nil
}

func (s *Provider) getAvailableAgentPoolVersions(w http.ResponseWriter, r *http.Request, p arm.Params) error {
	mc, err := s.lookupCluster(r.Context(), p["rg"], p["cluster"])
	if err != nil {
		return err
	}
	// The releases a new pool of this cluster may run: none newer than its
	// control plane, none too far behind.
	current := clusterVersion(mc)
	var items []*armcontainerservice.AgentPoolAvailableVersionsPropertiesAgentPoolVersionsItem
	for _, release := range version.Releases {
		if checkPoolVersion("", release, current) == nil {
			items = append(items, &armcontainerservice.AgentPoolAvailableVersionsPropertiesAgentPoolVersionsItem{
				Default: to.Ptr(release == current), IsPreview: to.Ptr(false), KubernetesVersion: to.Ptr(release)})
		}
	}
	arm.WriteJSON(w, http.StatusOK, armcontainerservice.AgentPoolAvailableVersions{
		ID:         to.Ptr(mc.Spec.ResourceID + "/availableagentpoolversions"),
		Name:       to.Ptr("default"),
		Type:       to.Ptr(armid.ManagedClusterType + "/availableagentpoolversions"),
		Properties: &armcontainerservice.AgentPoolAvailableVersionsProperties{AgentPoolVersions: items},
	})
	return nil
}

// renderSystemData is ARM's systemData of a resource Slipway keeps it for.
func renderSystemData(sd *slipwayv1.SystemData) *armcontainerservice.SystemData {
	if sd == nil {
		return nil // made before Slipway kept it
	}
	return &armcontainerservice.SystemData{
		CreatedBy: to.Ptr(sd.CreatedBy), CreatedByType: to.Ptr(armcontainerservice.CreatedByType(sd.CreatedByType)), CreatedAt: to.Ptr(sd.CreatedAt.UTC()),
		LastModifiedBy: to.Ptr(sd.LastModifiedBy), LastModifiedByType: to.Ptr(armcontainerservice.CreatedByType(sd.LastModifiedByType)), LastModifiedAt: to.Ptr(sd.LastModifiedAt.UTC()),
	}
}

// defaultStorageProfile fills in storageProfile as AKS does: the disk and
// file CSI drivers and the snapshot controller on, the blob driver off. On
// update a driver the PUT leaves out keeps its state (az aks update sends
// the whole profile it read back).
func defaultStorageProfile(p *armcontainerservice.ManagedClusterProperties, old *armcontainerservice.ManagedCluster) {
	var was armcontainerservice.ManagedClusterStorageProfile // a copy: old stays as stored
	if old != nil && old.Properties != nil && old.Properties.StorageProfile != nil {
		was = *old.Properties.StorageProfile
	}
	if p.StorageProfile == nil {
		p.StorageProfile = &armcontainerservice.ManagedClusterStorageProfile{}
	}
	sp := p.StorageProfile
	withSwitches(sp)
	withSwitches(&was)
	// Each switch: as sent, else as it was, else AKS's default.
	sp.DiskCSIDriver.Enabled = cmp.Or(sp.DiskCSIDriver.Enabled, was.DiskCSIDriver.Enabled, to.Ptr(true))
	sp.FileCSIDriver.Enabled = cmp.Or(sp.FileCSIDriver.Enabled, was.FileCSIDriver.Enabled, to.Ptr(true))
	sp.SnapshotController.Enabled = cmp.Or(sp.SnapshotController.Enabled, was.SnapshotController.Enabled, to.Ptr(true))
	sp.BlobCSIDriver.Enabled = cmp.Or(sp.BlobCSIDriver.Enabled, was.BlobCSIDriver.Enabled, to.Ptr(false))
}

// withSwitches gives a storage profile every one of its switches.
func withSwitches(sp *armcontainerservice.ManagedClusterStorageProfile) {
	if sp.DiskCSIDriver == nil {
		sp.DiskCSIDriver = &armcontainerservice.ManagedClusterStorageProfileDiskCSIDriver{}
	}
	if sp.FileCSIDriver == nil {
		sp.FileCSIDriver = &armcontainerservice.ManagedClusterStorageProfileFileCSIDriver{}
	}
	if sp.SnapshotController == nil {
		sp.SnapshotController = &armcontainerservice.ManagedClusterStorageProfileSnapshotController{}
	}
	if sp.BlobCSIDriver == nil {
		sp.BlobCSIDriver = &armcontainerservice.ManagedClusterStorageProfileBlobCSIDriver{}
	}
}

package containerservice

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"

	slipwayv1 "github.com/slipway-dev/slipway/api/v1alpha1"
	"github.com/slipway-dev/slipway/internal/arm"
	"github.com/slipway-dev/slipway/internal/nodepool"
)

// dnsPrefixPattern is AKS's rule for dnsPrefix: it becomes a DNS label of
// the API server's name (and a SAN of its certificate).
var dnsPrefixPattern = regexp.MustCompile(`^[a-zA-Z0-9]$|^[a-zA-Z0-9][-a-zA-Z0-9]{0,52}[a-zA-Z0-9]$`)

// nodeResourceGroupPattern is ARM's rule for group names, which the node
// resource group becomes.
var nodeResourceGroupPattern = regexp.MustCompile(`^[-\w._()]{1,80}$`)

// checkNodeResourceGroupName applies AKS's naming rules to a new cluster's
// node resource group: a valid group name, not the cluster's own group.
func checkNodeResourceGroupName(group, name string) error {
	if !nodeResourceGroupPattern.MatchString(name) || strings.HasSuffix(name, ".") {
		return arm.InvalidParameter("nodeResourceGroup", "The value of parameter nodeResourceGroup is invalid: %q. It must be 1-80 characters of letters, digits, '_', '-', '.', '(' and ')', and not end in '.'.", name)
	}
	if strings.EqualFold(name, group) {
		return arm.InvalidParameter("nodeResourceGroup", "The value of parameter nodeResourceGroup is invalid: it cannot be the cluster's own resource group %s.", group)
	}
	return nil
}

// checkNewNodeResourceGroup refuses a node resource group that exists:
// AKS creates that group and owns it.
func (s *Provider) checkNewNodeResourceGroup(ctx context.Context, name string) error {
	if _, err := s.LookupResourceGroup(ctx, name); err == nil {
		return arm.InvalidParameter("nodeResourceGroup", "The value of parameter nodeResourceGroup is invalid: the resource group %s already exists; AKS creates the node resource group and it must be new.", name)
	} else if !arm.IsNotFound(err) {
		return err
	}
	return nil
}

// checkEnums refuses the values of the cluster's enumerations that AKS
// does not know (the model's types are plain strings).
func checkEnums(in *armcontainerservice.ManagedCluster) error {
	oneOf := func(target, got string, allowed ...string) error {
		if got == "" || slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, got) }) {
			return nil
		}
		return arm.InvalidParameter(target, "The value of parameter %s is invalid: %q. Allowed values are %s.", target, got, strings.Join(allowed, ", "))
	}
	var errs []error
	if sku := in.SKU; sku != nil {
		errs = append(errs,
			oneOf("sku.name", string(deref(sku.Name)), "Base", "Automatic"),
			oneOf("sku.tier", string(deref(sku.Tier)), "Free", "Standard", "Premium"))
	}
	if id := in.Identity; id != nil {
		errs = append(errs, oneOf("identity.type", string(deref(id.Type)), "SystemAssigned", "UserAssigned", "None"))
	}
	if au := in.Properties.AutoUpgradeProfile; au != nil {
		errs = append(errs,
			oneOf("autoUpgradeProfile.upgradeChannel", string(deref(au.UpgradeChannel)), "rapid", "stable", "patch", "node-image", "none"),
			oneOf("autoUpgradeProfile.nodeOSUpgradeChannel", string(deref(au.NodeOSUpgradeChannel)), "None", "Unmanaged", "NodeImage", "SecurityPatch"))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkNetwork applies AKS's rules to the network profile: known plugins
// and policies, well-formed CIDRs that do not overlap, and a DNS service
// address inside the service CIDR that is not its first.
func checkNetwork(np *armcontainerservice.NetworkProfile) error {
	switch plugin := deref(np.NetworkPlugin); plugin {
	case armcontainerservice.NetworkPluginKubenet, armcontainerservice.NetworkPluginAzure, armcontainerservice.NetworkPluginNone:
	default:
		return arm.InvalidParameter("networkProfile.networkPlugin", "The value of parameter networkProfile.networkPlugin is invalid: %q. Allowed values are azure, kubenet and none.", plugin)
	}
	switch pol := deref(np.NetworkPolicy); pol {
	case "", armcontainerservice.NetworkPolicyNone, armcontainerservice.NetworkPolicyCalico, armcontainerservice.NetworkPolicyAzure, armcontainerservice.NetworkPolicyCilium:
	default:
		return arm.InvalidParameter("networkProfile.networkPolicy", "The value of parameter networkProfile.networkPolicy is invalid: %q. Allowed values are none, calico, azure and cilium.", pol)
	}
	prefix := func(target, v string) (netip.Prefix, error) {
		p, err := netip.ParsePrefix(v)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return netip.Prefix{}, arm.InvalidParameter("networkProfile."+target, "The value of parameter networkProfile.%s is invalid: %q is not an IPv4 CIDR.", target, v)
		}
		if p.Bits() < 8 || p.Bits() > 28 {
			return netip.Prefix{}, arm.InvalidParameter("networkProfile."+target, "The value of parameter networkProfile.%s is invalid: %q must have a prefix length between /8 and /28.", target, v)
		}
		return p, nil
	}
	pod, err := prefix("podCidr", deref(np.PodCidr))
	if err != nil {
		return err
	}
	svc, err := prefix("serviceCidr", deref(np.ServiceCidr))
	if err != nil {
		return err
	}
	if pod.Overlaps(svc) {
		return arm.InvalidParameter("networkProfile.serviceCidr", "The value of parameter networkProfile.serviceCidr is invalid: service CIDR %s overlaps the pod CIDR %s.", svc, pod)
	}
	dns, err := netip.ParseAddr(deref(np.DNSServiceIP))
	if err != nil || !dns.Is4() {
		return arm.InvalidParameter("networkProfile.dnsServiceIP", "The value of parameter networkProfile.dnsServiceIP is invalid: %q is not an IPv4 address.", deref(np.DNSServiceIP))
	}
	if !svc.Contains(dns) || dns == svc.Addr().Next() || dns == svc.Addr() {
		return arm.InvalidParameter("networkProfile.dnsServiceIP", "The value of parameter networkProfile.dnsServiceIP is invalid: %s must be within the service CIDR %s and not its first address.", dns, svc)
	}
	if _, _, err := net.ParseCIDR(svc.String()); err != nil {
		return fmt.Errorf("service CIDR %s: %w", svc, err)
	}
	return nil
}

// checkPoolUpdates applies to the pools a cluster PUT lists the rules a
// pool's own PUT applies: what cannot change does not, and the cluster
// keeps a running System pool.
func checkPoolUpdates(profiles []*armcontainerservice.ManagedClusterAgentPoolProfile, existing []slipwayv1.AgentPool) error {
	if len(existing) == 0 {
		return nil // a new cluster: normalizeCluster requires its System pool
	}
	listed := map[string]*nodepool.Properties{}
	for _, ap := range profiles {
		var props nodepool.Properties
		if err := convert(ap, &props); err != nil {
			return err
		}
		listed[deref(ap.Name)] = &props
	}
	runningSystem := func(p *nodepool.Properties) bool {
		return deref(p.Mode) == armcontainerservice.AgentPoolModeSystem && powerCode(p) == armcontainerservice.CodeRunning
	}
	kept := false
	for _, e := range existing {
		var old nodepool.Properties
		if err := json.Unmarshal(e.Spec.Properties.Raw, &old); err != nil {
			return fmt.Errorf("stored pool %s: %w", e.Spec.ResourceID, err)
		}
		props, ok := listed[e.Spec.Name]
		if !ok {
			kept = kept || runningSystem(&old)
			continue
		}
		if err := nodepool.ValidateUpdate(e.Spec.Name, &old, props); err != nil {
			return fromInvalid(err)
		}
	}
	for _, props := range listed {
		kept = kept || runningSystem(props)
	}
	if !kept {
		return arm.BadRequest("MustDefineAtLeastOneSystemPool", "agentPoolProfiles", "Must define at least one system pool.")
	}
	return nil
}

// defaultNetwork fills in what AKS fills in of a network profile: no
// network policy, the Standard load balancer with one managed outbound IP
// as the outbound path, IPv4, and the CIDR lists that mirror the single
// CIDRs. It keeps what the user set.
func defaultNetwork(np *armcontainerservice.NetworkProfile) {
	if np.NetworkPolicy == nil || *np.NetworkPolicy == "" {
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicyNone)
	}
	if np.LoadBalancerSKU == nil || *np.LoadBalancerSKU == "" {
		np.LoadBalancerSKU = to.Ptr(armcontainerservice.LoadBalancerSKUStandard)
	}
	if np.OutboundType == nil || *np.OutboundType == "" {
		np.OutboundType = to.Ptr(armcontainerservice.OutboundTypeLoadBalancer)
	}
	if len(np.IPFamilies) == 0 {
		np.IPFamilies = []*armcontainerservice.IPFamily{to.Ptr(armcontainerservice.IPFamilyIPv4)}
	}
	if len(np.PodCidrs) == 0 && np.PodCidr != nil {
		np.PodCidrs = []*string{to.Ptr(*np.PodCidr)}
	}
	if len(np.ServiceCidrs) == 0 && np.ServiceCidr != nil {
		np.ServiceCidrs = []*string{to.Ptr(*np.ServiceCidr)}
	}
	if *np.OutboundType == armcontainerservice.OutboundTypeLoadBalancer {
		if np.LoadBalancerProfile == nil {
			np.LoadBalancerProfile = &armcontainerservice.ManagedClusterLoadBalancerProfile{}
		}
		lb := np.LoadBalancerProfile
		if lb.ManagedOutboundIPs == nil && lb.OutboundIPs == nil && lb.OutboundIPPrefixes == nil {
			lb.ManagedOutboundIPs = &armcontainerservice.ManagedClusterLoadBalancerProfileManagedOutboundIPs{Count: to.Ptr[int32](1)}
		}
		if lb.AllocatedOutboundPorts == nil {
			lb.AllocatedOutboundPorts = to.Ptr[int32](0) // 0: Azure allocates by pool size
		}
		if lb.IdleTimeoutInMinutes == nil {
			lb.IdleTimeoutInMinutes = to.Ptr[int32](30)
		}
		if lb.BackendPoolType == nil {
			lb.BackendPoolType = to.Ptr(armcontainerservice.BackendPoolTypeNodeIPConfiguration)
		}
	}
	// A NAT gateway's idle timeout is 4 minutes unless set, and a managed
	// one gets one public IP, as AKS makes it.
	if t := *np.OutboundType; t == armcontainerservice.OutboundTypeManagedNATGateway || t == armcontainerservice.OutboundTypeUserAssignedNATGateway {
		if np.NatGatewayProfile == nil {
			np.NatGatewayProfile = &armcontainerservice.ManagedClusterNATGatewayProfile{}
		}
		ng := np.NatGatewayProfile
		if ng.IdleTimeoutInMinutes == nil {
			ng.IdleTimeoutInMinutes = to.Ptr[int32](4)
		}
		if t == armcontainerservice.OutboundTypeManagedNATGateway && ng.ManagedOutboundIPProfile == nil {
			ng.ManagedOutboundIPProfile = &armcontainerservice.ManagedClusterManagedOutboundIPProfile{Count: to.Ptr[int32](1)}
		}
	}
}

// checkCostAnalysis applies the cost analysis add-on's rules: the cluster
// must be on the Standard or Premium tier, and have a managed identity.
func checkCostAnalysis(in *armcontainerservice.ManagedCluster) error {
	m := in.Properties.MetricsProfile
	if m == nil || m.CostAnalysis == nil || !deref(m.CostAnalysis.Enabled) {
		return nil
	}
	if tier := deref(in.SKU.Tier); !strings.EqualFold(string(tier), "Standard") && !strings.EqualFold(string(tier), "Premium") {
		return arm.InvalidParameter("properties.metricsProfile.costAnalysis.enabled",
			"Cost analysis can only be enabled on clusters of the Standard or Premium tier; the cluster's sku.tier is %s.", cmp.Or(string(tier), "Free"))
	}
	if in.Identity == nil || deref(in.Identity.Type) == armcontainerservice.ResourceIdentityTypeNone {
		return arm.InvalidParameter("properties.metricsProfile.costAnalysis.enabled",
			"Cost analysis can only be enabled on clusters with a managed identity, not a service principal.")
	}
	return nil
}

// reservedWindowsUsernames are the administrator names Azure refuses for a
// Windows VM.
var reservedWindowsUsernames = []string{
	"administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1", "1", "123", "a",
	"actuser", "adm", "admin2", "aspnet", "backup", "console", "david", "guest", "john", "owner", "root",
	"server", "sql", "support", "support_388945a0", "sys", "test2", "test3", "user4", "user5",
}

var windowsUsername = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,19}$`)

// normalizeWindowsProfile applies AKS's rules to the cluster's Windows
// profile, the administrator account of its Windows nodes: a name Azure
// allows that never changes, a password as complex as Azure asks (stored
// nowhere and never shown, like a service principal's secret), and the CSI
// proxy on by default.
func normalizeWindowsProfile(p *armcontainerservice.ManagedClusterProperties, old *armcontainerservice.ManagedCluster) error {
	var was *armcontainerservice.ManagedClusterWindowsProfile
	if old != nil && old.Properties != nil {
		was = old.Properties.WindowsProfile
	}
	wp := p.WindowsProfile
	if wp == nil {
		if was == nil && !slices.ContainsFunc(p.AgentPoolProfiles, func(ap *armcontainerservice.ManagedClusterAgentPoolProfile) bool {
			return ap != nil && deref(ap.OSType) == armcontainerservice.OSTypeWindows
		}) {
			return nil
		}
		// AKS makes the account itself when a cluster gets Windows
		// nodes without one.
		wp = &armcontainerservice.ManagedClusterWindowsProfile{}
		if was != nil {
			copied := *was
			wp = &copied
		}
		p.WindowsProfile = wp
	}
	if deref(wp.AdminUsername) == "" {
		wp.AdminUsername = to.Ptr("azureuser")
		if was != nil {
			wp.AdminUsername = was.AdminUsername
		}
	}
	name := *wp.AdminUsername
	if was != nil && deref(was.AdminUsername) != "" && !strings.EqualFold(name, *was.AdminUsername) {
		return &arm.Error{Status: 400, Code: "PropertyChangeNotAllowed", Target: "windowsProfile.adminUsername",
			Message: fmt.Sprintf("Changing property 'windowsProfile.adminUsername' is not allowed. Provided value is %s, please use current value %s.", name, *was.AdminUsername)}
	}
	if !windowsUsername.MatchString(name) || strings.HasSuffix(name, ".") || slices.Contains(reservedWindowsUsernames, strings.ToLower(name)) {
		return arm.InvalidParameter("windowsProfile.adminUsername", "The value of parameter windowsProfile.adminUsername is invalid: %q. It must be 1-20 letters, digits, '_', '.' and '-', must not end with '.', and must not be a reserved name such as administrator, admin or root.", name)
	}
	if pw := deref(wp.AdminPassword); pw != "" && !complexPassword(pw) {
		return arm.InvalidParameter("windowsProfile.adminPassword", "The value of parameter windowsProfile.adminPassword is invalid: it must be 14-123 characters and have 3 of: a lower case letter, an upper case letter, a digit, a special character.")
	}
	wp.AdminPassword = nil // never stored, never shown
	if wp.EnableCSIProxy == nil {
		wp.EnableCSIProxy = to.Ptr(true)
	}
	return nil
}

// complexPassword is Azure's rule for a Windows administrator's password.
func complexPassword(pw string) bool {
	if len(pw) < 14 || len(pw) > 123 {
		return false
	}
	var lower, upper, digit, special bool
	for _, r := range pw {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		default:
			special = true
		}
	}
	n := 0
	for _, b := range []bool{lower, upper, digit, special} {
		if b {
			n++
		}
	}
	return n >= 3
}

package containerservice

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
)

// TestDefaultNetwork: what AKS fills in for each outbound type.
func TestDefaultNetwork(t *testing.T) {
	lb := &armcontainerservice.NetworkProfile{}
	defaultNetwork(lb)
	if p := lb.LoadBalancerProfile; *lb.OutboundType != armcontainerservice.OutboundTypeLoadBalancer || p == nil ||
		*p.ManagedOutboundIPs.Count != 1 || *p.IdleTimeoutInMinutes != 30 || *p.AllocatedOutboundPorts != 0 || lb.NatGatewayProfile != nil {
		t.Errorf("load balancer defaults: %+v", lb)
	}
	nat := &armcontainerservice.NetworkProfile{OutboundType: to.Ptr(armcontainerservice.OutboundTypeManagedNATGateway)}
	defaultNetwork(nat)
	if p := nat.NatGatewayProfile; p == nil || *p.IdleTimeoutInMinutes != 4 || *p.ManagedOutboundIPProfile.Count != 1 || nat.LoadBalancerProfile != nil {
		t.Errorf("managed NAT gateway defaults: %+v", nat)
	}
	own := &armcontainerservice.NetworkProfile{OutboundType: to.Ptr(armcontainerservice.OutboundTypeUserAssignedNATGateway),
		NatGatewayProfile: &armcontainerservice.ManagedClusterNATGatewayProfile{IdleTimeoutInMinutes: to.Ptr[int32](10)}}
	defaultNetwork(own)
	if p := own.NatGatewayProfile; *p.IdleTimeoutInMinutes != 10 || p.ManagedOutboundIPProfile != nil {
		t.Errorf("user-assigned NAT gateway: %+v", p)
	}
}

package plugin

import (
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Param looks a class parameter up case-insensitively, as both drivers
// read their keys.
func Param(params map[string]string, key string) (string, bool) {
	for k, v := range params {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// Tags parses a class's tags parameter, "k1=v1<delim>k2=v2", into dst.
func Tags(value, delim string, dst map[string]*string) error {
	for _, kv := range strings.Split(value, delim) {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, v, ok := strings.Cut(kv, "=")
		if !ok {
			return status.Errorf(codes.InvalidArgument, "tags %q are invalid: use key=value%skey=value", value, delim)
		}
		v = strings.TrimSpace(v)
		dst[strings.TrimSpace(name)] = &v
	}
	return nil
}

// ControllerCapabilities is a ControllerGetCapabilities answer.
func ControllerCapabilities(types ...csi.ControllerServiceCapability_RPC_Type) *csi.ControllerGetCapabilitiesResponse {
	out := &csi.ControllerGetCapabilitiesResponse{}
	for _, t := range types {
		out.Capabilities = append(out.Capabilities, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return out
}

// NodeCapabilities is a NodeGetCapabilities answer.
func NodeCapabilities(types ...csi.NodeServiceCapability_RPC_Type) *csi.NodeGetCapabilitiesResponse {
	out := &csi.NodeGetCapabilitiesResponse{}
	for _, t := range types {
		out.Capabilities = append(out.Capabilities, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return out
}

package plugin

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Node is the part of a node service both drivers share: stage, unstage,
// publish, unpublish and stats, recorded in a Table. A driver embeds it
// and adds NodeGetInfo, NodeGetCapabilities and, if it has one,
// NodeExpandVolume.
type Node struct {
	csi.UnimplementedNodeServer

	// capacity returns a volume's size in bytes, or a gRPC error
	// (NOT_FOUND for a volume that does not exist).
	capacity func(ctx context.Context, volumeID string) (int64, error)
	// attached says the volumes are disks attached to the node: a mounted
	// one is staged from the LUN its attach gave it, and a raw block one
	// is published without staging.
	attached bool
	table    *Table
}

// NewNode returns a node service over capacity.
func NewNode(capacity func(ctx context.Context, volumeID string) (int64, error), attached bool) *Node {
	return &Node{capacity: capacity, attached: attached, table: New()}
}

func (n *Node) block(c *csi.VolumeCapability) bool { return n.attached && c.GetBlock() != nil }

// NodeStageVolume implements csi.NodeServer: the volume is recorded as
// staged, once it is known to exist.
func (n *Node) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "staging target path is required")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	}
	if _, ok := req.GetPublishContext()["LUN"]; n.attached && !ok && !n.block(req.GetVolumeCapability()) {
		return nil, status.Error(codes.InvalidArgument, "LUN is missing from the publish context: the volume was not attached")
	}
	if _, err := n.capacity(ctx, id); err != nil {
		return nil, err
	}
	if err := n.table.Stage(id, path); err != nil {
		return nil, status.Error(codes.AlreadyExists, err.Error())
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume implements csi.NodeServer.
func (n *Node) NodeUnstageVolume(_ context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetStagingTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID and staging target path are required")
	}
	n.table.Unstage(req.GetVolumeId())
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// NodePublishVolume implements csi.NodeServer: it makes the target path
// the pod mounts.
func (n *Node) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID is required")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target path is required")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability is required")
	case req.GetStagingTargetPath() == "" && !n.block(req.GetVolumeCapability()):
		return nil, status.Error(codes.InvalidArgument, "staging target path is required")
	}
	if _, err := n.capacity(ctx, id); err != nil {
		return nil, err
	}
	if err := n.table.Publish(id, target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume implements csi.NodeServer: it removes the target
// path.
func (n *Node) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" || req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID and target path are required")
	}
	if err := n.table.Unpublish(req.GetVolumeId(), req.GetTargetPath()); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats implements csi.NodeServer: a simulated volume is
// empty.
func (n *Node) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if id == "" || path == "" {
		return nil, status.Error(codes.InvalidArgument, "volume ID and volume path are required")
	}
	if !n.table.Mounted(id, path) {
		return nil, status.Errorf(codes.NotFound, "volume %s is not mounted at %s", id, path)
	}
	total, err := n.capacity(ctx, id)
	if err != nil {
		return nil, err
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: total, Available: total}}}, nil
}

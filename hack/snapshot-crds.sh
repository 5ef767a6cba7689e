#!/usr/bin/env bash
# Copies the VolumeSnapshot CRDs, unchanged, from the external-snapshotter
# client module that Slipway's snapshot controllers are built against, into
# the add-ons AKS installs when storageProfile.snapshotController is on.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)
for kind in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
	cp "$dir/config/crd/snapshot.storage.k8s.io_$kind.yaml" internal/addons/snapshotcrds/
done
chmod 644 internal/addons/snapshotcrds/*.yaml

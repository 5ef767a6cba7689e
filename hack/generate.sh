#!/usr/bin/env bash
# Regenerates deep-copy functions and CRD manifests from api/v1alpha1.
# controller-gen is installed with:
#   go install sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${CONTROLLER_GEN:-$(go env GOPATH)/bin/controller-gen}
"$gen" object paths=./api/...
"$gen" crd paths=./api/... output:crd:artifacts:config=internal/management/crds

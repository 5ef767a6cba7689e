#!/usr/bin/env bash
# Copies the SecretProviderClass and SecretProviderClassPodStatus CRDs,
# unchanged, from the Secrets Store CSI driver module whose API types
# Slipway's secrets-store controller uses, into the add-ons AKS installs
# when addonProfiles.azureKeyvaultSecretsProvider is enabled.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/secrets-store-csi-driver)
mkdir -p internal/addons/secretsstorecrds
for kind in secretproviderclasses secretproviderclasspodstatuses; do
	cp "$dir/deploy/secrets-store.csi.x-k8s.io_$kind.yaml" internal/addons/secretsstorecrds/
done
chmod 644 internal/addons/secretsstorecrds/*.yaml

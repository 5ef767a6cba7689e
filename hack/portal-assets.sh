#!/usr/bin/env bash
# Fetches the portal's one third-party asset, htmx, from npm and checks it
# against the digest recorded here. The file is committed (the build needs
# no Node.js toolchain); run this only to change its version.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.0.8
sha256=22283ef68cb7545914f0a88a1bdedc7256a703d1d580c1d255217d0a50d31313
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htmx.org@$version" >/dev/null && tar xzf "htmx.org-$version.tgz")
echo "$sha256  $tmp/package/dist/htmx.min.js" | sha256sum -c -
cp "$tmp/package/dist/htmx.min.js" "internal/portal/static/htmx-$version.min.js"

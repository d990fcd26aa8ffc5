#!/usr/bin/env bash
# Fail when services/generated/ is not exactly what scripts/gen-protos.sh produces from
# protos/, and run `buf lint` and `buf breaking` on the contracts when buf is installed
# (a missing buf fails under CI=true).
#
# `buf breaking` compares protos/ with protos/baseline.binpb, a committed buf image of
# the released contract (rules: FILE, see protos/buf.yaml), so any wire- or
# source-breaking change inside a released package (newsrec.v1) fails here. New packages
# (newsrec.v2) and additive changes pass. On a deliberate major bump, after the new
# package is released, refresh the baseline (docs/deploy.md, "API contract"):
#   (cd protos && ../.tools/bin/buf build -o baseline.binpb)
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

bash scripts/gen-protos.sh "$TMP/generated"
if ! diff -r -x __pycache__ "$TMP/generated" services/generated; then
  echo "services/generated/ is stale: run scripts/gen-protos.sh and commit the result" >&2
  exit 1
fi
echo "generated code is current"

# buf comes from npm (scripts/install-tools.sh puts it at .tools/bin/buf; a plain
# `npm install --prefix .tools @bufbuild/buf` at .tools/node_modules/.bin/buf).
BUF=${BUF:-}
for candidate in .tools/bin/buf .tools/node_modules/.bin/buf "$(command -v buf || true)"; do
  if [[ -z "$BUF" && -n "$candidate" && -x "$candidate" ]]; then
    BUF=$(realpath "$candidate")
  fi
done
if [[ -z "$BUF" ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "check-protos: buf not installed (make tools): buf lint and buf breaking cannot run in CI" >&2
    exit 1
  fi
  echo "buf not installed (make tools): SKIPPING buf lint and buf breaking" >&2
  exit 0
fi
(cd protos && "$BUF" lint)
echo "buf lint clean ($("$BUF" --version))"
BASELINE=${BUF_BASELINE:-baseline.binpb}
if [[ ! -f protos/$BASELINE ]]; then
  echo "check-protos: protos/$BASELINE missing: nothing to check breaking changes against" >&2
  exit 1
fi
if ! (cd protos && "$BUF" breaking --against "$BASELINE"); then
  echo "check-protos: breaking change against protos/$BASELINE (see above); keep released" \
    "packages compatible, or add a new package (docs/deploy.md, API contract)" >&2
  exit 1
fi
echo "buf breaking: no breaking change against protos/$BASELINE"

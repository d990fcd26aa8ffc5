#!/usr/bin/env bash
# Fail when services/generated/ is not exactly what scripts/gen-protos.sh produces from
# protos/, and run `buf lint` on the contracts when buf is installed.
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

BUF=${BUF:-.tools/node_modules/.bin/buf}
if [[ -x "$BUF" ]]; then
  (cd protos && "../$BUF" lint)
  echo "buf lint clean"
elif command -v buf >/dev/null 2>&1; then
  (cd protos && buf lint)
  echo "buf lint clean"
else
  echo "buf not installed (make tools): skipping buf lint"
fi

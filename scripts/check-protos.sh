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

# buf comes from npm (scripts/install-tools.sh puts it at .tools/bin/buf; a plain
# `npm install --prefix .tools @bufbuild/buf` at .tools/node_modules/.bin/buf).
BUF=${BUF:-}
for candidate in .tools/bin/buf .tools/node_modules/.bin/buf "$(command -v buf || true)"; do
  if [[ -z "$BUF" && -n "$candidate" && -x "$candidate" ]]; then
    BUF=$(realpath "$candidate")
  fi
done
if [[ -n "$BUF" ]]; then
  (cd protos && "$BUF" lint)
  echo "buf lint clean ($("$BUF" --version))"
else
  echo "buf not installed (make tools): skipping buf lint"
fi

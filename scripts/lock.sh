#!/usr/bin/env bash
# Re-resolve every dependency in ONE pip run (kfp's protobuf<7 and grpcio-tools' cap
# must be solved together) in a scratch venv, then write requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --upgrade "pip>=24,<26"
"$tmp/venv/bin/pip" install --quiet "torch==2.13.0" -e '.[dev]'
{
  "$tmp/venv/bin/pip" freeze --exclude-editable | sed 's/^torch==2.13.0+cpu$/torch==2.13.0/'
  "$tmp/venv/bin/pip" list --format=freeze 2>/dev/null | grep '^setuptools=='
} | sort -f -u > requirements.lock
echo "wrote requirements.lock ($(wc -l < requirements.lock) pins)"

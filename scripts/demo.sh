#!/usr/bin/env bash
# The main job on the embedded default: synthetic MIND-format data, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-output}
NEWSREC=.venv/bin/newsrec
mkdir -p "$OUT"
"$NEWSREC" data synth --size tiny --seed 7 --out "$OUT/data"
"$NEWSREC" data validate "$OUT/data"

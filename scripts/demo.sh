#!/usr/bin/env bash
# The main job on the embedded default, offline and without an API key:
#   synthetic MIND-format data -> validation -> the Kubeflow pipeline run locally
#   (embeddings, KG, two towers, ranker, evaluation, Milvus Lite collection, registry)
#   -> every gRPC service in one process -> recommendations for a few users.
# MILVUS=server (`make demo MILVUS=server`): a real Milvus server instead of Milvus Lite,
# the embedded standalone Milvus 2.3.5 of the dev extra `milvus`, started here on a free
# port (DEMO_MILVUS_PORT to choose one) and stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo-output}
PORT=${DEMO_PORT:-50551}
METRICS_PORT=${DEMO_METRICS_PORT:-9551}
NEWSREC=.venv/bin/newsrec
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

mkdir -p "$OUT"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
MILVUS_URI="$OUT/pipeline/milvus.db"
if [ "${MILVUS:-lite}" = server ]; then
  echo "== 0/5 Milvus server (embedded standalone 2.3.5)"
  MPORT=${DEMO_MILVUS_PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  .venv/bin/python tests/integration/milvus_server/milvus_proc.py --dir "$OUT/milvus-server" --port "$MPORT" \
    >"$OUT/milvus-server.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 240); do grep -q " up in " "$OUT/milvus-server.log" && break; sleep 1; done
  grep " up in " "$OUT/milvus-server.log" || { echo "Milvus server did not start:" >&2; tail "$OUT/milvus-server.log" >&2; exit 1; }
  MILVUS_URI="http://127.0.0.1:$MPORT"
fi
echo "== 1/5 synthetic MIND-format data (tiny)"
"$NEWSREC" data synth --size tiny --seed 7 --out "$OUT/data"

echo "== 2/5 validate"
"$NEWSREC" data validate "$OUT/data"

echo "== 3/5 pipeline (kfp.local, offline)"
"$NEWSREC" pipeline run --data "$OUT/data" --out "$OUT/pipeline" --model-name newsrec --epochs "${DEMO_EPOCHS:-3}" --output-dim 64 \
  --milvus-uri "$MILVUS_URI"

echo "== 4/5 serve the current registry version (all services in one process)"
LOG="$OUT/serve.log"
"$NEWSREC" serve --all --registry "$OUT/pipeline/registry" --model newsrec --milvus-uri "$MILVUS_URI" \
  --news "$OUT/data/train/news.tsv" --news "$OUT/data/dev/news.tsv" \
  --port "$PORT" --metrics-port "$METRICS_PORT" >"$LOG" 2>&1 &
SERVER=$!
PIDS=("$SERVER" "${PIDS[@]}")  # the services stop before Milvus
for _ in $(seq 1 120); do
  if .venv/bin/python -m services.healthcheck --port "$PORT" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER" 2>/dev/null || grep -q '"loading failed' "$LOG"; then
    echo "the services did not start; their log ($LOG):" >&2; tail -20 "$LOG" >&2; exit 1
  fi
  sleep 1
done
.venv/bin/python -m services.healthcheck --port "$PORT" >/dev/null || { echo "services not SERVING after 120 s" >&2; exit 1; }

echo "== 5/5 recommendations for three dev users"
# users with a non-empty history in the later (dev) period; their 10 most recent clicks
awk -F'\t' '$4 != "" {print $2 "\t" $4; if (++n == 3) exit}' "$OUT/data/dev/behaviors.tsv" |
while IFS=$'\t' read -r user history; do
  recent=$(echo "$history" | tr ' ' '\n' | tail -10 | paste -sd, -)
  "$NEWSREC" recommend --user "$user" --history "$recent" --k 5 --target "127.0.0.1:$PORT"
done
echo "metrics: curl -s http://127.0.0.1:$METRICS_PORT/metrics (while serving)"

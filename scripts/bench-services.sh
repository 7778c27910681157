#!/usr/bin/env bash
# /v1/search under load, embedded vs four processes (+ Redis), and the cost of one service hop.
# Usage: scripts/bench-services.sh [SHARED_DATA_DIR] [RESULTS_DIR]   (about 15 minutes)
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-services}
DURATION=${DURATION:-30}
SMVS="$SHARED/smvs-dvd/images"
# Measure the engine, not the per-address limiter (every client here is 127.0.0.1).
export IMSEARCH_RATE_LIMIT_PER_MIN=0
OUT="$RESULTS/bench-load.json"
rm -rf "$WORK" "$OUT"; mkdir -p "$WORK/db" "$WORK/queries" "$RESULTS"
# The database (covers and wallpapers) and 40 query photos.
cp "$SMVS"/ref_*.jpg "$SMVS"/wall_*.jpg "$WORK/db/"
ls "$SMVS"/canon_0[0-3]*.jpg | head -40 | xargs -I{} cp {} "$WORK/queries/"
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_ready() { for _ in $(seq 300); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 1; done; echo "$1 not ready" >&2; return 1; }

# --- embedded: one process ------------------------------------------------------------------
"$BIN/imsearch" index "$WORK/db" --data-dir "$WORK/embedded" --no-progress
IMSEARCH_DATA_DIR="$WORK/embedded" "$BIN/imsearch" serve --port 8301 > "$WORK/embedded.log" 2>&1 &
pids+=($!); wait_ready http://127.0.0.1:8301
"$BIN/imsearch" bench load --url http://127.0.0.1:8301 --images "$WORK/queries" --json "$OUT" \
  --mode embedded --duration "$DURATION"
cleanup; pids=()

# --- services: Redis + extractor + search + rerank + gateway ---------------------------------
redis-server --port 8399 --save "" --appendonly no > "$WORK/redis.log" 2>&1 & pids+=($!)
for role in extractor:8311 search:8312 rerank:8313; do
  name=${role%%:*}; port=${role##*:}
  IMSEARCH_DATA_DIR="$WORK/$name" "$BIN/imsearch" serve --role "$name" --port "$port" \
    > "$WORK/$name.log" 2>&1 & pids+=($!)
done
for port in 8311 8312 8313; do wait_ready "http://127.0.0.1:$port"; done
IMSEARCH_EXTRACTOR_URL=http://127.0.0.1:8311 IMSEARCH_SEARCH_URL=http://127.0.0.1:8312 \
IMSEARCH_RERANK_URL=http://127.0.0.1:8313 IMSEARCH_REDIS_URL=redis://127.0.0.1:8399/0 \
  "$BIN/imsearch" serve --role gateway --port 8310 > "$WORK/gateway.log" 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8310
for f in "$WORK"/db/*.jpg; do
  curl -sf -o /dev/null -F "image=@$f" -F "id=$(basename "${f%.*}")" http://127.0.0.1:8310/v1/images
done
# The services learn whitening and visual words in their minute-by-minute upkeep (embedded
# `index` did it at the end of its run): let that happen before measuring.
sleep 70
"$BIN/imsearch" bench load --url http://127.0.0.1:8310 --images "$WORK/queries" --json "$OUT" \
  --mode services --duration "$DURATION"
"$BIN/python" -m services.bench_hop http://127.0.0.1:8312 "$WORK/search" > "$RESULTS/bench-hop.json"
cat "$RESULTS/bench-hop.json"

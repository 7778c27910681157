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
source "$(dirname "$0")/services-lib.sh"
trap cleanup EXIT

# --- embedded: one process ------------------------------------------------------------------
"$BIN/imsearch" index "$WORK/db" --data-dir "$WORK/embedded" --no-progress
IMSEARCH_DATA_DIR="$WORK/embedded" "$BIN/imsearch" serve --port 8301 > "$WORK/embedded.log" 2>&1 &
pids+=($!); wait_ready http://127.0.0.1:8301
"$BIN/imsearch" bench load --url http://127.0.0.1:8301 --images "$WORK/queries" --json "$OUT" \
  --mode embedded --duration "$DURATION"
cleanup; pids=()

# --- services: Redis + extractor + search + rerank + gateway ---------------------------------
start_services 8310 "$WORK"
add_folder http://127.0.0.1:8310 "$WORK/db"
# The services learn whitening and visual words in their minute-by-minute upkeep (embedded
# `index` did it at the end of its run): let that happen before measuring.
sleep 70
"$BIN/imsearch" bench load --url http://127.0.0.1:8310 --images "$WORK/queries" --json "$OUT" \
  --mode services --duration "$DURATION"
"$BIN/python" -m imsearch.bench.hop http://127.0.0.1:8312 "$WORK/search" > "$RESULTS/bench-hop.json"
cat "$RESULTS/bench-hop.json"

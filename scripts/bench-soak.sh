#!/usr/bin/env bash
# Soak: minutes of mixed searches, adds and deletes from many clients; latency, errors and
# memory over time, embedded and as four services (+ Redis).
# Usage: scripts/bench-soak.sh [SHARED_DATA_DIR] [RESULTS_DIR]
#   DURATION (s, default 300) and CLIENTS (default 16) per mode; MODES="embedded services".
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-soak}
DURATION=${DURATION:-300}
CLIENTS=${CLIENTS:-16}
MODES=${MODES:-embedded services}
SMVS="$SHARED/smvs-dvd/images"
KEY=soak-key-0123456789abcdef
# Writes need a key, as in production; the per-address limit is off (all clients are 127.0.0.1).
export IMSEARCH_API_KEYS="soak:$KEY" IMSEARCH_SOAK_API_KEY="$KEY" IMSEARCH_RATE_LIMIT_PER_MIN=0
rm -rf "$WORK"; mkdir -p "$WORK/db" "$WORK/photos" "$RESULTS"
cp "$SMVS"/ref_*.jpg "$SMVS"/wall_*.jpg "$WORK/db/"
ls "$SMVS"/canon_0[0-3]*.jpg | head -40 | xargs -I{} cp {} "$WORK/photos/"
pids=()
source "$(dirname "$0")/services-lib.sh"
trap cleanup EXIT
soak() {  # URL MODE PIDS...
  local url=$1 mode=$2; shift 2
  local args=(); for p in "$@"; do args+=(--pid "$p"); done
  "$BIN/imsearch" bench soak --url "$url" --images "$WORK/photos" \
    --json "$RESULTS/soak-$mode${SUFFIX:-}.json" \
    --clients "$CLIENTS" --duration "$DURATION" --mode "$mode" "${args[@]}"
}

if [[ " $MODES " == *" embedded "* ]]; then
  "$BIN/imsearch" index "$WORK/db" --data-dir "$WORK/embedded" --no-progress
  IMSEARCH_DATA_DIR="$WORK/embedded" "$BIN/imsearch" serve --port 8401 > "$WORK/embedded.log" 2>&1 &
  pids+=($!); wait_ready http://127.0.0.1:8401
  soak http://127.0.0.1:8401 embedded "${pids[@]}"
  cleanup; pids=()
fi

if [[ " $MODES " == *" services "* ]]; then
  start_services 8410 "$WORK"
  add_folder http://127.0.0.1:8410 "$WORK/db" "$KEY"
  sleep 70  # whitening and visual words are learned by the services' minute-by-minute upkeep
  soak http://127.0.0.1:8410 services "${pids[@]}"
fi

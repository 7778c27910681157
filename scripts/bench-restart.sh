#!/usr/bin/env bash
# What a rollout of a single-writer service costs: seconds from starting `imsearch serve --role
# search|rerank` on a collection to /readyz 200, and from SIGTERM to exit (the shutdown
# snapshot). Three runs each, on copies of an indexed data directory.
# Usage: scripts/bench-restart.sh DATA_DIR [RESULTS_DIR]
set -euo pipefail
DATA=${1:?an indexed data directory (imsearch index … --data-dir DATA)}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-restart}
RUNS=${RUNS:-3}
rm -rf "$WORK"; mkdir -p "$WORK" "$RESULTS"
now() { date +%s.%N; }
secs() { awk "BEGIN { printf \"%.3f\", $2 - $1 }"; }
rows=()
for role in search rerank; do
  cp -r "$DATA" "$WORK/$role"
  rm -f "$WORK/$role/writer.lock"
  for run in $(seq "$RUNS"); do
    port=$((8400 + run))
    start=$(now)
    IMSEARCH_DATA_DIR="$WORK/$role" "$BIN/imsearch" serve --role "$role" --port "$port" \
      > "$WORK/$role-$run.log" 2>&1 &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
      kill -0 "$pid" || { cat "$WORK/$role-$run.log"; exit 1; }; sleep 0.05
    done
    ready=$(now)
    count=$(curl -sf "http://127.0.0.1:$port/v1/stats" | "$BIN/python" -c \
      'import json,sys; print(json.load(sys.stdin)["count"])')
    term=$(now); kill -TERM "$pid"; wait "$pid" || true
    stopped=$(now)
    rows+=("{\"role\": \"$role\", \"run\": $run, \"count\": $count, \"ready_s\": $(secs "$start" "$ready"), \"stop_s\": $(secs "$term" "$stopped")}")
  done
done
(IFS=,; echo "[${rows[*]}]") | "$BIN/python" -m json.tool > "$RESULTS/bench-restart.json"
cat "$RESULTS/bench-restart.json"

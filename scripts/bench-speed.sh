#!/usr/bin/env bash
# Issue 14's comparison, back to back in one run: the default pipeline against
# scripts/reference.env (the first wave's), on SMVS alone and with the 4k distractors, then
# the per-stage breakdown of both. Every run indexes nothing it need not: the distractor
# collection is indexed once (the runtimes' descriptors are equal: same model id) and both
# settings search it.
# Usage: scripts/bench-speed.sh [SHARED_DATA] [RESULTS_DIR]
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-speed}
mkdir -p "$RESULTS" "$WORK"
reference() { env $(grep -v '^#' scripts/reference.env | xargs) "$@"; }
for name in reference default; do
  run=(); [ "$name" = reference ] && run=(reference)
  "${run[@]}" "$BIN/imsearch" eval "$SHARED/smvs-dvd" --no-progress \
    --json "$RESULTS/speed-smvs-$name.json"
done
for name in reference default; do
  run=(); [ "$name" = reference ] && run=(reference)
  "${run[@]}" "$BIN/imsearch" bench stages "$SHARED/smvs-dvd" --no-progress \
    --json "$RESULTS/stages-smvs-$name.json"
done
if [ -d "$SHARED/distractors-4k" ]; then
  for name in default reference; do  # the first run indexes (on the faster runtime)
    run=(); [ "$name" = reference ] && run=(reference)
    "${run[@]}" "$BIN/imsearch" eval "$SHARED/smvs-dvd" --no-progress \
      --distractors "$SHARED/distractors-4k" --data-dir "$WORK/distractors" \
      --json "$RESULTS/speed-smvs-4k-$name.json"
  done
  # eval ranks the whole database (k = N) for an exact mAP; the stages' end-to-end time is a
  # user's search (k = 10) over the same 4k collection.
  for name in default reference; do
    run=(); [ "$name" = reference ] && run=(reference)
    "${run[@]}" "$BIN/imsearch" bench stages "$SHARED/smvs-dvd" --no-progress --limit 150 \
      --distractors "$SHARED/distractors-4k" --data-dir "$WORK/distractors" \
      --json "$RESULTS/stages-smvs-4k-$name.json"
  done
fi
"$BIN/python" -m imsearch.bench.speed_table "$RESULTS"

#!/usr/bin/env bash
# Issue 18's measurements, back to back in one run: today's answer rule (the issue-14 default:
# 20 inliers, whole-photo shortlists only) against the default (calibrated confidence, strips
# of the photo), on both development sets, per query set; absent covers on SMVS; both sets
# with the 4k distractors; then the calibration of the match model and the no-match plot.
# Each collection is indexed once into $WORK and reused by every run (same model id).
# Usage: scripts/bench-quality.sh [SHARED_DATA] [RESULTS_DIR]
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-quality}
mkdir -p "$RESULTS" "$WORK"
# The issue-14 default: a fixed 20 inliers decide, and only the whole photo is shortlisted.
today() { env IMSEARCH_WEIGHTS=imagenet IMSEARCH_RERANK_MIN_INLIERS=20 IMSEARCH_RERANK_MIN_CONFIDENCE=0 IMSEARCH_RERANK_REGIONS=0 "$@"; }
run() {  # run NAME ARGS…: under today's rule or the default
  local name=$1; shift
  if [ "$name" = today ]; then today "$BIN/imsearch" "$@"; else "$BIN/imsearch" "$@"; fi
}
for ds in smvs-dvd museum-dev; do
  for name in today default; do
    run "$name" eval "$SHARED/$ds" --no-progress --data-dir "$WORK/$ds" \
      --json "$RESULTS/quality-$ds-$name.json"
  done
done
# Covers 090-099 left out of the collection: their 30 photos have nothing to find.
for name in today default; do
  run "$name" eval "$SHARED/smvs-dvd" --no-progress --exclude-db 'ref_09*' \
    --data-dir "$WORK/smvs-dvd-absent" --json "$RESULTS/quality-smvs-dvd-absent-$name.json"
done
if [ -d "$SHARED/distractors-4k" ]; then
  for ds in smvs-dvd museum-dev; do
    for name in default today; do
      run "$name" eval "$SHARED/$ds" --no-progress --distractors "$SHARED/distractors-4k" \
        --data-dir "$WORK/$ds-4k" --json "$RESULTS/quality-$ds-4k-$name.json"
    done
  done
fi
"$BIN/imsearch" bench calibrate "$SHARED/smvs-dvd" "$SHARED/museum-dev" --no-progress \
  --data-dirs "$WORK/smvs-dvd,$WORK/museum-dev" --max-false-no-match 0.01,0.02 \
  --records "$WORK/calibrate-records.json" --json "$RESULTS/calibrate-match-model.json"
"$BIN/python" -m imsearch.bench.quality_table "$RESULTS"

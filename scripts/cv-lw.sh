#!/usr/bin/env bash
# Choosing Lw's shrinkage without looking at the test covers: learn on covers 001-035, measure
# on 036-050 (both inside the training split of scripts/bench-train.sh).
# Usage: scripts/cv-lw.sh [SHARED_DATA_DIR] [RESULTS_DIR]
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/cv-lw}
SMVS="$SHARED/smvs-dvd"
export IMSEARCH_LOCAL_FEATURES=0 IMSEARCH_RERANK=none
GEM=(--pooling gem --regions 0)
for alpha in ${ALPHAS:-0 0.1 1}; do
  out="$RESULTS/cv-lw-alpha$alpha.json"
  [[ -f "$out" && -z "${FORCE:-}" ]] && { echo "kept $out"; continue; }
  rm -rf "$WORK/a$alpha"
  "$BIN/imsearch" "${GEM[@]}" whiten --data-dir "$WORK/a$alpha" --pairs "$SMVS" --shrinkage "$alpha" \
    --only-queries '*_00?' --only-queries '*_0[1-2]?' --only-queries '*_03[0-5]' --no-progress
  "$BIN/imsearch" "${GEM[@]}" eval "$SMVS" --data-dir "$WORK/a$alpha" --rerank none --no-progress \
    --only-queries '*_03[6-9]' --only-queries '*_04?' --only-queries '*_050' \
    --only-db 'ref_03[6-9]' --only-db 'ref_04?' --only-db 'ref_050' --only-db 'wall_*' --json "$out"
done

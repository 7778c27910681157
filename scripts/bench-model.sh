#!/usr/bin/env bash
# Issues 26 and 27, back to back on the four development sets: the ImageNet network with
# OpenCV's SIFT (today) against the shipped retrieval model with contrast-adaptive SIFT (the
# default); first stage alone and the full pipeline; then the adaptation to museum-dev's own
# database images (no query, no label) and the cross-domain check of the no-match threshold.
# Usage: scripts/bench-model.sh [SHARED_DATA_DIR] [RESULTS_DIR]      (make bench-model; ~3 h)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-model}
SETS=${SETS:-smvs-dvd museum-dev smvs-landmarks-dev smvs-paintings-dev}
mkdir -p "$RESULTS" "$WORK"
today=(env IMSEARCH_WEIGHTS=imagenet IMSEARCH_LOCAL_CONTRAST=0.04 IMSEARCH_LOCAL_CLAHE=0)
eval_one() {  # eval_one NAME SET [eval options…]: one report, kept if already there
  local name=$1 ds=$2; shift 2
  local out="$RESULTS/model-$ds-$name.json"
  if [[ -f "$out" && -z "${FORCE:-}" ]]; then echo "kept $out"; return; fi
  "$@" --json "$out" --no-progress
}
for ds in $SETS; do
  # first stage alone: no local features needed
  eval_one today-global "$ds" env IMSEARCH_LOCAL_FEATURES=0 "${today[@]}" "$BIN/imsearch" \
    eval "$SHARED/$ds" --rerank none --data-dir "$WORK/today-global-$ds"
  eval_one default-global "$ds" env IMSEARCH_LOCAL_FEATURES=0 "$BIN/imsearch" \
    eval "$SHARED/$ds" --rerank none --data-dir "$WORK/default-global-$ds"
  eval_one today "$ds" "${today[@]}" "$BIN/imsearch" eval "$SHARED/$ds" --data-dir "$WORK/today-$ds"
  eval_one default "$ds" "$BIN/imsearch" eval "$SHARED/$ds" --data-dir "$WORK/default-$ds"
done
# Adaptation to a collection without labels: museum-dev's database images only.
if [[ ! -f "$RESULTS/model-museum-dev-adapted-global.json" || -n "${FORCE:-}" ]]; then
  rm -rf "$WORK/adapt"
  "$BIN/imsearch" whiten --self-supervised --images "$SHARED/museum-dev" \
    --data-dir "$WORK/adapt" --no-progress
  env IMSEARCH_LOCAL_FEATURES=0 "$BIN/imsearch" eval "$SHARED/museum-dev" --rerank none \
    --data-dir "$WORK/adapt" --json "$RESULTS/model-museum-dev-adapted-global.json" --no-progress
fi
# ... and by fine-tuning the shipped model on them (self-supervised, resumable).
ADAPT_EPOCHS=${ADAPT_EPOCHS:-5}
if [[ ! -f "$RESULTS/model-museum-dev-finetuned-global.json" || -n "${FORCE:-}" ]]; then
  resume=(); [[ -f "$WORK/adapt-train/last.pt" ]] && resume=(--resume)
  "$BIN/imsearch" train --self-supervised "$SHARED/museum-dev" --out "$WORK/adapt-train" \
    --epochs "$ADAPT_EPOCHS" --tuples 200 --batch 5 --negatives 3 --pool 287 --freeze 4 \
    --loss triplet --sos 0.5 --no-progress "${resume[@]}"
  env IMSEARCH_LOCAL_FEATURES=0 "$BIN/imsearch" --weights "$WORK/adapt-train/epoch-$ADAPT_EPOCHS.pt" \
    eval "$SHARED/museum-dev" --rerank none --data-dir "$WORK/adapt-train-eval" \
    --json "$RESULTS/model-museum-dev-finetuned-global.json" --no-progress
fi
# The no-match threshold: fitted on each set, measured on the others (and the shipped fit).
dirs=$(for ds in $SETS; do printf '%s,' "$WORK/default-$ds"; done)
sets=$(for ds in $SETS; do printf '%s ' "$SHARED/$ds"; done)
# shellcheck disable=SC2086
"$BIN/imsearch" bench calibrate $sets --data-dirs "${dirs%,}" \
  --max-false-no-match 0.01,0.02,0.05,0.05 --records "$WORK/calibrate-records.json" \
  --json "$RESULTS/calibrate-cross-domain.json"
"$BIN/python" -m imsearch.bench.model_table "$RESULTS"

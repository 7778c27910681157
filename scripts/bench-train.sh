#!/usr/bin/env bash
# Fine-tuning on SMVS DVD covers, the honest way: train only on covers 001-050 (their
# references, their phone photos, and the wallpapers as negatives), measure only on covers
# 051-100 with every wallpaper in the database. Never touches 051-100 while training.
# Rows: ImageNet GeM (no whitening), + PCA whitening of the collection, + Lw learned from the
# training pairs, and the four recipes contrastive / triplet, each without and with SOS.
# Usage: scripts/bench-train.sh [SHARED_DATA_DIR] [RESULTS_DIR]   (about 20 minutes on 2 cores)
# The defaults are the smoke-scale run of docs/BENCHMARKS.md; raise EPOCHS and TUPLES (on a GPU).
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench-train}
EPOCHS=${EPOCHS:-1}
TUPLES=${TUPLES:-60}
SMVS="$SHARED/smvs-dvd"
# Global descriptors only: no RootSIFT, no visual vocabulary to learn.
export IMSEARCH_LOCAL_FEATURES=0 IMSEARCH_RERANK=none
mkdir -p "$RESULTS" "$WORK"
TRAIN=(--only-queries '*_00?' --only-queries '*_0[1-4]?' --only-queries '*_050'
       --only-db 'ref_00?' --only-db 'ref_0[1-4]?' --only-db 'ref_050' --only-db 'wall_*')
TEST=(--only-queries '*_05[1-9]' --only-queries '*_0[6-9]?' --only-queries '*_100'
      --only-db 'ref_05[1-9]' --only-db 'ref_0[6-9]?' --only-db 'ref_100' --only-db 'wall_*')
# the ImageNet network with GeM over the whole map: what these recipes started from
GEM=(--pooling gem --regions 0)
IMAGENET=(--weights imagenet)
evaluate() {  # evaluate NAME [global options...]
  local name=$1; shift
  local out="$RESULTS/train-smvs-$name.json"
  if [[ -f "$out" && -z "${FORCE:-}" ]]; then echo "kept $out"; return; fi
  rm -rf "$WORK/data-$name"
  "$BIN/imsearch" "${GEM[@]}" "$@" eval "$SMVS" "${TEST[@]}" --rerank none --no-progress \
    --data-dir "$WORK/data-$name" --json "$out"
}
evaluate imagenet "${IMAGENET[@]}" --whitening none
evaluate imagenet-pca "${IMAGENET[@]}" --whitening collection
# Lw: learned from the training pairs into a fresh collection, which eval then fills and keeps.
if [[ ! -f "$RESULTS/train-smvs-imagenet-lw.json" || -n "${FORCE:-}" ]]; then
  rm -rf "$WORK/data-imagenet-lw"
  "$BIN/imsearch" "${GEM[@]}" "${IMAGENET[@]}" whiten --data-dir "$WORK/data-imagenet-lw" --pairs "$SMVS" \
    --only-queries '*_00?' --only-queries '*_0[1-4]?' --only-queries '*_050' --no-progress
  "$BIN/imsearch" "${GEM[@]}" "${IMAGENET[@]}" eval "$SMVS" "${TEST[@]}" --rerank none --no-progress \
    --data-dir "$WORK/data-imagenet-lw" --json "$RESULTS/train-smvs-imagenet-lw.json"
fi
for recipe in contrastive:0 contrastive:0.5 triplet:0 triplet:0.5; do
  loss=${recipe%%:*}; sos=${recipe##*:}
  name="$loss-sos$sos"
  if [[ ! -f "$WORK/$name/epoch-$EPOCHS.pt" ]]; then
    "$BIN/imsearch" "${GEM[@]}" "${IMAGENET[@]}" train "$SMVS" "${TRAIN[@]}" --out "$WORK/$name" --loss "$loss" --sos "$sos" \
      --epochs "$EPOCHS" --tuples "$TUPLES" --no-progress | tee "$WORK/$name.log"
  fi
  evaluate "$name" --weights "$WORK/$name/epoch-$EPOCHS.pt" --whitening none
done

#!/usr/bin/env bash
# Re-ranking benchmark on SMVS DVD covers: every method, M sweep, exhaustive verification,
# rotated queries, absent objects and a collection grown with distractors. Results: docs/results/.
# Usage: scripts/bench-rerank.sh [SHARED_DATA_DIR] [RESULTS_DIR]   (about 1.5 h on 2 cores)
set -euo pipefail
SHARED=${1:-../shared/data}
RESULTS=${2:-docs/results}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-var/bench}
SMVS="$SHARED/smvs-dvd"
mkdir -p "$RESULTS" "$WORK"
# A result that is already there is kept (FORCE=1 reruns everything): the script resumes.
run() {
  local out="${*: -1}"
  if [[ -f "$out" && -z "${FORCE:-}" ]]; then echo "kept $out"; return; fi
  "$BIN/imsearch" eval "$SMVS" --no-progress "$@"
}

# One indexed collection serves every method (indexing is skipped on later runs).
run --data-dir "$WORK/smvs" --rerank none --json "$RESULTS/eval-smvs-none.json"
for method in qe dba diffusion qe+spatial; do
  run --data-dir "$WORK/smvs" --rerank "$method" --json "$RESULTS/eval-smvs-${method/+/-}.json"
done
for m in 10 20 50 100; do
  run --data-dir "$WORK/smvs" --rerank spatial --m "$m" --json "$RESULTS/eval-smvs-spatial-m$m.json"
done
# Upper bound: verify the whole database (205 images).
run --data-dir "$WORK/smvs" --rerank spatial --m 205 --json "$RESULTS/eval-smvs-spatial-exhaustive.json"
# How the verified candidates are chosen: the two first stages interleaved (default), fused by
# reciprocal rank, or one of them alone.
for fusion in rrf global visual; do
  run --data-dir "$WORK/smvs" --rerank spatial --fusion "$fusion" --json "$RESULTS/eval-smvs-spatial-m20-$fusion.json"
done
run --data-dir "$WORK/smvs" --rerank spatial --m 20 --early-exit 60 --json "$RESULTS/eval-smvs-spatial-m20-early60.json"
for angle in 90 180 270; do
  run --data-dir "$WORK/smvs" --rerank none --rotate "$angle" --json "$RESULTS/eval-smvs-none-rot$angle.json"
  run --data-dir "$WORK/smvs" --rerank spatial --rotate "$angle" --json "$RESULTS/eval-smvs-spatial-rot$angle.json"
done
# Absent objects: covers 090-099 left out of the database; their 30 photos must get "no match".
run --data-dir "$WORK/smvs-absent" --exclude-db 'ref_09*' --rerank spatial --json "$RESULTS/eval-smvs-spatial-absent.json"
# A larger collection: distractors added to the database, every EVERY-th of the 4,088 of
# distractors-4k (EVERY=4: 1,022 images, 6x the database; EVERY=1 for all, ~25 min more).
EVERY=${EVERY:-4}
SUBSET="$WORK/distractors-every$EVERY"
if [[ ! -d "$SUBSET" ]]; then
  mkdir -p "$SUBSET"
  find "$SHARED/distractors-4k/images" -type f | sort | awk -v n="$EVERY" 'NR % n == 1 || n == 1' \
    | while read -r f; do ln -s "$(realpath "$f")" "$SUBSET/"; done
fi
N=$(find "$SUBSET" -maxdepth 1 | tail -n +2 | wc -l)
run --data-dir "$WORK/smvs-d$N" --distractors "$SUBSET" --rerank none --json "$RESULTS/eval-smvs-d$N-none.json"
run --data-dir "$WORK/smvs-d$N" --distractors "$SUBSET" --rerank spatial --json "$RESULTS/eval-smvs-d$N-spatial-m20.json"

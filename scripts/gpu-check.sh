#!/usr/bin/env bash
# The CUDA paths, measured in one short run (issue 14): extractor on CUDA (fp32, AMP; TensorRT
# when there), SIFT + verification, exact search on the GPU, each against the CPU.
#
# Runs with the repository copied alone onto a GPU machine whose own Python has PyTorch,
# torchvision, timm, OpenCV and Pillow: the few packages it lacks travel as wheels in
# var/gpu-wheels (`make gpu-wheels`, about 20 MB) and are installed into a scratch folder,
# never into that Python. Anything still missing is skipped with the reason.
#
# Usage: scripts/gpu-check.sh [--cpu] [--quick] [--json FILE]
#   --cpu    the same checks on the CPU (how the test suite runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-var/gpu-wheels}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  site=$(mktemp -d)
  trap 'rm -rf "$site"' EXIT
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    "$WHEELS"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" -m imsearch.bench.gpu_check "$@"

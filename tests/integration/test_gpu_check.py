"""scripts/gpu-check.sh in its CPU mode, from a bare copy of the repository's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # minutes of CPU: make test-all
def test_gpu_check_runs_from_a_copy_of_the_repository_in_cpu_mode(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    for part in ("imsearch", "scripts", "tests/data/mini"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMSEARCH_")}
    env.update(PYTHON=sys.executable, GPU_WHEELS=str(tmp_path / "no-wheels"))
    out = tmp_path / "gpu-check.json"
    args = ["--cpu", "--quick", "--side", "384", "--json", str(out)]
    proc = subprocess.run(
        [str(copy / "scripts" / "gpu-check.sh"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu"
    rows = {(r["stage"], r["variant"]): r for r in report["rows"]}
    # The copy's own code ran: the script put its repository first on the path.
    assert "cnn" in proc.stdout and "skipped: no GPU" in proc.stdout
    fp32 = rows[("cnn", "fp32, batch 1")]
    assert fp32["ms"] > 0 and fp32["min_cosine_vs_cpu"] >= 0.999
    assert rows[("cnn", "fp32, batch 16")]["images_per_s"] > 0
    amp = rows[("cnn", "amp (bfloat16), batch 1")]
    assert 0.5 < amp["min_cosine_vs_cpu"] <= 1.0001  # reported, whatever it is
    assert rows[("cnn", "tensorrt (torch-tensorrt)")]["skipped"] == "no GPU"
    for matcher in ("matmul", "opencv"):
        assert rows[("matching", f"{matcher}, 20 candidates, CPU")]["ms"] > 0
    assert rows[("ransac", "MAGSAC++, 20 candidates, CPU")]["ms"] > 0
    assert rows[("search", "faiss Flat CPU, n=20000, 100 queries")]["ms"] > 0
    assert not any("GPU" in variant for _, variant in rows if "CPU" not in variant)

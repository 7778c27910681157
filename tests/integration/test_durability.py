"""SIGKILL a writer mid-batch: every acknowledged id survives and the index loads cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from imsearch.index.store import IndexStore
from imsearch.index.vectors import SearchKnobs
from tests.integration._writer import DIM, vector


@pytest.mark.parametrize("spec", ["exact", "hnsw", "ivf-flat"])
def test_acknowledged_writes_survive_sigkill(tmp_path, spec: str) -> None:
    data_dir = tmp_path / "store"
    acked: list[int] = []
    for round_ in range(2):  # kill twice: the second run starts from a recovered store
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration._writer", str(data_dir), spec, "400"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            _, lo, hi = line.split()
            acked.extend(range(int(lo), int(hi)))
            if len(acked) >= 800 * (round_ + 1):
                proc.send_signal(signal.SIGKILL)  # mid-batch: the next add is under way
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""

    store = IndexStore(data_dir, "crash-model", DIM, spec)
    assert len(store) >= len(acked)
    knobs = SearchKnobs(nprobe=64, ef_search=128)
    for i in acked[:: max(1, len(acked) // 200)] + acked[-40:]:
        top = store.search(vector(i), 1, knobs)[0][0]
        assert top.id == f"id{i}" and top.score == pytest.approx(1.0, abs=1e-4)
    count = len(store)
    store.snapshot()
    store.close()
    reopened = IndexStore(data_dir, "crash-model", DIM, spec)
    assert len(reopened) == count and reopened.pending_ops() == 0
    # The requested family is really in use (the IVF one was trained during the run).
    assert reopened.stats()["index"]["fallback"] is None

"""One writer per data directory: the lock, its holder, and what a second writer meets."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from imsearch.errors import DataDirLocked
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.index.writer_lock import acquire_writer, current_holder

HOLD = """
import sys, time
from imsearch.index.writer_lock import acquire_writer, set_process_command
set_process_command("imsearch serve")
lock = acquire_writer(sys.argv[1])
lock.advertise("http://127.0.0.1:9")
print("held", flush=True)
time.sleep(600)
"""


@contextmanager
def held_by_another_process(data_dir: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_second_writer_is_refused_naming_the_holder_and_readers_still_open(tmp_path) -> None:
    store = IndexStore(tmp_path, "model-a", 8)
    store.add([Item("a", vector(1)), Item("b", vector(2))])
    store.snapshot()
    store.close()
    with held_by_another_process(tmp_path) as proc:
        holder = current_holder(tmp_path)
        assert holder is not None and holder.pid == proc.pid
        assert holder.command == "imsearch serve" and holder.url == "http://127.0.0.1:9"
        with pytest.raises(DataDirLocked, match=rf"written by process {proc.pid} \(imsearch serve"):
            IndexStore(tmp_path, "model-a", 8)
        with pytest.raises(DataDirLocked, match=r"POST http://127\.0\.0\.1:9/v1/images"):
            acquire_writer(tmp_path)
        reader = IndexStore(tmp_path, readonly=True)  # replicas, stats, query
        assert len(reader) == 2 and reader.search(vector(2), 1)[0][0].id == "b"
        reader.close()


def test_sigkill_of_the_holder_frees_the_directory_at_once(tmp_path) -> None:
    with held_by_another_process(tmp_path) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert current_holder(tmp_path) is None  # the file remains; the lock does not
        store = IndexStore(tmp_path, "model-a", 8)
        store.add([Item("a", vector(1))])
        store.close()


def test_one_process_shares_its_claim_until_the_last_release(tmp_path) -> None:
    first = acquire_writer(tmp_path)
    store = IndexStore(tmp_path, "model-a", 8)  # the serve command's claim, then the store's
    first.release()
    holder = current_holder(tmp_path)
    assert holder is not None and holder.pid == __import__("os").getpid()
    store.close()
    assert current_holder(tmp_path) is None
    first.release()  # a second release of one claim changes nothing
    assert current_holder(tmp_path) is None


def test_a_store_that_fails_to_open_releases_its_claim(tmp_path) -> None:
    IndexStore(tmp_path, "model-a", 8).close()
    with pytest.raises(Exception, match="model-a"):
        IndexStore(tmp_path, "model-b", 8)
    assert current_holder(tmp_path) is None

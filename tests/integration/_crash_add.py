"""Helper process for the crash test: one add into an existing store, SIGKILLed at one step.

Usage: python -m tests.integration._crash_add DATA_DIR STEP
STEP: features-unsynced (written, not fsynced) · features-synced (before the catalog commits)
· committed (before the index applies it) · applied (after everything).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from imsearch.index import features as features_module
from imsearch.index.catalog import Catalog, Item
from imsearch.index.store import IndexStore
from imsearch.rerank.visual_words import VisualWords
from tests.unit.test_feature_store import DIM, image_features, vector


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def after(owner: Any, name: str, when: str) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if when == "before":
            die()
        result = original(*args, **kwargs)
        die()
        return result

    setattr(owner, name, wrapped)


def main() -> None:
    data_dir, step = sys.argv[1], sys.argv[2]
    store = IndexStore(data_dir, "crash-model", DIM)
    VisualWords(store)
    if step == "features-unsynced":
        features_module.os.fsync = lambda fd: die()  # type: ignore[assignment]
    elif step == "features-synced":
        after(Catalog, "upsert", "before")
    elif step == "committed":
        after(IndexStore, "_catch_up", "before")
    elif step == "applied":
        after(IndexStore, "_catch_up", "after")
    store.add([Item("victim", vector(99), "hv", {"k": 1}, image_features("ref_002"), b"jpg")])
    print("returned", flush=True)  # never reached: every step dies


if __name__ == "__main__":
    main()

"""The collection's local features: a visual-word shortlist and geometric verification.

Local features live in the catalog (written in the same transaction as the descriptor, so they
are exactly as durable). This object keeps what is derived from them: the visual vocabulary
(learned once from the collection, ``vocabulary.npy``), the tf-idf index, and a small cache of
parsed features. It follows the catalog's add/delete log through
:meth:`~imsearch.index.store.IndexStore.subscribe`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.errors import ConfigError
from imsearch.features.local import LocalFeatures
from imsearch.fsutil import replace_atomic
from imsearch.index.catalog import Catalog
from imsearch.rerank.bow import BowIndex, Quantizer, learn_vocabulary
from imsearch.rerank.spatial import Verification, VerifyParams, verify

log = logging.getLogger(__name__)

VOCABULARY_FILE = "vocabulary.npy"
#: Descriptors sampled from the collection to learn the vocabulary.
MAX_VOCABULARY_SAMPLE = 500_000


class LocalIndex:
    """Shortlist by visual words and verify by homography, over the catalog's local features."""

    def __init__(self, catalog: Catalog, data_dir: str | Path, cache_size: int = 4096) -> None:
        self.catalog = catalog
        self.data_dir = Path(data_dir)
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, LocalFeatures] = OrderedDict()
        self._cache_size = cache_size
        self.quantizer: Quantizer | None = None
        self.bow: BowIndex | None = None
        path = self.data_dir / VOCABULARY_FILE
        if path.exists():
            self._use_vocabulary(np.load(path))

    # -- vocabulary ----------------------------------------------------------------------------

    def learn_vocabulary(self, words: int = 16384, min_images: int = 50, seed: int = 0) -> int:
        """Learn the visual vocabulary from the collection's own descriptors; returns its size."""
        ids = self.catalog.int_ids()
        stored = self.catalog.local_features(ids.tolist())
        if len(stored) < min_images:
            raise ConfigError(
                f"a visual vocabulary needs local features of at least {min_images} images; "
                f"the collection has {len(stored)}"
            )
        descriptors = np.concatenate(
            [LocalFeatures.from_bytes(b).rootsift() for b in stored.values()]
        )
        rng = np.random.default_rng(seed)
        if len(descriptors) > MAX_VOCABULARY_SAMPLE:
            descriptors = descriptors[rng.choice(len(descriptors), MAX_VOCABULARY_SAMPLE, False)]
        vocabulary = learn_vocabulary(descriptors, words, seed)
        replace_atomic(self.data_dir / VOCABULARY_FILE, lambda tmp: _save_npy(tmp, vocabulary))
        self._use_vocabulary(vocabulary)
        return int(vocabulary.shape[0])

    def _use_vocabulary(self, vocabulary: np.ndarray) -> None:
        quantizer = Quantizer(vocabulary.astype(np.float32))
        bow = BowIndex(quantizer.size)
        ids = self.catalog.int_ids().tolist()
        for start in range(0, len(ids), 1000):
            for int_id, data in self.catalog.local_features(ids[start : start + 1000]).items():
                bow.add(int_id, quantizer.assign(LocalFeatures.from_bytes(data).rootsift()))
        with self._lock:
            self.quantizer, self.bow = quantizer, bow

    # -- following the log ---------------------------------------------------------------------

    def apply(self, added: Sequence[int], removed: Sequence[int]) -> None:
        """Mirror the catalog's adds and deletes (called by the store as it replays its log)."""
        with self._lock:
            for int_id in removed:
                self._cache.pop(int(int_id), None)
            if self.bow is None or self.quantizer is None:
                return
            self.bow.remove(removed)
            for int_id, data in self.catalog.local_features(list(added)).items():
                self.bow.add(
                    int_id, self.quantizer.assign(LocalFeatures.from_bytes(data).rootsift())
                )

    # -- queries -------------------------------------------------------------------------------

    def shortlist(self, query: LocalFeatures, n: int) -> list[tuple[int, float]]:
        """Top-``n`` ``(int_id, tf-idf cosine)`` by visual words; empty without a vocabulary."""
        if self.bow is None or self.quantizer is None or len(query) == 0:
            return []
        return self.bow.search(self.quantizer.assign(query.rootsift()), n)

    def features(self, int_ids: Sequence[int]) -> dict[int, LocalFeatures]:
        out: dict[int, LocalFeatures] = {}
        missing = []
        with self._lock:
            for int_id in int_ids:
                cached = self._cache.get(int(int_id))
                if cached is None:
                    missing.append(int(int_id))
                else:
                    self._cache.move_to_end(int(int_id))
                    out[int(int_id)] = cached
        for int_id, data in self.catalog.local_features(missing).items():
            out[int_id] = LocalFeatures.from_bytes(data)
        with self._lock:
            for int_id in missing:
                if int_id in out:
                    self._cache[int_id] = out[int_id]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def verify(
        self,
        query: LocalFeatures,
        int_ids: Sequence[int],
        params: VerifyParams,
        pool: ThreadPoolExecutor | None = None,
        early_exit_inliers: int | None = None,
    ) -> dict[int, Verification]:
        """Verify candidates in order, in waves of the pool's size.

        With ``early_exit_inliers``, stop after the wave in which a candidate reached it: a
        clear winner is verified and the rest keep their first-stage order.
        """
        features = self.features(int_ids)
        rootsift = query.rootsift()
        todo = [i for i in int_ids if i in features]
        results: dict[int, Verification] = {}
        wave = max(1, pool._max_workers if pool else 1)
        for start in range(0, len(todo), wave):
            batch = todo[start : start + wave]
            runs = (
                pool.map(lambda i: verify(query, features[i], params, rootsift), batch)
                if pool
                else (verify(query, features[i], params, rootsift) for i in batch)
            )
            results.update(zip(batch, runs, strict=True))
            if (
                early_exit_inliers
                and max(r.inliers for r in results.values()) >= early_exit_inliers
            ):
                break
        return results

    def stats(self) -> dict[str, Any]:
        return {
            "images_with_local_features": self.catalog.local_count(),
            "vocabulary": self.quantizer.size if self.quantizer else None,
        }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)

"""Geometric verification of candidates whose local features are read from the feature store.

This is all a rerank worker holds: readers of the collections' feature stores (paths or
fsspec URLs, one per collection) and a bounded cache of parsed features. The search service
hands out each candidate with the reference of its features, so a worker needs no copy of the
collection and any number of them can run side by side.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from imsearch.errors import ConfigError, LocalFeatureError
from imsearch.features.local import LocalFeatures
from imsearch.index.features import FeatureReader, FeatureRef
from imsearch.rerank.spatial import MATCHERS, Verification, VerifyParams, verify

log = logging.getLogger(__name__)


#: Gives the feature reader of a collection by name and generation.
Readers = Callable[[str, str], FeatureReader]


class Verifier:
    """Verifies a query against candidates by reference, in parallel waves. ``readers``: one
    feature reader for every collection, or a function giving each collection's."""

    def __init__(
        self,
        readers: FeatureReader | Readers,
        workers: int = 2,
        cache_size: int = 2048,
        matcher: str = "matmul",
    ) -> None:
        if matcher not in MATCHERS:
            raise ConfigError(f"unknown matcher {matcher!r}; choose one of {', '.join(MATCHERS)}")
        self.readers: Readers = (
            (lambda _name, _generation: readers) if isinstance(readers, FeatureReader) else readers
        )
        self._closers: list[Any] = [readers]
        self.matcher = matcher
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify")
        # Keyed by collection, its generation and the reference: references repeat across
        # collections, and across a name dropped and created again.
        self._cache: OrderedDict[tuple[str, str, FeatureRef], LocalFeatures] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        for readers in self._closers:
            readers.close()

    def features(
        self, refs: Sequence[FeatureRef], collection: str = "default", generation: str = ""
    ) -> list[LocalFeatures | None]:
        """Parsed features of ``refs`` (a reference names immutable bytes: safe to cache);
        None for one that cannot be read — that candidate is then simply not verified."""
        keys = [(collection, generation, ref) for ref in refs]
        found: dict[tuple[str, str, FeatureRef], LocalFeatures | None] = {}
        with self._lock:
            for key in keys:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[key] = self._cache[key]
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        reader = self.readers(collection, generation) if missing else None
        for key in missing:
            assert reader is not None
            try:
                found[key] = LocalFeatures.from_bytes(reader.read([key[2]])[0])
            except (LocalFeatureError, OSError) as exc:
                log.warning("candidate not verified: %s", exc)
                found[key] = None
        with self._lock:
            for key in missing:
                parsed = found[key]
                if parsed is not None:
                    self._cache[key] = parsed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return [found[k] for k in keys]

    def verify(
        self,
        query: LocalFeatures,
        refs: Sequence[FeatureRef],
        params: VerifyParams,
        early_exit_inliers: int | None = None,
        collection: str = "default",
        generation: str = "",
    ) -> list[Verification | None]:
        """One verification per reference, in order; with ``early_exit_inliers``, the waves
        after the one in which a candidate reached it are not verified (None)."""
        rootsift = query.rootsift()
        params = replace(params, matcher=self.matcher)
        found = self.features(refs, collection, generation)
        readable = {i: f for i, f in enumerate(found) if f is not None}
        results: list[Verification | None] = [None] * len(refs)
        wave = max(1, self._pool._max_workers)
        order = list(readable)
        for start in range(0, len(order), wave):
            batch = order[start : start + wave]
            runs = self._pool.map(lambda i: verify(query, readable[i], params, rootsift), batch)
            for i, result in zip(batch, runs, strict=True):
                results[i] = result
            best = max((r.inliers for r in results if r is not None), default=0)
            if early_exit_inliers and best >= early_exit_inliers:
                break
        return results

"""Geometric verification of candidates whose local features are read from the feature store.

This is all a rerank worker holds: a reader of the feature store (a path or an fsspec URL)
and a bounded cache of parsed features. The search service hands out each candidate with
the reference of its features, so a worker needs no copy of the collection and any number of
them can run side by side.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from imsearch.errors import ConfigError, LocalFeatureError
from imsearch.features.local import LocalFeatures
from imsearch.index.features import FeatureReader, FeatureRef
from imsearch.rerank.spatial import MATCHERS, Verification, VerifyParams, verify

log = logging.getLogger(__name__)


class Verifier:
    """Verifies a query against candidates by reference, in parallel waves."""

    def __init__(
        self,
        reader: FeatureReader,
        workers: int = 2,
        cache_size: int = 2048,
        matcher: str = "matmul",
    ) -> None:
        if matcher not in MATCHERS:
            raise ConfigError(f"unknown matcher {matcher!r}; choose one of {', '.join(MATCHERS)}")
        self.reader = reader
        self.matcher = matcher
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify")
        self._cache: OrderedDict[FeatureRef, LocalFeatures] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.reader.close()

    def features(self, refs: Sequence[FeatureRef]) -> list[LocalFeatures | None]:
        """Parsed features of ``refs`` (a reference names immutable bytes: safe to cache);
        None for one that cannot be read — that candidate is then simply not verified."""
        found: dict[FeatureRef, LocalFeatures | None] = {}
        with self._lock:
            for ref in refs:
                if ref in self._cache:
                    self._cache.move_to_end(ref)
                    found[ref] = self._cache[ref]
        missing = [r for r in dict.fromkeys(refs) if r not in found]
        for ref in missing:
            try:
                found[ref] = LocalFeatures.from_bytes(self.reader.read([ref])[0])
            except (LocalFeatureError, OSError) as exc:
                log.warning("candidate not verified: %s", exc)
                found[ref] = None
        with self._lock:
            for ref in missing:
                parsed = found[ref]
                if parsed is not None:
                    self._cache[ref] = parsed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return [found[r] for r in refs]

    def verify(
        self,
        query: LocalFeatures,
        refs: Sequence[FeatureRef],
        params: VerifyParams,
        early_exit_inliers: int | None = None,
    ) -> list[Verification | None]:
        """One verification per reference, in order; with ``early_exit_inliers``, the waves
        after the one in which a candidate reached it are not verified (None)."""
        rootsift = query.rootsift()
        params = replace(params, matcher=self.matcher)
        readable = {i: f for i, f in enumerate(self.features(refs)) if f is not None}
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

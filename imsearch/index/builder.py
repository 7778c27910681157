"""Building a FAISS index of the requested family from the catalog's descriptors.

Families that need training are trained on a random sample of the collection (capped so
training stays minutes, not hours, at a million images). A collection too small to train the
family gets exact search instead; the reason is logged and kept in :class:`BuildInfo`, which the
store reports in its stats and re-checks as the collection grows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imsearch.index.catalog import Catalog
from imsearch.index.specs import min_train_size, resolve
from imsearch.index.vectors import VectorIndex

log = logging.getLogger(__name__)

#: Training sample cap: 256 points per IVF list is plenty for k-means and PQ codebooks.
MAX_TRAIN_PER_LIST = 256
MAX_TRAIN = 200_000


@dataclass(frozen=True)
class BuildInfo:
    requested: str
    factory: str
    n: int
    trained_on: int = 0
    build_s: float = 0.0
    #: Why the requested family is not the one in use (None when it is).
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(spec: str, n: int, dim: int) -> tuple[str, int, str | None]:
    """``(factory, training size needed, fallback reason)`` for ``n`` vectors of ``dim``."""
    resolved = resolve(spec, n, dim)
    probe = VectorIndex(dim, resolved.factory)
    need = min_train_size(resolved, not probe.is_trained)
    if n < need:
        reason = (
            f"{resolved.factory} needs at least {need} vectors to train; the collection has "
            f"{n}: using exact search until it grows"
        )
        return "Flat", need, reason
    return resolved.factory, need, None


def build_index(
    catalog: Catalog,
    spec: str,
    dim: int,
    transform: Callable[[np.ndarray], np.ndarray],
    seed: int = 0,
) -> tuple[VectorIndex, BuildInfo]:
    """A fresh index of family ``spec`` holding every descriptor of ``catalog``."""
    started = time.perf_counter()
    n = catalog.count()
    factory, need, fallback = plan(spec, max(n, 0), dim)
    if fallback:
        log.warning(fallback)
    index = VectorIndex(dim, factory)
    trained_on = 0
    if not index.is_trained:
        resolved = resolve(spec, n, dim)
        cap = max(need, min(MAX_TRAIN, MAX_TRAIN_PER_LIST * (resolved.nlist or 256)))
        sample = transform(catalog.sample_vectors(min(n, cap), seed))
        index.train(sample)
        trained_on = len(sample)
    for ids, vecs in catalog.vectors():
        index.add(ids, transform(vecs))
    info = BuildInfo(spec, factory, n, trained_on, time.perf_counter() - started, fallback)
    log.info("built %s over %d vectors in %.1fs", factory, n, info.build_s)
    return index, info

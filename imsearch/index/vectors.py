"""FAISS vector indexes keyed by int64 ids, built from a factory string.

Ids are the catalog's int64 ids: IVF families store them in their inverted lists natively;
every other family is wrapped in an ``IndexIDMap2`` (wrapping IVF too would break, since IVF
removal does not renumber the positions the map relies on). Families
that cannot delete in place (HNSW graphs, refine wrappers) keep *tombstones*: deleted ids stay in
the structure but are filtered out during the search (a FAISS ID selector where the family
supports one, otherwise a larger top-k trimmed afterwards), so the caller still gets k live
results; the store rebuilds the index when tombstones pile up.

Search knobs (``nprobe``, ``ef_search``, ``k_factor``) are passed per call as FAISS search
parameters, nested the way the index is nested (OPQ → refine → IVF → HNSW quantizer).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from imsearch.errors import ConfigError, DimensionMismatch
from imsearch.fsutil import replace_atomic

log = logging.getLogger(__name__)

# FAISS's bundled stubs miss parts of its SWIG surface (SearchParametersHNSW, Python-side
# attributes); the few lines that touch those carry a targeted "type: ignore".


@dataclass(frozen=True)
class SearchKnobs:
    """Per-request speed/recall trade-offs; None keeps the index's own setting."""

    nprobe: int | None = None
    ef_search: int | None = None
    k_factor: float | None = None


class VectorIndex:
    """Inner-product search over L2-normalised descriptors (cosine similarity)."""

    def __init__(self, dim: int, factory: str = "Flat") -> None:
        try:
            base = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"invalid index spec {factory!r}: {exc}") from exc
        _bound_opq_training(base)
        native_ids = isinstance(_core(base), faiss.IndexIVF)
        self._setup(base if native_ids else faiss.IndexIDMap2(base), factory)

    def _setup(self, index: faiss.Index, factory: str) -> None:
        self.dim = int(index.d)
        self.factory = factory
        # index_factory / read_index return concrete, owning proxies: keep these very objects
        # (a downcast_index() copy of an owner does not own, and dangles once it is collected).
        # Sub-indexes reached through attributes are owned by their parent: downcasting those
        # is safe and needed, as SWIG hands them out as plain Index.
        self._index = index
        self._base: Any
        self._core: Any
        if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap):
            self._base = faiss.downcast_index(index.index)
        else:
            self._base = self._index
        # What decides deletion and filtering is the index under any rotation (OPQ, PCA).
        self._core = _core(self._base)
        self._filters = _accepts_selector(self._core)
        self.tombstones: set[int] = set()
        self._gpu: Any = None
        # Built once per knob setting (and tombstone set): a search at batch 1 takes tens of
        # microseconds, so rebuilding SWIG parameter objects per call would dominate it.
        self._params: dict[SearchKnobs, Any] = {}
        self._selector: Any = None
        #: The file a memory-mapped index reads from (None: the index is in memory).
        self._mapped_from: Path | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Vectors stored, tombstoned ones included."""
        return int(self._index.ntotal)

    @property
    def live(self) -> int:
        return self.ntotal - len(self.tombstones)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def exact(self) -> bool:
        """Searches compare the query with every stored vector, uncompressed."""
        return isinstance(self._core, faiss.IndexFlat)

    @property
    def removes_in_place(self) -> bool:
        return not isinstance(self._core, faiss.IndexHNSW | faiss.IndexRefine)

    def ids(self) -> np.ndarray:
        """Every id stored (tombstoned ones included)."""
        if isinstance(self._index, faiss.IndexIDMap2 | faiss.IndexIDMap):
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._core.invlists
        chunks = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(lists.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(chunks).astype(np.int64) if chunks else np.zeros(0, np.int64)

    # -- writes -------------------------------------------------------------------------------

    def train(self, sample: np.ndarray) -> None:
        self._index.train(self._check(sample))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids):
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
            self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (or tombstone them where the family cannot remove)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0
        self._gpu = None
        if self.removes_in_place:
            return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        before = len(self.tombstones)
        self.tombstones.update(int(i) for i in ids)
        self._params, self._selector = {}, None
        return len(self.tombstones) - before

    # -- search -------------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        knobs: SearchKnobs | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)``, each ``(n, k)``; missing slots have id -1.

        ``allowed`` (sorted live ids, a filter's matches) restricts the search to those ids
        inside FAISS: see :meth:`_search_allowed`.
        """
        queries = self._check(queries)
        if allowed is not None:
            return self._search_allowed(queries, k, knobs or SearchKnobs(), allowed)
        k = max(1, min(k, max(self.live, 1)))
        knobs = knobs or SearchKnobs()
        params = self._params.get(knobs)
        if params is None:
            params = self._params[knobs] = search_params(
                self._base, knobs, self._tombstone_selector()
            )
        # Refine and PQ cannot filter inside the search: ask for more, then drop tombstones.
        extra = len(self.tombstones) if self.tombstones and not self._filters else 0
        index = self._searchable()
        scores, ids = index.search(queries, k + extra, params=params)
        if extra:
            scores, ids = _drop(scores, ids, self.tombstones, k)
        return scores, ids

    def _search_allowed(
        self, queries: np.ndarray, k: int, knobs: SearchKnobs, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search only ``allowed`` ids. Families that take an ID selector filter inside the
        search, with their breadth (IVF probes, HNSW candidates) widened by 1 / selectivity
        so that about as many matching vectors are looked at as an unfiltered search sees;
        the others (PQ, refine) are asked for ``k`` / selectivity results, then trimmed."""
        k = max(1, min(k, len(allowed)))
        if len(allowed) == 0:
            return np.full((len(queries), 1), -np.inf, np.float32), np.full(
                (len(queries), 1), -1, np.int64
            )
        share = min(1.0, len(allowed) / max(self.live, 1))
        if self._filters:
            selector = _bitmap_selector(allowed)
            params = search_params(self._base, _widened(self._base, knobs, share), selector)
            return self._searchable().search(queries, k, params=params)
        wanted = min(self.ntotal, int(np.ceil(2 * k / share)) + len(self.tombstones))
        params = self._params.get(knobs)
        if params is None:
            params = self._params[knobs] = search_params(self._base, knobs, None)
        scores, ids = self._searchable().search(queries, wanted, params=params)
        keep = np.isin(ids, allowed)
        return _kept(scores, ids, keep, k)

    def _tombstone_selector(self) -> Any:
        if not self.tombstones or not self._filters:
            return None
        if self._selector is None:
            batch = faiss.IDSelectorBatch(np.fromiter(self.tombstones, dtype=np.int64))
            selector = faiss.IDSelectorNot(batch)
            # Keep the inner selector alive as long as the outer one (FAISS holds a raw pointer).
            selector.referenced = batch  # type: ignore[attr-defined]
            self._selector = selector
        return self._selector

    def _searchable(self) -> faiss.Index:
        """A GPU copy for searching when FAISS has GPUs and the family can move there."""
        if not _gpus_available():
            return self._index
        if self._gpu is None:
            try:
                self._gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, self._index)
            except RuntimeError:
                self._gpu = self._index  # HNSW and friends stay on the CPU
        return self._gpu

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise DimensionMismatch(
                f"expected vectors of dimension {self.dim}, got shape {vectors.shape}"
            )
        return vectors

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write atomically: a temporary file, fsync, then rename over ``path``."""
        replace_atomic(path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    @classmethod
    def load(cls, path: str | Path, factory: str, mmap: bool = False) -> VectorIndex:
        """Read a saved index; ``mmap`` maps it read-only (replicas) where FAISS can."""
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError:
            if not mmap:
                raise
            log.info("FAISS cannot memory-map %s; reading it into memory", factory)
            index = faiss.read_index(str(path))
            mmap = False
        obj = cls.__new__(cls)
        obj._setup(index, factory)
        obj._mapped_from = Path(path) if mmap else None
        return obj

    def in_memory(self) -> VectorIndex:
        """This index, or a copy read into memory if it is mapped read-only (to change it)."""
        if self._mapped_from is None:
            return self
        return VectorIndex.load(self._mapped_from, self.factory)


@functools.cache
def _gpus_available() -> bool:
    return hasattr(faiss, "index_cpu_to_gpu") and faiss.get_num_gpus() > 0


#: OPQ rotation iterations. FAISS's default of 50 takes over an hour on 2 cores at 320-d;
#: the rotation's gain is mostly there after a few iterations.
OPQ_ITERATIONS = 8


def _bound_opq_training(index: faiss.Index) -> None:
    if not isinstance(index, faiss.IndexPreTransform):
        return
    chain: Any = index.chain
    for i in range(chain.size()):
        transform = faiss.downcast_VectorTransform(chain.at(i))
        if isinstance(transform, faiss.OPQMatrix):
            transform.niter = OPQ_ITERATIONS


def _core(index: faiss.Index) -> faiss.Index:
    """The index under any pre-transform (OPQ rotation, PCA); owned by ``index``."""
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def _accepts_selector(base: faiss.Index) -> bool:
    """Families whose search filters ids through a selector (PQ and refine do not)."""
    return isinstance(
        base, faiss.IndexHNSW | faiss.IndexIVF | faiss.IndexFlat | faiss.IndexScalarQuantizer
    )


def search_params(base: faiss.Index, knobs: SearchKnobs, selector: Any = None) -> Any:
    """FAISS search parameters for ``base`` (an unwrapped index), nested like the index.

    Each parameter object keeps a Python reference to what it points to (``referenced*``),
    because FAISS holds only raw pointers.
    """
    params: Any
    if isinstance(base, faiss.IndexPreTransform):
        inner = faiss.downcast_index(base.index)
        params = faiss.SearchParametersPreTransform()
        params.index_params = search_params(inner, knobs, selector)
        params.referenced = params.index_params
        return params
    if isinstance(base, faiss.IndexRefine):
        inner = faiss.downcast_index(base.base_index)
        params = faiss.IndexRefineSearchParameters()
        params.k_factor = float(knobs.k_factor or base.k_factor)
        params.base_index_params = search_params(inner, knobs, None)
        params.referenced = params.base_index_params
        return params
    if isinstance(base, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = int(knobs.nprobe or base.nprobe)
        quantizer = faiss.downcast_index(base.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):
            params.quantizer_params = search_params(quantizer, knobs, None)
            params.referenced = params.quantizer_params
        if selector is not None:
            params.sel = selector
            params.referenced_sel = selector
        return params
    if isinstance(base, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = int(knobs.ef_search or base.hnsw.efSearch)
        if selector is not None:
            params.sel = selector
            params.referenced_sel = selector
        return params
    if selector is not None:
        params = faiss.SearchParameters()
        params.sel = selector
        params.referenced_sel = selector
        return params
    return None


def _bitmap_selector(allowed: np.ndarray) -> Any:
    """A selector of ``allowed`` ids: one bit per id up to the largest (ids are the
    catalog's dense row ids, so this stays small: 12.5 kB per 100,000)."""
    bits = np.zeros(int(allowed[-1]) + 1, dtype=bool)
    bits[allowed] = True
    packed = np.packbits(bits, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed))
    selector.referenced = packed  # type: ignore[attr-defined]  # FAISS keeps a raw pointer
    return selector


def _widened(base: faiss.Index, knobs: SearchKnobs, share: float) -> SearchKnobs:
    """Knobs that look at ~1/``share`` times more of the index (bounded by its size)."""
    core = _core(base)
    if isinstance(core, faiss.IndexIVF):
        nprobe = knobs.nprobe or core.nprobe
        return SearchKnobs(min(core.nlist, int(np.ceil(nprobe / share))), knobs.ef_search)
    if isinstance(core, faiss.IndexHNSW):
        ef = knobs.ef_search or core.hnsw.efSearch
        return SearchKnobs(knobs.nprobe, max(ef, min(int(core.ntotal), int(np.ceil(ef / share)))))
    return knobs


def _kept(
    scores: np.ndarray, ids: np.ndarray, keep: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    out_s = np.full((len(ids), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(ids), k), -1, dtype=np.int64)
    for row in range(len(ids)):
        cols = np.flatnonzero(keep[row] & (ids[row] >= 0))[:k]
        out_s[row, : len(cols)] = scores[row, cols]
        out_i[row, : len(cols)] = ids[row, cols]
    return out_s, out_i


def _drop(
    scores: np.ndarray, ids: np.ndarray, dead: set[int], k: int
) -> tuple[np.ndarray, np.ndarray]:
    out_s = np.full((len(ids), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(ids), k), -1, dtype=np.int64)
    for row, (s_row, i_row) in enumerate(zip(scores, ids, strict=True)):
        keep = [j for j, i in enumerate(i_row) if i >= 0 and int(i) not in dead][:k]
        out_s[row, : len(keep)] = s_row[keep]
        out_i[row, : len(keep)] = i_row[keep]
    return out_s, out_i

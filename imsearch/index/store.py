"""A collection on disk: the catalog (truth) plus a FAISS snapshot kept in step with it.

Layout of a data directory::

    catalog.sqlite         ids, hashes, metadata, descriptors, and the add/delete log
    whitening.npz          PCA whitening learned from this collection (optional)
    snapshot.json          {"file", "seq", "spec", "model_id", "whitening", "build"}, atomic
    vectors-<seq>.faiss    the FAISS index as of log entry <seq>

The catalog keeps the extractor's raw descriptors; whitening is a property of the collection
(learned from its own descriptors, like a quantizer is trained on them) and is applied to the
database vectors as they enter FAISS and to every query.

Opening a store loads the snapshot and replays the log entries after its ``seq``; every write
commits to the catalog first (durable, acknowledged), then applies the same log entries to the
in-memory index. A crash at any moment therefore loses nothing acknowledged, and a half-written
snapshot is never referenced by ``snapshot.json``. Tombstones of families that cannot delete
are not stored: they are the ids the snapshot holds that the catalog no longer has.

The catalog is the truth and the index is derived from it, so opening a store also
*reconciles* the two in both directions: ids the index holds that the catalog lost are removed,
and items the catalog has that the index lacks are added — whatever the log says. The same
happens whenever the log turns out to have been truncated past entries this process never
applied (only another writer can do that). A writable store holds the data directory's writer
lock (:mod:`imsearch.index.writer_lock`) from open to :meth:`IndexStore.close`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from imsearch.errors import ConfigError, DimensionMismatch, IndexNotReady, ModelMismatch
from imsearch.features.config import how_to_select
from imsearch.features.local import stored_form
from imsearch.features.whitening import PCAWhitening, learn_pca_whitening
from imsearch.fsutil import write_atomic
from imsearch.index.builder import BuildInfo, build_index, plan
from imsearch.index.catalog import Catalog, Item
from imsearch.index.features import FEATURES_DIR, FeatureReader, FeatureWriter
from imsearch.index.filters import Filter
from imsearch.index.vectors import SearchKnobs, VectorIndex
from imsearch.index.writer_lock import WriterLock, acquire_writer

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
SNAPSHOT_FILE = "snapshot.json"
WHITENING_FILE = "whitening.npz"
#: Rebuild (compact) a tombstoning index at snapshot time past this share of dead entries.
MAX_TOMBSTONE_SHARE = 0.10
#: A filter matching at most this many images is searched exactly over their stored
#: descriptors (milliseconds); above, inside the ANN index with an ID selector.
FILTER_EXACT_MAX = 4096
#: Filters whose matching ids are kept between two writes.
FILTER_CACHE_SIZE = 64


def _family(factory: str) -> str:
    """A factory string without its sizes (``IVF1024,PQ80`` → ``IVF,PQ``)."""
    return "".join(c for c in factory if not c.isdigit())


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


class LogListener(Protocol):
    """State derived from the catalog that follows its adds and deletes (e.g. local features)."""

    def apply(self, added: Sequence[int], removed: Sequence[int]) -> None: ...


class IndexStore:
    """Durable, searchable collection of global descriptors in ``data_dir``."""

    def __init__(
        self,
        data_dir: str | Path,
        model_id: str | None = None,
        dim: int | None = None,
        spec: str = "exact",
        readonly: bool = False,
        lock_dir: str | Path | None = None,
        local_encoding: str = "sift8",
    ) -> None:
        """``lock_dir``: whose writer lock a writable store holds (default ``data_dir``; a
        named collection holds its whole data directory's, see :mod:`imsearch.collection`).
        ``local_encoding``: how added local features are stored (``Settings.local_encoding``)."""
        self.data_dir = Path(data_dir)
        self.readonly = readonly
        self.local_encoding = local_encoding
        catalog_path = self.data_dir / CATALOG_FILE
        if readonly and not catalog_path.exists():
            raise IndexNotReady(f"no collection in {self.data_dir}: index some images first")
        # Before the catalog is touched: a second writer is refused before it writes anything.
        lock = self.data_dir if lock_dir is None else Path(lock_dir)
        self._writer: WriterLock | None = None if readonly else acquire_writer(lock)
        try:
            self._open(model_id, dim, spec)
        except BaseException:
            self._release_writer()
            raise

    def _open(self, model_id: str | None, dim: int | None, spec: str) -> None:
        self.catalog = Catalog(self.data_dir / CATALOG_FILE, readonly=self.readonly)
        features = self.data_dir / FEATURES_DIR
        self.features = FeatureReader(features)
        self._feature_writer = None if self.readonly else FeatureWriter(features)
        self.model_id, self.dim = self._check_identity(model_id, dim)
        self.spec = spec
        self._lock = threading.RLock()
        self._filter_lock = threading.Lock()
        self._matches: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._listeners: list[LogListener] = []
        self.whitening = self._load_whitening()
        self._index, self._seq, self.build = self._load_snapshot()
        # Catching up and reconciling read one state of the catalog: a replica opening while
        # the writer adds would otherwise "add back" items logged after its log position, and
        # apply their log entries again when it follows (duplicates in its index).
        with self._lock, self._consistent():
            repaired = self._catch_up()
            repaired = self._reconcile() or repaired
        if self.readonly:
            return
        self._move_legacy_features()
        if self._needs_rebuild():
            self._rebuild_now()
        elif repaired:
            self.snapshot(compact=False)

    # -- identity ---------------------------------------------------------------------------

    def _check_identity(self, model_id: str | None, dim: int | None) -> tuple[str, int]:
        stored_model = self.catalog.get_meta("model_id")
        stored_dim = self.catalog.get_meta("dim")
        if stored_model is None or stored_dim is None:
            if model_id is None or dim is None:
                raise IndexNotReady(f"no collection in {self.data_dir}: index some images first")
            if not self.readonly:
                self.catalog.set_meta("model_id", model_id)
                self.catalog.set_meta("dim", str(dim))
            return model_id, dim
        if model_id is not None and model_id != stored_model:
            raise ModelMismatch(
                f"the collection in {self.data_dir} was indexed with model {stored_model}, "
                f"not {model_id}: serve it with that model ({how_to_select(stored_model)}, and "
                "the same pooling, regions and size as its id says), or re-index its images "
                "with this one into a new data directory: imsearch index YOUR_IMAGES "
                "--data-dir NEW_DIR"
            )
        if dim is not None and dim != int(stored_dim):
            raise DimensionMismatch(f"collection dimension is {stored_dim}, not {dim}")
        return stored_model, int(stored_dim)

    # -- whitening --------------------------------------------------------------------------

    def _load_whitening(self) -> PCAWhitening | None:
        path = self.data_dir / WHITENING_FILE
        return PCAWhitening.load(path) if path.exists() else None

    @property
    def whitening_id(self) -> str:
        return self.whitening.sha256()[:12] if self.whitening else "none"

    @property
    def index_dim(self) -> int:
        return self.whitening.output_dim if self.whitening else self.dim

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Raw descriptors → the space the FAISS index lives in."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.dim:
            raise DimensionMismatch(f"expected {self.dim}-d descriptors, got {vectors.shape[1]}-d")
        return self.whitening.apply(vectors) if self.whitening else vectors

    def learn_whitening(
        self, shrinkage: float = 1.0, dim: int | None = None, min_images: int = 100
    ) -> PCAWhitening:
        """Learn PCA whitening from every descriptor of the collection, then rebuild."""
        if self.readonly:
            raise ConfigError("a read-only store cannot learn whitening")
        with self._lock:
            chunks = [vecs for _, vecs in self.catalog.vectors()]
            n = sum(len(c) for c in chunks)
            if n < min_images:
                raise ConfigError(
                    f"whitening needs at least {min_images} images in the collection; it has {n}"
                )
            whitening = learn_pca_whitening(
                np.concatenate(chunks), dim, shrinkage, source=f"collection of {n} images"
            )
            self.set_whitening(whitening)
            return whitening

    def set_whitening(self, whitening: PCAWhitening) -> None:
        """Use ``whitening`` (PCA or learned) from now on: saved, then the index rebuilt."""
        if self.readonly:
            raise ConfigError("a read-only store cannot change its whitening")
        if whitening.input_dim != self.dim:
            raise DimensionMismatch(
                f"the whitening takes {whitening.input_dim}-d descriptors; the model gives "
                f"{self.dim}-d"
            )
        with self._lock:
            whitening.save(self.data_dir / WHITENING_FILE)
            self.whitening = whitening
            self._rebuild_now()

    def clear_whitening(self) -> None:
        """Drop the collection's whitening and rebuild on raw descriptors."""
        with self._lock:
            (self.data_dir / WHITENING_FILE).unlink(missing_ok=True)
            self.whitening = None
            self._rebuild_now()

    # -- snapshot and log -------------------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        return {"spec": self.spec, "model_id": self.model_id, "whitening": self.whitening_id}

    def _load_snapshot(self) -> tuple[VectorIndex, int, BuildInfo]:
        pointer = self.data_dir / SNAPSHOT_FILE
        if pointer.exists():
            snap = json.loads(pointer.read_text())
            if {k: snap.get(k) for k in self._identity()} == self._identity():
                build = BuildInfo(**snap["build"])
                seq = int(snap["seq"])
                # A replica maps an up-to-date snapshot; one with a log to replay must own it.
                mmap = self.readonly and not self.catalog.ops_since(seq)
                index = VectorIndex.load(self.data_dir / snap["file"], build.factory, mmap=mmap)
                return index, seq, build
            log.info("snapshot %s does not match %s: rebuilding", snap, self._identity())
        return self._build()

    def _consistent(self) -> AbstractContextManager[None]:
        """A replica reads while the writer adds: the log position and the items it reads
        must come from one state of the catalog, or an item added in between is applied
        twice. The writer's own reads need no such care (it holds the store's lock)."""
        return self.catalog.consistent() if self.readonly else nullcontext()

    def _build(self) -> tuple[VectorIndex, int, BuildInfo]:
        """A fresh index from every descriptor in the catalog."""
        with self._lock, self._consistent():
            seq = self.catalog.last_seq()
            index, info = build_index(self.catalog, self.spec, self.index_dim, self.transform)
            return index, seq, info

    def _rebuild_now(self) -> None:
        with self._lock:
            self._index, self._seq, self.build = self._build()
            self.snapshot(compact=False)

    def _needs_rebuild(self) -> bool:
        """Tombstones past the limit, a fallback the collection has outgrown, or an ``auto``
        spec whose family changed with the collection's size."""
        index = self._index
        if index.ntotal and len(index.tombstones) > MAX_TOMBSTONE_SHARE * index.ntotal:
            return True
        if self.build.fallback or self.spec == "auto":
            factory, _, reason = plan(self.spec, self.catalog.count(), self.index_dim)
            if self.build.fallback:
                return reason is None and factory != "Flat"
            return _family(factory) != _family(self.build.factory)
        return False

    def _catch_up(self) -> bool:
        """Apply log entries newer than the index (after a crash, or after our own writes).

        True when the log had been truncated past them and the index was reconciled instead.
        """
        with self._lock, self._consistent():
            ops = self.catalog.ops_since(self._seq)
            next_seq = ops[0].seq if ops else self.catalog.last_seq() + 1
            if next_seq > self._seq + 1:
                # Entries this index never saw were truncated: another writer snapshotted them.
                # The log cannot say what they were; the catalog can.
                log.warning(
                    "log entries %d..%d of %s were truncated before this process applied "
                    "them; reconciling the index with the catalog",
                    self._seq + 1,
                    next_seq - 1,
                    self.data_dir,
                )
                self._reconcile()
                self._seq = ops[-1].seq if ops else next_seq - 1
                return True
            if not ops:
                return False
            self._index = self._index.in_memory()  # a replica's mapped snapshot, once
            # Collapse the log: an id removed later needs no add, and remove before add.
            removed = [op.int_id for op in ops if op.op == "del"]
            added = {op.int_id for op in ops if op.op == "add"} - set(removed)
            self._index.remove(np.array(removed, dtype=np.int64))
            for ids, vecs in self.catalog.vectors(sorted(added)):
                self._index.add(ids, self.transform(vecs))
            self._seq = ops[-1].seq
            for listener in self._listeners:
                listener.apply(sorted(added), removed)
            return False

    def _reconcile(self) -> bool:
        """Make the index hold exactly the catalog's items; True if it lacked some.

        The catalog is the truth: ids it lost are removed from the index (deleted after the
        snapshot: tombstones are not saved), and items the index lacks are added from their
        stored descriptors (a snapshot written over log entries it did not contain — what two
        writers did before the writer lock). Only the second is damage worth a new snapshot.
        """
        with self._lock:
            tombstones = np.fromiter(self._index.tombstones, dtype=np.int64)
            live = np.setdiff1d(self._index.ids(), tombstones)
            truth = self.catalog.int_ids()
            stale = np.setdiff1d(live, truth, assume_unique=True)
            missing = np.setdiff1d(truth, live, assume_unique=True)
            if not stale.size and not missing.size:
                return False
            if missing.size:
                log.warning(
                    "%d items of the catalog of %s were missing from its index: added back",
                    missing.size,
                    self.data_dir,
                )
            self._index = self._index.in_memory()
            self._index.remove(stale)
            for ids, vecs in self.catalog.vectors(missing.tolist()):
                self._index.add(ids, self.transform(vecs))
            for listener in self._listeners:
                listener.apply(missing.tolist(), stale.tolist())
            return bool(missing.size)

    def follow(self) -> int:
        """Apply what the writer logged since this (read-only) store last looked: a replica
        stays current between snapshots. Returns the log entries applied."""
        with self._lock:
            before = self._seq
            self._catch_up()
            return self._seq - before

    def subscribe(self, listener: LogListener) -> None:
        """Have ``listener`` follow every add and delete applied from now on."""
        with self._lock:
            self._listeners.append(listener)

    def snapshot(self, compact: bool = True) -> None:
        """Persist the index as of the current log position and truncate the log.

        With ``compact``, an index with too many tombstones, or one still on its exact-search
        fallback although the collection can now train the requested family, is rebuilt first.
        """
        if self.readonly:
            return
        with self._lock:
            self._catch_up()
            if compact and self._needs_rebuild():
                self._index, self._seq, self.build = self._build()
            name = f"vectors-{self._seq:012d}.faiss"
            self._index.save(self.data_dir / name)
            pointer = {
                "file": name,
                "seq": self._seq,
                **self._identity(),
                "ntotal": self._index.ntotal,
                "build": self.build.as_dict(),
            }
            write_atomic(self.data_dir / SNAPSHOT_FILE, json.dumps(pointer).encode())
            self.catalog.truncate_ops(self._seq)
            for old in self.data_dir.glob("vectors-*.faiss"):
                if old.name != name:
                    old.unlink(missing_ok=True)

    def checkpoint(self, min_ops: int) -> bool:
        """Snapshot if at least ``min_ops`` log entries are not in one (True if it did).

        A snapshot rewrites the whole index, so it is taken once per ``min_ops`` changes, not
        on a timer: in between, the catalog's log is the durable delta, replayed at start.
        """
        if self.readonly or self.pending_ops() < max(1, min_ops):
            return False
        self.snapshot()
        return True

    def pending_ops(self) -> int:
        """Log entries not yet in a snapshot (they are replayed at start)."""
        return len(self.catalog.ops_since(self._snapshot_seq()))

    def _snapshot_seq(self) -> int:
        pointer = self.data_dir / SNAPSHOT_FILE
        return int(json.loads(pointer.read_text())["seq"]) if pointer.exists() else 0

    # -- writes -----------------------------------------------------------------------------

    def add(self, items: Sequence[Item]) -> list[int]:
        """Add or replace items — descriptor, metadata, thumbnail and local features in one
        durable step; durable when this returns."""
        if self.readonly or self._feature_writer is None:
            raise ConfigError("this store is read-only")
        for item in items:
            if item.vector.shape != (self.dim,):
                raise DimensionMismatch(
                    f"descriptor of {item.ext_id!r} has shape {item.vector.shape}, "
                    f"expected ({self.dim},)"
                )
        with self._lock:
            # Features first (fsynced): the catalog's commit is what makes them referenced.
            payloads = [stored_form(i.local, self.local_encoding) for i in items if i.local]
            written = iter(self._feature_writer.append(payloads))
            refs = [next(written) if i.local else None for i in items]
            ids = self.catalog.upsert(items, refs)
            self._catch_up()
        return ids

    def local_features(self, int_ids: Sequence[int]) -> dict[int, bytes]:
        """Serialized local features of ``int_ids`` (absent where none were stored)."""
        found = self.features.read_many(self.catalog.feature_refs(int_ids))
        if len(found) < len(int_ids):
            found |= self.catalog.legacy_local_features([i for i in int_ids if i not in found])
        return found

    def _move_legacy_features(self, batch: int = 500) -> None:
        """Local features an older version kept in the catalog go to the feature store."""
        assert self._feature_writer is not None
        moved = 0
        while ids := self.catalog.legacy_ids(batch):
            blobs = self.catalog.legacy_local_features(ids)
            refs = self._feature_writer.append(list(blobs.values()))
            self.catalog.move_features(dict(zip(blobs, refs, strict=True)))
            moved += len(blobs)
        if moved:
            self.catalog.vacuum()  # give the space of the moved features back
            log.info("moved the local features of %d images to %s", moved, FEATURES_DIR)

    def reencode_features(self, encoding: str, batch: int = 500) -> tuple[int, int]:
        """Rewrite every stored local-feature record in ``encoding`` (``imsearch migrate``);
        returns (records rewritten, bytes of segments freed).

        Crash-safe and resumable: each batch is appended and fsynced before one transaction
        points the catalog at it, so every reference is valid at every instant; records
        already in ``encoding`` are left alone, so a second run continues. The segments no
        reference points into are deleted at the end — offline only: a rerank worker may
        still hold a reference the search service handed out (the caller holds the writer
        lock, so no server writes here meanwhile).
        """
        if self.readonly or self._feature_writer is None:
            raise ConfigError("this store is read-only")
        writer, rewritten, last = self._feature_writer, 0, 0
        with self._lock:
            writer.new_segment()
            while ids := self.catalog.feature_ids_after(last, batch):
                last = ids[-1]
                stored = self.features.read_many(self.catalog.feature_refs(ids))
                changed = {i: stored_form(p, encoding) for i, p in stored.items()}
                changed = {i: p for i, p in changed.items() if p != stored[i]}
                if changed:
                    refs = writer.append(list(changed.values()))
                    self.catalog.move_features(dict(zip(changed, refs, strict=True)))
                    rewritten += len(changed)
            present = {int(n.split("-")[1].split(".")[0]) for n in writer.sizes()}
            freed = writer.remove(sorted(present - self.catalog.feature_segments()))
        self.features.close()  # its descriptors may point at deleted segments
        self.features = FeatureReader(self.data_dir / FEATURES_DIR)
        return rewritten, freed

    def delete(self, ext_ids: Sequence[str]) -> int:
        """Delete by external id; returns how many existed."""
        if self.readonly:
            raise ConfigError("this store is read-only")
        with self._lock:
            removed = self.catalog.delete(ext_ids)
            self._catch_up()
        return len(removed)

    # -- reads ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._index.live

    def search(
        self,
        queries: np.ndarray,
        k: int,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits per raw query descriptor (one per row), best first; with ``where``,
        only images whose metadata satisfy it (see :mod:`imsearch.index.filters`)."""
        return self.search_transformed(self.transform(queries), k, knobs, where)

    def search_transformed(
        self,
        queries: np.ndarray,
        k: int,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
    ) -> list[list[Hit]]:
        """Like :meth:`search` for queries already in the index's space (query expansion)."""
        queries = np.atleast_2d(queries)
        if len(self) == 0:
            return [[] for _ in range(len(queries))]
        allowed = self.matching(where) if where is not None else None
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in range(len(queries))]
        if allowed is not None and len(allowed) <= FILTER_EXACT_MAX and not self._index.exact:
            scores, ids = self._exact(queries, k, allowed)
        else:
            with self._lock:
                scores, ids = self._index.search(queries, k, knobs, allowed)
        names = self.catalog.ext_ids(sorted({int(i) for i in ids.ravel() if i >= 0}))
        return [
            [
                Hit(names[int(i)], float(s))
                for s, i in zip(row_s, row_i, strict=True)
                if int(i) in names
            ]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def matching(self, where: Filter) -> np.ndarray:
        """The live int ids whose metadata satisfy ``where`` (sorted; cached until the next
        write: a catalogue's few filters repeat from query to query)."""
        key = (where.key, self._seq)
        with self._filter_lock:
            found = self._matches.get(key)
            if found is not None:
                self._matches.move_to_end(key)
                return found
        found = self.catalog.matching(where)
        with self._filter_lock:
            self._matches[key] = found
            while len(self._matches) > FILTER_CACHE_SIZE:
                self._matches.popitem(last=False)
        return found

    def _exact(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores against the ``allowed`` ids' stored descriptors: for a selective
        filter this reads fewer vectors than a graph or inverted lists would visit."""
        chunks = list(self.catalog.vectors(allowed.tolist()))
        if not chunks:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        ids = np.concatenate([c[0] for c in chunks])
        vectors = self.transform(np.concatenate([c[1] for c in chunks]))
        scores = queries.astype(np.float32) @ vectors.T
        k = min(k, len(ids))
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, top, axis=1), ids[top]

    def vectors(self, ext_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Descriptors of ``ext_ids`` in the index's space (whitened when the index is)."""
        int_ids = self.catalog.int_ids_of(ext_ids)
        names = {i: e for e, i in int_ids.items()}
        out: dict[str, np.ndarray] = {}
        for ids, vecs in self.catalog.vectors(sorted(int_ids.values())):
            for int_id, vec in zip(ids, self.transform(vecs), strict=True):
                out[names[int(int_id)]] = vec
        return out

    def all_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every id with its descriptor in the index's space (for database-side re-ranking)."""
        ids: list[str] = []
        chunks: list[np.ndarray] = []
        for int_ids, vecs in self.catalog.vectors():
            names = self.catalog.ext_ids(int_ids.tolist())
            ids.extend(names[int(i)] for i in int_ids)
            chunks.append(self.transform(vecs))
        empty = np.zeros((0, self.index_dim), np.float32)
        return ids, np.concatenate(chunks) if chunks else empty

    def get(self, ext_id: str) -> Item | None:
        return self.catalog.get(ext_id)

    def metadata(self, ext_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self.catalog.metadata(ext_ids)

    def stats(self) -> dict[str, Any]:
        return {
            "count": len(self),
            "dim": self.dim,
            "model_id": self.model_id,
            "index": {
                **self.build.as_dict(),
                "ntotal": self._index.ntotal,
                "tombstones": len(self._index.tombstones),
            },
            "whitening": self.whitening.info if self.whitening else None,
            "pending_log_entries": self.pending_ops(),
        }

    def close(self) -> None:
        self.catalog.close()
        self.features.close()
        self._release_writer()

    def _release_writer(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

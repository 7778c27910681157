"""Collections: where each lives, and the ones a process has open.

A data directory holds named collections, each with its own index, whitening, vocabulary,
local features and snapshot — the layout of :mod:`imsearch.index.store`::

    <data_dir>/                    the collection "default" (a data directory of earlier
                                   versions is it, unchanged: nothing to migrate)
    <data_dir>/collections/<name>/ any other collection, created through the API or the CLI;
                                   collection.json holds its name and index spec

A name is 1–63 characters of ``a-z 0-9 _ -``, starting with a letter or digit (it is a folder
and a URL segment). All collections of a data directory share its one writer (the writer lock
of ``<data_dir>``) and the deployment's model: a collection described by another model is
refused (``model_mismatch``), as a data directory is.

:class:`Collections` opens collections when first used and closes the least recently used
past ``max_open`` and any idle longer than ``idle_s``, so memory stays bounded however many
a deployment holds; a request holds its collection open until it is done with it.

Also here: what runs beside a collection (its visual words and candidate stages) and
geometric verification over its feature store. No model here: services without torch build
these too.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from imsearch.errors import (
    CollectionExists,
    ConfigError,
    IndexNotReady,
    InvalidCollectionName,
    UnknownCollection,
)
from imsearch.fsutil import fsync_path, write_atomic
from imsearch.index.catalog import Catalog
from imsearch.index.features import FEATURES_DIR, FeatureReader
from imsearch.index.store import CATALOG_FILE, SNAPSHOT_FILE, IndexStore
from imsearch.rerank.reranker import CandidateFinder, SpatialReranker
from imsearch.rerank.verifier import Verifier
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT = "default"
COLLECTIONS_DIR = "collections"
SPEC_FILE = "collection.json"
NAME_RULE = "1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or a digit"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_name(name: str) -> str:
    """``name`` if it is a valid collection name, else :class:`InvalidCollectionName`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidCollectionName(f"invalid collection name {name!r}: {NAME_RULE}")
    return name


def collection_dir(data_dir: str | Path, name: str) -> Path:
    """Where collection ``name`` lives under ``data_dir``."""
    root = Path(data_dir)
    return root if check_name(name) == DEFAULT else root / COLLECTIONS_DIR / name


def feature_location(settings: Settings, name: str) -> str:
    """Where collection ``name``'s local features are for a reader: under the data directory,
    or, with ``IMSEARCH_FEATURE_STORE`` (the default collection's ``features`` folder or URL),
    at the same place relative to it."""
    check_name(name)
    if not settings.feature_store:
        return str(collection_dir(settings.data_dir, name) / FEATURES_DIR)
    base = str(settings.feature_store).rstrip("/")
    if name == DEFAULT:
        return base
    return posixpath.join(posixpath.dirname(base), COLLECTIONS_DIR, name, FEATURES_DIR)


def exists(data_dir: str | Path, name: str) -> bool:
    """Whether ``name`` exists (``default`` does once an image was added to it)."""
    if check_name(name) == DEFAULT:
        return (Path(data_dir) / CATALOG_FILE).exists()
    return (collection_dir(data_dir, name) / SPEC_FILE).exists()


def names(data_dir: str | Path) -> list[str]:
    """Every collection of ``data_dir``: ``default`` first, then by name."""
    folder = Path(data_dir) / COLLECTIONS_DIR
    named = sorted(p.parent.name for p in folder.glob(f"*/{SPEC_FILE}")) if folder.is_dir() else []
    return [DEFAULT, *(n for n in named if _NAME.fullmatch(n) and n != DEFAULT)]


def saved_spec(data_dir: str | Path, name: str) -> dict[str, Any]:
    """What collection ``name`` was created with: ``index_spec``, ``created`` and ``uid`` (a
    new one each time a name is created: caches of a dropped collection's features never
    serve its successor). ``default`` has none (an empty dict)."""
    if check_name(name) == DEFAULT:
        return {}
    path = collection_dir(data_dir, name) / SPEC_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise UnknownCollection(f"no collection named {name!r}") from exc


def index_spec(data_dir: str | Path, name: str, fallback: str) -> str:
    """The index spec collection ``name`` was created with (``default``: ``fallback``)."""
    return str(saved_spec(data_dir, name).get("index_spec", fallback))


def create(data_dir: str | Path, name: str, spec: str, model_id: str, dim: int) -> dict[str, Any]:
    """Create collection ``name`` (empty, described by ``model_id``); the caller holds the
    data directory's writer lock. Built in a scratch folder and renamed into place: a crash
    leaves either no collection or a whole one."""
    if check_name(name) == DEFAULT or exists(data_dir, name):
        raise CollectionExists(f"a collection named {name!r} exists")
    parent = Path(data_dir) / COLLECTIONS_DIR
    parent.mkdir(parents=True, exist_ok=True)
    scratch = parent / f".new-{name}-{uuid.uuid4().hex[:8]}"
    IndexStore(scratch, model_id, dim, spec, lock_dir=data_dir).close()
    created = {
        "name": name,
        "index_spec": spec,
        "created": time.time(),
        "uid": uuid.uuid4().hex,
    }
    write_atomic(scratch / SPEC_FILE, json.dumps(created).encode())
    try:
        scratch.rename(parent / name)
    except OSError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise CollectionExists(f"a collection named {name!r} exists") from exc
    fsync_path(parent)
    return created


def remove(data_dir: str | Path, name: str) -> None:
    """Delete collection ``name`` from disk: renamed out of the way first (atomic), so a
    crash half-way through the deletion leaves no half collection, only a folder that
    :func:`sweep` finishes."""
    if check_name(name) == DEFAULT:
        raise CollectionExists("the collection 'default' cannot be dropped; delete its images")
    if not exists(data_dir, name):
        raise UnknownCollection(f"no collection named {name!r}")
    parent = Path(data_dir) / COLLECTIONS_DIR
    trash = parent / f".drop-{name}-{uuid.uuid4().hex[:8]}"
    (parent / name).rename(trash)
    fsync_path(parent)
    shutil.rmtree(trash)


def sweep(data_dir: str | Path) -> None:
    """Finish what a crash interrupted: half-created and half-dropped collections."""
    parent = Path(data_dir) / COLLECTIONS_DIR
    if parent.is_dir():
        for leftover in [*parent.glob(".new-*"), *parent.glob(".drop-*")]:
            shutil.rmtree(leftover, ignore_errors=True)


def count(data_dir: str | Path, name: str) -> int:
    """Images in ``name`` without opening its index (a read of its catalog)."""
    path = collection_dir(data_dir, name) / CATALOG_FILE
    if not path.exists():
        return 0
    catalog = Catalog(path, readonly=True)
    try:
        return catalog.count()
    finally:
        catalog.close()


# -- what runs beside a collection ------------------------------------------------------------


def collection_stages(
    store: IndexStore, settings: Settings
) -> tuple[VisualWords | None, CandidateFinder]:
    """What runs beside a collection's index: its visual words and the candidate stages."""
    words = VisualWords(store, settings.shortlist_max_postings) if settings.local_features else None
    return words, CandidateFinder(store, words)


def verification(
    settings: Settings, features: str | Path | None = None, local: bool = False
) -> SpatialReranker:
    """Geometric verification over the feature stores of the collections: where
    :func:`feature_location` says, or under this process's data directory (``local``), or
    in one fixed folder (``features``: one collection, e.g. a benchmark's)."""
    if features is not None:
        root = str(features)
        readers = FeatureReaders(lambda _name: root)
    elif local:
        data_dir = settings.data_dir
        readers = FeatureReaders(lambda name: str(collection_dir(data_dir, name) / FEATURES_DIR))
    else:
        readers = FeatureReaders(lambda name: feature_location(settings, name))
    verifier = Verifier(readers, settings.rerank_workers, matcher=settings.rerank_matcher)
    return SpatialReranker(verifier, settings.rerank_config())


class FeatureReaders:
    """A reader per collection's feature store, opened on first use (a few file handles
    each; the least recently used are closed past ``max_open``). Keyed by name and
    generation: a name dropped and created again gets a fresh reader, not the old files'."""

    def __init__(self, location: Any, max_open: int = 64) -> None:
        self._location = location
        self._max_open = max_open
        self._readers: dict[tuple[str, str], FeatureReader] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, generation: str = "") -> FeatureReader:
        key = (check_name(name), generation)
        with self._lock:
            stale = [k for k in self._readers if k[0] == name and k != key]
            closing = [self._readers.pop(k) for k in stale]
            reader = self._readers.pop(key, None)
            if reader is None:
                reader = FeatureReader(self._location(name))
            self._readers[key] = reader  # most recent last
            while len(self._readers) > self._max_open:
                closing.append(self._readers.pop(next(iter(self._readers))))
        for old in closing:
            old.close()
        return reader

    def close(self) -> None:
        with self._lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()


# -- the open collections -----------------------------------------------------------------------


@dataclass
class Opened:
    """One open collection: its store and the stages beside it."""

    name: str
    store: IndexStore
    words: VisualWords | None
    finder: CandidateFinder
    #: Which incarnation of the name this is (see :func:`saved_spec`); "" for ``default``.
    generation: str = ""
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    snapshot_mtime: float = 0.0


class Collections:
    """The collections of one data directory as one process serves them.

    ``model_id``/``dim``: the deployment's model, when this process knows it (it then refuses
    collections of another model, and creates ``default`` on its first write); a search
    service learns it from each write instead. ``readonly``: a replica (no writes, and
    each open collection follows its primary's log and snapshots).
    """

    def __init__(
        self,
        settings: Settings,
        model_id: str | None = None,
        dim: int | None = None,
        readonly: bool = False,
    ) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir)
        self.model_id, self.dim = model_id, dim
        self.readonly = readonly
        self._open: dict[str, Opened] = {}
        self._opening: dict[str, threading.Lock] = {}
        self._dropping: set[str] = set()
        self._lock = threading.Lock()
        if not readonly:
            sweep(self.root)

    # -- use ----------------------------------------------------------------------------------

    @contextmanager
    def use(
        self, name: str, model_id: str | None = None, dim: int | None = None
    ) -> Iterator[Opened]:
        """Collection ``name``, open while the block runs. ``model_id``/``dim`` create
        ``default`` on its first write when this process does not know the model."""
        entry = self._acquire(check_name(name), model_id or self.model_id, dim or self.dim)
        try:
            yield entry
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = time.monotonic()

    def _acquire(self, name: str, model_id: str | None, dim: int | None) -> Opened:
        with self._lock:
            if name in self._dropping:
                raise UnknownCollection(f"no collection named {name!r} (being dropped)")
            entry = self._open.get(name)
            if entry is not None:
                entry.users += 1
                return entry
            opening = self._opening.setdefault(name, threading.Lock())
        with opening:  # one thread opens it; the others wait and share it
            with self._lock:
                entry = self._open.get(name)
                if entry is not None:
                    entry.users += 1
                    return entry
            entry = self._load(name, model_id, dim)
            with self._lock:
                self._open[name] = entry
                entry.users += 1
        self._evict(self.settings.max_open_collections)
        return entry

    def _load(self, name: str, model_id: str | None, dim: int | None) -> Opened:
        if name != DEFAULT and not exists(self.root, name):
            raise UnknownCollection(f"no collection named {name!r}")
        folder = collection_dir(self.root, name)
        if self.readonly and not (folder / CATALOG_FILE).exists():
            raise IndexNotReady(f"the collection {name!r} has no images yet")
        saved = saved_spec(self.root, name)
        spec = str(saved.get("index_spec", self.settings.index_spec))
        store = IndexStore(
            folder,
            model_id,
            dim,
            spec,
            self.readonly,
            lock_dir=self.root,
            local_encoding=self.settings.local_encoding,
        )
        words, finder = collection_stages(store, self.settings)
        pointer = folder / SNAPSHOT_FILE
        mtime = pointer.stat().st_mtime if pointer.exists() else 0.0
        log.info("collection %r opened (%d images)", name, len(store))
        generation = str(saved.get("uid", ""))
        return Opened(name, store, words, finder, generation, snapshot_mtime=mtime)

    # -- create, drop, describe -------------------------------------------------------------------

    def read(self, name: str, work: Callable[[Opened], T], empty: T) -> T:
        """``work(opened)`` on collection ``name``; ``empty`` while it has no images (only
        ``default`` can be without a catalog); an unknown name raises."""
        try:
            with self.use(name) as opened:
                return work(opened)
        except IndexNotReady:
            if name == DEFAULT or exists(self.root, name):
                return empty
            raise

    def create(
        self,
        name: str,
        spec: str | None = None,
        model_id: str | None = None,
        dim: int | None = None,
    ) -> dict[str, Any]:
        """Create collection ``name``; returns :meth:`describe` of it."""
        model_id, dim = model_id or self.model_id, dim or self.dim
        if self.readonly:
            raise ConfigError("this is a read-only replica; create collections on the primary")
        if not model_id or not dim:
            raise ConfigError("creating a collection needs the model's id and dimension")
        create(self.root, name, spec or self.settings.index_spec, model_id, dim)
        return self.describe(name)

    def drop(self, name: str, wait_s: float = 30.0) -> None:
        """Close ``name`` once its requests are done, then delete it from disk."""
        if self.readonly:
            raise ConfigError("this is a read-only replica; drop collections on the primary")
        if check_name(name) == DEFAULT or not exists(self.root, name):
            remove(self.root, name)  # raises the right error
        with self._lock:
            self._dropping.add(name)
            entry = self._open.pop(name, None)
        try:
            deadline = time.monotonic() + wait_s
            while entry is not None and entry.users > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            if entry is not None:
                _close(entry, self.settings, keep=False)
            remove(self.root, name)
        finally:
            with self._lock:
                self._dropping.discard(name)

    def names(self) -> list[str]:
        return names(self.root)

    def describe_all(self) -> list[dict[str, Any]]:
        return [self.describe(name) for name in self.names()]

    def describe(self, name: str) -> dict[str, Any]:
        """Name, index spec, size and whether it is open (without opening it)."""
        if not exists(self.root, check_name(name)) and name != DEFAULT:
            raise UnknownCollection(f"no collection named {name!r}")
        with self._lock:
            entry = self._open.get(name)
        size = len(entry.store) if entry is not None else count(self.root, name)
        info: dict[str, Any] = {"name": name, "count": size, "open": entry is not None}
        spec_file = collection_dir(self.root, name) / SPEC_FILE
        if spec_file.exists():
            saved = json.loads(spec_file.read_text())
            info.update(index_spec=saved.get("index_spec"), created=saved.get("created"))
        else:
            info.update(index_spec=self.settings.index_spec, created=None)
        return info

    # -- upkeep -------------------------------------------------------------------------------

    def upkeep(self, maintain: Any) -> None:
        """Per open collection: ``maintain(opened)`` on a primary; on a replica, follow the
        primary's log or swap in its newer snapshot. Then close the idle ones."""
        with self._lock:
            entries = list(self._open.values())
        for entry in entries:
            if self.readonly:
                self._follow(entry)
            else:
                maintain(entry)
        self._evict(self.settings.max_open_collections, self.settings.collection_idle_s)

    def _follow(self, entry: Opened) -> None:
        folder = collection_dir(self.root, entry.name)
        pointer = folder / SNAPSHOT_FILE
        if entry.name != DEFAULT and not (folder / SPEC_FILE).exists():
            self._forget(entry)  # dropped on the primary
            return
        mtime = pointer.stat().st_mtime if pointer.exists() else 0.0
        if mtime == entry.snapshot_mtime:
            entry.store.follow()  # the primary's log since then: current within a poll
            return
        fresh = self._load(entry.name, None, None)
        with self._lock:
            old_store = entry.store
            entry.store, entry.words, entry.finder = fresh.store, fresh.words, fresh.finder
            entry.snapshot_mtime = fresh.snapshot_mtime
        log.info("replica: collection %r swapped in the snapshot of %s", entry.name, mtime)
        time.sleep(1.0)  # let searches that started on the old store finish
        old_store.close()

    def _forget(self, entry: Opened) -> None:
        with self._lock:
            if self._open.get(entry.name) is entry and entry.users == 0:
                del self._open[entry.name]
            else:
                return
        _close(entry, self.settings, keep=not self.readonly)

    def _evict(self, max_open: int, idle_s: float | None = None) -> None:
        """Close the least recently used collections past ``max_open``, and those idle
        longer than ``idle_s``; never one a request is using."""
        now = time.monotonic()
        with self._lock:
            idle = sorted(
                (e for e in self._open.values() if e.users == 0), key=lambda e: e.last_used
            )
            surplus = max(0, len(self._open) - max_open)
            closing = idle[:surplus] + [
                e for e in idle[surplus:] if idle_s is not None and now - e.last_used > idle_s
            ]
            for entry in closing:
                del self._open[entry.name]
        for entry in closing:
            log.info("collection %r closed (idle)", entry.name)
            _close(entry, self.settings, keep=not self.readonly)

    def open_names(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def close(self) -> None:
        with self._lock:
            entries, self._open = list(self._open.values()), {}
        for entry in entries:
            _close(entry, self.settings, keep=not self.readonly)


def _close(entry: Opened, settings: Settings, keep: bool) -> None:
    """Close a collection; ``keep``: write what upkeep would (snapshot, visual words) first,
    so that opening it again is quick."""
    try:
        if entry.words is not None:
            entry.words.stop()
        if keep:
            entry.store.checkpoint(settings.snapshot_ops)
            if entry.words is not None:
                entry.words.maintain()
    finally:
        entry.store.close()

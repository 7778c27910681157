"""Bulk indexing of an image folder: read → decode → describe in batches → add, resumably.

Reading and decoding run in worker threads one batch ahead of the network, so the CPU is busy
describing while the next files decode. Every batch is committed to the catalog before the next
one starts: a run stopped at any point resumes where it stopped, because an image whose id is
already indexed with the same content hash is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from imsearch.errors import ConfigError, InvalidId, InvalidImage
from imsearch.features.local import SiftExtractor
from imsearch.ids import normalize_id
from imsearch.images import ImageLimits, decode_image, make_thumbnail, sha256_hex
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.rerank.bow import GENERIC_VOCABULARY, generic_vocabulary
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings
from imsearch.sources import IdMode, Location, SourceFile, read_location, shown, source_files

if TYPE_CHECKING:
    from imsearch.features.extractor import Extractor

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What a bulk indexing run did."""

    found: int = 0
    added: int = 0
    #: Already indexed under the same id with the same content.
    skipped: int = 0
    #: Same content as an indexed image under another id: its descriptor was copied.
    reused: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    whitening: str = ""

    @property
    def images_per_s(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Loaded:
    """One source file as a run reads it (and, once decoded, what it extracted)."""

    ext_id: str
    sha256: str
    #: The path as reports and metadata show it (relative to the indexed folder).
    shown: str
    image: Image.Image | None = None
    local: bytes | None = None
    thumbnail: bytes | None = None
    error: str = ""


def index_source(
    source: str | Path,
    store: IndexStore,
    extractor: Extractor,
    limits: ImageLimits,
    batch_size: int = 16,
    id_mode: IdMode = "relpath",
    progress: bool = True,
    sift: SiftExtractor | None = None,
) -> IndexReport:
    """Index the images of ``source`` (a folder, recursively, or a manifest: see
    imsearch.sources) into ``store``; ids per ``id_mode``."""
    files = source_files(source, id_mode)
    return index_files(files, store, extractor, limits, batch_size, progress, sift)


def index_files(
    files: Sequence[SourceFile],
    store: IndexStore,
    extractor: Extractor,
    limits: ImageLimits,
    batch_size: int = 16,
    progress: bool = True,
    sift: SiftExtractor | None = None,
) -> IndexReport:
    """Index ``(path, id, shown path)`` triples; an id of None means "the content hash".

    With ``sift``, local features are extracted too (in the decoding threads) and stored with
    each descriptor.
    """
    started = time.perf_counter()
    report = IndexReport(found=len(files))
    indexed = store.catalog.hashes_by_id()
    by_hash = {sha: ext_id for ext_id, sha in indexed.items() if sha}
    seen: set[str] = set()
    bar = tqdm(total=len(files), unit="img", disable=not progress, desc="indexing")
    with ThreadPoolExecutor(max_workers=2) as pool:
        side = max(extractor.decode_side, sift.max_side if sift else 0)
        for batch in _prefetch(pool, files, side, limits, batch_size, sift, indexed):
            todo = [loaded for loaded in batch if screen(loaded, seen, indexed, report)]
            report.reused += _add_batch(store, extractor, todo, by_hash)
            report.added += len(todo)
            bar.update(len(batch))
    bar.close()
    store.snapshot()
    report.seconds = time.perf_counter() - started
    return report


def screen(
    loaded: Loaded, seen: set[str], indexed: dict[str, str | None], report: IndexReport
) -> bool:
    """Whether ``loaded`` still needs adding: an unreadable file, an id seen before in this
    run, or an id already indexed with this content does not (counted in ``report``)."""
    needed = False
    if loaded.error:
        report.failed.append((loaded.shown, loaded.error))
    elif loaded.ext_id in seen:
        report.failed.append((loaded.shown, f"duplicate id {loaded.ext_id!r}"))
    elif indexed.get(loaded.ext_id) == loaded.sha256:
        report.skipped += 1
    else:
        needed = True
    seen.add(loaded.ext_id)
    return needed


def _prefetch(
    pool: ThreadPoolExecutor,
    files: Sequence[SourceFile],
    side: int,
    limits: ImageLimits,
    batch_size: int,
    sift: SiftExtractor | None,
    indexed: dict[str, str | None],
) -> Iterator[list[Loaded]]:
    """Yield decoded batches while the next batch decodes in the pool."""
    batches = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    pending: list[Future[Loaded]] | None = None
    for batch in [*batches, None]:
        submitted = (
            [pool.submit(_load, *f, side, limits, sift, indexed) for f in batch] if batch else None
        )
        if pending is not None:
            yield [f.result() for f in pending]
        pending = submitted


def read_source(location: Location, ext_id: str | None, shown_as: Location) -> tuple[Loaded, bytes]:
    """Check the id and read the file: what a run knows of an image before decoding it.

    A bad id or an unreadable file comes back as an ``error`` (and no bytes), never raised.
    """
    label = shown(shown_as)
    if ext_id is not None:
        try:
            ext_id = normalize_id(ext_id)
        except InvalidId as exc:
            return Loaded(ext_id, "", label, error=f"{exc.code}: {exc.message}"), b""
    try:
        data = read_location(location)
    except (OSError, ValueError, ImportError) as exc:
        # fsspec's errors often say only the URL: their kind says what went wrong.
        reason = str(exc) if getattr(exc, "errno", None) else f"{type(exc).__name__}: {exc}"
        return Loaded(ext_id or label, "", label, error=f"unreadable: {reason}"), b""
    sha = sha256_hex(data)
    return Loaded(ext_id or sha, sha, label), data


def _load(
    location: Location,
    ext_id: str | None,
    shown_as: Location,
    side: int,
    limits: ImageLimits,
    sift: SiftExtractor | None,
    indexed: dict[str, str | None],
) -> Loaded:
    loaded, data = read_source(location, ext_id, shown_as)
    if loaded.error or indexed.get(loaded.ext_id) == loaded.sha256:
        return loaded  # nothing to decode: unreadable, or indexed already with this content
    try:
        loaded.image = decode_image(data, limits, side)
        loaded.thumbnail = make_thumbnail(loaded.image)
        if sift is not None:
            loaded.local = sift.extract(loaded.image).to_bytes()
    except InvalidImage as exc:
        loaded.error = f"{exc.code}: {exc.message}"
    return loaded


def _add_batch(
    store: IndexStore, extractor: Extractor, todo: list[Loaded], by_hash: dict[str, str]
) -> int:
    """Describe and add ``todo``; content already indexed under another id is copied."""
    if not todo:
        return 0
    copies = {x.ext_id: store.get(by_hash[x.sha256]) for x in todo if x.sha256 in by_hash}
    fresh = [x for x in todo if copies.get(x.ext_id) is None]
    vectors = extractor.describe([x.image for x in fresh if x.image is not None])
    items: list[Item] = []
    for x, vector in zip(fresh, vectors, strict=True):
        items.append(Item(x.ext_id, vector, x.sha256, {"path": x.shown}, x.local, x.thumbnail))
    for x in todo:
        source = copies.get(x.ext_id)
        if source is not None:
            items.append(
                Item(x.ext_id, source.vector, x.sha256, {"path": x.shown}, x.local, x.thumbnail)
            )
    store.add(items)
    for x in todo:
        by_hash.setdefault(x.sha256, x.ext_id)
    return len(todo) - len(fresh)


def maybe_learn_whitening(store: IndexStore, settings: Settings) -> str:
    """Learn the collection's whitening when the settings ask for it and it has none yet."""
    if settings.whitening == "none":
        if store.whitening is not None:
            store.clear_whitening()
        return "none"
    if store.whitening is not None:  # learnt before, or by `imsearch whiten` (Lw): kept
        return f"kept ({store.whitening.info.get('source', '')})"
    if not settings.collection_whitening():
        return "none (the model carries its own)"
    count = store.catalog.count()
    if count < settings.whitening_min_images:
        message = (
            f"not learned: the collection has {count} images, whitening needs "
            f"{settings.whitening_min_images} (IMSEARCH_WHITENING_MIN_IMAGES)"
        )
        log.info(message)
        return message
    whitening = store.learn_whitening(
        settings.whitening_shrinkage, settings.whitening_dim, settings.whitening_min_images
    )
    return f"learned from {whitening.info['n']} images, {whitening.output_dim}-d"


def maybe_learn_vocabulary(words: VisualWords | None, settings: Settings) -> str:
    """Give the collection its visual vocabulary: the generic one or a given file at once, or
    one learned from its own features once it has enough images with them."""
    if words is None:
        return "none (local features off)"
    if words.quantizer is not None:
        return f"kept ({words.quantizer.size} words)"
    if settings.vocabulary != "collection":
        generic = settings.vocabulary == "generic"
        path = GENERIC_VOCABULARY if generic else Path(settings.vocabulary)
        if not path.is_file():
            raise ConfigError(f"IMSEARCH_VOCABULARY: no vocabulary file at {path}")
        size = words.install_vocabulary(generic_vocabulary() if generic else np.load(path))
        return f"{'generic' if generic else path.name}: {size} words"
    count = words.store.catalog.local_count()
    if count < settings.vocabulary_min_images:
        message = (
            f"not learned: {count} images have local features, a vocabulary needs "
            f"{settings.vocabulary_min_images} (IMSEARCH_VOCABULARY_MIN_IMAGES); spatial "
            "re-ranking verifies global hits only until then"
        )
        log.info(message)
        return message
    size = words.learn_vocabulary(settings.vocabulary_words, settings.vocabulary_min_images)
    return f"learned {size} words from {count} images"


def maintain_collection(
    store: IndexStore, words: VisualWords | None, settings: Settings
) -> dict[str, str]:
    """Periodic upkeep of a served collection: learn the whitening and the vocabulary once the
    collection is large enough; rewrite the FAISS snapshot and the visual-word index once
    enough changed since they were written (the catalog's log holds the rest durably)."""
    done = {"whitening": maybe_learn_whitening(store, settings)}
    if words is not None:
        done["vocabulary"] = maybe_learn_vocabulary(words, settings)
        if words.maintain():
            done["visual words"] = "saved"
    if store.checkpoint(settings.snapshot_ops):
        done["snapshot"] = "written"
    return done

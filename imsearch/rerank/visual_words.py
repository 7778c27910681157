"""The visual-word shortlist of a collection, kept by whoever owns the collection's index.

It lives beside the FAISS index (the search service, or the embedded engine) because it is a
second first stage over the same images, and follows the same log:

* the **vocabulary** is learned once from the collection's local features
  (``vocabulary.npy``); with it, every added image's words are computed once — in a
  background thread, in batches (quantizing is the costly part of an add, and words are
  derived data: an add is acknowledged when its features are durable) — and stored in the
  catalog; until then the image is found by its global descriptor only;
* the **inverted file** (:class:`~imsearch.rerank.bow.BowIndex`) is saved under
  ``bow-<generation>/`` (named by ``bow.json``) when the additions and deletions since the
  last save reach a tenth of it, and memory-mapped at start; what the catalog holds beyond
  it — added or deleted since, by set difference, like the FAISS index — is applied from the
  stored words. No stored image is quantized again at start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.errors import ConfigError
from imsearch.features.local import LocalFeatures
from imsearch.fsutil import replace_atomic, write_atomic
from imsearch.index.store import IndexStore
from imsearch.rerank.bow import BowIndex, Quantizer, decode_words, encode_words, learn_vocabulary

log = logging.getLogger(__name__)

VOCABULARY_FILE = "vocabulary.npy"
BOW_POINTER = "bow.json"
#: Descriptors sampled from the collection to learn the vocabulary.
MAX_VOCABULARY_SAMPLE = 500_000
#: Save the inverted file once this share of it changed since the last save (and at least
#: SAVE_MIN_CHANGES rows): the save rewrites it whole, so it is paid once per such share.
SAVE_SHARE = 0.10
SAVE_MIN_CHANGES = 1000
#: Images quantized per call of the words worker.
WORD_BATCH = 64
#: Keypoints a strip of the query needs for a shortlist of its own.
MIN_REGION_KEYPOINTS = 8


def strips(query: LocalFeatures, count: int) -> list[np.ndarray]:
    """Keypoint masks of ``count`` overlapping vertical strips of the query photo (each 1.2 /
    ``count`` of its width, centred on equal parts): a wall photographed with several
    paintings side by side gets one strip per painting, whose words are not drowned by the
    largest one's."""
    if count <= 0 or len(query) == 0:
        return []
    x = query.xy[:, 0] / max(query.width, 1.0)
    half = 0.6 / count
    return [np.abs(x - (i + 0.5) / count) <= half for i in range(count)]


class VisualWords:
    """Vocabulary, stored words and the inverted file of one collection."""

    def __init__(self, store: IndexStore, max_postings: int = 0) -> None:
        self.store = store
        #: Postings one shortlist walks at most (0 = all): see :class:`BowIndex`.
        self.max_postings = max_postings
        self.data_dir = store.data_dir
        self._lock = threading.RLock()
        self.quantizer: Quantizer | None = None
        self.bow: BowIndex | None = None
        self._vocabulary_id = ""
        # Images whose words are still to be computed, and the thread that computes them.
        self._backlog: deque[int] = deque()
        self._wake = threading.Condition()
        self._busy = False
        self._stopped = False
        self._worker: threading.Thread | None = None
        path = self.data_dir / VOCABULARY_FILE
        if path.exists():
            self._use_vocabulary(np.load(path))
        store.subscribe(self)

    # -- vocabulary ----------------------------------------------------------------------------

    def learn_vocabulary(self, words: int = 16384, min_images: int = 50, seed: int = 0) -> int:
        """Learn the vocabulary from the collection's own descriptors; returns its size."""
        if self.store.readonly:
            raise ConfigError("a read-only store cannot learn a vocabulary")
        ids = self.store.catalog.int_ids().tolist()
        rng = np.random.default_rng(seed)
        # Enough images for the sample, read a few at a time: never the whole collection.
        sample_ids = rng.permutation(ids)[: max(min_images, MAX_VOCABULARY_SAMPLE // 300)]
        stored = self.store.local_features(sample_ids.tolist())
        if len(stored) < min_images:
            raise ConfigError(
                f"a visual vocabulary needs local features of at least {min_images} images; "
                f"the collection has {self.store.catalog.local_count()}"
            )
        descriptors = np.concatenate(
            [LocalFeatures.from_bytes(b).rootsift() for b in stored.values()]
        )
        if len(descriptors) > MAX_VOCABULARY_SAMPLE:
            descriptors = descriptors[rng.choice(len(descriptors), MAX_VOCABULARY_SAMPLE, False)]
        return self.install_vocabulary(learn_vocabulary(descriptors, words, seed))

    def install_vocabulary(self, vocabulary: np.ndarray) -> int:
        """Use ``vocabulary`` (learned here, or a generic one) from now on: saved with the
        collection, every image's words computed with it; returns its size."""
        if self.store.readonly:
            raise ConfigError("a read-only store cannot change its vocabulary")
        vocabulary = np.asarray(vocabulary, dtype=np.float32)
        replace_atomic(self.data_dir / VOCABULARY_FILE, lambda tmp: _save_npy(tmp, vocabulary))
        self.store.catalog.clear_words()  # words of another vocabulary mean nothing now
        self._use_vocabulary(vocabulary)
        self.flush()
        self.save()
        return int(vocabulary.shape[0])

    def _use_vocabulary(self, vocabulary: np.ndarray) -> None:
        quantizer = Quantizer(vocabulary.astype(np.float32))
        vocabulary_id = hashlib.sha256(quantizer.vocabulary.tobytes()).hexdigest()[:16]
        with self._lock:
            self.quantizer, self._vocabulary_id = quantizer, vocabulary_id
            self.bow = self._load_saved() or BowIndex(quantizer.size)
            self._catch_up()

    def encode(self, local: bytes) -> bytes:
        """Stored words of serialized local features."""
        assert self.quantizer is not None
        return encode_words(self.quantizer.assign(LocalFeatures.from_bytes(local).rootsift()))

    # -- following the catalog -----------------------------------------------------------------

    def _catch_up(self) -> None:
        """Make the inverted file hold exactly the catalog's images with local features."""
        assert self.bow is not None
        catalog = self.store.catalog
        held = self.bow.ids()
        truth = catalog.int_ids()
        self.bow.remove(np.setdiff1d(held, truth, assume_unique=True).tolist())
        self._add(np.setdiff1d(truth, held, assume_unique=True).tolist())

    def _add(self, int_ids: Sequence[int]) -> None:
        """Add images from their stored words; queue those without any for the worker."""
        assert self.bow is not None
        for start in range(0, len(int_ids), 2000):
            chunk = list(int_ids[start : start + 2000])
            words = self.store.catalog.words(chunk)
            for int_id, data in words.items():
                self.bow.add_counts(int_id, *decode_words(data))
            self._enqueue([i for i in chunk if i not in words])

    def apply(self, added: Sequence[int], removed: Sequence[int]) -> None:
        """Mirror the catalog's adds and deletes (called by the store as it applies its log)."""
        with self._lock:
            if self.bow is None:
                return
            self.bow.remove(removed)
            self._add(list(added))

    # -- the words worker ----------------------------------------------------------------------

    def _enqueue(self, int_ids: Sequence[int]) -> None:
        if not int_ids:
            return
        with self._wake:
            self._backlog.extend(int_ids)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="visual-words", daemon=True)
                self._worker.start()
            self._wake.notify_all()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._backlog and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                batch = [
                    self._backlog.popleft() for _ in range(min(WORD_BATCH, len(self._backlog)))
                ]
                self._busy = True
            try:
                self._quantize(batch)
            except Exception:  # a worker must not die: these images stay without words
                log.exception("computing visual words failed")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def stop(self) -> None:
        """End the words worker (the collection is closing); words not computed yet are
        computed when it is opened again (images without words are found then)."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

    def _quantize(self, int_ids: list[int]) -> None:
        """Words of ``int_ids`` in one quantizer call (BLAS likes big batches), stored and
        indexed; images deleted meanwhile are skipped."""
        quantizer, bow = self.quantizer, self.bow
        if quantizer is None or bow is None:
            return
        stored = self.store.local_features(int_ids)
        descriptors = [LocalFeatures.from_bytes(data).rootsift() for data in stored.values()]
        if not descriptors:
            return
        assigned = quantizer.assign(np.concatenate(descriptors))
        bounds = np.cumsum([0, *(len(d) for d in descriptors)])
        words = {
            int_id: encode_words(assigned[bounds[i] : bounds[i + 1]])
            for i, int_id in enumerate(stored)
        }
        if not self.store.readonly:
            self.store.catalog.set_words(words)
        live = set(self.store.catalog.ext_ids(list(words)))
        with self._lock:
            for int_id, data in words.items():
                if int_id in live:
                    bow.add_counts(int_id, *decode_words(data))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued image has its words; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._backlog and not self._busy, timeout_s)

    # -- persistence ---------------------------------------------------------------------------

    def _load_saved(self) -> BowIndex | None:
        pointer = self.data_dir / BOW_POINTER
        if not pointer.exists():
            return None
        saved = json.loads(pointer.read_text())
        if saved.get("vocabulary") != self._vocabulary_id:
            return None
        try:
            return BowIndex.load(self.data_dir / saved["dir"])
        except (OSError, ValueError, KeyError):
            log.warning("the saved visual-word index is unreadable: rebuilding it from words")
            return None

    def maintain(self) -> bool:
        """Save the inverted file if enough of it changed; True if it was saved."""
        with self._lock:
            bow = self.bow
            if bow is None or self.store.readonly:
                return False
            if bow.pending < max(SAVE_MIN_CHANGES, SAVE_SHARE * bow.consolidated_rows):
                return False
            self.save()
            return True

    def save(self) -> None:
        """Consolidate and write the inverted file as a new generation, then switch to it."""
        with self._lock:
            if self.bow is None or self.store.readonly:
                return
            pointer = self.data_dir / BOW_POINTER
            old = json.loads(pointer.read_text())["dir"] if pointer.exists() else None
            generation = int(old.split("-")[1]) + 1 if old else 1
            name = f"bow-{generation:06d}"
            self.bow.save(self.data_dir / name)
            payload = {"dir": name, "vocabulary": self._vocabulary_id}
            write_atomic(pointer, json.dumps(payload).encode())
            if old:
                shutil.rmtree(self.data_dir / old, ignore_errors=True)

    # -- queries -------------------------------------------------------------------------------

    def shortlist(self, query: LocalFeatures, n: int) -> list[tuple[int, float]]:
        """Top-``n`` ``(int_id, tf-idf cosine)`` by visual words; empty without a vocabulary."""
        return self.shortlists(query, n)[0]

    def shortlists(
        self, query: LocalFeatures, n: int, regions: int = 0, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """The whole photo's shortlist, then one per vertical strip of it (``regions`` strips,
        see :func:`strips`), the words quantized once. A strip with too few keypoints to be a
        picture of anything gets an empty list. ``allowed``: only those int ids (a filter)."""
        bow, quantizer = self.bow, self.quantizer
        if bow is None or quantizer is None or len(query) == 0:
            return [[] for _ in range(1 + regions)]
        words = quantizer.assign(query.rootsift())
        budget = self.max_postings
        out = [bow.search(words, n, allowed, budget)]
        for mask in strips(query, regions):
            enough = mask.sum() >= MIN_REGION_KEYPOINTS
            out.append(bow.search(words[mask], n, allowed, budget) if enough else [])
        return out

    def stats(self) -> dict[str, Any]:
        bow = self.bow
        return {
            "images_with_local_features": self.store.catalog.local_count(),
            "vocabulary": self.quantizer.size if self.quantizer else None,
            "indexed_by_words": len(bow) if bow else 0,
            "unsaved_word_changes": bow.pending if bow else 0,
            "waiting_for_words": len(self._backlog),
        }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)


def vocabulary_from_folder(
    folder: Path,
    words: int,
    sift_side: int,
    sift_keypoints: int,
    max_images: int = 2000,
    progress: bool = True,
) -> tuple[np.ndarray, str]:
    """A vocabulary of ``words`` learned from the SIFT descriptors (at most ``sift_keypoints``
    per image, at ``sift_side`` px) of a folder's images: a generic one."""
    from imsearch.features.local import SiftExtractor, rootsift_sample

    started = time.perf_counter()
    sift = SiftExtractor(sift_side, sift_keypoints)
    sample, images = rootsift_sample(folder, sift, max_images, MAX_VOCABULARY_SAMPLE, progress)
    vocabulary = learn_vocabulary(sample, words)
    seconds = time.perf_counter() - started
    report = (
        f"{len(vocabulary)} words from {len(sample):,} descriptors of {images} images "
        f"in {seconds:.0f} s"
    )
    return vocabulary, report

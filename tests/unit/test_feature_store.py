"""The feature store, the incremental visual-word index and the move from the old layout."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from imsearch.errors import ConfigError, LocalFeatureError
from imsearch.features.local import LocalFeatures, SiftExtractor
from imsearch.images import load_image
from imsearch.index.catalog import Item
from imsearch.index.features import FeatureReader, FeatureRef, FeatureWriter, segment_name
from imsearch.index.store import IndexStore
from imsearch.indexing import maybe_learn_vocabulary
from imsearch.rerank.bow import BowIndex, decode_words, encode_words, generic_vocabulary
from imsearch.rerank.visual_words import BOW_POINTER, VisualWords
from imsearch.settings import Settings
from tests.conftest import DATA, MINI

DIM = 8


def features(seed: int, n: int = 50) -> bytes:
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)).astype(np.float32) * 500
    return LocalFeatures(xy, rng.integers(0, 255, (n, 128)).astype(np.uint8), 500, 400).to_bytes()


def image_features(name: str) -> bytes:
    """Real SIFT features of a bundled image (visual words need real descriptors)."""
    return SiftExtractor(400, 300).extract(load_image(MINI / "images" / f"{name}.jpg")).to_bytes()


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


# -- segments ----------------------------------------------------------------------------------


def test_segments_append_read_rotate_and_check_crcs(tmp_path: Path) -> None:
    writer = FeatureWriter(tmp_path, segment_bytes=4000)
    payloads = [bytes([i]) * (700 + i) for i in range(12)]
    refs = writer.append(payloads[:5]) + writer.append(payloads[5:])
    assert len({r.segment for r in refs}) > 1  # rotated past 4000 bytes
    reader = FeatureReader(tmp_path)
    assert reader.read(refs) == payloads
    # A second writer (a restarted primary) appends after what is there.
    again = FeatureWriter(tmp_path, segment_bytes=4000).append([b"late"])
    assert FeatureReader(tmp_path).read(again) == [b"late"]
    # fsspec URLs read the same bytes (file:// stands for s3://, gs://… here).
    assert FeatureReader(f"file://{tmp_path}").read(refs[:2]) == payloads[:2]

    victim = refs[3]
    path = tmp_path / segment_name(victim.segment)
    data = bytearray(path.read_bytes())
    data[victim.offset + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LocalFeatureError, match="corrupt"):
        FeatureReader(tmp_path).read([victim])
    for hostile in (FeatureRef(1, 2, 10), FeatureRef(99, 16, 10), FeatureRef(1, 16, 1 << 30)):
        with pytest.raises(LocalFeatureError):
            reader.read([hostile])


def test_an_add_is_one_write_and_a_crash_before_its_commit_leaves_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    store = IndexStore(tmp_path, "m", DIM)
    store.add([Item("a", vector(1), "ha", {"t": 1}, features(1), b"jpg")])
    int_id = store.catalog.int_ids_of(["a"])["a"]
    assert store.local_features([int_id]) == {int_id: features(1)}
    assert store.catalog.legacy_local_features([int_id]) == {}  # not in the catalog

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("killed before the commit")

    monkeypatch.setattr(store.catalog, "upsert", crash)
    with pytest.raises(OSError):
        store.add([Item("b", vector(2), "hb", {}, features(2))])
    monkeypatch.undo()
    store.close()
    reopened = IndexStore(tmp_path, "m", DIM)
    assert reopened.catalog.int_ids_of(["a", "b"]).keys() == {"a"} and len(reopened) == 1
    # The orphan bytes of "b" are in the segment, referenced by nothing; the next add is fine.
    reopened.add([Item("c", vector(3), "hc", {}, features(3))])
    c = reopened.catalog.int_ids_of(["c"])["c"]
    assert reopened.local_features([c]) == {c: features(3)}


def test_a_store_in_codes_and_a_migration_that_crashes_halfway_then_resumes(
    tmp_path: Path, monkeypatch
) -> None:
    """Adds are stored in the store's encoding; ``reencode_features`` rewrites the rest batch
    by batch — a crash between batches leaves every reference readable, the re-run finishes
    and frees the segments nothing points into."""
    coded = IndexStore(tmp_path / "coded", "m", DIM, local_encoding="pq16")
    coded.add([Item("a", vector(1), "ha", {}, features(1))])
    (payload,) = coded.local_features(list(coded.catalog.int_ids_of(["a"]).values())).values()
    assert payload[:4] == b"LSQ1" and len(payload) == 16 + 10 + 50 * 20
    coded.close()

    store = IndexStore(tmp_path / "raw", "m", DIM, local_encoding="sift8")
    store.add([Item(f"i{n}", vector(n), f"h{n}", {}, features(n)) for n in range(6)])
    ids = list(store.catalog.int_ids_of([f"i{n}" for n in range(6)]).values())
    before = sum(store._feature_writer.sizes().values())  # type: ignore[union-attr]
    writes = {"n": 0}
    real_move = store.catalog.move_features

    def crash_on_second(refs: dict) -> None:
        writes["n"] += 1
        if writes["n"] == 2:
            raise OSError("killed between two batches")
        real_move(refs)

    monkeypatch.setattr(store.catalog, "move_features", crash_on_second)
    with pytest.raises(OSError):
        store.reencode_features("pq16", batch=2)
    monkeypatch.undo()
    magics = sorted(p[:4] for p in store.local_features(ids).values())
    assert magics == [b"LSF2"] * 4 + [b"LSQ1"] * 2  # one batch moved, every record readable
    rewritten, freed = store.reencode_features("pq16", batch=2)
    assert rewritten == 4 and freed > 0
    assert {p[:4] for p in store.local_features(ids).values()} == {b"LSQ1"}
    after = sum(store._feature_writer.sizes().values())  # type: ignore[union-attr]
    assert after < before / 3 and segment_name(1) not in store._feature_writer.sizes()  # type: ignore[union-attr]
    assert store.reencode_features("pq16") == (0, 0)
    store.close()
    reopened = IndexStore(tmp_path / "raw", "m", DIM)
    decoded = LocalFeatures.from_bytes(reopened.local_features(ids[:1])[ids[0]])
    assert len(decoded) == 50 and decoded.rootsift().shape == (50, 128)
    reopened.close()


# -- the visual-word index ---------------------------------------------------------------------


def brute_force(docs: dict[int, np.ndarray], query: np.ndarray, size: int) -> list[int]:
    """tf-idf cosine ranking computed from scratch (the reference)."""
    n = len(docs)
    df = np.zeros(size)
    for words in docs.values():
        df[np.unique(words)] += 1
    idf = np.log((n + 1) / (df + 1))

    def weights(words: np.ndarray) -> np.ndarray:
        v = np.sqrt(np.bincount(words, minlength=size).astype(float)) * idf
        return v / max(np.linalg.norm(v), 1e-12)

    q = weights(query)
    scores = {i: float(weights(w) @ q) for i, w in docs.items()}
    return sorted((i for i in scores if scores[i] > 0), key=lambda i: (-scores[i], i))


def test_bow_index_matches_brute_force_through_adds_deletes_saves_and_loads(tmp_path) -> None:
    rng = np.random.default_rng(0)
    size = 64
    docs = {i: rng.integers(0, size, rng.integers(5, 40)) for i in range(60)}
    index = BowIndex(size)
    for i in range(40):
        index.add(i, docs[i])
    index.consolidate()
    index.remove([3, 7, 11])
    for i in range(40, 60):
        index.add(i, docs[i])
    live = {i: w for i, w in docs.items() if i not in (3, 7, 11)}
    index.consolidate()  # norms under the current idf: exact from here
    query = rng.integers(0, size, 30)
    assert [i for i, _ in index.search(query, 10)] == brute_force(live, query, size)[:10]

    index.save(tmp_path / "bow")
    loaded = BowIndex.load(tmp_path / "bow")
    assert loaded.search(query, 10) == index.search(query, 10)
    loaded.add(100, query)  # the loaded CSR is mapped read-only; adds and deletes still work
    loaded.remove([0])
    assert loaded.search(query, 1)[0][0] == 100 and 0 not in dict(loaded.search(query, 60))
    assert len(loaded) == len(live) and loaded.pending == 2

    words, counts = decode_words(encode_words(np.array([5, 5, 9, 1])))
    assert words.tolist() == [1, 5, 9] and counts.tolist() == [1, 2, 1]


@pytest.fixture(scope="module")
def sift_bytes() -> dict[str, bytes]:
    sift = SiftExtractor(400, 300)
    return {
        p.stem: sift.extract(load_image(p)).to_bytes() for p in sorted((MINI / "images").glob("*"))
    }


def test_visual_words_are_stored_with_each_add_and_never_quantized_again(
    tmp_path: Path, sift_bytes: dict[str, bytes], monkeypatch
) -> None:
    covers = [n for n in sift_bytes if n.startswith(("ref_", "wall_"))]
    store = IndexStore(tmp_path, "m", DIM)
    words = VisualWords(store)
    store.add([Item(n, vector(i), n, {}, sift_bytes[n]) for i, n in enumerate(covers[:6])])
    # 160 words: with 64, which cover a photo's words rank first depended on the CPU's
    # rounding in k-means (a tie on one machine, the wrong cover on another)
    assert words.learn_vocabulary(words=160, min_images=6) == 160
    store.add([Item(n, vector(10 + i), n, {}, sift_bytes[n]) for i, n in enumerate(covers[6:])])
    assert words.flush(30)  # computed by the words worker, in a batch
    ids = store.catalog.int_ids().tolist()
    assert len(store.catalog.words(ids)) == len(covers)
    query = LocalFeatures.from_bytes(sift_bytes["droid_002"])
    expected = words.shortlist(query, 3)
    assert store.catalog.ext_ids([expected[0][0]])[expected[0][0]] == "ref_002"
    words.save()
    store.close()

    # Reopened: the saved index is mapped and the catalog's words fill in; nothing quantized.
    store = IndexStore(tmp_path, "m", DIM)
    calls: list[int] = []
    monkeypatch.setattr(VisualWords, "encode", lambda self, data: calls.append(1) or b"")
    again = VisualWords(store)
    assert again.shortlist(query, 3) == expected and calls == []
    assert (tmp_path / BOW_POINTER).exists()


def test_a_generic_or_given_vocabulary_serves_from_the_first_image(
    tmp_path: Path, sift_bytes: dict[str, bytes]
) -> None:
    covers = [n for n in sift_bytes if n.startswith(("ref_", "wall_"))]
    store = IndexStore(tmp_path / "generic", "m", DIM)
    words = VisualWords(store)
    store.add([Item(covers[0], vector(0), covers[0], {}, sift_bytes[covers[0]])])
    generic = Settings(vocabulary="generic")
    assert maybe_learn_vocabulary(words, generic) == f"generic: {len(generic_vocabulary())} words"
    store.add([Item(n, vector(i), n, {}, sift_bytes[n]) for i, n in enumerate(covers[1:], 1)])
    assert words.flush(30)
    assert len(store.catalog.words(store.catalog.int_ids().tolist())) == len(covers)
    best = words.shortlist(LocalFeatures.from_bytes(sift_bytes["droid_002"]), 3)[0][0]
    assert store.catalog.ext_ids([best])[best] == "ref_002"
    assert maybe_learn_vocabulary(words, generic).startswith("kept")
    store.close()

    given = tmp_path / "words.npy"
    np.save(given, generic_vocabulary()[:256])
    store = IndexStore(tmp_path / "given", "m", DIM)
    words = VisualWords(store)
    assert maybe_learn_vocabulary(words, Settings(vocabulary=str(given))) == "words.npy: 256 words"
    with pytest.raises(ConfigError, match="no vocabulary file"):
        maybe_learn_vocabulary(VisualWords(IndexStore(tmp_path / "x", "m", DIM)),
                               Settings(vocabulary=str(tmp_path / "absent.npy")))  # fmt: skip
    store.close()


# -- the upgrade from the previous layout ------------------------------------------------------


def test_a_data_directory_of_the_previous_version_is_moved_in_place(tmp_path: Path) -> None:
    """tests/data/legacy-v1 was written by the code before the feature store (local features
    as catalog BLOBs, a vocabulary, no stored words): it opens, loses nothing, and its
    features move to the store."""
    data = tmp_path / "data"
    shutil.copytree(DATA / "legacy-v1", data)
    before = (
        sqlite3.connect(data / "catalog.sqlite")
        .execute("SELECT i.ext_id, l.data FROM items i JOIN local_features l USING (int_id)")
        .fetchall()
    )
    assert len(before) == 4

    store = IndexStore(data)
    words = VisualWords(store)
    assert words.flush(30)
    ids = store.catalog.int_ids_of([e for e, _ in before])
    moved = store.local_features(list(ids.values()))
    assert {e: moved[ids[e]] for e, _ in before} == dict(before)  # byte for byte
    assert store.catalog.legacy_local_features(list(ids.values())) == {}
    assert store.catalog.feature_refs(list(ids.values())).keys() == set(ids.values())
    assert len(store.catalog.words(list(ids.values()))) == 4  # computed once, then stored
    query = LocalFeatures.from_bytes(dict(before)["ref_002"])
    top = words.shortlist(query, 1)[0][0]
    assert store.catalog.ext_ids([top])[top] == "ref_002" and len(store) == 4

"""Catalog, FAISS wrapper and the durable store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imsearch.errors import ConfigError, DimensionMismatch, IndexNotReady, ModelMismatch
from imsearch.index.catalog import Catalog, Item
from imsearch.index.store import SNAPSHOT_FILE, IndexStore
from imsearch.index.vectors import VectorIndex

DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def random_items(n: int, seed: int = 0, prefix: str = "img") -> list[Item]:
    vecs = unit(np.random.default_rng(seed).normal(size=(n, DIM)))
    return [Item(f"{prefix}{i}", vecs[i], sha256=f"h{prefix}{i}") for i in range(n)]


def brute_force(items: list[Item], query: np.ndarray, k: int) -> list[str]:
    scores = np.stack([it.vector for it in items]) @ query
    return [items[i].ext_id for i in np.argsort(-scores)[:k]]


def test_catalog_logs_every_write(tmp_path) -> None:
    catalog = Catalog(tmp_path / "c.sqlite")
    first = catalog.upsert(random_items(3))
    again = catalog.upsert([Item("img1", np.zeros(DIM, np.float32), "new", {"a": 1})])
    removed = catalog.delete(["img0", "missing"])
    assert again[0] not in first  # re-adding gives a fresh int id
    assert [(op.op, op.int_id) for op in catalog.ops_since(0)] == [
        ("add", first[0]),
        ("add", first[1]),
        ("add", first[2]),
        ("del", first[1]),
        ("add", again[0]),
        ("del", first[0]),
    ]
    assert removed == [first[0]] and catalog.count() == 2
    item = catalog.get("img1")
    assert item is not None and item.sha256 == "new" and item.metadata == {"a": 1}
    assert catalog.hashes_by_id() == {"img1": "new", "img2": "himg2"}


def test_vector_index_matches_brute_force_and_removes() -> None:
    items = random_items(50)
    index = VectorIndex(DIM)
    index.add(np.arange(50), np.stack([it.vector for it in items]))
    query = items[7].vector
    _, ids = index.search(query[None], 5)
    assert [f"img{i}" for i in ids[0]] == brute_force(items, query, 5)
    assert index.remove(np.array([7])) == 1 and 7 not in index.search(query[None], 5)[1][0]
    with pytest.raises(DimensionMismatch):
        index.search(np.zeros((1, DIM + 1)), 1)
    with pytest.raises(ConfigError):
        VectorIndex(DIM, "NotAnIndex")


def test_store_search_add_replace_delete(tmp_path) -> None:
    store = IndexStore(tmp_path, "model-a", DIM)
    items = random_items(30)
    store.add(items)
    query = items[3].vector
    hits = store.search(query, 5)[0]
    assert [h.id for h in hits] == brute_force(items, query, 5)
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)

    store.add([Item("img3", items[4].vector)])  # replace: same id, new vector
    assert len(store) == 30
    assert "img3" not in [h.id for h in store.search(query, 3)[0]]
    twins = store.search(items[4].vector, 2)[0]
    assert {h.id for h in twins} == {"img3", "img4"}
    assert all(h.score == pytest.approx(1.0, abs=1e-5) for h in twins)

    assert store.delete(["img4", "nope"]) == 1
    assert "img4" not in [h.id for h in store.search(items[4].vector, 30)[0]]
    assert len(store) == 29
    with pytest.raises(DimensionMismatch):
        store.add([Item("bad", np.zeros(DIM + 1, np.float32))])


def test_store_survives_reopen_with_and_without_snapshot(tmp_path) -> None:
    store = IndexStore(tmp_path, "model-a", DIM)
    items = random_items(20)
    store.add(items[:10])
    store.snapshot()
    store.add(items[10:])  # acknowledged, in the log only
    store.delete(["img0"])
    assert store.pending_ops() == 11
    store.close()  # no snapshot: as after a crash

    reopened = IndexStore(tmp_path, "model-a", DIM)
    assert len(reopened) == 19
    assert reopened.search(items[15].vector, 1)[0][0].id == "img15"
    assert "img0" not in [h.id for h in reopened.search(items[0].vector, 19)[0]]
    reopened.snapshot()
    assert reopened.pending_ops() == 0
    pointer = json.loads((tmp_path / SNAPSHOT_FILE).read_text())
    assert pointer["ntotal"] == 19 and (tmp_path / pointer["file"]).exists()
    assert len(list(tmp_path.glob("vectors-*.faiss"))) == 1


def test_a_full_disk_during_a_snapshot_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    """Error path: the snapshot write fails half-way (ENOSPC); nothing acknowledged is lost."""
    import errno

    import imsearch.index.vectors as vectors

    store = IndexStore(tmp_path, "model-a", DIM)
    items = random_items(12)
    store.add(items[:6])
    store.snapshot()
    before = (tmp_path / SNAPSHOT_FILE).read_text()
    store.add(items[6:])

    def disk_full(index: object, path: str) -> None:
        with open(path, "wb") as fh:
            fh.write(b"half an index")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectors.faiss, "write_index", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.snapshot()
    monkeypatch.undo()
    assert (tmp_path / SNAPSHOT_FILE).read_text() == before  # the old pointer, still valid
    assert not list(tmp_path.glob("*.tmp")) and store.pending_ops() == 6
    store.close()

    reopened = IndexStore(tmp_path, "model-a", DIM)  # old snapshot + the log
    assert len(reopened) == 12
    assert reopened.search(items[9].vector, 1)[0][0].id == "img9"


def test_readonly_store_reads_and_refuses_missing(tmp_path) -> None:
    with pytest.raises(IndexNotReady):
        IndexStore(tmp_path / "none", readonly=True)
    store = IndexStore(tmp_path, "model-a", DIM)
    items = random_items(5)
    store.add(items)
    store.snapshot()
    replica = IndexStore(tmp_path, readonly=True)
    assert replica.model_id == "model-a"
    assert replica.search(items[2].vector, 1)[0][0].id == "img2"


def test_a_replica_opening_while_the_writer_adds_applies_each_add_once(
    tmp_path, monkeypatch
) -> None:
    store = IndexStore(tmp_path, "model-a", DIM)
    store.add(random_items(4))
    store.snapshot()
    late = random_items(3, seed=5, prefix="late")
    catch_up = IndexStore._catch_up

    def writer_adds_in_between(self: IndexStore) -> bool:
        repaired = catch_up(self)
        if self.readonly and store.catalog.get(late[0].ext_id) is None:
            store.add(late)  # the writer commits between the replica's two reads
        return repaired

    monkeypatch.setattr(IndexStore, "_catch_up", writer_adds_in_between)
    replica = IndexStore(tmp_path, readonly=True)
    monkeypatch.undo()
    replica.follow()
    assert len(replica) == len(store) == 7  # not 10: the late adds applied once
    assert replica.search(late[1].vector, 1)[0][0].id == "late1"


def test_model_mismatch_is_an_error(tmp_path) -> None:
    IndexStore(tmp_path, "model-a", DIM).add(random_items(2))
    with pytest.raises(ModelMismatch, match="model-a"):
        IndexStore(tmp_path, "model-b", DIM)
    with pytest.raises(DimensionMismatch):
        IndexStore(tmp_path, "model-a", DIM * 2)


def test_whitening_learned_from_the_collection(tmp_path) -> None:
    store = IndexStore(tmp_path, "model-a", DIM)
    items = random_items(120)
    store.add(items)
    with pytest.raises(ConfigError, match="at least"):
        store.learn_whitening(min_images=500)
    whitening = store.learn_whitening(shrinkage=1.0, min_images=100)
    assert whitening.output_dim == DIM and store.stats()["whitening"]["n"] == "120"
    # Exact search in the whitened space: the item itself is still its own nearest neighbour.
    assert store.search(items[9].vector, 1)[0][0].id == "img9"
    store.add(random_items(1, seed=9, prefix="late"))  # later adds are whitened too
    assert store.search(random_items(1, seed=9, prefix="late")[0].vector, 1)[0][0].id == "late0"
    store.close()
    reopened = IndexStore(tmp_path, "model-a", DIM)
    assert reopened.whitening is not None
    assert reopened.whitening.sha256() == whitening.sha256()
    reopened.clear_whitening()
    assert reopened.whitening is None and reopened.search(items[9].vector, 1)[0][0].id == "img9"


def test_empty_store_returns_no_hits(tmp_path) -> None:
    store = IndexStore(tmp_path, "model-a", DIM)
    assert store.search(np.ones(DIM, np.float32), 5) == [[]]


def _damaged_like_two_writers(data_dir) -> list[Item]:
    """A data directory as two writers left it (issue 19): the catalog holds 10 items, but
    the current snapshot holds 5, and the log entries of the other 5 were truncated by the
    second writer's snapshot."""
    items = random_items(10)
    store = IndexStore(data_dir, "model-a", DIM)
    store.add(items[:5])
    store.snapshot()  # seq 5: what the server wrote at shutdown, over the other's
    old_pointer = (data_dir / SNAPSHOT_FILE).read_text()
    old_file = data_dir / json.loads(old_pointer)["file"]
    old_vectors = old_file.read_bytes()
    store.add(items[5:])
    store.snapshot()  # seq 10, log truncated: what `imsearch index` wrote meanwhile
    store.close()
    (data_dir / SNAPSHOT_FILE).write_text(old_pointer)
    old_file.write_bytes(old_vectors)
    for newer in data_dir.glob("vectors-*.faiss"):
        if newer != old_file:
            newer.unlink()
    assert Catalog(data_dir / "catalog.sqlite").ops_since(0) == []
    return items


@pytest.mark.parametrize("readonly", [False, True])
def test_a_damaged_data_dir_is_repaired_when_opened(tmp_path, readonly: bool) -> None:
    items = _damaged_like_two_writers(tmp_path)
    store = IndexStore(tmp_path, readonly=readonly)
    assert len(store) == 10
    for item in items:
        assert store.search(item.vector, 1)[0][0].id == item.ext_id
    pointer = json.loads((tmp_path / SNAPSHOT_FILE).read_text())
    # The writer repairs the snapshot at once; a reader only answers right without writing.
    assert pointer["ntotal"] == (5 if readonly else 10)
    store.close()


def test_a_log_truncated_by_another_writer_is_reconciled_not_lost(tmp_path) -> None:
    """Items another writer added (and deleted) behind this store's back, its snapshot
    having truncated their log entries, are in this store's next snapshot."""
    items = random_items(12)
    store = IndexStore(tmp_path, "model-a", DIM)
    store.add(items[:6])
    # A second writer (an older version without the lock) works on the same catalog.
    other = Catalog(tmp_path / "catalog.sqlite")
    other.upsert(items[6:])
    other.delete(["img0"])
    other.truncate_ops(other.last_seq())
    other.close()

    store.snapshot()
    assert len(store) == 11 and store.search(items[8].vector, 1)[0][0].id == "img8"
    assert "img0" not in [h.id for h in store.search(items[0].vector, 11)[0]]
    store.close()
    reopened = IndexStore(tmp_path, "model-a", DIM)
    assert (
        len(reopened) == 11 and json.loads((tmp_path / SNAPSHOT_FILE).read_text())["ntotal"] == 11
    )

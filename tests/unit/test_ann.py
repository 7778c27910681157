"""Every ANN family: recall against exact search, writes, knobs, fallback and persistence."""

from __future__ import annotations

import numpy as np
import pytest

from imsearch.errors import ConfigError
from imsearch.index.catalog import Item
from imsearch.index.specs import PRESETS, auto_m, auto_nlist, min_train_size, resolve
from imsearch.index.store import IndexStore
from imsearch.index.vectors import SearchKnobs, VectorIndex

DIM = 16
N = 12_000  # enough to train PQ codebooks (39 x 256 points)
WIDE = SearchKnobs(nprobe=64, ef_search=256, k_factor=8)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: nearest neighbours are meaningful, as with images."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIM))
    x = centres[rng.integers(0, 50, n)] + 0.35 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered(N)


@pytest.fixture(scope="module")
def exact_top10(vectors: np.ndarray) -> np.ndarray:
    queries = vectors[:50] + 0.05 * np.random.default_rng(1).normal(size=(50, DIM))
    return np.argsort(-(queries @ vectors.T), axis=1)[:, :10], queries.astype(np.float32)


def recall10(hits: list, truth: np.ndarray) -> float:
    found = [{h.id for h in row} for row in hits]
    return float(
        np.mean([len(f & {f"v{i}" for i in t}) / 10 for f, t in zip(found, truth, strict=True)])
    )


def make_store(tmp_path, vectors: np.ndarray, spec: str) -> IndexStore:
    store = IndexStore(tmp_path / spec, "m", DIM, spec)
    store.add([Item(f"v{i}", v) for i, v in enumerate(vectors)])
    store.snapshot()  # trains and builds the requested family now that the data is in
    return store


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_recall_and_writes(tmp_path, vectors, exact_top10, preset: str) -> None:
    truth, queries = exact_top10
    store = make_store(tmp_path, vectors, preset)
    stats = store.stats()["index"]
    assert stats["fallback"] is None and stats["factory"] == resolve(preset, N, DIM).factory
    hits = store.search(queries, 10, WIDE)
    recall = recall10(hits, truth)
    # PQ codes are lossy by design (4 dimensions per byte here); a refine step restores recall.
    floor = 0.2 if "pq" in preset and "refine" not in preset else 0.9
    assert recall >= floor, f"{preset}: recall@10 {recall:.2f}"

    # Delete: the id disappears and k live results still come back.
    victim = hits[0][0].id
    store.delete([victim])
    after = store.search(queries[:1], 10, WIDE)[0]
    assert victim not in [h.id for h in after] and len(after) == 10
    # Replace: re-adding an id with another vector moves it.
    store.add([Item("v1", vectors[2])])
    near = {h.id: h.score for h in store.search(vectors[2], 10, WIDE)[0]}
    assert near["v1"] == pytest.approx(near["v2"], abs=1e-5)  # same vector, same code
    assert len(store) == N - 1


def test_hnsw_tombstones_persist_and_compact(tmp_path, vectors) -> None:
    store = make_store(tmp_path, vectors[:3000], "hnsw")
    store.delete([f"v{i}" for i in range(100)])
    assert store.stats()["index"]["tombstones"] == 100
    store.close()
    reopened = IndexStore(tmp_path / "hnsw", "m", DIM, "hnsw")
    assert reopened.stats()["index"]["tombstones"] == 100
    found = {h.id for h in reopened.search(vectors[:100], 5, WIDE)[0]}
    assert not found & {f"v{i}" for i in range(100)}
    reopened.delete([f"v{i}" for i in range(100, 400)])  # past 10%: compacted at snapshot
    reopened.snapshot()
    assert reopened.stats()["index"]["tombstones"] == 0
    assert reopened.stats()["index"]["ntotal"] == 2600


def test_small_collection_falls_back_to_exact_then_promotes(tmp_path, vectors) -> None:
    store = IndexStore(tmp_path, "m", DIM, "ivf-pq")
    store.add([Item(f"v{i}", v) for i, v in enumerate(vectors[:500])])
    store.snapshot()
    info = store.stats()["index"]
    assert info["factory"] == "Flat" and "needs at least" in info["fallback"]
    assert store.search(vectors[7], 1)[0][0].id == "v7"
    store.add([Item(f"v{i}", v) for i, v in enumerate(vectors[500:], start=500)])
    store.snapshot()
    info = store.stats()["index"]
    assert info["fallback"] is None and info["factory"].startswith("IVF")
    assert info["trained_on"] >= 9984


def test_knobs_trade_recall_for_speed(tmp_path, vectors, exact_top10) -> None:
    truth, queries = exact_top10
    store = make_store(tmp_path, vectors, "ivf-flat")

    def recall(knobs: SearchKnobs) -> float:
        return recall10(store.search(queries, 10, knobs), truth)

    assert recall(SearchKnobs(nprobe=1)) < recall(SearchKnobs(nprobe=64)) == pytest.approx(1.0)


def test_readonly_replica_maps_the_snapshot(tmp_path, vectors) -> None:
    store = make_store(tmp_path, vectors[:2000], "exact")
    replica = IndexStore(tmp_path / "exact", readonly=True)
    assert replica.search(vectors[5], 1)[0][0].id == "v5"
    with pytest.raises(ConfigError, match="read-only"):
        replica.add([Item("x", vectors[0])])
    store.add([Item("late", vectors[9])])  # in the log only: a new replica replays it
    top2 = IndexStore(tmp_path / "exact", readonly=True).search(vectors[9], 2)[0]
    assert {h.id for h in top2} == {"late", "v9"}


def test_spec_resolution() -> None:
    assert auto_nlist(1_000_000) == 4096 and auto_nlist(1000) == 1000 // 39
    assert auto_m(320) == 80 and auto_m(352) == 88 and 30 % auto_m(30) == 0
    assert resolve("pq", 10, DIM).factory == f"PQ{DIM // 4}"
    resolved = resolve("opq-ivf-pq", 100_000, 320)
    assert resolved.factory == "OPQ40,IVF1024,PQ40"
    assert min_train_size(resolved, True) == 39 * 1024
    assert resolve("IVF256,PQ16", 10, 64).nlist == 256
    with pytest.raises(ConfigError):
        resolve("PQ7", 10, 32)
    with pytest.raises(ConfigError):
        VectorIndex(32, "Nonsense42")


def test_auto_spec_is_exact_for_small_collections(monkeypatch) -> None:
    from imsearch.index import specs

    assert specs.resolve("auto", 1000, 32).factory == "Flat"
    assert specs.resolve("auto", specs.AUTO_EXACT_MAX, 32).factory == specs.PRESETS["hnsw"]
    assert specs.resolve("auto", 10, 32).requested == "auto"


def test_auto_spec_switches_family_as_the_collection_grows(tmp_path, vectors, monkeypatch) -> None:
    from imsearch.index import specs

    monkeypatch.setattr(specs, "AUTO_EXACT_MAX", 1000)
    store = IndexStore(tmp_path, "m", DIM, "auto")
    store.add([Item(f"v{i}", v) for i, v in enumerate(vectors[:500])])
    store.snapshot()
    assert store.stats()["index"]["factory"] == "Flat"
    store.add([Item(f"v{i}", v) for i, v in enumerate(vectors[500:1500], start=500)])
    store.snapshot()
    assert store.stats()["index"]["factory"].startswith("HNSW")
    assert store.search(vectors[1200], 1, WIDE)[0][0].id == "v1200"

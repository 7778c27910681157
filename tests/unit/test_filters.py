"""Metadata filters: the SQL against the Python reference, and filtered ANN search against an
exhaustive filtered search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsearch.errors import ConfigError
from imsearch.index.catalog import Catalog, Item
from imsearch.index.filters import parse_filter
from imsearch.index.store import FILTER_EXACT_MAX, IndexStore
from imsearch.settings import Settings

FIELDS = ["brand", "year", "tags", "price", "meta.room", "flag"]
SCALARS = st.one_of(
    st.sampled_from(["acme", "globex", "initech", "", "Acme", "a b"]),
    st.integers(-5, 2030),
    st.floats(-100, 100, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


def _value() -> st.SearchStrategy[object]:
    return st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.just("x"), SCALARS))


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=5)):
        head, _, rest = name.partition(".")
        if rest:
            out.setdefault(head, {})
            if isinstance(out[head], dict):
                out[head][rest] = draw(_value())  # type: ignore[index]
        else:
            out[head] = draw(_value())
    return out


def _condition(draw: st.DrawFn) -> object:
    op = draw(st.sampled_from(["value", "eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "ex"]))
    if op == "value":
        return draw(SCALARS)
    if op in ("in", "nin"):
        return {op: draw(st.lists(SCALARS, min_size=1, max_size=3))}
    if op == "ex":
        return {"exists": draw(st.booleans())}
    if op in ("gt", "gte", "lt", "lte"):
        bound = draw(st.one_of(st.integers(-5, 2030), st.sampled_from(["acme", "h", ""])))
        return {op: bound}
    return {op: draw(SCALARS)}


@st.composite
def filters(draw: st.DrawFn, depth: int = 0) -> dict[str, object]:
    kind = draw(st.sampled_from(["field", "field", "and", "or", "not"] if depth < 2 else ["field"]))
    if kind == "field":
        names = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2, unique=True))
        return {name: _condition(draw) for name in names}
    if kind == "not":
        return {"not": draw(filters(depth + 1))}
    return {kind: draw(st.lists(filters(depth + 1), min_size=1, max_size=3))}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return Catalog(tmp_path_factory.mktemp("filters") / "catalog.sqlite")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(metadata(), min_size=1, max_size=12), where=filters())
def test_sql_selects_exactly_what_the_reference_does(
    catalog: Catalog, records: list[dict[str, object]], where: dict[str, object]
) -> None:
    catalog.delete(catalog.hashes_by_id())
    items = [Item(f"i{i}", np.zeros(4, np.float32), None, m) for i, m in enumerate(records)]
    ids = catalog.upsert(items)
    parsed = parse_filter(json.dumps(where))
    assert parsed is not None
    by_int = dict(zip(ids, records, strict=True))
    expected = sorted(i for i, meta in by_int.items() if parsed.matches(meta))
    assert catalog.matching(parsed).tolist() == expected


def test_the_documented_semantics() -> None:
    record = {"brand": "acme", "year": 1994, "tags": ["red", "round"], "on_loan": True, "n": None}
    assert parse_filter('{"brand": "acme", "year": {"gte": 1990, "lt": 2000}}').matches(record)
    assert parse_filter('{"tags": "red"}').matches(record)  # any element of a list
    assert not parse_filter('{"on_loan": 1}').matches(record)  # true is not 1
    assert parse_filter('{"missing": {"ne": "x"}}').matches(record)  # complements hold
    assert not parse_filter('{"n": {"exists": true}}').matches(record)  # null is not there
    assert parse_filter('{"or": [{"brand": "x"}, {"not": {"year": {"lt": 1990}}}]}').matches(record)
    assert not parse_filter('{"year": {"gt": "1990"}}').matches(record)  # bounds keep their type
    assert parse_filter("") is None and parse_filter("{}") is None


@pytest.mark.parametrize(
    "text",
    [
        "[1]",
        "{not json",
        '{"a": {"between": [1, 2]}}',
        '{"a": {"in": []}}',
        '{"a": {"gt": true}}',
        '{"a b": 1}',
        '{"and": {}}',
        '{"a": {"eq": [1]}}',
        '{"a": {"exists": "yes"}}',
        '{"a": {}}',
        "DEEP",
        json.dumps({f"f{i}": i for i in range(70)}),
    ],
)
def test_bad_filters_are_config_errors(text: str) -> None:
    if text == "DEEP":
        deep: dict[str, object] = {"a": 1}
        for _ in range(10):
            deep = {"or": [deep]}
        text = json.dumps(deep)
    with pytest.raises(ConfigError):
        parse_filter(text)


# -- filtered search ------------------------------------------------------------------------------


def _store(root: Path, spec: str, n: int, dim: int = 32) -> tuple[IndexStore, np.ndarray]:
    """A store of ``n`` clustered unit vectors; image i has metadata shop = i % 100."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(64, dim))
    vectors = centres[rng.integers(0, 64, n)] + 0.3 * rng.normal(size=(n, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    store = IndexStore(root, "model-x", dim, spec)
    store.add([Item(f"i{i}", vectors[i], None, {"shop": i % 100}) for i in range(n)])
    store.snapshot()  # builds the requested family (trained ones once big enough)
    return store, vectors


def _exhaustive(
    vectors: np.ndarray, queries: np.ndarray, keep: np.ndarray, k: int
) -> list[set[str]]:
    scores = queries @ vectors[keep].T
    top = np.argsort(-scores, axis=1)[:, :k]
    return [{f"i{keep[j]}" for j in row} for row in top]


#: Families that keep vectors whole, and those that compress them (PQ loses recall with or
#: without a filter: there the filter must not lose more than 5 % of the unfiltered recall).
WHOLE, COMPRESSED = ("exact", "hnsw", "ivf-flat"), ("ivf-pq", "pq")
N = 20_000


@pytest.fixture(scope="module", params=WHOLE + COMPRESSED)
def indexed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    store, vectors = _store(tmp_path_factory.mktemp(request.param), request.param, N)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(N, 50, replace=False)] + 0.05 * rng.normal(size=(50, 32))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    yield request.param, store, vectors, queries
    store.close()


def _recall(found: list[list[object]], truth: list[set[str]], k: int) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len({h.id for h in hits} & t) / k for hits, t in pairs]))  # type: ignore[attr-defined]


@pytest.mark.parametrize("shops", [1, 30])  # 1 % (searched exactly) and 30 % (inside FAISS)
def test_filtered_search_keeps_to_the_filter_and_finds_what_exhaustive_search_does(
    indexed: tuple[str, IndexStore, np.ndarray, np.ndarray], shops: int
) -> None:
    spec, store, vectors, queries = indexed
    k, knobs = 10, Settings().search_knobs()  # the served knobs
    where = parse_filter(json.dumps({"shop": {"in": list(range(shops))}}))
    assert where is not None
    keep = np.array([i for i in range(N) if i % 100 < shops])
    assert (len(keep) <= FILTER_EXACT_MAX) == (shops == 1)
    found = store.search(queries, k, knobs, where)
    allowed = {f"i{i}" for i in keep}
    assert all(len(hits) == k and {h.id for h in hits} <= allowed for hits in found)
    recall = _recall(found, _exhaustive(vectors, queries, keep, k), k)
    if spec in WHOLE or shops == 1:
        assert recall >= 0.95, f"{spec} at {shops} %: recall@10 {recall:.3f}"
    else:
        unfiltered = _recall(
            store.search(queries, k, knobs), _exhaustive(vectors, queries, np.arange(N), k), k
        )
        assert recall >= 0.95 * unfiltered, f"{spec}: {recall:.3f} filtered, {unfiltered:.3f}"


def test_a_filter_follows_writes(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, "model-x", 4)
    vector = np.array([1, 0, 0, 0], np.float32)
    store.add([Item("a", vector, None, {"shop": 1}), Item("b", vector, None, {"shop": 2})])
    where = parse_filter('{"shop": 1}')
    assert [h.id for h in store.search(vector[None], 5, where=where)[0]] == ["a"]
    store.add([Item("c", vector, None, {"shop": 1})])  # a write: the cached ids are stale
    assert {h.id for h in store.search(vector[None], 5, where=where)[0]} == {"a", "c"}
    store.delete(["a"])
    assert [h.id for h in store.search(vector[None], 5, where=where)[0]] == ["c"]
    assert store.search(vector[None], 5, where=parse_filter('{"shop": 9}'))[0] == []
    store.close()

"""Choosing the part of a dataset an evaluation runs on (held-out splits, absent objects)."""

from __future__ import annotations

from imsearch.evaluate.datasets import load_dataset
from imsearch.evaluate.runner import select
from tests.conftest import MINI


def test_select_keeps_a_held_out_split_with_its_ground_truth() -> None:
    full = load_dataset(MINI)
    split = select(full, only_db=("ref_00[4-6]", "wall_*"), only_queries=("*_00[4-6]",))
    assert split.database_ids == [
        "ref_004",
        "ref_005",
        "ref_006",
        *[i for i in full.database_ids if i.startswith("wall_")],
    ]
    assert sorted(q.id for q in split.queries) == ["canon_004", "canon_006", "droid_005"]
    for query in split.queries:  # each positive still points at its own cover
        assert [split.database_ids[i] for i in query.gt.ok] == [f"ref_{query.id[-3:]}"]


def test_excluded_covers_turn_their_queries_into_no_match_queries() -> None:
    split = select(load_dataset(MINI), exclude_db=("ref_001",))
    assert "ref_001" not in split.database_ids
    canon = next(q for q in split.queries if q.id == "canon_001")
    assert canon.gt.ok == [] and len(split.queries) == 6
    assert select(load_dataset(MINI)) == load_dataset(MINI)

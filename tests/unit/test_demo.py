"""The bundled demo collection comes from scikit-image's installed sample photos."""

from __future__ import annotations

from imsearch.demo import DEMO_IMAGES, export_demo_collection
from imsearch.images import load_image


def test_demo_collection_and_queries(tmp_path) -> None:
    written = export_demo_collection(tmp_path)
    collection = sorted((tmp_path / "collection").glob("*.jpg"))
    queries = sorted((tmp_path / "queries").glob("*.jpg"))
    assert len(collection) == len(DEMO_IMAGES) >= 20 and len(queries) == 5
    assert len(written) == len(collection) + len(queries)
    assert load_image(tmp_path / "queries" / "coffee_rotated.jpg").mode == "RGB"
    again = export_demo_collection(tmp_path)  # idempotent: existing files are kept
    assert sorted(again) == sorted(written)

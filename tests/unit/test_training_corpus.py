"""The shipped model's training images: chosen by rule, and never an image of a benchmark."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imsearch.images import list_images
from imsearch.train.corpus import dhash, exclusions, read_listing, select, write

ROOT = Path(__file__).resolve().parents[2]
LISTING = ROOT / "docs" / "training" / "default-model-images.tsv.gz"
SHARED = ROOT.parent / "shared" / "data"


def scene(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def test_rules_keep_distinct_informative_images_apart_from_the_benchmarks(tmp_path: Path) -> None:
    pkg, bench = tmp_path / "src" / "pkg-a", tmp_path / "bench"
    pkg.mkdir(parents=True)
    bench.mkdir()
    scene(1).save(pkg / "one.png")
    scene(1, (640, 480)).save(pkg / "one-larger.jpg", quality=90)  # a near copy
    scene(2).save(pkg / "two.png")
    scene(3).save(bench / "b.png")
    scene(3).save(pkg / "from-bench.png")  # an exact copy of a benchmark image
    scene(4, (600, 450)).save(pkg / "bench-resized.jpg")
    scene(4).save(bench / "c.jpg")  # ... and a near copy of one
    Image.new("RGB", (300, 300), (0, 0, 0)).save(pkg / "black.png")  # nothing to recognise
    scene(5, (100, 80)).save(pkg / "tiny.png")
    chosen = select(tmp_path / "src", exclusions([bench]))
    assert sorted(p.name for p, _ in chosen) == ["one-larger.jpg", "two.png"]

    listing = tmp_path / "list.tsv.gz"
    write(chosen, tmp_path / "out", listing)
    entries = read_listing(listing)
    assert [(e.package, e.path) for e in entries] == [
        ("pkg-a", "one-larger.jpg"),
        ("pkg-a", "two.png"),
    ]
    linked = list_images(tmp_path / "out")
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in linked] == [
        e.sha256 for e in entries
    ]


def test_the_difference_hash_survives_resizing_not_other_content() -> None:
    a, b, c = dhash(scene(7)), dhash(scene(7, (900, 700))), dhash(scene(8))
    assert bin(a ^ b).count("1") <= 6 < bin(a ^ c).count("1")


def test_the_shipped_training_set_holds_no_image_of_the_benchmarks() -> None:
    """Exact copies by SHA-256 against every file of ../shared/data, where it is present."""
    entries = read_listing(LISTING)
    assert len(entries) > 1000 and len({e.sha256 for e in entries}) == len(entries)
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not on this machine: the listing alone was checked")
    benchmark = {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in SHARED.rglob("*") if p.is_file()
    }
    assert len(benchmark) > 5000
    assert not benchmark & {e.sha256 for e in entries}

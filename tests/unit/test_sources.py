"""What a run indexes: a folder's images or a manifest's entries, and their ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from imsearch.errors import ConfigError
from imsearch.indexing import read_source
from imsearch.sources import manifest_files, read_location, source_files


def _tree(root: Path) -> Path:
    (root / "shop" / "covers").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    for name in ("shop/covers/a.jpg", "shop/b.png", "elsewhere/c.jpg"):
        (root / name).write_bytes(name.encode())
    return root / "shop"


def test_a_text_manifest_lists_paths_relative_to_itself(tmp_path: Path) -> None:
    shop = _tree(tmp_path.resolve())
    outside = (tmp_path / "elsewhere" / "c.jpg").as_posix()
    (shop / "list.txt").write_text(
        f"# covers\n\ncovers/a.jpg\nb.png\tsku-17\n{outside}\n", encoding="utf-8"
    )
    files = manifest_files(str(shop / "list.txt"))
    assert [(str(p), i, s) for p, i, s in files] == [
        (str(shop / "covers/a.jpg"), "covers/a", "covers/a.jpg"),
        (str(shop / "b.png"), "sku-17", "b.png"),  # the id the manifest gives wins
        (outside, outside.lstrip("/").removesuffix(".jpg"), outside),
    ]
    assert [i for _, i, _ in manifest_files(str(shop / "list.txt"), "stem")] == [
        "a", "sku-17", "c",
    ]  # fmt: skip
    assert [i for _, i, _ in manifest_files(str(shop / "list.txt"), "sha256")] == [
        None, "sku-17", None,
    ]  # fmt: skip


def test_a_csv_manifest_has_path_and_id_columns(tmp_path: Path) -> None:
    shop = _tree(tmp_path.resolve())
    (shop / "list.csv").write_text("id,path,title\nx1,covers/a.jpg,A\n,b.png,B\n")
    files = manifest_files(str(shop / "list.csv"))
    assert [i for _, i, _ in files] == ["x1", "b"]
    (shop / "bad.csv").write_text("file,id\ncovers/a.jpg,x\n")
    with pytest.raises(ConfigError, match="'path' column"):
        manifest_files(str(shop / "bad.csv"))


def test_a_folder_or_a_manifest(tmp_path: Path) -> None:
    shop = _tree(tmp_path.resolve())
    assert [i for _, i, _ in source_files(shop)] == ["b", "covers/a"]
    (shop / "list.txt").write_text("covers/a.jpg\n")
    assert [i for _, i, _ in source_files(shop / "list.txt")] == ["covers/a"]
    with pytest.raises(ConfigError, match="cannot read the manifest"):
        source_files(shop / "missing.txt")
    with pytest.raises(ConfigError, match="is an image"):
        source_files(shop / "b.png")
    (shop / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="lists no images"):
        source_files(shop / "empty.txt")


def test_a_manifest_at_a_url_lists_urls(tmp_path: Path) -> None:
    shop = _tree(tmp_path.resolve())
    (shop / "list.txt").write_text("covers/a.jpg\nnot-there.jpg\n")
    files = manifest_files((shop / "list.txt").as_uri())
    location, ext_id, shown = files[0]
    assert location == (shop / "covers/a.jpg").as_uri() and shown == "covers/a.jpg"
    assert ext_id == (shop / "covers/a").as_posix().lstrip("/")  # the URL without scheme
    assert read_location(location) == b"shop/covers/a.jpg"
    loaded, data = read_source(*files[0])
    assert data == b"shop/covers/a.jpg" and not loaded.error and loaded.shown == "covers/a.jpg"
    missing, nothing = read_source(*files[1])  # reported, never raised
    assert missing.error.startswith("unreadable") and nothing == b""


def test_unknown_schemes_are_unreadable_not_fatal() -> None:
    loaded, data = read_source("nosuchscheme://host/a.jpg", "a", "nosuchscheme://host/a.jpg")
    assert loaded.error.startswith("unreadable") and data == b""

"""What a bulk run indexes: the images under a folder, or those a manifest lists.

A manifest is a text file (local, or anything fsspec reads: ``s3://…``, ``https://…``) that
lists one image per line — a path or URL, optionally followed by a tab and the image's id;
blank lines and lines starting with ``#`` are skipped. A ``.csv`` manifest has a header row
with a ``path`` column and an optional ``id`` column. Relative entries are relative to the
manifest's own folder (or URL).

Ids follow the run's ``--ids`` mode unless the manifest gives one: ``relpath`` is the entry's
path under the manifest's folder without its extension (for any other entry: the location
without its scheme, query and extension, so ``s3://shop/covers/a.jpg`` is ``shop/covers/a``),
``stem`` the file name without extension, ``sha256`` the content hash.
"""

from __future__ import annotations

import csv
import io
import posixpath
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin, urlsplit

from imsearch.errors import ConfigError
from imsearch.images import IMAGE_EXTENSIONS, list_images

IdMode = Literal["relpath", "stem", "sha256"]
#: Where an image is: a local file, or a URL fsspec reads.
Location = Path | str
#: An image to index: where it is, its id (None: its content hash) and how reports show it.
SourceFile = tuple[Location, str | None, Location]


def image_id(path: Path, root: Path, mode: IdMode = "relpath") -> str:
    """The external id of ``path``: its path under ``root`` without extension, by default.

    ``stem`` keeps only the file name without extension; ``sha256`` (the content hash) is
    resolved when the file is read.
    """
    if mode == "stem":
        return path.stem
    return path.relative_to(root).with_suffix("").as_posix()


def shown(location: Location) -> str:
    """A location as reports and metadata show it."""
    return location.as_posix() if isinstance(location, Path) else location


def is_url(location: str) -> bool:
    return "://" in location


def source_files(source: str | Path, id_mode: IdMode = "relpath") -> list[SourceFile]:
    """The images of ``source``: a folder's (recursive) or a manifest's."""
    if not is_url(str(source)) and Path(source).is_dir():
        return folder_files(source, id_mode)
    return manifest_files(str(source), id_mode)


def folder_files(root: str | Path, id_mode: IdMode = "relpath") -> list[SourceFile]:
    """Every image under ``root`` as ``(path, id, shown path)``; the id is None for
    ``sha256`` ids (known once the file is read)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    return [
        (
            path,
            None if id_mode == "sha256" else image_id(path, root, id_mode),
            path.relative_to(root),
        )
        for path in list_images(root)
    ]


def manifest_files(manifest: str, id_mode: IdMode = "relpath") -> list[SourceFile]:
    """The images a manifest lists (see the module's doc), in its order."""
    if posixpath.splitext(urlsplit(manifest).path)[1].lower() in IMAGE_EXTENSIONS:
        raise ConfigError(f"{manifest} is an image: give a folder of images or a manifest")
    try:
        text = read_location(manifest if is_url(manifest) else Path(manifest)).decode("utf-8")
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot read the manifest {manifest}: {exc}") from exc
    entries = _csv_entries(text) if manifest.lower().endswith(".csv") else _text_entries(text)
    if not entries:
        raise ConfigError(f"the manifest {manifest} lists no images")
    if is_url(manifest):
        base = manifest.rsplit("/", 1)[0] + "/"
        return [_url_entry(urljoin(base, entry), entry, i, id_mode) for entry, i in entries]
    folder = Path(manifest).resolve().parent
    return [_entry(folder, entry, i, id_mode) for entry, i in entries]


def _text_entries(text: str) -> list[tuple[str, str | None]]:
    entries: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        location, _, given = line.rstrip("\r").partition("\t")
        entries.append((location.strip(), given or None))
    return entries


def _csv_entries(text: str) -> list[tuple[str, str | None]]:
    rows = csv.DictReader(io.StringIO(text))
    if "path" not in (rows.fieldnames or []):
        raise ConfigError("a .csv manifest needs a header row with a 'path' column")
    return [(row["path"].strip(), (row.get("id") or None)) for row in rows if row["path"]]


def _entry(folder: Path, entry: str, given: str | None, id_mode: IdMode) -> SourceFile:
    if is_url(entry):
        return _url_entry(entry, entry, given, id_mode)
    path = folder / entry
    if given is not None or id_mode == "sha256":
        return path, given, entry
    if id_mode == "stem":
        return path, path.stem, entry
    try:
        return path, image_id(path, folder), entry
    except ValueError:  # not under the manifest's folder: the path without its extension
        return path, str(path.with_suffix("")).lstrip("/"), entry


def _url_entry(url: str, entry: str, given: str | None, id_mode: IdMode) -> SourceFile:
    if given is not None or id_mode == "sha256":
        return url, given, entry
    parts = urlsplit(url)
    stem = posixpath.splitext(parts.path)[0]
    if id_mode == "stem":
        return url, posixpath.basename(stem), entry
    return url, (parts.netloc + stem).strip("/"), entry


def read_location(location: Location) -> bytes:
    """The bytes at ``location``: a local file, or a URL through fsspec (its backends — s3fs,
    gcsfs, aiohttp for http — installed as needed). Raises OSError, ValueError or
    ImportError when it cannot."""
    if isinstance(location, Path):
        return location.read_bytes()
    import fsspec

    with fsspec.open(location, "rb") as handle:
        return bytes(handle.read())

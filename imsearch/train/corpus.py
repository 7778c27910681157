"""The shipped model's training images: chosen from unpacked Debian packages, never a benchmark.

    python -m imsearch.train.corpus ROOT --out FOLDER --list LIST.tsv [--exclude DATA ...]

``ROOT`` holds one folder per unpacked package (``make default-model`` fills it with
``apt-get download`` + ``dpkg-deb -x``). An image is kept when it decodes, both sides are at
least ``min_side`` pixels, it is :func:`informative`, its folder has not given
``PER_FOLDER`` images yet, and it is neither an exact copy (SHA-256) nor a near copy (a 64-bit
difference hash within ``max_hamming`` bits) of an image already kept or of any image under the
``--exclude`` folders (the benchmarks: ``../shared/data``). Kept images are linked into
``FOLDER/<package>/…``; ``LIST.tsv`` records package, path, size and SHA-256 of each — what the
test that keeps the training set apart from the benchmarks reads.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from imsearch.errors import InvalidImage
from imsearch.images import IMAGE_EXTENSIONS, ImageLimits, decode_image

#: Hamming distance (of 64 bits) under which two difference hashes are the same picture.
NEAR_COPY_BITS = 6
#: At most this many images from one folder: a package's 500 star fields or tiles would
#: otherwise outnumber everything else.
PER_FOLDER = 300


@dataclass(frozen=True)
class Entry:
    package: str
    path: str
    width: int
    height: int
    sha256: str


def dhash(img: Image.Image) -> int:
    """A 64-bit difference hash: survives resizing and re-encoding, not cropping."""
    grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def informative(img: Image.Image) -> bool:
    """Enough to recognise: not a near-empty star field, a flat fill or a faint mask."""
    grey = np.asarray(img.convert("L").resize((64, 64), Image.Resampling.BILINEAR), np.float32)
    extreme = float(((grey < 20) | (grey > 240)).mean())
    edges = float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())
    return grey.std() >= 25 and extreme < 0.6 and edges >= 6


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(root):
        for name in sorted(names):
            path = Path(dirpath) / name
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                yield path


def _read(path: Path) -> tuple[Image.Image, str] | None:
    data = path.read_bytes()
    try:
        img = decode_image(data, ImageLimits(max_pixels=80_000_000))
    except InvalidImage:
        return None
    return img, hashlib.sha256(data).hexdigest()


class _Seen:
    """Exact and near copies already met."""

    def __init__(self) -> None:
        self.sha: set[str] = set()
        self.hashes: list[int] = []

    def add(self, sha: str, h: int) -> None:
        self.sha.add(sha)
        self.hashes.append(h)

    def near(self, h: int) -> bool:
        if not self.hashes:
            return False
        known = np.array(self.hashes, dtype=np.uint64)
        diff = np.bitwise_xor(known, np.uint64(h))
        bits = np.unpackbits(diff.view(np.uint8)).reshape(len(known), 64).sum(axis=1)
        return bool(bits.min() <= NEAR_COPY_BITS)


def exclusions(folders: Iterable[Path]) -> _Seen:
    """Every image under ``folders`` (the benchmarks), by SHA-256 and difference hash."""
    seen = _Seen()
    for folder in folders:
        for path in _files(folder):
            read = _read(path)
            if read is not None:
                seen.add(read[1], dhash(read[0]))
    return seen


def select(root: Path, excluded: _Seen, min_side: int = 256) -> list[tuple[Path, Entry]]:
    kept = _Seen()
    out = []
    for package in sorted(p for p in root.iterdir() if p.is_dir()):
        per_folder: dict[Path, int] = {}
        for path in _files(package):
            if per_folder.get(path.parent, 0) >= PER_FOLDER:
                continue
            read = _read(path)
            if read is None or min(read[0].size) < min_side or not informative(read[0]):
                continue
            img, sha = read
            h = dhash(img)
            if sha in excluded.sha or sha in kept.sha or excluded.near(h) or kept.near(h):
                continue
            kept.add(sha, h)
            per_folder[path.parent] = per_folder.get(path.parent, 0) + 1
            rel = path.relative_to(package).as_posix()
            out.append((path, Entry(package.name, rel, img.width, img.height, sha)))
    return out


def write(chosen: list[tuple[Path, Entry]], out: Path, listing: Path) -> None:
    lines = ["package\tpath\twidth\theight\tsha256"]
    for path, e in chosen:
        link = out / e.package / e.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path.resolve())
        lines.append(f"{e.package}\t{e.path}\t{e.width}\t{e.height}\t{e.sha256}")
    text = "\n".join(lines) + "\n"
    listing.parent.mkdir(parents=True, exist_ok=True)
    if listing.suffix == ".gz":
        listing.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        listing.write_text(text)


def read_listing(listing: Path) -> list[Entry]:
    raw = listing.read_bytes()
    text = (gzip.decompress(raw) if listing.suffix == ".gz" else raw).decode()
    rows = [line.split("\t") for line in text.splitlines()[1:] if line]
    return [Entry(p, path, int(w), int(h), sha) for p, path, w, h, sha in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--list", dest="listing", type=Path, required=True)
    parser.add_argument("--exclude", type=Path, action="append", default=[])
    parser.add_argument("--min-side", type=int, default=256)
    args = parser.parse_args()
    excluded = exclusions(args.exclude)
    chosen = select(args.root, excluded, args.min_side)
    write(chosen, args.out, args.listing)
    by_package: dict[str, int] = {}
    for _, e in chosen:
        by_package[e.package] = by_package.get(e.package, 0) + 1
    print(f"{len(chosen)} images ({len(excluded.sha)} excluded images known)")
    for name, count in sorted(by_package.items()):
        print(f"  {name}: {count}")


if __name__ == "__main__":
    main()

"""The local-feature store: append-only segment files, read by reference from any process.

Local features are the bulk of a collection (tens of kilobytes per image, against ~1 KB of
global descriptor), are written once, and are read a few at a time — the candidates of a
query being verified. So they live outside the catalog, in segment files under
``<data_dir>/features/``::

    seg-000001.lsf   8-byte header, then records: u32 length, u32 crc32, payload
    seg-000002.lsf   a new segment once the last one reaches SEGMENT_BYTES

A :class:`FeatureRef` (segment, offset, length) names one payload. The writer appends and
fsyncs *before* the catalog commits the references, so every reference a reader can see
points at durable bytes; bytes of an add that crashed before its commit are never referenced.
Readers need only the segment files — a shared volume, or any fsspec URL (``s3://…``) — and
the reference, which the search service hands out with each candidate: a rerank worker keeps
no copy of the collection. Each read checks the record's CRC.

Why not a database or a columnar file: features are immutable blobs fetched by key in
batches of ~20; an offset table (here: the catalog's ``features`` table) plus ``pread`` is the
least machinery that does that from any number of processes, and it maps onto object storage
range reads unchanged. Lance would give the same random access with Arrow and a manifest
format on top; nothing here needs its columns or versions.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imsearch.errors import LocalFeatureError
from imsearch.fsutil import fsync_path

FEATURES_DIR = "features"
#: A new segment starts once the current one reaches this size.
SEGMENT_BYTES = 1 << 30
#: No image's features come near this (10,000 keypoints are 1.4 MB): a larger reference is
#: not one this store wrote.
MAX_RECORD_BYTES = 16 << 20
_FILE_MAGIC = b"IMSF\x01\x00\x00\x00"
_RECORD = struct.Struct("<II")  # payload length, crc32 of the payload


@dataclass(frozen=True)
class FeatureRef:
    """Where one image's serialized local features are: segment number, byte offset and
    length of the payload."""

    segment: int
    offset: int
    length: int


def segment_name(segment: int) -> str:
    return f"seg-{segment:06d}.lsf"


class FeatureWriter:
    """Appends payloads to the newest segment of ``root`` (only the data directory's writer)."""

    def __init__(self, root: str | Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        existing = sorted(int(p.stem.split("-")[1]) for p in self.root.glob("seg-*.lsf"))
        self._segment = existing[-1] if existing else 1

    def append(self, payloads: Sequence[bytes]) -> list[FeatureRef]:
        """Write ``payloads`` durably; returns their references, in order."""
        if not payloads:
            return []
        with self._lock:
            path = self._current(sum(_RECORD.size + len(p) for p in payloads))
            refs: list[FeatureRef] = []
            with open(path, "ab") as fh:
                offset = fh.tell()
                chunks: list[bytes] = []
                for payload in payloads:
                    chunks.append(_RECORD.pack(len(payload), zlib.crc32(payload)))
                    chunks.append(payload)
                    offset += _RECORD.size
                    refs.append(FeatureRef(self._segment, offset, len(payload)))
                    offset += len(payload)
                fh.write(b"".join(chunks))
                fh.flush()
                os.fsync(fh.fileno())
            return refs

    def _current(self, incoming: int) -> Path:
        path = self.root / segment_name(self._segment)
        size = path.stat().st_size if path.exists() else 0
        if size and size + incoming > self.segment_bytes:
            self._segment += 1
            path, size = self.root / segment_name(self._segment), 0
        if size == 0:
            with open(path, "wb") as fh:
                fh.write(_FILE_MAGIC)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_path(self.root)
        return path

    def new_segment(self) -> None:
        """Write what comes next into a segment of its own (a migration, so the segments it
        leaves behind hold nothing that is still referenced)."""
        with self._lock:
            path = self.root / segment_name(self._segment)
            if path.exists() and path.stat().st_size > len(_FILE_MAGIC):
                self._segment += 1

    def remove(self, segments: Sequence[int]) -> int:
        """Delete ``segments`` (none of them the one written to); the bytes freed."""
        freed = 0
        with self._lock:
            for segment in segments:
                path = self.root / segment_name(segment)
                if segment != self._segment and path.exists():
                    freed += path.stat().st_size
                    path.unlink()
        fsync_path(self.root)
        return freed

    def sizes(self) -> dict[str, int]:
        return {p.name: p.stat().st_size for p in sorted(self.root.glob("seg-*.lsf"))}


class FeatureReader:
    """Reads payloads by reference from a local folder or an fsspec URL; thread-safe."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        self.root = text
        self._fs: Any = None
        if "://" in text and not text.startswith("file://"):
            import fsspec  # only for remote stores

            self._fs, self._path = fsspec.core.url_to_fs(text)
        else:
            self._path = text.removeprefix("file://")
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def read(self, refs: Sequence[FeatureRef]) -> list[bytes]:
        return [self._read_one(ref) for ref in refs]

    def read_many(self, refs: dict[int, FeatureRef]) -> dict[int, bytes]:
        """The payloads of ``refs`` under the same keys."""
        return {key: self._read_one(ref) for key, ref in refs.items()}

    def _read_one(self, ref: FeatureRef) -> bytes:
        if ref.length > MAX_RECORD_BYTES or ref.offset < len(_FILE_MAGIC) + _RECORD.size:
            raise LocalFeatureError(
                f"no local features at {segment_name(ref.segment)}:{ref.offset}"
            )
        start = ref.offset - _RECORD.size
        data = self._range(ref.segment, start, _RECORD.size + ref.length)
        if len(data) < _RECORD.size + ref.length:
            # A file opened before the writer grew it may show its old size (NFS): reopen.
            self._forget(ref.segment)
            data = self._range(ref.segment, start, _RECORD.size + ref.length)
        length, crc = _RECORD.unpack_from(data) if len(data) >= _RECORD.size else (-1, 0)
        payload = data[_RECORD.size :]
        if length != ref.length or len(payload) != ref.length or zlib.crc32(payload) != crc:
            raise LocalFeatureError(
                f"local features at {segment_name(ref.segment)}:{ref.offset} are missing or corrupt"
            )
        return bytes(payload)

    def _range(self, segment: int, start: int, size: int) -> bytes:
        name = segment_name(segment)
        if self._fs is not None:
            return bytes(self._fs.cat_file(f"{self._path}/{name}", start, start + size))
        try:
            return os.pread(self._fd(segment, name), size, start)
        except FileNotFoundError:
            return b""

    def _fd(self, segment: int, name: str) -> int:
        with self._lock:
            fd = self._fds.get(segment)
            if fd is None:
                fd = self._fds[segment] = os.open(os.path.join(self._path, name), os.O_RDONLY)
            return fd

    def _forget(self, segment: int) -> None:
        with self._lock:
            fd = self._fds.pop(segment, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)

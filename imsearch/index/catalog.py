"""The catalog: the durable source of truth of a collection (SQLite).

It holds, per image, the external id, the int64 id used inside FAISS, the content hash, the
metadata, the descriptor itself, a thumbnail, where its local features are in the feature
store and its visual words, plus an append-only log of adds and deletes. A write is
acknowledged only after its transaction commits with ``synchronous=FULL``, so it survives a crash;
the FAISS index is a snapshot that is brought up to date by replaying the log (see
:mod:`imsearch.index.store`).

Re-adding an external id gives it a fresh int64 id: index families that cannot remove in place
(HNSW) then simply drop the old id, and the log stays a plain sequence of adds and deletes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.index.features import FeatureRef
from imsearch.index.filters import Filter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    int_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    ext_id   TEXT NOT NULL UNIQUE,
    sha256   TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    vector   BLOB NOT NULL,
    added_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
-- Filters scan metadata: this covering index keeps them off the pages of the descriptors.
CREATE INDEX IF NOT EXISTS items_metadata ON items (metadata);
-- Where each image's local features are in the feature store (imsearch.index.features).
CREATE TABLE IF NOT EXISTS features (
    int_id  INTEGER PRIMARY KEY,
    segment INTEGER NOT NULL,
    offset  INTEGER NOT NULL,
    length  INTEGER NOT NULL
);
-- The visual words of each image's features (derived: recomputed when the vocabulary changes).
CREATE TABLE IF NOT EXISTS words (
    int_id INTEGER PRIMARY KEY,
    data   BLOB NOT NULL
);
-- Local features as catalogs before the feature store kept them: moved out when opened.
CREATE TABLE IF NOT EXISTS local_features (
    int_id INTEGER PRIMARY KEY,
    data   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbnails (
    int_id INTEGER PRIMARY KEY,
    data   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ops (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    op     TEXT NOT NULL CHECK (op IN ('add', 'del')),
    int_id INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Item:
    """One image of the collection as the catalog stores it."""

    ext_id: str
    vector: np.ndarray
    sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Serialized local features (see imsearch.features.local), written to the feature store.
    local: bytes | None = None
    #: A small JPEG for result lists (see imsearch.images.make_thumbnail).
    thumbnail: bytes | None = None


@dataclass(frozen=True)
class Op:
    seq: int
    op: str
    int_id: int


class Catalog:
    """Thread-safe access to one SQLite catalog file."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction is on disk before commit returns (acknowledged).
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        #: A catalog written by an older version, opened read-only, lacks the newer tables.
        self.tables = {
            str(r[0]) for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- writes -----------------------------------------------------------------------------

    def upsert(
        self, items: Sequence[Item], refs: Sequence[FeatureRef | None] | None = None
    ) -> list[int]:
        """Add or replace ``items`` in one durable transaction; returns their new int ids.

        ``refs`` (parallel to ``items``) say where each item's local features were written;
        those bytes are durable already, and this commit is what references them.
        """
        new_ids: list[int] = []
        refs = refs if refs is not None else [None] * len(items)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for item, ref in zip(items, refs, strict=True):
                    self._delete_one(item.ext_id)
                    cursor = self._db.execute(
                        "INSERT INTO items (ext_id, sha256, metadata, vector) VALUES (?, ?, ?, ?)",
                        (
                            item.ext_id,
                            item.sha256,
                            json.dumps(item.metadata, ensure_ascii=False, sort_keys=True),
                            np.ascontiguousarray(item.vector, dtype=np.float32).tobytes(),
                        ),
                    )
                    int_id = int(cursor.lastrowid or 0)
                    if ref is not None:
                        self._db.execute(
                            "INSERT INTO features (int_id, segment, offset, length) "
                            "VALUES (?, ?, ?, ?)",
                            (int_id, ref.segment, ref.offset, ref.length),
                        )
                    if item.thumbnail is not None:
                        self._db.execute(
                            "INSERT INTO thumbnails (int_id, data) VALUES (?, ?)",
                            (int_id, item.thumbnail),
                        )
                    self._db.execute("INSERT INTO ops (op, int_id) VALUES ('add', ?)", (int_id,))
                    new_ids.append(int_id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new_ids

    def delete(self, ext_ids: Iterable[str]) -> list[int]:
        """Delete by external id in one durable transaction; returns the int ids removed."""
        removed: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for ext_id in ext_ids:
                    int_id = self._delete_one(ext_id)
                    if int_id is not None:
                        removed.append(int_id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return removed

    def _delete_one(self, ext_id: str) -> int | None:
        row = self._db.execute("SELECT int_id FROM items WHERE ext_id = ?", (ext_id,)).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM items WHERE int_id = ?", (row[0],))
        for table in ("features", "words", "local_features"):
            self._db.execute(f"DELETE FROM {table} WHERE int_id = ?", (row[0],))
        self._db.execute("DELETE FROM thumbnails WHERE int_id = ?", (row[0],))
        self._db.execute("INSERT INTO ops (op, int_id) VALUES ('del', ?)", (row[0],))
        return int(row[0])

    def truncate_ops(self, upto_seq: int) -> None:
        """Forget log entries already contained in a snapshot."""
        with self._lock:
            self._db.execute("DELETE FROM ops WHERE seq <= ?", (upto_seq,))

    # -- reads ------------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    @contextmanager
    def consistent(self) -> Iterator[None]:
        """Reads inside see one state of the file (one read transaction), even while another
        process writes it: what a replica builds agrees with the log position it starts from."""
        with self._lock:
            if self._db.in_transaction:  # already inside one: the same state
                yield
                return
            self._db.execute("BEGIN")
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'ops'").fetchone()
        return int(row[0]) if row else 0

    def ops_since(self, seq: int) -> list[Op]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, op, int_id FROM ops WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
        return [Op(int(s), str(o), int(i)) for s, o, i in rows]

    def get(self, ext_id: str) -> Item | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ext_id, sha256, metadata, vector FROM items WHERE ext_id = ?", (ext_id,)
            ).fetchone()
        return None if row is None else _item(row)

    def ext_ids(self, int_ids: Sequence[int]) -> dict[int, str]:
        """Map int ids to external ids; ids no longer in the catalog are absent."""
        if not int_ids:
            return {}
        marks = ",".join("?" * len(int_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT int_id, ext_id FROM items WHERE int_id IN ({marks})",
                [int(i) for i in int_ids],
            ).fetchall()
        return {int(i): str(e) for i, e in rows}

    def info(self, ext_ids: Sequence[str]) -> dict[str, tuple[str | None, dict[str, Any]]]:
        """Content hash and metadata of the ids that exist."""
        if not ext_ids:
            return {}
        marks = ",".join("?" * len(ext_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT ext_id, sha256, metadata FROM items WHERE ext_id IN ({marks})",
                list(ext_ids),
            ).fetchall()
        return {str(e): (None if h is None else str(h), json.loads(m)) for e, h, m in rows}

    def metadata(self, ext_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ext_ids:
            return {}
        marks = ",".join("?" * len(ext_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT ext_id, metadata FROM items WHERE ext_id IN ({marks})",
                list(ext_ids),
            ).fetchall()
        return {str(e): json.loads(m) for e, m in rows}

    def hashes_by_id(self) -> dict[str, str | None]:
        """External id → content hash, for resumable indexing."""
        with self._lock:
            rows = self._db.execute("SELECT ext_id, sha256 FROM items").fetchall()
        return {str(e): (str(h) if h is not None else None) for e, h in rows}

    def vectors(
        self, int_ids: Sequence[int] | None = None, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(int_ids, vectors)`` chunks, for all items or the ``int_ids`` given."""
        if int_ids is not None:
            for start in range(0, len(int_ids), batch):
                chunk = [int(i) for i in int_ids[start : start + batch]]
                marks = ",".join("?" * len(chunk))
                with self._lock:
                    rows = self._db.execute(
                        f"SELECT int_id, vector FROM items WHERE int_id IN ({marks})",
                        chunk,
                    ).fetchall()
                if rows:
                    yield _stack(rows)
            return
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT int_id, vector FROM items WHERE int_id > ? ORDER BY int_id LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            yield _stack(rows)

    def _by_id(self, sql: str, int_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (with ``{marks}`` for the ids) for ``int_ids``, in chunks."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(int_ids), 500):
            chunk = [int(i) for i in int_ids[start : start + 500]]
            with self._lock:
                rows += self._db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)
        return rows

    def feature_refs(self, int_ids: Sequence[int]) -> dict[int, FeatureRef]:
        """Where the local features of ``int_ids`` are (absent where none were stored)."""
        if "features" not in self.tables:
            return {}
        sql = "SELECT int_id, segment, offset, length FROM features WHERE int_id IN ({marks})"
        return {
            int(i): FeatureRef(int(s), int(o), int(n)) for i, s, o, n in self._by_id(sql, int_ids)
        }

    def legacy_local_features(self, int_ids: Sequence[int]) -> dict[int, bytes]:
        """Local features still stored in the catalog by an older version (until moved)."""
        sql = "SELECT int_id, data FROM local_features WHERE int_id IN ({marks})"
        return {int(i): bytes(d) for i, d in self._by_id(sql, int_ids)}

    def legacy_ids(self, limit: int) -> list[int]:
        with self._lock:
            rows = self._db.execute("SELECT int_id FROM local_features LIMIT ?", (limit,))
            return [int(r[0]) for r in rows]

    def feature_ids_after(self, last: int, limit: int) -> list[int]:
        """Up to ``limit`` ids with stored local features, above ``last``, in order."""
        sql = "SELECT int_id FROM features WHERE int_id > ? ORDER BY int_id LIMIT ?"
        with self._lock:
            return [int(r[0]) for r in self._db.execute(sql, (last, limit))]

    def feature_segments(self) -> set[int]:
        """The feature-store segments some stored reference points into."""
        with self._lock:
            return {int(r[0]) for r in self._db.execute("SELECT DISTINCT segment FROM features")}

    def move_features(self, refs: dict[int, FeatureRef]) -> None:
        """Record where local features were (re)written — legacy ones moved out of the
        catalog, or records rewritten in another encoding — in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for int_id, ref in refs.items():
                    self._db.execute(
                        "INSERT OR REPLACE INTO features (int_id, segment, offset, length) "
                        "VALUES (?, ?, ?, ?)",
                        (int_id, ref.segment, ref.offset, ref.length),
                    )
                    self._db.execute("DELETE FROM local_features WHERE int_id = ?", (int_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def words(self, int_ids: Sequence[int]) -> dict[int, bytes]:
        """Stored visual words of ``int_ids`` (absent where not computed)."""
        if "words" not in self.tables:
            return {}
        sql = "SELECT int_id, data FROM words WHERE int_id IN ({marks})"
        return {int(i): bytes(d) for i, d in self._by_id(sql, int_ids)}

    def set_words(self, words: dict[int, bytes]) -> None:
        """Store recomputed visual words (ids no longer in the catalog are skipped)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO words (int_id, data) "
                    "SELECT ?, ? WHERE EXISTS (SELECT 1 FROM items WHERE int_id = ?)",
                    [(i, d, i) for i, d in words.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def clear_words(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM words")

    def ids_without_words(self) -> list[int]:
        """Items with local features whose visual words are not stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.int_id FROM features f LEFT JOIN words w ON w.int_id = f.int_id "
                "WHERE w.int_id IS NULL UNION SELECT l.int_id FROM local_features l "
                "LEFT JOIN words w ON w.int_id = l.int_id WHERE w.int_id IS NULL ORDER BY 1"
            )
            return [int(r[0]) for r in rows]

    def vacuum(self) -> None:
        with self._lock:
            self._db.execute("VACUUM")

    def thumbnail(self, ext_id: str) -> tuple[bytes, str | None] | None:
        """The stored thumbnail of ``ext_id`` and its image's content hash."""
        with self._lock:
            row = self._db.execute(
                "SELECT t.data, i.sha256 FROM thumbnails t JOIN items i ON i.int_id = t.int_id "
                "WHERE i.ext_id = ?",
                (ext_id,),
            ).fetchone()
        return None if row is None else (bytes(row[0]), None if row[1] is None else str(row[1]))

    def local_count(self) -> int:
        """Images with local features (in the feature store, or not yet moved there)."""
        return sum(self._count(t) for t in ("features", "local_features") if t in self.tables)

    def _count(self, table: str) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def int_ids_of(self, ext_ids: Sequence[str]) -> dict[str, int]:
        if not ext_ids:
            return {}
        marks = ",".join("?" * len(ext_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT ext_id, int_id FROM items WHERE ext_id IN ({marks})",
                list(ext_ids),
            ).fetchall()
        return {str(e): int(i) for e, i in rows}

    def int_ids(self) -> np.ndarray:
        with self._lock:
            rows = self._db.execute("SELECT int_id FROM items ORDER BY int_id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` descriptors drawn uniformly without replacement (reproducible by ``seed``)."""
        ids = self.int_ids()
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(ids, size=min(n, len(ids)), replace=False))
        chunks = [vecs for _, vecs in self.vectors(chosen.tolist())]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)

    def matching(self, where: Filter) -> np.ndarray:
        """The int ids whose metadata satisfy ``where``, ascending."""
        condition, params = where.sql()
        with self._lock:
            # No ORDER BY: sorting by int_id would make SQLite walk the table (descriptors and
            # all) instead of the covering metadata index.
            rows = self._db.execute(f"SELECT int_id FROM items WHERE {condition}", params)
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64)
        return np.sort(ids)

    def list_ids(self, offset: int = 0, limit: int = 100) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT ext_id FROM items ORDER BY int_id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [str(r[0]) for r in rows]


def _stack(rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    return ids, vecs


def _item(row: tuple[str, str | None, str, bytes]) -> Item:
    ext_id, sha, meta, vector = row
    return Item(str(ext_id), np.frombuffer(vector, dtype=np.float32).copy(), sha, json.loads(meta))

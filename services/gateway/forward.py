"""Index a folder through a running server's public API (``imsearch index`` while it serves).

A data directory has one writer. When ``imsearch index`` finds that a server owns the
directory (its writer lock names the server's URL), it must not open the collection itself:
it sends each new or changed image to ``POST /v1/images`` instead, with the id and metadata a
local run would give it. The server extracts, stores and acknowledges each one; a run stopped
half-way resumes like a local one, because images already indexed with the same content are
skipped (read from the catalog, which readers may open while the server writes it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tqdm import tqdm

from imsearch.collection import DEFAULT, check_name, collection_dir, exists
from imsearch.errors import DependencyUnavailable, Unauthorized
from imsearch.index.catalog import Catalog
from imsearch.index.store import CATALOG_FILE
from imsearch.indexing import IndexReport, Loaded, read_source, screen
from imsearch.sources import SourceFile

#: Uploads in flight at once: about what a CPU server extracts in parallel.
CONCURRENCY = 2
#: Tries of one upload the server answers 503 (busy, restarting) or 429 (rate limited).
ATTEMPTS = 5


def indexed_hashes(data_dir: Path, collection: str = DEFAULT) -> dict[str, str | None]:
    """Id → content hash of what the collection holds now (read-only; none yet: empty)."""
    path = collection_dir(data_dir, collection) / CATALOG_FILE
    if not path.exists():
        return {}
    catalog = Catalog(path, readonly=True)
    try:
        return catalog.hashes_by_id()
    finally:
        catalog.close()


def index_through_api(
    url: str,
    files: Sequence[SourceFile],
    data_dir: Path,
    api_key: str | None = None,
    progress: bool = True,
    collection: str = DEFAULT,
    timeout_s: float = 120.0,
) -> tuple[IndexReport, int]:
    """Send the new and changed ``files`` to ``collection`` of the server at ``url``
    (created there if it does not exist); returns the report and the collection's size
    afterwards."""
    started = time.perf_counter()
    report = IndexReport(found=len(files))
    headers = {"X-API-Key": api_key} if api_key else {}
    prefix = "/v1" if collection == DEFAULT else f"/v1/collections/{check_name(collection)}"
    with httpx.Client(base_url=url, headers=headers, timeout=timeout_s) as http:
        if collection != DEFAULT and not exists(data_dir, collection):
            _checked(http, http.post("/v1/collections", json={"name": collection}))
        indexed = indexed_hashes(data_dir, collection)
        seen: set[str] = set()
        sources = (read_source(*file) for file in files)
        todo = [(x, data) for x, data in sources if screen(x, seen, indexed, report)]
        bar = tqdm(total=len(todo), unit="img", disable=not progress, desc="sending")
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            send = lambda job: (job[0], _send(http, prefix, *job))  # noqa: E731
            for loaded, outcome in pool.map(send, todo):
                if outcome == "created":
                    report.added += 1
                elif outcome == "unchanged":
                    report.skipped += 1
                else:
                    report.failed.append((loaded.shown, outcome))
                bar.update(1)
        bar.close()
        count = int(_checked(http, http.get(f"{prefix}/stats")).json().get("count", 0))
    report.seconds = time.perf_counter() - started
    return report, count


def _send(http: httpx.Client, prefix: str, loaded: Loaded, data: bytes) -> str:
    """Add one image: ``created``, ``unchanged``, or why the server refused it."""
    form = {"id": loaded.ext_id, "metadata": json.dumps({"path": loaded.shown})}
    files = {"image": (Path(loaded.shown).name, data)}
    for attempt in range(ATTEMPTS):
        try:
            reply = http.post(f"{prefix}/images", data=form, files=files)
        except httpx.TransportError as exc:
            raise DependencyUnavailable(
                f"the server at {http.base_url} stopped answering ({exc}); run the same "
                "command again to send the rest"
            ) from exc
        if reply.status_code in (429, 503) and attempt + 1 < ATTEMPTS:
            time.sleep(float(reply.headers.get("Retry-After", 2**attempt)))
            continue
        if reply.status_code in (200, 201):
            return "created" if reply.status_code == 201 else "unchanged"
        _checked(http, reply)
        return _error_text(reply)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _checked(http: httpx.Client, reply: httpx.Response) -> httpx.Response:
    """Stop the whole run on answers no other image would get differently."""
    if reply.status_code == 401:
        raise Unauthorized(
            f"the server at {http.base_url} needs an API key for writes: pass --api-key or set "
            "IMSEARCH_API_KEY"
        )
    if reply.status_code >= 500 or (reply.status_code >= 400 and reply.request.method == "GET"):
        raise DependencyUnavailable(
            f"the server at {http.base_url} answered {reply.status_code}: {_error_text(reply)}"
        )
    return reply


def _error_text(reply: httpx.Response) -> str:
    try:
        error = reply.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {reply.status_code}"

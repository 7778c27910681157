"""One writer per collection, tried as a user meets it (issue 19): a server owns the data
directory; `imsearch index` sends new images through it, a second server is refused, readers
still open it, and a SIGKILLed server leaves no stale lock."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx

from tests.conftest import MINI
from tests.integration.test_cli import IMSEARCH, run
from tests.procs import API_KEY, Server, free_port, running


def folders(root: Path) -> tuple[Path, Path]:
    """Two batches of the mini covers: photos-a first, photos-b added while serving."""
    a, b = root / "photos-a", root / "photos-b"
    for folder, names in (
        (a, "ref_001 ref_002 ref_003 wall_altai wall_autumn"),
        (b, "ref_004 ref_005 ref_006 wall_canopee wall_bythewater"),
    ):
        folder.mkdir()
        for name in names.split():
            shutil.copy(MINI / "images" / f"{name}.jpg", folder)
    return a, b


def search(url: str, photo: str) -> list[str]:
    path = MINI / "images" / photo
    reply = httpx.post(
        f"{url}/v1/search", files={"image": (path.name, path.read_bytes())}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    return [hit["id"] for hit in reply.json()["results"]]


def test_index_while_serving_goes_through_the_server_and_nothing_is_lost(
    tmp_path: Path, fast_env: dict[str, str]
) -> None:
    data = tmp_path / "D"
    a, b = folders(tmp_path)
    run(["index", str(a), "--data-dir", str(data), "--no-progress"], fast_env)
    server = Server({"IMSEARCH_DATA_DIR": str(data), "IMSEARCH_API_KEYS": f"tests:{API_KEY}"})
    with running(server):
        assert server.proc is not None
        second = subprocess.run(
            [*IMSEARCH, "serve", "--data-dir", str(data), "--port", str(free_port())],
            env=fast_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and second.stderr.startswith(
            f"error [data_dir_locked]: {data} is written by process {server.proc.pid} "
            "(imsearch serve)"
        )

        no_key = run(["index", str(b), "--data-dir", str(data), "--no-progress"], fast_env, False)
        assert no_key.returncode == 2 and "error [unauthorized]" in no_key.stderr

        keyed = {**fast_env, "IMSEARCH_API_KEY": API_KEY}
        sent = run(["index", str(b), "--data-dir", str(data), "--no-progress"], keyed)
        assert f"written by process {server.proc.pid}" in sent.stdout
        assert "added 5" in sent.stdout and "collection: 10 images" in sent.stdout
        assert httpx.get(f"{server.url}/v1/stats").json()["count"] == 10
        assert search(server.url, "canon_004.jpg")[0] == "ref_004"  # a cover added meanwhile

        # Readers open the directory while the server writes it: stats, a search replica.
        stats = json.loads(run(["stats", "--data-dir", str(data)], fast_env).stdout)
        assert stats["count"] == 10
        replica = Server({"IMSEARCH_DATA_DIR": str(data), "IMSEARCH_REPLICA": "1"}, "search")
        with running(replica):
            assert httpx.get(f"{replica.url}/v1/stats").json()["count"] == 10

    # After shutdown every acknowledged image is still there (its adds may still be in the
    # catalog's log: snapshots are rewritten every IMSEARCH_SNAPSHOT_OPS entries).
    stats = json.loads(run(["stats", "--data-dir", str(data)], fast_env).stdout)
    assert stats["count"] == 10
    for photo, cover in (("canon_004.jpg", "ref_004"), ("droid_005.jpg", "ref_005")):
        found = run(["query", str(MINI / "images" / photo), "--data-dir", str(data), "--json"],
                    fast_env)  # fmt: skip
        assert json.loads(found.stdout)["results"][0]["id"] == cover
    again = run(["index", str(b), "--data-dir", str(data), "--no-progress"], fast_env)
    assert "sending" not in again.stdout and "skipped 5" in again.stdout


def test_a_sigkilled_server_leaves_no_stale_lock(tmp_path: Path, fast_env: dict[str, str]) -> None:
    data = tmp_path / "D"
    a, b = folders(tmp_path)
    run(["index", str(a), "--data-dir", str(data), "--no-progress"], fast_env)
    server = Server({"IMSEARCH_DATA_DIR": str(data)})
    with running(server):
        server.kill()
        # At once: a local writer, not a forward to the dead server the lock file still names.
        local = run(["index", str(b), "--data-dir", str(data), "--no-progress"], fast_env)
        assert "sending" not in local.stdout and "collection: 10 images" in local.stdout
        server.start()  # and the server again, with everything
        assert httpx.get(f"{server.url}/v1/stats").json()["count"] == 10


def test_only_the_services_that_write_claim_the_data_directory(tmp_path: Path) -> None:
    """The stateless rerank worker and a gateway in front of a search service write nothing:
    they start on a read-only mount (the compose file mounts the search volume read-only into
    rerank) and never hold the lock that would stop the real writer."""
    from imsearch.cli import _claim_data_dir
    from imsearch.settings import Settings

    data = tmp_path / "data"
    data.mkdir()
    assert _claim_data_dir("rerank", Settings(data_dir=data)) is None
    gateway = Settings(data_dir=data, search_url="http://search:8080")
    assert _claim_data_dir("gateway", gateway) is None
    assert not (data / "writer.lock").exists()  # not even created: the mount may be read-only
    lock = _claim_data_dir("search", Settings(data_dir=data))
    assert lock is not None and (data / "writer.lock").exists()
    lock.release()

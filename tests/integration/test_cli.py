"""The command line as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MINI, phone_photo

IMSEARCH = [sys.executable, "-m", "imsearch.cli"]
KEYS = {
    "map",
    "mp@1",
    "mp@5",
    "mp@10",
    "recall@1",
    "recall@10",
    "recall@100",
    "n_queries",
    "ms_per_query",
    "extract_images_per_s",
    "model_id",
    "rerank",
    "no_match_recall",
    "false_no_match_rate",
}


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*IMSEARCH, *args], env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture()
def collection(tmp_path: Path) -> Path:
    """The mini database in nested folders, plus one corrupt and one empty file."""
    root = tmp_path / "collection"
    (root / "covers").mkdir(parents=True)
    (root / "walls").mkdir()
    for path in (MINI / "images").glob("ref_*.jpg"):
        shutil.copy(path, root / "covers" / path.name)
    # a collection's photos may be HEIC too (an iPhone's camera roll)
    (root / "covers" / "ref_005.jpg").unlink()
    (root / "covers" / "ref_005.heic").write_bytes(
        phone_photo(MINI / "images" / "ref_005.jpg", "HEIF", rotated=True)
    )
    for path in (MINI / "images").glob("wall_*.jpg"):
        shutil.copy(path, root / "walls" / path.name)
    data = (MINI / "images" / "ref_001.jpg").read_bytes()
    (root / "covers" / "broken.jpg").write_bytes(data[: len(data) // 3])
    (root / "empty.png").write_bytes(b"")
    return root


def test_index_query_resume(collection: Path, fast_env: dict[str, str]) -> None:
    # A file name with an invisible character cannot become an id: reported, not indexed.
    shutil.copy(MINI / "images" / "wall_altai.jpg", collection / "walls" / "alt\u200bai.jpg")
    first = run(["index", str(collection), "--no-progress"], fast_env)
    assert "added 10" in first.stdout and "failed 3" in first.stdout
    assert "covers/broken.jpg" in first.stderr and "empty_image" in first.stderr
    assert "invalid_id" in first.stderr and "U+200B" in first.stderr

    again = run(["index", str(collection), "--no-progress"], fast_env)
    assert "added 0" in again.stdout and "skipped 10" in again.stdout

    out = run(["query", str(MINI / "images" / "canon_001.jpg"), "-k", "3", "--json"], fast_env)
    payload = json.loads(out.stdout)
    assert payload["results"][0]["id"] == "covers/ref_001"
    assert len(payload["results"]) == 3
    assert payload["results"][0]["score"] >= payload["results"][1]["score"]
    best = payload["results"][0]
    assert best["verified"] and 0.5 < best["confidence"] <= 1.0 and len(best["box"]) == 4

    # phone formats: an iPhone's HEIC held upright, an AVIF; the HEIC-indexed cover is found
    for name, cover, fmt, rotated in (("IMG_1.HEIC", "canon_001", "HEIF", True),
                                      ("photo.avif", "droid_005", "AVIF", False)):  # fmt: skip
        photo = collection.parent / name
        photo.write_bytes(phone_photo(MINI / "images" / f"{cover}.jpg", fmt, rotated))
        hits = json.loads(run(["query", str(photo), "-k", "1", "--json"], fast_env).stdout)
        expected = "covers/ref_" + cover.split("_")[1]
        assert hits["results"][0]["id"] == expected and hits["results"][0]["verified"], hits

    text = run(["query", str(MINI / "images" / "canon_001.jpg")], fast_env).stdout
    rank, _, first, *verification = text.splitlines()[0].split()
    assert (rank, first) == ("1", "covers/ref_001") and verification[-1] == "inliers"
    assert verification[1] == "sure" and verification[0].endswith("%")


def test_collections_from_the_command_line(tmp_path: Path, collection: Path, fast_env) -> None:
    """--collection on index (created when missing), query (with --filter), stats and eval."""
    out = run(["index", str(collection / "covers"), "--collection", "covers", "--no-progress"],
              fast_env)  # fmt: skip
    assert "added 6" in out.stdout
    data_dir = Path(fast_env["IMSEARCH_DATA_DIR"])
    assert (data_dir / "collections" / "covers" / "catalog.sqlite").exists()
    listed = json.loads(run(["stats", "--list"], fast_env).stdout)
    assert listed == [{"name": "default", "count": 0}, {"name": "covers", "count": 6}]
    stats = json.loads(run(["stats", "--collection", "covers"], fast_env).stdout)
    assert stats["collection"] == "covers" and stats["count"] == 6

    photo = str(MINI / "images" / "canon_001.jpg")
    found = json.loads(run(["query", photo, "-c", "covers", "--json"], fast_env).stdout)
    assert found["results"][0]["id"] == "ref_001"
    where = '{"path": {"in": ["ref_003.jpg", "ref_004.jpg"]}}'
    kept = run(["query", photo, "-c", "covers", "--json", "--filter", where], fast_env).stdout
    assert {h["id"] for h in json.loads(kept)["results"]} == {"ref_003", "ref_004"}
    bad = run(["query", photo, "-c", "covers", "--filter", "{oops"], fast_env, check=False)
    assert bad.returncode == 2 and "config_error" in bad.stderr
    unknown = run(["query", photo, "-c", "nope"], fast_env, check=False)
    assert unknown.returncode == 2 and "unknown_collection" in unknown.stderr
    invalid = run(["stats", "-c", "No!"], fast_env, check=False)
    assert invalid.returncode == 2 and "invalid_collection_name" in invalid.stderr

    report = tmp_path / "report.json"
    run(["eval", str(MINI), "--json", str(report), "--rerank", "none", "--no-progress",
         "--data-dir", str(data_dir), "--collection", "mini"], fast_env)  # fmt: skip
    assert json.loads(report.read_text())["n_database"] == 10
    assert json.loads(run(["stats", "-c", "mini"], fast_env).stdout)["count"] == 10


def test_identical_content_is_copied_not_recomputed(collection: Path, fast_env) -> None:
    shutil.copy(collection / "covers" / "ref_002.jpg", collection / "twin.jpg")
    out = run(["index", str(collection), "--no-progress", "--ids", "stem"], fast_env)
    assert "added 11 (1 copied from identical content)" in out.stdout


def test_query_errors_are_clear(tmp_path: Path, collection: Path, fast_env) -> None:
    missing = run(["query", str(MINI / "images" / "canon_001.jpg")], fast_env, check=False)
    assert missing.returncode == 2 and "index_not_ready" in missing.stderr

    run(["index", str(collection), "--no-progress"], fast_env)
    other_model = dict(fast_env, IMSEARCH_MAX_SIDE="320")
    mismatch = run(["query", str(MINI / "images" / "canon_001.jpg")], other_model, check=False)
    assert mismatch.returncode == 2 and "model_mismatch" in mismatch.stderr
    # both ids, how to get the old model back, and the command that re-indexes
    assert "/256x1, not " in mismatch.stderr and "/320x1" in mismatch.stderr
    assert "IMSEARCH_WEIGHTS" in mismatch.stderr and "imsearch index" in mismatch.stderr

    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"nope")
    bad = run(["query", str(garbage)], fast_env, check=False)
    assert bad.returncode == 2 and "image_decode_error" in bad.stderr


def test_eval_writes_the_report(tmp_path: Path, fast_env) -> None:
    out_json = tmp_path / "report.json"
    proc = run(
        ["eval", str(MINI), "--json", str(out_json), "--rerank", "none", "--no-progress"], fast_env
    )
    report = json.loads(out_json.read_text())
    assert set(report) >= KEYS
    assert report["n_queries"] == 6 and report["n_database"] == 10
    assert 0.0 < report["map"] <= 1.0 and report["recall@10"] == 1.0
    assert set(report["ms_per_query"]) == {"extract", "search", "rerank", "total", "total_p95"}
    assert report["extract_images_per_s"] > 0
    assert report["rerank"] == {"method": "none"} and report["no_match_recall"] is None
    assert "mAP" in proc.stdout and report["model_id"] in proc.stdout


def test_eval_spatial_with_absent_objects(tmp_path: Path, fast_env) -> None:
    """Verification puts every cover first; queries of left-out covers get "no match"."""
    out_json = tmp_path / "spatial.json"
    env = dict(fast_env, IMSEARCH_VOCABULARY_MIN_IMAGES="4", IMSEARCH_VOCABULARY_WORDS="512")
    args = ["eval", str(MINI), "--json", str(out_json), "--rerank", "spatial", "--m", "5"]
    run([*args, "--exclude-db", "ref_005", "--exclude-db", "ref_006", "--no-progress"], env)
    report = json.loads(out_json.read_text())
    assert report["rerank"]["method"] == "spatial" and report["rerank"]["m"] == 5
    assert report["n_database"] == 8 and report["n_queries"] == 4
    assert report["map"] == 1.0 and report["mp@1"] == 1.0
    assert report["n_no_match_queries"] == 2 and report["no_match_recall"] == 1.0
    assert report["false_no_match_rate"] == 0.0
    assert report["vocabulary"].startswith("learned")
    assert report["ms_per_query"]["rerank"] > 0


def test_eval_revisited_layout_crops_queries(tmp_path: Path, fast_env) -> None:
    """A tiny dataset in the Revisited Oxford layout (jpg/ + gnd_*.pkl) with query boxes."""
    root = tmp_path / "rmini"
    (root / "jpg").mkdir(parents=True)
    images = sorted((MINI / "images").glob("*.jpg"))
    for path in images:
        shutil.copy(path, root / "jpg" / path.name)
    database = [p.stem for p in images if p.stem.startswith(("ref_", "wall_"))]
    queries = ["canon_001", "droid_002"]
    gnd = [
        {
            "bbx": [10.0, 10.0, 300.0, 250.0],
            "easy": [database.index("ref_001")],
            "hard": [],
            "junk": [database.index("ref_003")],
        },
        {
            "bbx": [0.0, 0.0, 200.0, 200.0],
            "easy": [],
            "hard": [database.index("ref_002")],
            "junk": [],
        },
    ]
    with open(root / "gnd_rmini.pkl", "wb") as fh:
        pickle.dump({"imlist": database, "qimlist": queries, "gnd": gnd}, fh)
    out_json = tmp_path / "r.json"
    run(
        ["eval", str(root), "--protocol", "easy", "--json", str(out_json), "--no-progress"],
        fast_env,
    )
    report = json.loads(out_json.read_text())
    # Easy protocol: the second query has no easy positive and is skipped.
    assert report["n_queries"] == 1 and report["protocol"] == "easy"
    assert report["ap_per_query"]["droid_002"] is None


def test_bad_dataset_and_options(tmp_path: Path, fast_env) -> None:
    proc = run(["eval", str(tmp_path)], fast_env, check=False)
    assert proc.returncode == 2 and "dataset_error" in proc.stderr
    proc = run(["--pooling", "max", "stats"], fast_env, check=False)
    assert proc.returncode != 0 and "pooling" in (proc.stderr + proc.stdout)


def test_killed_indexing_resumes_without_losing_committed_images(
    collection: Path, fast_env, tmp_path: Path
) -> None:
    """SIGKILL mid-run: what was committed stays, the catalog opens, a re-run completes."""
    catalog = Path(fast_env["IMSEARCH_DATA_DIR"]) / "catalog.sqlite"
    proc = subprocess.Popen(
        [*IMSEARCH, "index", str(collection), "--no-progress", "--batch-size", "1"],
        env=fast_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    committed = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if catalog.exists():
            try:
                with sqlite3.connect(catalog) as db:
                    committed = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
            if committed >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 2

    stats = json.loads(run(["stats"], fast_env).stdout)
    assert stats["count"] >= committed
    resumed = run(["index", str(collection), "--no-progress"], fast_env)
    assert f"skipped {stats['count']}" in resumed.stdout
    assert json.loads(run(["stats"], fast_env).stdout)["count"] == 10


def test_learned_whitening_from_training_queries_is_kept_by_eval(tmp_path: Path, fast_env) -> None:
    """`whiten --pairs` learns Lw from the chosen queries; eval on the other queries keeps it."""
    data = tmp_path / "lw"
    env = dict(fast_env, IMSEARCH_DATA_DIR=str(data))
    proc = run(["whiten", "--pairs", str(MINI), "--only-queries", "canon_*", "--no-progress"], env)
    assert "'method': 'lw'" in proc.stdout and "'pairs': '3'" in proc.stdout
    out_json = tmp_path / "held-out.json"
    run(
        ["eval", str(MINI), "--data-dir", str(data), "--only-queries", "droid_*",
         "--only-queries", "e63_*", "--rerank", "none", "--json", str(out_json), "--no-progress"],
        env,
    )  # fmt: skip
    report = json.loads(out_json.read_text())
    assert report["whitening"].startswith("kept (lw: 3 pairs")
    assert report["n_queries"] == 3 and report["only_queries"] == ["droid_*", "e63_*"]

    # self-supervised: from synthetic photos of the collection's own (stored) images, no labels
    proc = run(["whiten", "--self-supervised", "--views", "1", "--no-progress"], env)
    assert "synthetic pairs of 10 images" in proc.stdout
    found = run(["query", str(MINI / "images" / "canon_004.jpg"), "-k", "1", "--json"], env)
    assert json.loads(found.stdout)["results"][0]["id"] == "ref_004"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMSEARCH_API_KEYS": "short"}, "an API key must be at least 16 characters"),
        ({"IMSEARCH_PORT": "eighty"}, "invalid settings: port (IMSEARCH_PORT): Input should be"),
        ({"IMSEARCH_RERANK_M": "0"}, "rerank_m (IMSEARCH_RERANK_M): Input should be greater"),
        # The embedded engine is opened before serving: a collection of another model is
        # refused like anywhere else in the CLI, not by a failed start-up.
        ({"IMSEARCH_MAX_SIDE": "320"}, "was indexed with model efficientnet_lite0"),
    ],
)
def test_serve_configuration_errors_are_one_line(
    collection: Path, fast_env: dict[str, str], env: dict[str, str], message: str
) -> None:
    if "IMSEARCH_MAX_SIDE" in env:
        run(["index", str(collection / "walls"), "--no-progress"], fast_env)
    # No --port: it would override IMSEARCH_PORT. Every case must fail before binding one.
    proc = subprocess.run(
        [*IMSEARCH, "serve"],
        env={**fast_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error [") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


SCALE_KEYS = {"restart_s", "rss_mb", "disk_bytes_per_item", "latency_ms", "add_per_s", "snapshot_s"}


@pytest.mark.parametrize("vocabulary", ["collection", "generic"])
def test_bench_scale_reports_the_contract_keys(tmp_path: Path, fast_env, vocabulary: str) -> None:
    """`imsearch bench scale` at a size the suite affords (the documented runs are 10k and
    100k): real services, every contracted key, and each item found by its own features."""
    env = {**fast_env, "IMSEARCH_VOCABULARY": vocabulary, "IMSEARCH_VOCABULARY_WORDS": "256"}
    out = tmp_path / "scale.json"
    # No --port: each service takes a free port, the default.
    args = ["bench", "scale", "--items", "300", "--json", str(out), "--work", str(tmp_path / "w"),
            "--features-from", str(MINI / "images"), "--queries", "60", "--rerank-queries", "20",
            "--adds", "40"]  # fmt: skip
    run(args, env)
    report = json.loads(out.read_text())
    assert report.keys() >= SCALE_KEYS
    assert all(report["restart_s"][role] > 0 for role in ("search", "rerank"))
    assert all(report["rss_mb"][role] > 50 for role in ("search", "rerank"))
    for call in ("search", "rerank"):
        assert 0 < report["latency_ms"][call]["p50"] <= report["latency_ms"][call]["p99"]
    assert report["rerank_found_own_item"] >= 0.9
    assert report["add_per_s"] > 0 and report["snapshot_s"] >= 0
    # Local features dominate: ~100 kB per item, not a second copy of anything.
    assert 20_000 < report["disk_bytes_per_item"] < 200_000
    assert report["vocabulary"].startswith("generic" if vocabulary == "generic" else "learned")


def test_a_collection_stored_as_codes_is_smaller_and_finds_the_same(
    tmp_path: Path, collection: Path, fast_env
) -> None:
    """IMSEARCH_LOCAL_ENCODING=pq16 stores a fifth of the feature bytes; queries are answered
    the same; the data directory stays readable whatever the setting is later."""
    sizes = {}
    for encoding in ("sift8", "pq16"):
        env = {**fast_env, "IMSEARCH_LOCAL_ENCODING": encoding,
               "IMSEARCH_DATA_DIR": str(tmp_path / encoding)}  # fmt: skip
        run(["index", str(collection), "--no-progress"], env)
        sizes[encoding] = sum(p.stat().st_size for p in (tmp_path / encoding).rglob("*.lsf"))
        for cover in ("canon_001", "droid_002"):
            photo = str(MINI / "images" / f"{cover}.jpg")
            hits = json.loads(run(["query", photo, "-k", "1", "--json"], env).stdout)["results"]
            assert hits[0]["id"] == "covers/ref_" + cover.split("_")[1] and hits[0]["verified"]
    assert sizes["pq16"] < sizes["sift8"] / 4
    env = {**fast_env, "IMSEARCH_DATA_DIR": str(tmp_path / "pq16")}  # read back as sift8
    photo = str(MINI / "images" / "canon_001.jpg")
    assert json.loads(run(["query", photo, "--json"], env).stdout)["results"][0]["verified"]
    # an existing raw collection migrated in place: smaller, same answer, a re-run does nothing
    env = {**fast_env, "IMSEARCH_DATA_DIR": str(tmp_path / "sift8")}
    out = run(["migrate", "--local-encoding", "pq32"], env).stdout
    assert "10 images rewritten as pq32" in out
    assert sum(p.stat().st_size for p in (tmp_path / "sift8").rglob("*.lsf")) < sizes["sift8"] / 3
    best = json.loads(run(["query", photo, "--json"], env).stdout)["results"][0]
    assert best["id"] == "covers/ref_001" and best["verified"]
    assert "0 images rewritten" in run(["migrate", "--local-encoding", "pq32"], env).stdout
    refused = run(["migrate", "--local-encoding", "sift8"], env, check=False)
    assert refused.returncode != 0 and "re-index to go back" in refused.stderr

"""`bench soak` in miniature: mixed traffic against a real server, memory sampled from /proc."""

from __future__ import annotations

import os
import shutil

from imsearch.bench.soak import SoakConfig, format_soak, memory_trend, rss_bytes, run_soak
from tests.conftest import MINI
from tests.procs import API_KEY, Server, running


def test_a_short_soak_reports_every_operation_and_memory(tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((MINI / "images").glob("ref_*.jpg")):
        shutil.copy(path, photos)
    env = {
        "IMSEARCH_DATA_DIR": str(tmp_path / "data"),
        "IMSEARCH_API_KEYS": f"soak:{API_KEY}",
        "IMSEARCH_RATE_LIMIT_PER_MIN": "0",
    }
    with running(Server(env)) as server:
        assert server.proc is not None
        config = SoakConfig(
            server.url,
            photos,
            clients=3,
            duration_s=12,
            add_share=0.5,
            delete_share=0.2,
            api_key=API_KEY,
            pids=[server.proc.pid],
            sample_s=1.0,
        )
        report = run_soak(config)
    assert report["server_errors"] == 0, report["ops"]
    ops = report["ops"]
    assert ops["add"]["statuses"].get("201", 0) > 0 and ops["search"]["statuses"].get("200", 0) > 0
    assert ops["delete"]["statuses"].get("200", 0) > 0
    assert set(ops["search"]["statuses"]) <= {"200"}  # the first adds create the collection
    assert len(report["samples"]) >= 5
    memory = report["memory"]
    assert memory["rss_peak_mb"] > 50  # a torch model is loaded: not a child's few MB
    assert memory["count_end"] > 0
    assert "server errors (5xx or no answer): 0" in format_soak(report)


def test_memory_trend_and_rss() -> None:
    assert rss_bytes(os.getpid()) > 10 * 2**20
    assert rss_bytes(2**22 + 12345) == 0  # no such process
    samples = [
        {
            "t_s": 60.0 * i,
            "rss_mb": 100.0 + 2 * i,
            "count": 10.0 * i,
            "rps": 1.0,
            "server_errors": 0,
        }
        for i in range(11)
    ]
    trend = memory_trend(samples)
    assert abs(trend["rss_mb_per_min_second_half"] - 2.0) < 1e-6
    assert abs(trend["images_per_min_second_half"] - 10.0) < 1e-6
    assert trend["rss_start_mb"] == 102.0 and trend["rss_peak_mb"] == 120.0

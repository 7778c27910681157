"""A read-only search replica follows the primary's snapshots without restarting."""

from __future__ import annotations

import time

import httpx
import numpy as np

from services.common.codec import PROTOBUF, vector_to_pb
from services.contracts.v1 import messages_pb2 as pb
from tests.procs import Server

DIM = 16


def post(url: str, path: str, message, reply_type):
    reply = httpx.post(
        f"{url}{path}",
        content=message.SerializeToString(),
        headers={"content-type": PROTOBUF},
        timeout=30,
    )
    return reply, (reply_type.FromString(reply.content) if reply.status_code == 200 else None)


def vector(i: int) -> np.ndarray:
    v = np.random.default_rng(i).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_replica_swaps_in_new_snapshots_and_refuses_writes(tmp_path) -> None:
    data_dir = str(tmp_path / "search")
    servers = [
        Server({"IMSEARCH_DATA_DIR": data_dir, "IMSEARCH_MAINTENANCE_S": "0.5"}, "search"),
        Server(
            {
                "IMSEARCH_DATA_DIR": data_dir,
                "IMSEARCH_REPLICA": "1",
                "IMSEARCH_REPLICA_POLL_S": "0.3",
            },
            "search",
        ),
    ]
    primary, replica = (server.start().url for server in servers)
    try:

        def add(first: int, count: int) -> None:
            items = [
                pb.Item(id=f"v{i}", vector=vector_to_pb(vector(i)), sha256=f"h{i}")
                for i in range(first, first + count)
            ]
            reply, _ = post(
                primary, "/v1/add", pb.AddRequest(model_id="m", items=items), pb.AddResponse
            )
            assert reply.status_code == 200, reply.text

        def replica_count() -> int:
            return int(httpx.get(f"{replica}/v1/stats", timeout=10).json().get("count", 0))

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 30
            while replica_count() != count:
                assert time.monotonic() < deadline, f"replica stuck at {replica_count()}"
                time.sleep(0.2)

        add(0, 20)
        wait_for(20)
        add(20, 10)  # the primary snapshots within a second; the replica swaps it in
        wait_for(30)
        _, found = post(
            replica,
            "/v1/search",
            pb.SearchRequest(queries=[vector_to_pb(vector(25))], k=1),
            pb.SearchResponse,
        )
        assert found is not None and found.results[0].hits[0].id == "v25"
        refused, _ = post(replica, "/v1/add", pb.AddRequest(model_id="m"), pb.AddResponse)
        assert (
            refused.status_code == 400 and "read-only replica" in refused.json()["error"]["message"]
        )
        assert httpx.get(f"{replica}/v1/stats").json()["replica"] is True
    finally:
        for server in servers:
            server.stop()

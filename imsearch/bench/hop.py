"""Cost of one service hop (HTTP + protobuf), for docs/BENCHMARKS.md (scripts/bench-services.sh).

python -m imsearch.bench.hop SEARCH_URL DATA_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from imsearch.index.store import IndexStore
from services.common.codec import PROTOBUF, vector_to_pb
from services.contracts.v1 import messages_pb2 as pb


def hop_overhead(search_url: str, data_dir: Path, n: int = 300) -> dict[str, float]:
    """Per-call cost of one service hop: the search service over HTTP + protobuf, against the
    same search done in this process on the same data directory (opened read-only)."""
    store = IndexStore(data_dir, readonly=True)
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(n, store.dim)).astype(np.float32)
    local, remote = [], []
    with httpx.Client(base_url=search_url, timeout=30) as http:
        for q in queries:
            started = time.perf_counter()
            store.search(q, 10)
            local.append(time.perf_counter() - started)
            started = time.perf_counter()
            body = pb.SearchRequest(queries=[vector_to_pb(q)], k=10).SerializeToString()
            reply = http.post("/v1/search", content=body, headers={"content-type": PROTOBUF})
            pb.SearchResponse.FromString(reply.content)
            remote.append(time.perf_counter() - started)
    store.close()
    local_ms, remote_ms = np.array(local) * 1e3, np.array(remote) * 1e3
    return {
        "in_process_p50_ms": float(np.median(local_ms)),
        "over_http_p50_ms": float(np.median(remote_ms)),
        "hop_p50_ms": float(np.median(remote_ms) - np.median(local_ms)),
        "hop_p95_ms": float(np.percentile(remote_ms, 95) - np.percentile(local_ms, 95)),
    }


if __name__ == "__main__":
    print(json.dumps(hop_overhead(sys.argv[1], Path(sys.argv[2])), indent=2))

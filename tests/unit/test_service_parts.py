"""Service building blocks: the extractor's batching and the client's retry rules."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import httpx
import numpy as np
import pytest
from PIL import Image

from imsearch.errors import ConfigError, DependencyUnavailable, ModelMismatch
from services.common.batching import MicroBatcher
from services.common.client import ServiceClient
from services.contracts.v1 import messages_pb2 as pb


def widths(images: Sequence[Image.Image]) -> np.ndarray:
    return np.array([[float(img.size[0])] for img in images])


def test_concurrent_requests_share_one_batch() -> None:
    async def scenario() -> tuple[list[np.ndarray], list[int]]:
        batcher = MicroBatcher(widths, window_s=0.2)
        batcher.start()
        images = [Image.new("RGB", (10 + i, 8)) for i in range(5)]
        results = await asyncio.gather(*(batcher.submit(img) for img in images))
        alone = await batcher.submit(Image.new("RGB", (99, 8)))
        await batcher.stop()
        return [*results, alone], batcher.batches

    results, batches = asyncio.run(scenario())
    assert [float(r[0]) for r in results] == [10, 11, 12, 13, 14, 99]  # each gets its own row
    assert batches == [5, 1]


def test_a_failing_batch_fails_every_waiter() -> None:
    def broken(images: Sequence[Image.Image]) -> np.ndarray:
        raise RuntimeError("out of memory")

    async def scenario() -> list[BaseException | np.ndarray]:
        batcher = MicroBatcher(broken, window_s=0.05)
        batcher.start()
        outcome = await asyncio.gather(
            *(batcher.submit(Image.new("RGB", (8, 8))) for _ in range(3)), return_exceptions=True
        )
        await batcher.stop()
        return outcome

    assert all(isinstance(o, RuntimeError) for o in asyncio.run(scenario()))


# -- error paths of the client, against a fake transport ------------------------------------


def client_with(
    handler, retries: int = 2, **options: float
) -> tuple[ServiceClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request, len(seen))

    client = ServiceClient(
        "search", "http://search.test", timeout_s=1.0, retries=retries, **options
    )
    client._clients = [
        httpx.Client(base_url="http://search.test", transport=httpx.MockTransport(record))
    ]
    return client, seen


def test_calls_take_turns_over_replicas_and_fail_over_to_the_next() -> None:
    """A URL listing replicas: calls alternate; an idempotent call refused by one is sent to
    the next (a killed rerank worker); a non-idempotent one is not repeated."""
    seen: list[str] = []

    def replica(name: str, alive: bool) -> httpx.Client:
        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(name)
            if not alive:
                raise httpx.RemoteProtocolError("connection reset", request=request)
            return httpx.Response(200, content=pb.DeleteResponse(deleted=1).SerializeToString())

        return httpx.Client(base_url=f"http://{name}", transport=httpx.MockTransport(answer))

    client = ServiceClient("rerank", "http://a,http://b,http://c", timeout_s=1.0, retries=0)
    assert client.base_urls == ["http://a", "http://b", "http://c"] and client.retries == 2
    client._clients = [replica("a", True), replica("b", False), replica("c", True)]
    for _ in range(3):
        client.call("/v1/delete", pb.DeleteRequest(ids=["x"]), pb.DeleteResponse, True)
    assert seen == ["a", "b", "c", "c"]  # b refused: its call went on to c
    seen.clear()
    client._turn = iter([1])  # the next call's turn is b's
    with pytest.raises(DependencyUnavailable):
        client.call("/v1/add", pb.AddRequest(), pb.AddResponse, idempotent=False)
    assert seen == ["b"]


def test_idempotent_calls_retry_on_refused_connections_and_503() -> None:
    def flaky(request: httpx.Request, n: int) -> httpx.Response:
        if n == 1:
            raise httpx.ConnectError("refused", request=request)
        if n == 2:
            return httpx.Response(503, json={"error": {"code": "x", "message": "busy"}})
        return httpx.Response(200, content=pb.DeleteResponse(deleted=1).SerializeToString())

    client, seen = client_with(flaky)
    reply = client.call("/v1/delete", pb.DeleteRequest(ids=["a"]), pb.DeleteResponse, True)
    assert reply.deleted == 1 and len(seen) == 3


def test_non_idempotent_calls_are_never_repeated() -> None:
    def refused(request: httpx.Request, n: int) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, seen = client_with(refused)
    with pytest.raises(DependencyUnavailable, match="unreachable"):
        client.call("/v1/add", pb.AddRequest(), pb.AddResponse, idempotent=False)
    assert len(seen) == 1


def test_timeouts_are_not_retried_and_domain_errors_keep_their_code() -> None:
    def slow(request: httpx.Request, n: int) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, seen = client_with(slow)
    with pytest.raises(DependencyUnavailable, match="in time"):
        client.call("/v1/search", pb.SearchRequest(), pb.SearchResponse, idempotent=True)
    assert len(seen) == 1

    def mismatch(request: httpx.Request, n: int) -> httpx.Response:
        return httpx.Response(409, json={"error": {"code": "model_mismatch", "message": "other"}})

    client, _ = client_with(mismatch)
    with pytest.raises(ModelMismatch, match="other"):
        client.call("/v1/add", pb.AddRequest(), pb.AddResponse, idempotent=True)


def test_metadata_must_be_a_small_shallow_json_object() -> None:
    from services.gateway.app import MAX_METADATA_DEPTH, _metadata

    assert _metadata('{"title": "a \\"[[[\\" b", "tags": [{"k": 1}]}')["tags"] == [{"k": 1}]
    assert _metadata("") == {}
    deep = "[" * 5000 + "]" * 5000  # would exhaust the JSON parser's recursion
    for bad, reason in [
        (deep, "nested deeper"),
        ('{"a":' * (MAX_METADATA_DEPTH + 1) + "1" + "}" * (MAX_METADATA_DEPTH + 1), "nested"),
        ("[1, 2]", "JSON object"),
        ("{oops}", "not valid JSON"),
        ('{"x": "' + "y" * 20_000 + '"}', "larger than"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            _metadata(bad)


def test_calls_in_flight_are_bounded_and_the_queue_wait_too() -> None:
    """Two slots, six concurrent callers: never more than two calls under way; with a short
    queue wait the callers that find no free slot get a prompt "saturated" 503 instead."""
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def slow(request: httpx.Request, n: int) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, content=pb.DeleteResponse(deleted=1).SerializeToString())

    def run(client: ServiceClient) -> list[str]:
        outcomes: list[str] = []

        def one() -> None:
            try:
                client.call("/v1/delete", pb.DeleteRequest(), pb.DeleteResponse, True)
                outcomes.append("ok")
            except DependencyUnavailable as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=one) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes

    patient, _ = client_with(slow, max_in_flight=2, queue_timeout_s=10.0)
    assert run(patient) == ["ok"] * 6 and state["most"] == 2

    state["most"] = 0
    hasty, _ = client_with(slow, max_in_flight=2, queue_timeout_s=0.05)
    outcomes = run(hasty)
    assert outcomes.count("ok") == 2 and state["most"] == 2
    assert all("saturated" in o for o in outcomes if o != "ok")


def test_the_search_service_is_not_ready_until_its_collection_is_open(
    tmp_path, monkeypatch
) -> None:
    """While a large collection loads, /readyz says 503 (an empty answer would read as "no
    match"); once the first attempt to open it is done, 200. A fresh directory (nothing to
    load) is ready at once."""
    from fastapi.testclient import TestClient

    import imsearch.index.store as store_module
    from imsearch.settings import Settings
    from services.search.app import create_app

    with TestClient(create_app(Settings(data_dir=tmp_path / "fresh"))) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/readyz").json()["status"] == "ready (no collection open)"
    store_module.IndexStore(tmp_path, "model-a", 4).close()  # a collection to load
    opening = threading.Event()
    original = store_module.IndexStore.__init__

    def slow_open(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        assert opening.wait(30)
        original(self, *args, **kwargs)

    monkeypatch.setattr(store_module.IndexStore, "__init__", slow_open)
    app = create_app(Settings(data_dir=tmp_path, maintenance_s=3600))
    with TestClient(app) as client:
        reply = client.get("/readyz")
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "not_ready"
        opening.set()
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["detail"]["open_collections"] == "default"

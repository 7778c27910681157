"""Schemathesis against the OpenAPI of every service, each a real process over HTTP.

Requests generated from each service's own description — valid and invalid parameters,
random multipart files, random bytes as protobuf bodies — must get a documented status with
a documented body, never a 5xx; and every service must still answer afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)

from imsearch.settings import Settings
from services.common.codec import PROTOBUF
from services.contracts.v1 import messages_pb2 as pb
from services.extractor.app import create_app as extractor_app
from services.gateway.app import create_app as gateway_app
from services.rerank.app import create_app as rerank_app
from services.search.app import create_app as search_app
from tests.conftest import MINI
from tests.procs import KEYED, TOKEN, Cluster, cluster, redis_server

# A protobuf body is bytes on the wire: random ones exercise every service's parser.
schemathesis.serializer.alias(PROTOBUF, "application/octet-stream")

#: Examples per operation: enough to cover each parameter's edges, bounded for CI.
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[Cluster]:
    with redis_server(tmp_path_factory.mktemp("redis")) as redis_url:
        # No rate limit here: 429s would stand in for the answers under test.
        extra = {"gateway": {"IMSEARCH_RATE_LIMIT_PER_MIN": "0"}}
        with cluster(tmp_path_factory.mktemp("fuzz"), redis_url, extra_env=extra) as running:
            for name in ("ref_001", "ref_002", "wall_altai"):
                path = MINI / "images" / f"{name}.jpg"
                reply = httpx.post(
                    f"{running.urls['gateway']}/v1/images",
                    files={"image": (path.name, path.read_bytes())},
                    data={"id": name},
                    headers=KEYED,
                    timeout=60,
                )
                assert reply.status_code == 201, reply.text
            yield running
            for url in running.urls.values():  # every service survived the fuzzing
                assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def _described(create_app: Callable[[Settings], FastAPI]) -> schemathesis.BaseSchema:
    """A service's OpenAPI, from its code: the tests are parametrized before anything runs.
    ``test_served_description_is_the_code's`` checks the running service serves the same."""
    with tempfile.TemporaryDirectory() as unused:
        return schemathesis.openapi.from_dict(create_app(Settings(data_dir=Path(unused))).openapi())


APPS: dict[str, Callable[[Settings], FastAPI]] = {
    "gateway": gateway_app,
    "extractor": extractor_app,
    "search": search_app,
    "rerank": rerank_app,
}
gateway, extractor, search, rerank = (_described(APPS[role]) for role in APPS)


def call(case: schemathesis.Case, url: str, headers: dict[str, str]) -> None:
    # Every check but "schema-valid data is accepted": an image or a protobuf message is
    # opaque bytes to OpenAPI, and ids follow rules JSON Schema does not state (docs/API.md),
    # so random schema-valid input is rightly refused with a 4xx.
    excluded = [positive_data_acceptance]
    if case.operation.path.endswith("/thumbnail"):
        # Ids may hold "/": /v1/images/x/thumbnail is also the image "x/thumbnail" to DELETE,
        # so its Allow header rightly names a method the thumbnail operation does not have.
        excluded += [unsupported_method, allow_header_conformance]
    case.call_and_validate(base_url=url, headers=headers, timeout=60, excluded_checks=excluded)


@pytest.mark.parametrize("role", APPS)
def test_served_description_is_the_codes(services: Cluster, role: str) -> None:
    served = httpx.get(f"{services.urls[role]}/openapi.json", timeout=10).json()
    with tempfile.TemporaryDirectory() as unused:
        assert served == APPS[role](Settings(data_dir=Path(unused))).openapi()


@gateway.parametrize()
@FUZZ
def test_gateway(case, services: Cluster) -> None:
    call(case, services.urls["gateway"], KEYED)


@extractor.parametrize()
@FUZZ
def test_extractor(case, services: Cluster) -> None:
    call(case, services.urls["extractor"], TOKEN)


@search.parametrize()
@FUZZ
def test_search(case, services: Cluster) -> None:
    call(case, services.urls["search"], TOKEN)


@rerank.parametrize()
@FUZZ
def test_rerank(case, services: Cluster) -> None:
    call(case, services.urls["rerank"], TOKEN)


# -- structured protobuf messages -----------------------------------------------------------
# Random bytes rarely parse into a message with fields set; these strategies build messages
# that do parse, with every field at its edges: dimensions that lie, NaN and infinite values,
# unknown enum values, ids with control characters, zero and huge counts.

_text = st.text(max_size=40) | st.sampled_from(["", "ref_001", "../x", "a\x00b", "x" * 600])
_u32 = st.integers(0, 2**32 - 1)
_float = st.floats(allow_nan=True, allow_infinity=True, width=32)


def _vector(dim: int) -> st.SearchStrategy[pb.Vector]:
    return st.builds(
        pb.Vector,
        dim=st.sampled_from([0, 1, dim - 1, dim, dim + 1]) | _u32,
        dtype=st.integers(0, 3),
        data=st.binary(max_size=8) | st.binary(min_size=4 * dim, max_size=4 * dim + 4),
    )


def _local() -> st.SearchStrategy[pb.LocalFeatures]:
    return st.builds(
        pb.LocalFeatures,
        count=st.integers(0, 5) | _u32,
        width=_float,
        height=_float,
        xy=st.binary(max_size=48),
        sift=st.binary(max_size=700),
    )


def _messages(dim: int, model_id: str) -> dict[str, st.SearchStrategy]:
    vector = _vector(dim)
    knobs = st.builds(pb.SearchKnobs, nprobe=_u32, ef_search=_u32, k_factor=_float)
    item = st.builds(
        pb.Item,
        id=_text,
        vector=vector,
        sha256=_text,
        metadata_json=st.sampled_from(["", "{}", "[", '{"a": 1}', "null"]),
        local=_local(),
        thumbnail=st.binary(max_size=64),
    )
    ref = st.builds(pb.FeatureRef, segment=_u32, offset=st.integers(0, 2**64 - 1), length=_u32)
    hits = st.lists(
        st.builds(pb.Hit, id=_text, score=_float, global_score=_float, ref=ref), max_size=5
    )
    config = st.builds(
        pb.RerankConfig,
        method=st.sampled_from(["", "none", "spatial", "qe+dba", "diffusion", "bogus"]),
        m=_u32,
        min_inliers=_u32,
        early_exit_inliers=_u32,
        shortlist=_u32,
        fusion=st.sampled_from(["", "rrf", "interleave", "nope"]),
    )
    return {
        "/v1/search": st.builds(
            pb.SearchRequest, queries=st.lists(vector, max_size=3), k=_u32, knobs=knobs
        )
        | st.builds(
            pb.SearchRequest,
            queries=st.lists(vector, max_size=2),
            k=_u32,
            knobs=knobs,
            config=config,
            local=_local(),
        ),
        "/v1/add": st.builds(
            pb.AddRequest,
            model_id=st.sampled_from(["", model_id, "another-model"]),
            items=st.lists(item, max_size=3),
        ),
        "/v1/delete": st.builds(pb.DeleteRequest, ids=st.lists(_text, max_size=3)),
        "/v1/info": st.builds(pb.InfoRequest, ids=st.lists(_text, max_size=3)),
        "/v1/thumbnail": st.builds(pb.ThumbnailRequest, id=_text),
        "/v1/rerank": st.builds(
            pb.RerankRequest,
            local=_local(),
            hits=hits,
            k=_u32,
            config=config,
            details_json=st.sampled_from(["", "{}", "[", '{"a": 1}', "null"]),
        ),
        "/v1/extract": st.builds(
            pb.ExtractRequest,
            image=st.sampled_from([b"", b"\xff\xd8\xff", PHOTO]) | st.binary(max_size=64),
            want_global=st.booleans(),
            want_local=st.booleans(),
            bbox=st.builds(pb.BBox, x1=_float, y1=_float, x2=_float, y2=_float),
            want_thumbnail=st.booleans(),
        ),
    }


PHOTO = (MINI / "images" / "ref_003.jpg").read_bytes()
ROUTES = [
    ("extractor", "/v1/extract"),
    ("search", "/v1/search"),
    ("search", "/v1/add"),
    ("search", "/v1/delete"),
    ("search", "/v1/info"),
    ("search", "/v1/thumbnail"),
    ("rerank", "/v1/rerank"),
]


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the photo in a message
@pytest.mark.parametrize(("role", "path"), ROUTES, ids=[f"{r} {p}" for r, p in ROUTES])
def test_structured_protobuf_messages(services: Cluster, role: str, path: str) -> None:
    info = httpx.get(f"{services.urls['extractor']}/v1/info", headers=TOKEN, timeout=10).json()
    strategy = _messages(int(info["dim"]), info["model_id"])[path]
    url = f"{services.urls[role]}{path}"

    @FUZZ
    @given(message=strategy)
    def post(message: Message) -> None:
        reply = httpx.post(
            url,
            content=message.SerializeToString(),
            headers={**TOKEN, "content-type": PROTOBUF},
            timeout=60,
        )
        assert reply.status_code in (200, 400, 404, 409, 413, 415, 503), reply.text
        if reply.status_code != 200:
            assert reply.json()["error"]["code"], reply.text

    post()

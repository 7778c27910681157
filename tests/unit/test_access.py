"""API keys, the internal token, rate limits and CORS, on small real apps."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from imsearch.errors import ConfigError, RateLimited, Unauthorized
from imsearch.settings import Settings
from services.common.access import (
    Keyring,
    PublicAccess,
    install_internal_access,
    install_public_access,
)
from services.common.app import service_app
from services.common.ratelimit import RateLimiter

KEY = "k" * 24
OTHER = "o" * 24


def app_with(install, **settings: object) -> TestClient:
    app = service_app("test", "test", None)
    install(app, Settings(**settings))

    @app.post("/v1/search")
    def search() -> dict[str, str]:
        return {"ok": "search"}

    @app.post("/v1/images")
    def add() -> dict[str, str]:
        return {"ok": "add"}

    @app.get("/v1/stats")
    def stats() -> dict[str, str]:
        return {"ok": "stats"}

    return TestClient(app)


def test_keyring_names_keys_and_refuses_short_ones() -> None:
    ring = Keyring([f"mobile:{KEY}", OTHER, "", "# a comment"])
    assert ring.identify(KEY) == "mobile"
    assert ring.identify(OTHER).startswith("key-")  # type: ignore[union-attr]
    assert ring.identify("wrong" * 5) is None and ring.identify(None) is None
    with pytest.raises(ConfigError, match="16 characters"):
        Keyring(["short"])
    assert not Keyring([""])


def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(per_min=60, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=0.0) == pytest.approx(1.0)  # one token per second
    assert limiter.take("b", now=0.0) == 0.0  # callers do not share buckets
    assert limiter.take("a", now=1.0) == 0.0
    small = RateLimiter(per_min=60, burst=1, max_callers=2)
    for caller in "xyz":
        small.take(caller, now=0.0)
    assert small.take("x", now=0.0) == 0.0  # forgotten: a bounded table, not a leak


def test_policy_guards_writes_and_optionally_reads() -> None:
    policy = PublicAccess(Keyring([KEY]), search_requires_key=False, limiter=None)
    policy.check("POST", "/v1/search", None, "1.2.3.4")
    policy.check("GET", "/healthz", None, "1.2.3.4")
    with pytest.raises(Unauthorized):
        policy.check("DELETE", "/v1/images/a", None, "1.2.3.4")
    with pytest.raises(Unauthorized, match="this one is not"):
        policy.check("POST", "/v1/images", OTHER, "1.2.3.4")
    policy.check("POST", "/v1/images", KEY, "1.2.3.4")
    strict = PublicAccess(Keyring([KEY]), search_requires_key=True, limiter=None)
    with pytest.raises(Unauthorized):
        strict.check("GET", "/v1/stats", None, "1.2.3.4")
    limited = PublicAccess(Keyring([]), False, RateLimiter(per_min=60, burst=1))
    limited.check("POST", "/v1/search", None, "1.2.3.4")
    with pytest.raises(RateLimited) as refused:
        limited.check("POST", "/v1/search", None, "1.2.3.4")
    assert refused.value.retry_after_s > 0


def test_gateway_refusals_are_json_with_stable_codes_and_headers() -> None:
    client = app_with(install_public_access, api_keys=KEY, rate_limit_per_min=60,
                      rate_limit_burst=3)  # fmt: skip
    denied = client.post("/v1/images")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    assert denied.headers["WWW-Authenticate"] == "X-API-Key"
    assert client.post("/v1/images", headers={"X-API-Key": KEY}).json() == {"ok": "add"}
    # The refused write and these two searches spend this address's burst of 3.
    assert [client.post("/v1/search").status_code for _ in range(2)] == [200, 200]
    limited = client.post("/v1/search")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200  # probes are never limited
    assert 'reason="rate_limited"' in client.get("/metrics").text


def test_cors_preflight_passes_and_names_the_allowed_origin() -> None:
    client = app_with(install_public_access, api_keys=KEY, cors_origins="https://shop.example")
    preflight = client.options(
        "/v1/images",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    other = client.get("/v1/stats", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_internal_services_answer_only_token_holders(tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("# mounted secret\n" + "t" * 32 + "\n")
    client = app_with(install_internal_access, internal_token_file=secret)
    refused = client.post("/v1/search")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert client.post("/v1/search", headers={"X-Internal-Token": "t" * 32}).status_code == 200
    assert client.get("/readyz").status_code != 401 and client.get("/healthz").status_code == 200
    open_client = app_with(install_internal_access)  # no token configured: nothing to check
    assert open_client.post("/v1/search").status_code == 200

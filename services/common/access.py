"""Who may call what (docs/SECURITY.md).

* **API keys** (``X-API-Key``) guard the public API's writes — adding, deleting — and, when
  configured, its searches and reads. Keys are compared in constant time (as SHA-256 digests,
  so neither content nor length leaks through timing). No key configured: the API is open.
* **Collection scopes** (``IMSEARCH_API_KEY_SCOPES``): a key can be limited to collections,
  ``read`` or ``write`` on each; elsewhere it gets a 403 ``forbidden``, and only keys without
  scopes create or drop collections. The collection of a request is in its path
  (``/v1/collections/{name}/…``; the routes without it are the collection ``default``).
* **Internal token** (``X-Internal-Token``): the extractor, search and rerank services answer
  only callers that hold it, when one is set. Health and metrics stay open to probes.
* **Rate limits**: a token bucket per API key, or per client address without one; over the
  rate, a 429 ``rate_limited`` with ``Retry-After``. With ``IMSEARCH_REDIS_URL`` the buckets
  are shared by every gateway replica (services/common/ratelimit.py); without, each process
  keeps its own.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from imsearch.collection import DEFAULT, check_name
from imsearch.errors import ConfigError, Forbidden, ImsearchError, RateLimited, Unauthorized
from imsearch.settings import Settings
from services.common.errors import error_body, status_for
from services.common.ratelimit import RateLimiter, SharedRateLimiter

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
INTERNAL_TOKEN_HEADER = "X-Internal-Token"
#: Paths every caller may reach: probes, metrics, the API description, the web page's files.
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/static/")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Keyring:
    """The accepted API keys, by a name that is safe to log."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._keys: list[tuple[bytes, str]] = []
        for entry in entries:
            entry = entry.strip()
            if not entry or entry.startswith("#"):
                continue
            name, _, key = entry.rpartition(":")
            if len(key) < 16:
                raise ConfigError("an API key must be at least 16 characters long")
            self._keys.append((_digest(key), name or f"key-{_digest(key).hex()[:8]}"))

    def __bool__(self) -> bool:
        return bool(self._keys)

    def identify(self, presented: str | None) -> str | None:
        """The key's name, or None; every stored key is compared, so time says nothing."""
        if not presented:
            return None
        digest, found = _digest(presented), None
        for stored, name in self._keys:
            if hmac.compare_digest(stored, digest):
                found = name
        return found


#: A key's collections and what it may do in each (``read`` or ``write``).
Scopes = dict[str, str]
SCOPE_MODES = ("read", "write")


def parse_scopes(text: str) -> dict[str, Scopes]:
    """``acme=shop-a:write,shared:read;globex=globex:read`` → {key name: {collection: mode}}."""
    out: dict[str, Scopes] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        key_name, sep, grants = entry.partition("=")
        if not sep or not key_name.strip():
            raise ConfigError(f"API key scopes: {entry!r} is not name=collection:mode,…")
        scopes: Scopes = {}
        for grant in filter(None, (g.strip() for g in grants.split(","))):
            collection, _, mode = grant.partition(":")
            mode = mode.strip() or "read"
            if mode not in SCOPE_MODES:
                raise ConfigError(f"API key scopes: mode {mode!r} is not read or write")
            scopes[check_name(collection.strip())] = mode
        out[key_name.strip()] = scopes
    return out


def target(method: str, path: str) -> tuple[str | None, str]:
    """The collection a public request works on (None: the list of collections) and what it
    needs there: ``read``, ``write`` or ``manage`` (create or drop a collection)."""
    parts = path.split("/")  # "", "v1", ...
    write = "write" if method in WRITE_METHODS and path != "/v1/search" else "read"
    if len(parts) < 3 or parts[2] != "collections":
        return DEFAULT, write
    if len(parts) == 3 or parts[3] == "":  # /v1/collections
        return None, "manage" if method in WRITE_METHODS else "read"
    name = parts[3]
    if len(parts) == 4:  # /v1/collections/{name}
        return name, "manage" if method in WRITE_METHODS else "read"
    inner = "/" + "/".join(parts[4:])
    return name, "read" if inner == "/search" or method not in WRITE_METHODS else "write"


@dataclass(frozen=True)
class PublicAccess:
    keys: Keyring
    search_requires_key: bool
    limiter: RateLimiter | SharedRateLimiter | None
    scopes: dict[str, Scopes] = field(default_factory=dict)

    def check(self, method: str, path: str, presented: str | None, address: str) -> Scopes | None:
        """Raise Unauthorized, Forbidden or RateLimited, or return the caller's scopes (None:
        every collection) when the request may go on.

        The rate is checked first, so refused attempts count too: guessing keys is limited
        like everything else from that address.
        """
        if path.startswith(OPEN_PATHS) or not path.startswith("/v1/"):
            return None
        name = self.keys.identify(presented) if self.keys else None
        if self.limiter is not None:
            caller = f"key:{name}" if name else f"address:{address}"
            wait = self.limiter.take(caller)
            if wait > 0:
                raise RateLimited(f"too many requests from this {caller.split(':')[0]}", wait)
        collection, needs = target(method, path)
        if self.keys and name is None and (needs != "read" or self.search_requires_key):
            what = "a valid API key" if not presented else "a valid API key (this one is not)"
            raise Unauthorized(f"{method} {path} needs {what} in {API_KEY_HEADER}")
        scopes = self.scopes.get(name) if name else None
        if scopes is not None:
            _check_scope(scopes, name or "", collection, needs)
        return scopes


def _check_scope(scopes: Scopes, key: str, collection: str | None, needs: str) -> None:
    if needs == "manage":
        raise Forbidden(f"the key {key!r} is limited to collections: it cannot create or drop them")
    if collection is None:
        return  # the list: the route shows only the key's collections
    mode = scopes.get(collection)
    if mode is None:
        raise Forbidden(f"the key {key!r} has no access to the collection {collection!r}")
    if needs == "write" and mode != "write":
        raise Forbidden(f"the key {key!r} may only read the collection {collection!r}")


def _secret(value: str | None, path: object) -> list[str]:
    lines = [value] if value else []
    if path is not None:
        try:
            with open(str(path), encoding="utf-8") as fh:
                lines += fh.read().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {path}: {exc}") from exc
    return lines


def public_access(settings: Settings) -> PublicAccess:
    keys = Keyring([*settings.api_keys.split(","), *_secret(None, settings.api_keys_file)])
    per_min, burst = settings.rate_limit_per_min, settings.rate_limit_burst
    limiter: RateLimiter | SharedRateLimiter | None = None
    if per_min and settings.redis_url:  # shared by every gateway replica
        limiter = SharedRateLimiter(settings.redis_url, per_min, burst)
    elif per_min:
        limiter = RateLimiter(per_min, burst)
    if not keys:
        where = "on 127.0.0.1 only" if settings.host == "127.0.0.1" else f"ON {settings.host}"
        log.warning(
            "no API keys configured (IMSEARCH_API_KEYS): anyone who reaches this server %s can "
            "add and delete images",
            where,
        )
    scopes = parse_scopes(settings.api_key_scopes)
    return PublicAccess(keys, settings.search_requires_key, limiter, scopes)


def internal_token(settings: Settings) -> str | None:
    tokens = [t.strip() for t in _secret(settings.internal_token, settings.internal_token_file)]
    tokens = [t for t in tokens if t and not t.startswith("#")]
    if tokens and len(tokens[0]) < 16:
        raise ConfigError("the internal token must be at least 16 characters long")
    return tokens[0] if tokens else None


Next = Callable[[Request], Awaitable[Response]]


def _refusal(app: FastAPI, exc: ImsearchError) -> JSONResponse:
    metrics = app.state.metrics
    metrics.refused.labels(metrics.service, exc.code).inc()
    response = JSONResponse(error_body(exc.code, exc.message), status_code=status_for(exc))
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s + 0.5)))
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = API_KEY_HEADER
    return response


def install_public_access(app: FastAPI, settings: Settings) -> None:
    """The gateway: CORS, API keys, rate limits."""
    policy = public_access(settings)

    @app.middleware("http")
    async def _access(request: Request, call_next: Next) -> Response:
        address = request.client.host if request.client else "unknown"
        try:
            request.state.scopes = policy.check(
                request.method, request.url.path, request.headers.get(API_KEY_HEADER), address
            )
        except (Unauthorized, Forbidden, RateLimited) as exc:
            return _refusal(app, exc)
        return await call_next(request)

    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        # Added last, so it runs first: a browser's preflight never meets the key check.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[API_KEY_HEADER, "Content-Type"],
            expose_headers=["Retry-After"],
            max_age=600,
        )


def install_internal_access(app: FastAPI, settings: Settings) -> None:
    """An internal service: only callers holding the internal token, when one is set."""
    token = internal_token(settings)
    if token is None:
        return
    expected = _digest(token)

    @app.middleware("http")
    async def _internal(request: Request, call_next: Next) -> Response:
        if not request.url.path.startswith(OPEN_PATHS):
            presented = request.headers.get(INTERNAL_TOKEN_HEADER, "")
            if not hmac.compare_digest(_digest(presented), expected):
                return _refusal(app, Unauthorized(f"this service needs {INTERNAL_TOKEN_HEADER}"))
        return await call_next(request)

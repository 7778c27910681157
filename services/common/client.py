"""Calling another imsearch service: protobuf over HTTP with one pooled client per caller.

* Every call has a timeout (connect 2 s, then ``service_timeout_s``).
* At most ``max_in_flight`` calls are under way to a service at once; more wait their turn
  (up to ``queue_timeout_s``, then a 503) before their timeout starts. A busy service is not
  buried under every request at once — which on shared CPUs only slows each of them past the
  timeout — and the timeout measures the service, not the queue in front of it.
* Only idempotent calls are retried, with exponential backoff, and only on failures that
  say nothing was done (connection refused or reset, 502/503/504).
* A URL may list several replicas (``http://a:8080,http://b:8080``): calls take turns, and an
  idempotent call that fails on one is retried on the next — a stateless service keeps
  answering while one of its replicas is killed.
* A service that is down or too slow becomes :class:`~imsearch.errors.DependencyUnavailable`
  (a 503 at the edge); a domain error the service answered with is raised again as the same
  class, so a ``model_mismatch`` in the search service is a ``model_mismatch`` at the gateway.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, TypeVar

import httpx
from google.protobuf.message import Message

from imsearch.errors import DependencyUnavailable, error_class
from services.common.access import INTERNAL_TOKEN_HEADER
from services.common.codec import PROTOBUF

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
_RETRY_STATUS = {502, 503, 504}


class ServiceClient:
    """A named connection pool to one service."""

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout_s: float = 10.0,
        retries: int = 2,
        token: str | None = None,
        max_in_flight: int = 64,
        queue_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.base_urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        self.base_url = ",".join(self.base_urls)
        # With several replicas, a failed idempotent call is worth one try on each of them.
        self.retries = max(retries, len(self.base_urls) - 1)
        self.queue_timeout_s = queue_timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._turn = itertools.count()
        self._clients = [
            httpx.Client(
                base_url=url,
                timeout=httpx.Timeout(timeout_s, connect=min(2.0, timeout_s)),
                limits=httpx.Limits(
                    max_connections=max_in_flight,
                    max_keepalive_connections=min(16, max_in_flight),
                ),
                headers={INTERNAL_TOKEN_HEADER: token} if token else None,
            )
            for url in self.base_urls
        ]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def call(self, path: str, request: Message, response: type[M], idempotent: bool) -> M:
        """POST ``request`` to ``path`` and parse the answer as ``response``."""
        body = request.SerializeToString()
        reply = self._send(
            "POST",
            path,
            idempotent,
            content=body,
            headers={"content-type": PROTOBUF, "accept": PROTOBUF},
        )
        message = response()
        message.ParseFromString(reply.content)
        return message

    def get_json(self, path: str) -> Any:
        return self._send("GET", path, idempotent=True).json()

    def ready(self) -> bool:
        """At least one replica answers /readyz with 200."""
        for client in self._clients:
            try:
                if client.get("/readyz", timeout=2.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
        return False

    def _send(self, method: str, path: str, idempotent: bool, **kwargs: Any) -> httpx.Response:
        if not self._slots.acquire(timeout=self.queue_timeout_s):
            raise DependencyUnavailable(
                f"the {self.name} service is saturated: no call finished in "
                f"{self.queue_timeout_s:g} s to make room (IMSEARCH_SERVICE_MAX_IN_FLIGHT)"
            )
        try:
            return self._attempts(method, path, idempotent, **kwargs)
        finally:
            self._slots.release()

    def _attempts(self, method: str, path: str, idempotent: bool, **kwargs: Any) -> httpx.Response:
        attempts = 1 + (self.retries if idempotent else 0)
        first = next(self._turn)
        for attempt in range(attempts):
            client = self._clients[(first + attempt) % len(self._clients)]
            try:
                reply = client.request(method, path, **kwargs)
            except httpx.TimeoutException as exc:
                # A timed-out request may have been done: never repeat it blindly.
                raise DependencyUnavailable(
                    f"the {self.name} service did not answer in time"
                ) from exc
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    time.sleep(0.1 * 2**attempt)
                    continue
                raise DependencyUnavailable(
                    f"the {self.name} service at {client.base_url} is unreachable ({exc})"
                ) from exc
            if reply.status_code in _RETRY_STATUS and attempt + 1 < attempts:
                time.sleep(0.1 * 2**attempt)
                continue
            if reply.status_code == 401:
                # The caller's configuration is wrong, not the request: nothing to show a client.
                raise DependencyUnavailable(
                    f"the {self.name} service refused this caller's internal token "
                    "(IMSEARCH_INTERNAL_TOKEN must be the same on every service)"
                )
            if reply.status_code >= 400:
                raise _relay(self.name, reply)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover


def _relay(name: str, reply: httpx.Response) -> Exception:
    try:
        error = reply.json()["error"]
        return error_class(error["code"])(error["message"])
    except (ValueError, KeyError, TypeError):
        return DependencyUnavailable(f"the {name} service failed with HTTP {reply.status_code}")

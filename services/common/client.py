"""Calling another imsearch service: protobuf over HTTP with one pooled client per caller.

* Every call has a timeout (connect 2 s, then ``service_timeout_s``).
* Only idempotent calls are retried, with exponential backoff, and only on failures that
  say nothing was done (connection refused, 502/503/504).
* A service that is down or too slow becomes :class:`~imsearch.errors.DependencyUnavailable`
  (a 503 at the edge); a domain error the service answered with is raised again as the same
  class, so a ``model_mismatch`` in the search service is a ``model_mismatch`` at the gateway.
"""

from __future__ import annotations

import logging
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
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(2.0, timeout_s)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            headers={INTERNAL_TOKEN_HEADER: token} if token else None,
        )

    def close(self) -> None:
        self._http.close()

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
        try:
            return self._http.get("/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _send(self, method: str, path: str, idempotent: bool, **kwargs: Any) -> httpx.Response:
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                reply = self._http.request(method, path, **kwargs)
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
                    f"the {self.name} service at {self.base_url} is unreachable ({exc})"
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

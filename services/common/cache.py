"""The query-descriptor cache in Redis (the in-process LRU's stand-in across processes).

Keys come from :func:`imsearch.pipeline.cache_key` (kind, model id, image hash, crop); values
are packed bytes with a one-byte type tag, and expire after ``ttl_s``. Redis being down, slow
or flushed only costs speed: a failed lookup is a miss, a failed store is skipped, and
``available`` tells /readyz to report the cache as degraded. After a failure the cache is left
alone for ``retry_s`` (a circuit breaker), so a dead Redis costs requests nothing rather than a
connection timeout each; a restarted Redis is used again from the next try.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import redis

from services.common.breaker import Breaker

_VECTOR, _BYTES = b"V", b"B"


class RedisCache:
    def __init__(self, url: str, ttl_s: int, timeout_s: float = 0.25, retry_s: float = 2.0) -> None:
        self.ttl_s = ttl_s
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.breaker = Breaker("Redis cache (serving uncached)", retry_s)

    @property
    def available(self) -> bool:
        return self.breaker.available

    def get(self, key: str) -> Any | None:
        if self.breaker.resting():
            return None
        try:
            value = self._redis.get(key)
        except redis.RedisError as exc:
            self.breaker.down(exc)
            return None
        self.breaker.up()
        if not isinstance(value, bytes) or not value:
            return None
        tag, body = value[:1], value[1:]
        if tag == _VECTOR:
            return np.frombuffer(body, dtype="<f4").copy()
        return body if tag == _BYTES else None

    def put(self, key: str, value: Any) -> None:
        if isinstance(value, np.ndarray):
            packed = _VECTOR + np.ascontiguousarray(value, dtype="<f4").tobytes()
        else:
            packed = _BYTES + bytes(value)
        if self.breaker.resting():
            return
        try:
            self._redis.set(key, packed, ex=self.ttl_s)
            self.breaker.up()
        except redis.RedisError as exc:
            self.breaker.down(exc)

    def ping(self) -> bool:
        try:
            if self._redis.ping():
                self.breaker.up()
                return True
        except redis.RedisError as exc:
            self.breaker.down(exc)
            return False
        return False

    def close(self) -> None:
        self._redis.close()

"""Token buckets per caller: in the process, or shared by every gateway replica in Redis.

Both answer :meth:`take` the same way: 0 when the request may go, else the seconds until it
would. The shared one keeps each bucket in a Redis hash updated by one Lua script (atomic, on
Redis's clock, so replicas' clocks do not matter) that expires once the bucket would be full
again. Redis down: the replica falls back to its own buckets — each replica then allows the
rate on its own, as without Redis — and tries Redis again after a short rest.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

import redis

from services.common.breaker import Breaker


class RateLimiter:
    """Token buckets in this process; the least recently seen callers are forgotten past a bound."""

    def __init__(self, per_min: int, burst: int, max_callers: int = 100_000) -> None:
        self.rate = per_min / 60.0
        self.burst = float(burst)
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, caller: str, now: float | None = None) -> float:
        """0 when the request may go; else the seconds until it would."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[caller] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
            return wait


# KEYS[1] the bucket; ARGV rate (tokens/s), burst, ttl (s). Returns the wait, as a string
# (Lua numbers become integers on the way out).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(v[1]) or burst
local last = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return tostring(wait)
"""


class SharedRateLimiter:
    """The same buckets, in Redis: N gateway replicas together allow the rate once."""

    def __init__(
        self,
        url: str,
        per_min: int,
        burst: int,
        prefix: str = "imsearch:rate:",
        timeout_s: float = 0.25,
        retry_s: float = 2.0,
    ) -> None:
        self.rate = per_min / 60.0
        self.burst = float(burst)
        self.prefix = prefix
        self.ttl_s = math.ceil(self.burst / self.rate) + 1
        self.local = RateLimiter(per_min, burst)
        self.breaker = Breaker("Redis rate limits (using this replica's own)", retry_s)
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._take = client.register_script(_TAKE)

    def take(self, caller: str) -> float:
        if self.breaker.resting():
            return self.local.take(caller)
        try:
            wait = float(
                self._take(keys=[self.prefix + caller], args=[self.rate, self.burst, self.ttl_s])
            )
        except redis.RedisError as exc:
            self.breaker.down(exc)
            return self.local.take(caller)
        self.breaker.up()
        return wait

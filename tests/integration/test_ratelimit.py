"""Rate limits shared by gateway replicas through a real redis-server."""

from __future__ import annotations

import time

import pytest
import redis

from services.common.ratelimit import SharedRateLimiter
from tests.procs import redis_server


def test_replicas_share_one_bucket_per_caller(tmp_path) -> None:
    with redis_server(tmp_path) as url:
        one, two = (SharedRateLimiter(url, per_min=60, burst=3) for _ in range(2))
        # Three requests in all pass, whichever replica they reach; the fourth waits ~1 s.
        assert [one.take("key:web"), two.take("key:web"), one.take("key:web")] == [0, 0, 0]
        wait = two.take("key:web")
        assert 0.9 < wait <= 1.0
        assert one.take("address:10.0.0.7") == 0  # another caller, another bucket
        time.sleep(1.05)  # one token back, for both replicas
        assert two.take("key:web") == 0 and one.take("key:web") > 0
        ttl = redis.Redis.from_url(url).ttl("imsearch:rate:key:web")
        assert 0 < ttl <= 4  # forgotten once it would be full again: burst / rate + 1 s


def test_redis_down_falls_back_to_the_replicas_own_buckets(tmp_path) -> None:
    with redis_server(tmp_path) as url:
        limiter = SharedRateLimiter(url, per_min=60, burst=2, retry_s=0.5)
        assert limiter.take("key:app") == 0 and limiter.take("key:app") == 0
        assert limiter.take("key:app") > 0
    # Redis is gone: the replica limits on its own (a fresh local bucket) instead of failing.
    assert limiter.take("key:app") == 0 and limiter.take("key:app") == 0
    assert limiter.take("key:app") > 0
    assert limiter.breaker.available is False


@pytest.mark.parametrize("per_min", [1, 600, 100_000])
def test_the_wait_matches_the_rate(tmp_path, per_min: int) -> None:
    with redis_server(tmp_path) as url:
        limiter = SharedRateLimiter(url, per_min=per_min, burst=1)
        assert limiter.take("c") == 0
        assert limiter.take("c") == pytest.approx(60 / per_min, rel=0.05, abs=0.01)

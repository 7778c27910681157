"""A circuit breaker for optional dependencies (Redis): after a failure, leave it alone for a
while and carry on without it, warning now and then rather than on every request."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

#: Do not flood the log while a dependency is down: one warning per interval.
_WARN_EVERY_S = 30.0


class Breaker:
    def __init__(self, what: str, retry_s: float = 2.0) -> None:
        self.what = what
        self.retry_s = retry_s
        self.available = True
        self._retry_at = 0.0
        self._last_warning = 0.0

    def resting(self) -> bool:
        """True while a recent failure says not to try yet."""
        return not self.available and time.monotonic() < self._retry_at

    def up(self) -> None:
        self.available = True

    def down(self, exc: Exception) -> None:
        self.available = False
        now = time.monotonic()
        self._retry_at = now + self.retry_s
        if now - self._last_warning > _WARN_EVERY_S:
            self._last_warning = now
            log.warning("%s unavailable: %s", self.what, exc)

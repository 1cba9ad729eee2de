"""A rate limit shared by every worker: stay under HubSpot's per-portal limit instead of hitting 429s."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis


class WindowLimiter:
    """Allows at most ``limit`` calls per ``window`` seconds for one key, across processes (fixed windows)."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        *,
        limit: int,
        window: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
    ) -> None:
        self.connection = connection
        self.key = key
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait

    def acquire(self) -> float:
        """Wait until a call is allowed; return the seconds waited (gives up waiting after max_wait)."""
        waited = 0.0
        while True:
            now = self.clock()
            window_start = int(now // self.window) * self.window
            key = f"qbo-actions:rate:{self.key}:{window_start}"
            with self.connection.pipeline() as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window * 2)
                count = pipe.execute()[0]
            if count <= self.limit or waited >= self.max_wait:
                # Past max_wait the call goes out anyway; a 429 from the server is handled by the retry rule.
                return waited
            pause = window_start + self.window - now + 0.01
            self.sleep(pause)
            waited += pause

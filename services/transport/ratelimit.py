"""A rate limit shared by every worker: stay under HubSpot's per-portal limit instead of hitting 429s."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis


class WindowLimiter:
    """Allows at most ``limit`` calls in any ``window`` seconds for one key, across processes (a sliding log)."""

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
        self.key = f"qbo-actions:rate:{key}"
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
            member = f"{now:.6f}:{uuid.uuid4().hex[:8]}"
            with self.connection.pipeline() as pipe:
                pipe.zremrangebyscore(self.key, 0, now - self.window)
                pipe.zadd(self.key, {member: now})
                pipe.zcard(self.key)
                pipe.zrange(self.key, 0, 0, withscores=True)
                pipe.expire(self.key, self.window * 2)
                _, _, count, oldest, _ = pipe.execute()
            if count <= self.limit or waited >= self.max_wait:
                # Past max_wait the call goes out anyway; a 429 from the server is handled by the retry rule.
                return waited
            self.connection.zrem(self.key, member)
            pause = max(0.01, oldest[0][1] + self.window - now + 0.01)
            self.sleep(pause)
            waited += pause

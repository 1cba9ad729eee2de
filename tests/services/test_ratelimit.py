"""The shared per-portal rate limit."""

from __future__ import annotations

import fakeredis

from services.ratelimit import WindowLimiter


class FakeClock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(connection: fakeredis.FakeRedis, clock: FakeClock, limit: int = 3) -> WindowLimiter:
    return WindowLimiter(connection, "hubspot:1", limit=limit, window=10, clock=clock, sleep=clock.sleep)


def test_calls_within_the_limit_do_not_wait() -> None:
    clock = FakeClock()
    shared = limiter(fakeredis.FakeRedis(), clock)

    assert [shared.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.slept == []


def test_the_call_over_the_limit_waits_for_the_next_window() -> None:
    clock = FakeClock(1003.0)
    shared = limiter(fakeredis.FakeRedis(), clock)
    for _ in range(3):
        shared.acquire()

    waited = shared.acquire()

    assert 7.0 <= waited <= 7.1
    assert clock.now >= 1010.0


def test_the_limit_is_shared_by_every_process_using_the_same_redis() -> None:
    server = fakeredis.FakeServer()
    clock = FakeClock()
    first = limiter(fakeredis.FakeRedis(server=server), clock, limit=2)
    second = limiter(fakeredis.FakeRedis(server=server), clock, limit=2)

    first.acquire()
    second.acquire()

    assert second.acquire() > 0

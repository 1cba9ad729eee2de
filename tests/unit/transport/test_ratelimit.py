"""The shared per-portal rate limit."""

from __future__ import annotations

import fakeredis

from services.transport.ratelimit import WindowLimiter


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


def test_the_call_over_the_limit_waits_until_the_oldest_call_is_a_window_old() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(fakeredis.FakeRedis(), clock)
    for step in (0, 3, 3):
        clock.now += step
        shared.acquire()

    waited = shared.acquire()

    assert 3.9 <= waited <= 4.1, "the first call was at 1000, so the fourth may go at 1010"
    assert clock.now >= 1010.0


def test_no_window_holds_more_than_the_limit() -> None:
    clock = FakeClock(1009.0)
    shared = limiter(fakeredis.FakeRedis(), clock, limit=3)
    times = []
    for _ in range(9):
        shared.acquire()
        times.append(clock.now)

    assert all(sum(1 for t in times if start <= t < start + 10) <= 3 for start in times)


def test_the_limit_is_shared_by_every_process_using_the_same_redis() -> None:
    server = fakeredis.FakeServer()
    clock = FakeClock()
    first = limiter(fakeredis.FakeRedis(server=server), clock, limit=2)
    second = limiter(fakeredis.FakeRedis(server=server), clock, limit=2)

    first.acquire()
    second.acquire()

    assert second.acquire() > 0

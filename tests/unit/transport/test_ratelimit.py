"""The limits every process shares per company and portal, on fakeredis's Lua with an injected clock."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.transport.errors import RateLimitedError
from services.transport.gate import BATCH, CALL
from services.transport.ratelimit import NETWORK_JITTER, Limit, RateLimiter, RedisCallGate, Semaphore, server_limit


class FakeClock:
    """A clock that only moves when somebody sleeps (or the test moves it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(
    clock: FakeClock,
    *limits: Limit,
    connection: fakeredis.FakeRedis | None = None,
    max_wait: float = 60.0,
) -> RateLimiter:
    return RateLimiter(
        connection or fakeredis.FakeRedis(),
        "quickbooks:1",
        limits or (Limit("window", 3, 10),),
        service="quickbooks",
        max_wait=max_wait,
        clock=clock,
        sleep=clock.sleep,
    )


def most_in_any_window(times: list[float], seconds: float) -> int:
    """Return the most of ``times`` that fall in one window [t, t + seconds); the fullest window starts at a time."""
    return max((sum(1 for t in times if start <= t < start + seconds - 1e-6) for start in times), default=0)


# The rate limiter ---------------------------------------------------------------------------------------------


def test_calls_within_the_limit_do_not_wait() -> None:
    clock = FakeClock()
    shared = limiter(clock)

    assert [shared.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.slept == []


def test_the_call_over_the_limit_waits_until_the_oldest_call_leaves_the_window() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(clock)
    for step in (0, 3, 3):
        clock.now += step
        shared.acquire()

    waited = shared.acquire()

    assert waited == pytest.approx(4.0), "the first call was at 1000, so the fourth may go at 1010"
    assert clock.now == pytest.approx(1010.0)


def test_a_call_of_several_units_waits_for_room_for_all_of_them() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(clock)
    shared.acquire()
    clock.now += 1
    shared.acquire()

    assert shared.acquire(cost=2) == pytest.approx(9.0), "two must leave room: the first leaves at 1010"
    assert shared.acquire() == pytest.approx(1.0), "the calls at 1001 and 1010 (twice) fill the window until 1011"
    with pytest.raises(ValueError):
        shared.acquire(cost=4)


def test_every_limit_of_a_key_is_kept() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(clock, Limit("second", 2, 1), Limit("minute", 5, 60))
    times = []
    for _ in range(7):
        shared.acquire()
        times.append(clock.now)

    assert times == pytest.approx([1000, 1000, 1001, 1001, 1002, 1060, 1060])


def test_the_limit_is_shared_by_every_process_using_the_same_redis() -> None:
    server = fakeredis.FakeServer()
    clock = FakeClock()
    first = limiter(clock, Limit("window", 2, 10), connection=fakeredis.FakeRedis(server=server))
    second = limiter(clock, Limit("window", 2, 10), connection=fakeredis.FakeRedis(server=server))

    first.acquire()
    second.acquire()

    assert first.acquire() == pytest.approx(10.0)


def test_a_wait_longer_than_max_wait_raises_at_once_with_the_time_until_room() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(clock, Limit("window", 1, 10), max_wait=5.0)
    shared.acquire()
    clock.now += 2

    with pytest.raises(RateLimitedError) as raised:
        shared.acquire()

    assert raised.value.retry_after == pytest.approx(8.0)
    assert raised.value.service == "quickbooks"
    assert clock.slept == [], "no use sleeping when the wait will be too long anyway"
    clock.now += 8
    assert shared.acquire() == 0.0, "the call that gave up was not counted"


def test_max_wait_can_be_shortened_for_one_call() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(clock, Limit("window", 1, 10))
    shared.acquire()

    with pytest.raises(RateLimitedError):
        shared.acquire(max_wait=1.0)
    assert shared.acquire() == pytest.approx(10.0)


def test_server_limits_stretch_the_window_for_the_network() -> None:
    assert server_limit("second", 10, 1) == Limit("second", 10, 1 + NETWORK_JITTER)
    with pytest.raises(ValueError):
        Limit("never", 0, 1)


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.05, 0.3, 0.5, 1.0, 2.5, 7.0]), min_size=1, max_size=30),
    per_second=st.integers(1, 4),
    per_five=st.integers(1, 8),
)
def test_no_window_ever_holds_more_than_its_limit_and_no_call_waits_longer_than_needed(
    gaps: list[float], per_second: int, per_five: int
) -> None:
    clock = FakeClock(1000.0)
    limits = (Limit("second", per_second, 1), Limit("five", per_five, 5))
    shared = limiter(clock, *limits, max_wait=1e6)
    sent: list[float] = []
    for gap in gaps:
        clock.now += gap
        asked = clock.now
        shared.acquire()
        sent.append(clock.now)
        # Exact: the call goes as soon as every limit has room, i.e. once the call that many calls back has left.
        earliest = max(
            [asked, *(sent[-1 - limit.calls] + limit.seconds for limit in limits if len(sent) > limit.calls)]
        )
        assert clock.now == pytest.approx(earliest, abs=1e-5)

    for limit in limits:
        assert most_in_any_window(sent, limit.seconds) <= limit.calls


# Blocking after a 429 ------------------------------------------------------------------------------------------


def test_a_block_holds_every_call_back_until_it_ends_then_the_rate_applies_again() -> None:
    server = fakeredis.FakeServer()
    clock = FakeClock(1000.0)
    shared = limiter(clock, Limit("window", 3, 10), connection=fakeredis.FakeRedis(server=server))
    other_process = limiter(clock, Limit("window", 3, 10), connection=fakeredis.FakeRedis(server=server))

    shared.block(5.0)
    shared.block(2.0)  # a shorter block does not cut the longer one short

    assert other_process.acquire() == pytest.approx(5.0)
    assert [shared.acquire(), shared.acquire()] == [0.0, 0.0]
    assert shared.acquire() == pytest.approx(10.0), "after the block, the window counts again"


def test_a_block_longer_than_max_wait_hands_the_call_back_with_the_rest_of_the_block() -> None:
    clock = FakeClock(1000.0)
    shared = limiter(clock, max_wait=10.0)
    shared.block(60.0)
    clock.now += 15

    with pytest.raises(RateLimitedError) as raised:
        shared.acquire()

    assert raised.value.retry_after == pytest.approx(45.0)
    clock.now += 45
    assert shared.acquire() == 0.0


# The semaphore -------------------------------------------------------------------------------------------------


def semaphore(clock: FakeClock, capacity: int = 2, *, connection: fakeredis.FakeRedis | None = None) -> Semaphore:
    return Semaphore(
        connection or fakeredis.FakeRedis(),
        "quickbooks:1",
        capacity,
        hold_seconds=35.0,
        service="quickbooks",
        max_wait=10.0,
        clock=clock,
        sleep=clock.sleep,
        poll=0.5,
    )


def test_the_semaphore_lets_in_its_capacity_and_the_next_waits_for_a_release() -> None:
    clock = FakeClock()
    places = semaphore(clock)
    first, _ = places.acquire()
    places.acquire()

    with pytest.raises(RateLimitedError) as raised:
        places.acquire(max_wait=2.0)
    assert raised.value.retry_after == pytest.approx(35.0 - 2.0), "at the latest when the first hold expires"
    assert clock.slept == [0.5, 0.5, 0.5, 0.5], "it looked again every poll"

    places.release(first)
    assert places.acquire()[1] == 0.0


def test_a_holder_that_never_gives_its_place_back_loses_it_when_its_hold_expires() -> None:
    clock = FakeClock()
    connection = fakeredis.FakeRedis()
    semaphore(clock, capacity=1, connection=connection).acquire()  # and never released: its process died
    clock.now += 30

    _, waited = semaphore(clock, capacity=1, connection=connection).acquire()

    assert waited == pytest.approx(5.0)


def test_a_place_is_given_back_when_the_call_fails() -> None:
    clock = FakeClock()
    places = semaphore(clock, capacity=1)

    with pytest.raises(RuntimeError), places.held():
        raise RuntimeError("the call failed")

    with places.held() as waited:
        assert waited == 0.0


def test_giving_a_place_back_while_redis_is_down_does_not_hide_the_call_s_outcome() -> None:
    server = fakeredis.FakeServer()
    clock = FakeClock()
    places = semaphore(clock, capacity=1, connection=fakeredis.FakeRedis(server=server))
    holder, _ = places.acquire()
    server.connected = False

    places.release(holder)  # logged; the hold expires by itself


# The gate ------------------------------------------------------------------------------------------------------


def gate(
    clock: FakeClock, *, concurrency: int | None = 2, connection: fakeredis.FakeRedis | None = None
) -> RedisCallGate:
    return RedisCallGate(
        connection or fakeredis.FakeRedis(),
        "quickbooks:1",
        service="quickbooks",
        limits={CALL: (Limit("second", 3, 1),), BATCH: (Limit("second", 3, 1), Limit("batches", 1, 60))},
        concurrency=concurrency,
        request_timeout=30.0,
        backoff=60.0,
        max_wait=10.0,
        clock=clock,
        sleep=clock.sleep,
    )


def test_a_slot_counts_the_call_and_holds_a_place_until_the_answer() -> None:
    clock = FakeClock()
    shared = gate(clock, concurrency=1)

    with shared.slot():
        assert shared.in_flight is not None
        connection = shared.in_flight.connection
        assert connection.zcard(shared.in_flight.key) == 1
    assert connection.zcard(shared.in_flight.key) == 0
    assert connection.zcard(shared.limiters[CALL].keys[1]) == 1, "the call stays counted in its window"


def test_batch_calls_count_against_the_call_limits_and_their_own() -> None:
    clock = FakeClock(1000.0)
    shared = gate(clock)

    with shared.slot(BATCH):
        pass
    with shared.slot(CALL):
        pass
    with shared.slot(CALL):
        pass
    with shared.slot("unknown kind"):  # falls back to the call limits: the second is full now
        pass
    assert clock.now == pytest.approx(1001.0)
    with pytest.raises(RateLimitedError) as raised:
        with shared.slot(BATCH):
            pass
    assert raised.value.retry_after == pytest.approx(59.0)


def test_a_429_without_retry_after_blocks_the_key_for_the_backoff() -> None:
    clock = FakeClock(1000.0)
    server = fakeredis.FakeServer()
    shared = gate(clock, connection=fakeredis.FakeRedis(server=server))
    other_process = gate(clock, connection=fakeredis.FakeRedis(server=server))

    shared.throttled(None)

    with pytest.raises(RateLimitedError) as raised:
        with other_process.slot():
            pass
    assert raised.value.retry_after == pytest.approx(60.0)
    assert other_process.in_flight is not None
    assert other_process.in_flight.connection.zcard(other_process.in_flight.key) == 0, (
        "the place taken before the rate limit said no was given back"
    )


def test_a_429_with_retry_after_blocks_the_key_that_long() -> None:
    clock = FakeClock(1000.0)
    shared = gate(clock)

    shared.throttled(2.5)

    with shared.slot():
        pass
    assert clock.slept == [pytest.approx(2.5)]


def test_a_429_while_redis_is_down_is_only_logged() -> None:
    server = fakeredis.FakeServer()
    shared = gate(FakeClock(), connection=fakeredis.FakeRedis(server=server))
    server.connected = False

    shared.throttled(None)


def test_the_wait_for_a_place_and_for_the_rate_share_one_max_wait() -> None:
    clock = FakeClock(1000.0)
    connection = fakeredis.FakeRedis()
    shared = gate(clock, concurrency=1, connection=connection)
    Semaphore(connection, "quickbooks:1", 1, hold_seconds=6.0, service="quickbooks", clock=clock).acquire()
    shared.throttled(12.0)

    with pytest.raises(RateLimitedError) as raised:
        with shared.slot():
            pass
    assert sum(clock.slept) == pytest.approx(6.0), "the place took 6 s, which leaves 4 s: less than the block's rest"
    assert raised.value.retry_after == pytest.approx(6.0)

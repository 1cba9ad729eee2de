"""The shared limits on the real Redis: threads in several processes on one key, and 429s from the simulator."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests

from services.quickbooks.client import QuickBooksClient
from services.transport.errors import RateLimitedError
from services.transport.gate import CALL
from services.transport.ratelimit import Limit, RateLimiter, RedisCallGate, Semaphore, server_limit
from simulators.scenario import QBO_ACCESS_TOKEN, REALM_ID, Simulators
from tests.conftest import REDIS_URL
from tests.fakes import FakeTokens

PROCESSES = 3
THREADS = 3
# Timestamps are taken in Python after Redis decided, a little late and not all equally late: windows are checked
# this much shorter than they are.
MEASURING = 0.02

# Spawned, not forked: a fork taken while another thread of the test process (pytest-xdist's, a pool's) holds a
# lock can hang the child. The children import this module afresh (and with it the same REDIS_URL).
fork = multiprocessing.get_context("spawn")


def in_threads_and_processes(work: Callable[..., list[Any]], *args: Any) -> list[Any]:
    """Run ``work(*args)`` in THREADS threads of each of PROCESSES processes; return what they all returned."""
    with fork.Pool(PROCESSES) as pool:
        results = pool.starmap(in_threads, [(work, *args)] * PROCESSES)
    return [item for result in results for item in result]


def in_threads(work: Callable[..., list[Any]], *args: Any) -> list[Any]:
    with ThreadPoolExecutor(THREADS) as threads:
        results = list(threads.map(lambda _: work(*args), range(THREADS)))
    return [item for result in results for item in result]


def most_in_any_window(times: list[float], seconds: float) -> int:
    """Return the most of ``times`` in one window [t, t + seconds); the fullest window starts at one of them."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered[i:] if t < start + seconds) for i, start in enumerate(ordered))


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """Return the most intervals that overlap at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = highest = 0
    for _, change in events:
        current += change
        highest = max(highest, current)
    return highest


# Children's work (module level, so that a forked pool can run it) ----------------------------------------------


def send_under_the_limits(key: str, limits: tuple[Limit, ...], seconds: float) -> list[float]:
    """Acquire over and over for ``seconds``; return when each call was let through."""
    limiter = RateLimiter(redis.Redis.from_url(REDIS_URL), key, limits, service="quickbooks", max_wait=30)
    sent = []
    until = time.time() + seconds
    while time.time() < until:
        limiter.acquire()
        sent.append(time.time())
    return sent


def hold_places(key: str, capacity: int, seconds: float) -> list[tuple[float, float]]:
    """Take a place over and over for ``seconds``, holding it briefly; return when each hold began and ended."""
    gate = RedisCallGate(
        redis.Redis.from_url(REDIS_URL), key, service="quickbooks", limits={}, concurrency=capacity, max_wait=30
    )
    held = []
    until = time.time() + seconds
    while time.time() < until:
        with gate.slot():
            began = time.time()
            time.sleep(random.uniform(0.005, 0.03))
            held.append((began, time.time()))
    return held


def take_a_place_and_die(key: str) -> None:
    """Take the only place and exit without giving it back, as a killed worker would."""
    Semaphore(redis.Redis.from_url(REDIS_URL), key, 1, hold_seconds=1.0, service="quickbooks").acquire()
    os._exit(0)


def quickbooks_gate(**options: Any) -> RedisCallGate:
    """Return the company's gate on a connection of its own, as each worker process has."""
    defaults: dict[str, Any] = {
        "limits": {CALL: (server_limit("second", 1000, 1),)},
        "concurrency": 10,
        "request_timeout": 10,
        "backoff": 1.5,
    }
    connection = redis.Redis.from_url(REDIS_URL)
    return RedisCallGate(connection, f"quickbooks:{REALM_ID}", service="quickbooks", **{**defaults, **options})


def company_client(quickbooks_url: str, gate: RedisCallGate) -> QuickBooksClient:
    tokens = FakeTokens(f"{QBO_ACCESS_TOKEN}-{REALM_ID}")
    return QuickBooksClient(f"{quickbooks_url}/v3", REALM_ID, tokens, session=requests.Session(), timeout=10, gate=gate)


def read_company_info(quickbooks_url: str, per_second: int, seconds: float) -> list[int]:
    """Read CompanyInfo through the company's gate for ``seconds``; return how many calls went out."""
    client = company_client(quickbooks_url, quickbooks_gate(limits={CALL: (server_limit("second", per_second, 1),)}))
    until = time.time() + seconds
    while time.time() < until:
        # A 429 would show in the simulator's log; raised here, it could not cross back to the parent.
        with contextlib.suppress(RateLimitedError):
            client.company_info()
    return [client.calls]


def moments_of_reading_company_info(quickbooks_url: str) -> list[tuple[float, float]]:
    """Read CompanyInfo once through a gate of this process; return when it started and when it was answered."""
    client = company_client(quickbooks_url, quickbooks_gate(backoff=2.0))
    started = time.time()
    client.company_info()
    return [(started, time.time())]


# Tests -----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_threads_of_several_processes_never_exceed_any_limit_of_the_key(redis_connection: redis.Redis) -> None:
    limits = (Limit("quarter-second", 8, 0.25), Limit("second", 20, 1.0))

    sent = in_threads_and_processes(send_under_the_limits, "quickbooks:hammered", limits, 1.5)

    for limit in limits:
        assert most_in_any_window(sent, limit.seconds - MEASURING) <= limit.calls, limit
    # Not only safe but busy: 20 in the first second, then 8 and 8 more before the end.
    assert len(sent) >= 34


@pytest.mark.slow
def test_threads_of_several_processes_never_hold_more_places_than_the_cap(redis_connection: redis.Redis) -> None:
    held = in_threads_and_processes(hold_places, "quickbooks:hammered", 4, 2.0)

    assert most_at_once(held) == 4, "never more than the cap, and the cap is used"


def test_a_killed_holder_s_place_comes_back_when_its_hold_expires(redis_connection: redis.Redis) -> None:
    child = fork.Process(target=take_a_place_and_die, args=("quickbooks:killed",))
    child.start()
    child.join(10)
    assert child.exitcode == 0

    _, waited = Semaphore(redis_connection, "quickbooks:killed", 1, hold_seconds=1.0, service="quickbooks").acquire()

    assert 0.3 < waited <= 1.1


@pytest.mark.slow
def test_processes_under_a_shared_gate_get_no_429_from_a_server_counting_arrivals(
    redis_connection: redis.Redis, sims: Simulators
) -> None:
    sims.quickbooks_config(per_second_limit=6)

    calls = in_threads_and_processes(read_company_info, sims.quickbooks_url, 6, 2.0)

    statuses = [r["status"] for r in sims.qbo_requests() if "/companyinfo/" in r["path"]]
    assert statuses.count(429) == 0
    assert len(statuses) == sum(calls) >= 12, "about six a second for two seconds"


def test_a_429_from_quickbooks_holds_back_every_process_until_the_backoff_ends(
    redis_connection: redis.Redis, sims: Simulators
) -> None:
    backoff = 2.0
    sims.qbo_fault(status=429, method="GET", path="/companyinfo/", count=1)
    throttled_client = company_client(sims.quickbooks_url, quickbooks_gate(backoff=backoff))

    before = time.time()
    with pytest.raises(RateLimitedError) as throttled:
        throttled_client.company_info()
    blocked_until = time.time() + backoff
    assert throttled.value.retry_after is None, "Intuit names no Retry-After: the backoff applies"
    with pytest.raises(RateLimitedError) as impatient:
        company_client(sims.quickbooks_url, quickbooks_gate(max_wait=0.5, backoff=backoff)).company_info()
    # Threads with connections and gates of their own stand for other processes here: a spawned process may take
    # longer to start than the block lasts on a busy machine (the limits above are checked across processes).
    spans = in_threads(moments_of_reading_company_info, sims.quickbooks_url)

    assert backoff - 1.0 < (impatient.value.retry_after or 0) <= backoff, "it gave up at once, saying how long"
    assert any(started < blocked_until - 0.5 for started, _ in spans), "the others started during the block"
    # Each waited for the end of the block (the block began between `before` and the 429's return).
    assert all(before + backoff - 0.05 <= finished < blocked_until + 1.5 for _, finished in spans), spans
    assert [r["status"] for r in sims.qbo_requests() if "/companyinfo/" in r["path"]] == [429] + [200] * THREADS

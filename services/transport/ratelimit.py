"""Limits every process shares through Redis, per QuickBooks company and per HubSpot portal.

``RateLimiter``    at most N calls in any W seconds, for several (N, W) at once, and a moment before which nobody
                   sends (set after a 429). One sliding log per limit: a sorted set of the moments calls were sent.
                   A token bucket would keep less, but after a quiet spell its full bucket lets up to 2N - 1 calls
                   into one window, and HubSpot and Intuit count rolling windows; the log never lets in more than N.
``Semaphore``      at most N calls in flight; every hold expires by itself, so a crashed process frees its place.
``RedisCallGate``  the ``CallGate`` of one company or portal, built from both.

Each decision is one Lua script, atomic on the server and timed by the server's clock (Redis TIME), so processes on
hosts whose clocks differ still agree; times are whole microseconds (exact in Redis's doubles). Waiting is bounded:
past ``max_wait`` the caller gets a RateLimitedError saying when to come back, and the retry rule hands the job
back to the queue instead of holding a worker.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from services.transport.errors import RateLimitedError
from services.transport.gate import CALL

log = logging.getLogger(__name__)

PREFIX = "qbo-actions:rate:"
# Seconds a caller may wait for room before it gives up with a RateLimitedError.
MAX_WAIT = 10.0
# A hold outlives the longest a call may wait and take by this many seconds, then expires on its own.
HOLD_MARGIN = 5.0
# Seconds between looks while waiting for a place in flight: a place frees when a call ends, which nobody announces.
POLL = 0.05
# The server counts a call when it arrives, later than we count it by a network delay that varies from call to call:
# two calls a window apart here may arrive a little less than a window apart there. ``server_limit`` stretches
# windows by more than that variation on a reused connection.
NETWORK_JITTER = 0.1
MICROSECONDS = 1_000_000

Clock = Callable[[], float]

# Every script starts here: ``now`` in microseconds from ARGV[1], or from the server's clock when that is negative;
# ``int`` writes a number for Redis without the exponent Lua would give a large one.
_NOW = """
local now = tonumber(ARGV[1])
if now < 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local function int(x) return string.format('%d', x) end
"""

# KEYS: the blocked-until moment, then one log per limit. ARGV: now, cost, a name for the calls, then each limit's
# calls and window. Returns the microseconds to wait, or 0 after counting the calls in every log.
TAKE = (
    _NOW
    + """
local cost = tonumber(ARGV[2])
local wait = tonumber(redis.call('GET', KEYS[1]) or now) - now
for i = 2, #KEYS do
  local calls, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', int(now - window))
  local excess = redis.call('ZCARD', KEYS[i]) + cost - calls
  if excess > 0 then
    -- Room comes when the excess oldest calls have left the window.
    local oldest = redis.call('ZRANGE', KEYS[i], excess - 1, excess - 1, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then
  return int(wait)
end
for i = 2, #KEYS do
  for n = 1, cost do
    redis.call('ZADD', KEYS[i], int(now), ARGV[3] .. ':' .. n)
  end
  redis.call('PEXPIRE', KEYS[i], int(math.ceil(tonumber(ARGV[2 * i + 1]) / 1000) + 1000))
end
return 0
"""
)

# KEYS[1]: the blocked-until moment. ARGV: now, the microseconds to block. The moment only ever moves later.
BLOCK = (
    _NOW
    + """
local blocked = now + tonumber(ARGV[2])
if blocked > tonumber(redis.call('GET', KEYS[1]) or 0) then
  redis.call('SET', KEYS[1], int(blocked), 'PX', int(math.ceil(tonumber(ARGV[2]) / 1000) + 1000))
end
return 0
"""
)

# KEYS[1]: the holders, scored by when each hold expires. ARGV: now, capacity, the holder, the hold's length.
# Returns 0 once held, else the microseconds until the first hold expires (a place frees then at the latest).
HOLD = (
    _NOW
    + """
local hold = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], int(now + hold), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], int(math.ceil(hold / 1000) + 1000))
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return int(tonumber(first[2]) - now)
"""
)


@dataclass(frozen=True)
class Limit:
    """At most ``calls`` requests in any ``seconds``; ``name`` tells its log apart from the key's other limits."""

    name: str
    calls: int
    seconds: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.seconds <= 0:
            raise ValueError(f"the limit {self.name!r} must allow at least one call in a window longer than 0 s")


def server_limit(name: str, calls: int, seconds: float) -> Limit:
    """Return the limit to keep so that a server counting arrivals sees at most ``calls`` in any ``seconds``."""
    return Limit(name, calls, seconds + NETWORK_JITTER)


class Scripts:
    """The Lua scripts, registered once per Redis client object."""

    def __init__(self, connection: redis.Redis) -> None:
        self.take = connection.register_script(TAKE)
        self.block = connection.register_script(BLOCK)
        self.hold = connection.register_script(HOLD)


_registered: weakref.WeakKeyDictionary[redis.Redis, Scripts] = weakref.WeakKeyDictionary()


def scripts_of(connection: redis.Redis) -> Scripts:
    """Return the scripts of a Redis client, registering them on its first use."""
    found = _registered.get(connection)
    if found is None:
        found = _registered[connection] = Scripts(connection)
    return found


def microseconds(seconds: float) -> int:
    """Return seconds as whole microseconds."""
    return round(seconds * MICROSECONDS)


def now_argument(clock: Clock | None) -> int:
    """Return the time a script should use: the injected clock's, or -1 for the Redis server's."""
    return -1 if clock is None else microseconds(clock())


class RateLimiter:
    """Several sliding-window limits on one key, and a moment before which nobody sends; shared through Redis."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        limits: Sequence[Limit],
        *,
        service: str,
        max_wait: float = MAX_WAIT,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.limits = tuple(limits)
        self.service = service
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self.connection = connection
        self.scripts = scripts_of(connection)
        # One hash tag for every key of a company or portal: a script's keys must share a Redis Cluster slot.
        base = f"{PREFIX}{{{key}}}"
        self.keys = [f"{base}:blocked", *(f"{base}:{limit.name}" for limit in self.limits)]
        self.limit_arguments = [n for limit in self.limits for n in (limit.calls, microseconds(limit.seconds))]

    def acquire(self, cost: int = 1, *, max_wait: float | None = None) -> float:
        """Wait until ``cost`` calls fit under every limit and count them sent now; return the seconds waited."""
        if any(cost > limit.calls for limit in self.limits):
            raise ValueError(f"{cost} calls never fit under the limits of {self.key}")
        budget = self.max_wait if max_wait is None else max_wait
        name = uuid.uuid4().hex
        waited = 0.0
        while True:
            arguments: list[str | int] = [now_argument(self.clock), cost, name, *self.limit_arguments]
            wait = int(self.scripts.take(keys=self.keys, args=arguments)) / MICROSECONDS
            if wait <= 0:
                return waited
            if waited + wait > budget:
                raise RateLimitedError(
                    f"The shared rate limit of {self.key} has no room for {wait:.1f} s",
                    service=self.service,
                    retry_after=wait,
                )
            self.sleep(wait)
            waited += wait

    def logged(self, name: str) -> int:
        """Return how many calls the log of one limit holds: those of its last window, and a few older until the
        next call trims them."""
        index = next(i for i, limit in enumerate(self.limits) if limit.name == name)
        return int(self.connection.zcard(self.keys[index + 1]))

    def block(self, seconds: float) -> None:
        """Keep every process from sending on this key for ``seconds`` (a longer block already set stays)."""
        self.scripts.block(keys=self.keys[:1], args=[now_argument(self.clock), microseconds(seconds)])


class Semaphore:
    """At most ``capacity`` holders of one key at a time, across processes; a hold expires after ``hold_seconds``."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        capacity: int,
        *,
        hold_seconds: float,
        service: str,
        max_wait: float = MAX_WAIT,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = POLL,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"the semaphore of {key} must let at least one holder in")
        self.connection = connection
        self.key = f"{PREFIX}{{{key}}}:in-flight"
        self.capacity = capacity
        self.hold_seconds = hold_seconds
        self.service = service
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self.poll = poll
        self.scripts = scripts_of(connection)

    def acquire(self, *, max_wait: float | None = None) -> tuple[str, float]:
        """Wait for a place; return the holder's name (for ``release``) and the seconds waited."""
        budget = self.max_wait if max_wait is None else max_wait
        holder = uuid.uuid4().hex
        hold = microseconds(self.hold_seconds)
        waited = 0.0
        while True:
            arguments: list[str | int] = [now_argument(self.clock), self.capacity, holder, hold]
            expires_in = int(self.scripts.hold(keys=[self.key], args=arguments)) / MICROSECONDS
            if expires_in <= 0:
                return holder, waited
            pause = min(expires_in, self.poll)
            if waited + pause > budget:
                raise RateLimitedError(
                    f"All {self.capacity} places in flight of {self.key} stayed taken for {waited:.1f} s",
                    service=self.service,
                    retry_after=expires_in,
                )
            self.sleep(pause)
            waited += pause

    def release(self, holder: str) -> None:
        """Give the place back; when Redis cannot be reached, the hold expires by itself."""
        try:
            self.connection.zrem(self.key, holder)
        except redis.RedisError as error:
            log.warning("Could not give back a place in flight of %s (it expires by itself): %s", self.key, error)

    @contextmanager
    def held(self) -> Iterator[float]:
        """Hold a place for the duration of the block; yield the seconds waited for it."""
        holder, waited = self.acquire()
        try:
            yield waited
        finally:
            self.release(holder)


class RedisCallGate:
    """The CallGate of one QuickBooks company or HubSpot portal: rate limits per kind of call, a cap in flight, 429s.

    After a 429 despite the limits (another app using the same company, or the server counting differently), every
    process stops sending on the key until the server's Retry-After, or else for ``backoff`` seconds (Intuit asks
    for 60; HubSpot's window is 10), then goes on at the configured rate. A blocked moment does what both servers ask
    and is simpler than lowering the rate for a while; the call that got the 429 is retried by the usual rule.
    """

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        *,
        service: str,
        limits: Mapping[str, Sequence[Limit]],
        concurrency: int | None = None,
        request_timeout: float = 30.0,
        backoff: float = 60.0,
        max_wait: float = MAX_WAIT,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = key
        self.backoff = backoff
        self.max_wait = max_wait
        self.limiters = {
            kind: RateLimiter(
                connection, key, kind_limits, service=service, max_wait=max_wait, clock=clock, sleep=sleep
            )
            for kind, kind_limits in {CALL: (), **limits}.items()
        }
        # A hold covers the wait for the rate limit and the call itself; after that it expires, so the place of a
        # process that crashed mid-call comes back.
        hold_seconds = max_wait + request_timeout + HOLD_MARGIN
        self.in_flight = (
            Semaphore(
                connection,
                key,
                concurrency,
                hold_seconds=hold_seconds,
                service=service,
                max_wait=max_wait,
                clock=clock,
                sleep=sleep,
            )
            if concurrency
            else None
        )

    @contextmanager
    def slot(self, kind: str = CALL) -> Iterator[None]:
        """Take a place in flight, then room under the rate limits of ``kind``; give the place back afterwards."""
        limiter = self.limiters.get(kind, self.limiters[CALL])
        if self.in_flight is None:
            limiter.acquire()
            yield
            return
        # The place comes first, so the call goes out the moment the rate limiter counts it: counted while it still
        # waited for a place, it could leave the window before the server saw it.
        holder, waited = self.in_flight.acquire()
        try:
            limiter.acquire(max_wait=self.max_wait - waited)
            yield
        finally:
            self.in_flight.release(holder)

    def recent(self, kind: str, limit_name: str) -> int:
        """Return about how many calls of ``kind`` went out in the window of one of its limits."""
        return self.limiters[kind].logged(limit_name)

    def throttled(self, retry_after: float | None) -> None:
        """Block the key for the server's Retry-After, or else for ``backoff`` seconds (Redis trouble is logged)."""
        seconds = retry_after if retry_after is not None else self.backoff
        try:
            self.limiters[CALL].block(seconds)
        except redis.RedisError as error:
            log.warning("Could not hold back the calls of %s after a 429: %s", self.key, error)

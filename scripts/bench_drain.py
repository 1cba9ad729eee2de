"""The drain phase of scripts/bench.py (issue 10): real workers empty a backlog under the documented limits.

Every run resets both simulators, the benchmark database and its Redis db; sets the simulators' limits to the
documented figures (QuickBooks: 500 requests/min, 10/s and 10 concurrent per realm; HubSpot: 110 requests per
10 s per portal); connects its portals and companies; seeds one contact and the deals (two line items each, the
same two products); starts the Procfile's processes (web under gunicorn, 2 gthread workers of 8 threads,
K `qbo-actions worker`, the sweeper) with the sweeper's production interval (30 s); and maps each company's
customer and products with one warm-up execution. Then, with the request logs and callbacks cleared and the limits
enforced:

- burst: N invoice executions of one portal and company, pre-signed, posted over 16 connections at once;
- fairness: the same burst from portal A while portal B sends 10 executions, one every 2 s from 2 s after A's
  first POST; B's latency runs from its POST's answer to its callback's completion;
- scaling: 10 companies, one portal each (the realistic case), M invoices each, posted interleaved, drained by
  1, 2 and 4 workers.

A drain runs from the first POST to the last callback completion the HubSpot simulator recorded (its own
received_at). Calls and 429 answers come from the simulators' request logs; worker CPU from /proc (utime + stime
of every worker process and its children, reaped ones included, before and after); peak memory from VmHWM and
VmRSS sampled every 0.5 s. A drain that does not finish fails with the worker logs' tails.

The retry intervals are the benchmark's short ones (RETRY_INTERVALS = 1, 2, 5, 5 ... s, as in the worker phase):
a QuickBooks 429 still costs QUICKBOOKS_THROTTLE_BACKOFF (production's 60 s) and a HubSpot 429 its Retry-After,
but production's growing intervals (300 s from the fourth retry on, up to 30 min) would make the tail of a
throttled burst, not its throughput, the figure, and a run last hours.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import bench as core
import requests

from simulators.scenario import DEFAULT_CONTACT, PORTAL_ID, REALM_ID, Simulators, execution_request

# The documented limits (../shared/reference/quickbooks-online.md §4, hubspot.md §6).
QBO_PER_MINUTE, QBO_PER_SECOND, QBO_CONCURRENT = 500, 10, 10
# And 40 batch requests a minute per company (each also one of the 500).
QBO_BATCHES_PER_MINUTE = 40
HUBSPOT_PER_10S = 110
# The goals.
TARGET_429 = 0
TARGET_DOCS_PER_MINUTE = 450.0
TARGET_HS_PER_EXECUTION = 0.2
TARGET_CPU_MS = 20.0
TARGET_B_P95_S = 15.0

PARTS = ("burst", "fairness", "scaling")
PORTAL_B, REALM_B = 202670506, "9130356"
SCALING_COMPANIES = 10
SCALING_PORTAL_BASE, SCALING_REALM_BASE = 302670500, 9130400
B_EXECUTIONS, B_FIRST_S, B_SPACING_S = 10, 2.0, 2.0
WEB_WORKERS = 2  # the Procfile's ${WEB_CONCURRENCY:-2} gthread workers of ${WEB_THREADS:-8} threads
WEB_THREADS = 8
POST_THREADS = 16
SEED_THREADS = 8
POLL_S = 2.0  # the drain's end comes from the simulator's timestamps, not from this poll
PROGRESS_S = 15.0
# No new callback for this long fails the run: four times QuickBooks' 60 s back-off after a 429.
STALL_S = 240.0
WARM_UP_TIMEOUT_S = 180.0
# The worker phase turns the sweeper off (SWEEP_INTERVAL=3600); the drain runs it like production.
PRODUCTION = ("SWEEP_INTERVAL",)
SETTINGS_SHOWN = (
    "RETRY_INTERVALS",
    "QUICKBOOKS_THROTTLE_BACKOFF",
    "HUBSPOT_CALLS_PER_10S",
    "JOB_TIMEOUT",
    "LEASE_SECONDS",
    "HTTP_TIMEOUT",
    "SWEEP_INTERVAL",
    "QUICKBOOKS_BATCH_WRITES",
    "QUICKBOOKS_BATCH_ABOVE",
    "QUICKBOOKS_BATCH_FILL_MS",
)
STATE = "hs_execution_state"


class DrainFailed(RuntimeError):
    """A drain run that could not finish (a timeout, a process that died, a warm-up that failed)."""


# Options and tenants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrainOptions:
    """What the drain phase runs, from the command line."""

    workers: int
    burst: int
    per_company: int
    scaling_workers: tuple[int, ...]
    parts: tuple[str, ...]
    timeout: float | None

    @classmethod
    def build(cls, quick: bool, workers: int, burst: int | None, parts: str, timeout: float | None) -> DrainOptions:
        """Apply --quick's smaller numbers and check the parts named."""
        chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
        unknown = sorted(set(chosen) - set(PARTS))
        if unknown or not chosen:
            raise SystemExit(f"--drain-parts: unknown {unknown}; choose among {', '.join(PARTS)}")
        return cls(
            workers=max(1, workers),
            burst=burst or (200 if quick else 1000),
            per_company=50 if quick else 200,
            scaling_workers=(1, 4) if quick else (1, 2, 4),
            parts=chosen,
            timeout=timeout,
        )


@dataclass
class Tenant:
    """One HubSpot portal connected to one QuickBooks company, with its seeded deals (the first one warms up)."""

    portal_id: int
    realm_id: str
    deals: list[str] = field(default_factory=list)

    def body(self, callback_id: str, deal: str) -> str:
        """Return a `create_invoice` execution request for one of its deals."""
        inputs = {"quickbooks_account": self.realm_id, "create_missing_products": "yes"}
        request = execution_request(inputs, callback_id=callback_id, object_id=deal, portal_id=self.portal_id)
        return json.dumps(request, separators=(",", ":"))

    def callback_id(self, tag: str, n: int | str) -> str:
        """Return the callbackId of its n-th execution of a run."""
        return f"ap-{self.portal_id}-{tag}-{n}"


def scaling_tenants() -> list[Tenant]:
    """Ten companies, each connected to a portal of its own."""
    return [Tenant(SCALING_PORTAL_BASE + i, str(SCALING_REALM_BASE + i)) for i in range(1, SCALING_COMPANIES + 1)]


# World: simulators, database, seeds -----------------------------------------------------------------


def reset_world(bench: core.Bench, tenants: list[Tenant]) -> None:
    """Reset both simulators (their default limits), the database and Redis; connect every tenant."""
    sims = bench.sims
    sims.reset()
    for tenant in tenants:
        sims.add_company(tenant.realm_id)
        sims.add_portal(tenant.portal_id)
    bench.reset_state()
    core.connect_companies(bench, [(t.portal_id, t.realm_id) for t in tenants])


def enforce_limits(sims: Simulators) -> None:
    """Make the simulators enforce the documented limits (the warm-ups run under the simulators' defaults)."""
    sims.quickbooks_config(
        throttle_per_minute=QBO_PER_MINUTE,
        per_second_limit=QBO_PER_SECOND,
        concurrent_limit=QBO_CONCURRENT,
        batch_per_minute=QBO_BATCHES_PER_MINUTE,
    )
    sims.hubspot_settings(limit_per_10s=HUBSPOT_PER_10S)


def seed(bench: core.Bench, counts: dict[int, int], tenants: list[Tenant]) -> None:
    """Give each tenant one contact and `counts[portal] + 1` deals of the two standard products, in parallel."""
    local = threading.local()

    def sims() -> Simulators:
        if not hasattr(local, "sims"):
            local.sims = Simulators(bench.sims.quickbooks_url, bench.sims.hubspot_url)
        return local.sims  # type: ignore[no-any-return]

    contacts = {t.portal_id: sims().add_object("contacts", DEFAULT_CONTACT, portal_id=t.portal_id) for t in tenants}

    def deal(job: tuple[Tenant, int]) -> str:
        tenant, n = job
        portal = tenant.portal_id
        items = [sims().add_object("line_items", dict(p), portal_id=portal) for p in core.LINE_ITEMS]
        return sims().add_object(
            "deals",
            {"dealname": f"Acme renewal {n}", "amount": "399.5", "deal_currency_code": "USD"},
            associations={"contacts": [contacts[portal]], "line_items": items},
            portal_id=portal,
        )

    with ThreadPoolExecutor(max_workers=SEED_THREADS) as pool:
        for tenant in tenants:
            jobs = [(tenant, n) for n in range(counts[tenant.portal_id] + 1)]
            tenant.deals = list(pool.map(deal, jobs))


def drain_env(bench: core.Bench) -> dict[str, str]:
    """The web, worker and sweeper environment: the benchmark's, with production's sweep interval."""
    env = bench.env()
    for name in PRODUCTION:
        env.pop(name, None)
    return env


# Processes -----------------------------------------------------------------------------------------


@dataclass
class Stack:
    """The Procfile's processes of one run: web, K workers, the sweeper."""

    web: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    sweeper: subprocess.Popen[bytes]
    url: str
    logs: dict[str, Path]

    def roles(self) -> dict[str, list[int]]:
        """Return the root process ids by role."""
        return {"workers": [w.pid for w in self.workers], "web": [self.web.pid], "sweeper": [self.sweeper.pid]}

    def check_alive(self) -> None:
        """Raise DrainFailed when a process of the stack has exited."""
        named = [("web", self.web), ("sweeper", self.sweeper)]
        named += [(f"worker-{i}", w) for i, w in enumerate(self.workers)]
        for name, process in named:
            if process.poll() is not None:
                log = self.logs.get(name)
                text = core.tail(log) if log else ""
                raise DrainFailed(f"{name} exited ({process.returncode}); see {log}\n{text}")


def qbo_actions() -> list[str]:
    """The `qbo-actions` command of the Procfile (the module when the script is not installed)."""
    script = core.VENV_BIN / "qbo-actions"
    return [str(script)] if script.exists() else [core.PYTHON, "-m", "actions.cli"]


def start_stack(bench: core.Bench, label: str, workers: int) -> Stack:
    """Start web (gunicorn), `workers` workers and the sweeper, as the Procfile's lines do."""
    env = drain_env(bench)
    logs: dict[str, Path] = {}

    def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = core.WORK_DIR / f"drain-{label}-{name}.log"
        log.write_text("")
        logs[name] = log
        return bench.procs.start(f"{name} ({label})", [*qbo_actions(), *args], env, log)

    port = core.free_port()
    web_args = [
        "--worker-class",
        "gthread",
        "--workers",
        str(WEB_WORKERS),
        "--threads",
        str(WEB_THREADS),
        "--access-logfile",
        "-",
    ]
    web = bench.start_gunicorn(f"drain-{label}", web_args, port, env)
    logs["web"] = core.WORK_DIR / f"gunicorn-drain-{label}.log"
    started = [start(f"worker-{i}", ["worker"]) for i in range(workers)]
    sweeper = start("sweeper", ["sweep", "--forever", "--metrics-port", "0"])
    return Stack(web, started, sweeper, f"http://127.0.0.1:{port}", logs)


def stop_stack(bench: core.Bench, stack: Stack) -> None:
    """Stop the workers, the sweeper and web."""
    for process in [*stack.workers, stack.sweeper, stack.web]:
        bench.procs.stop(process)


def descendants(pid: int) -> list[int]:
    """Return a process and all its live descendants (children of every thread)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    return found


def own_cpu(pid: int) -> float:
    """Return utime + stime of a process and of its reaped children (cutime + cstime), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / core.CLOCK_TICKS


def cpu_by_role(roles: dict[str, list[int]]) -> dict[str, float]:
    """Return the CPU seconds so far of each role's process trees."""
    return {role: sum(own_cpu(p) for root in roots for p in descendants(root)) for role, roots in roles.items()}


class PeakMemory(threading.Thread):
    """Samples each role's process trees every 0.5 s: the largest VmHWM of one process, the largest VmRSS sum."""

    def __init__(self, roles: dict[str, list[int]], interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="drain-memory")
        self.roles = roles
        self.interval = interval
        self.halt = threading.Event()
        self.largest: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.processes: dict[str, set[int]] = {role: set() for role in roles}

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def sample(self) -> None:
        """Take one sample of every role."""
        for role, roots in self.roles.items():
            rss = 0
            for pid in (p for root in roots for p in descendants(root)):
                status = core.proc_status(pid)
                self.processes[role].add(pid)
                self.largest[role] = max(self.largest[role], status.get("VmHWM", 0))
                rss += status.get("VmRSS", 0)
            self.total[role] = max(self.total[role], rss)

    def stop(self) -> dict[str, dict[str, float | int | None]]:
        """Stop sampling (after a last sample); return the peaks in MiB by role."""
        self.halt.set()
        self.join(timeout=5)
        self.sample()
        return {
            role: {
                "largest_process_hwm_mib": core.mib(self.largest[role]),
                "peak_total_rss_mib": core.mib(self.total[role]),
                "processes_seen": len(self.processes[role]),
            }
            for role in self.roles
        }


# Posting -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """A pre-signed execution request."""

    callback_id: str
    portal_id: int
    body: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Sent:
    """How the endpoint answered one request, and when (wall clock)."""

    callback_id: str
    portal_id: int
    status: int
    sent_at: float
    answered_at: float
    error: str = ""


def presign(url: str, jobs: Iterable[tuple[Tenant, str, str]]) -> list[Signed]:
    """Sign (tenant, callbackId, deal) executions for the endpoint at `url`."""
    out = []
    for tenant, callback_id, deal in jobs:
        body = tenant.body(callback_id, deal)
        out.append(Signed(callback_id, tenant.portal_id, body, core.signed(url, body)))
    return out


def post(session: requests.Session, url: str, request: Signed) -> Sent:
    """Post one signed request; never raise."""
    sent_at = time.time()
    try:
        response = session.post(url, data=request.body.encode(), headers=request.headers, timeout=30)
        status, error = response.status_code, "" if response.status_code == 200 else response.text[:200]
    except requests.RequestException as exc:
        status, error = 0, str(exc)[:200]
    return Sent(request.callback_id, request.portal_id, status, sent_at, time.time(), error)


def post_all(url: str, signed: list[Signed], threads: int = POST_THREADS) -> list[Sent]:
    """Post every request as fast as the endpoint takes them, over `threads` connections."""
    local = threading.local()

    def one(request: Signed) -> Sent:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post(local.session, url, request)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, signed))


def trickle(url: str, signed: list[Signed], start: float, rejected: set[str]) -> list[Sent]:
    """Post one request every B_SPACING_S, the first B_FIRST_S after `start` (wall clock)."""
    session = requests.Session()
    answers = []
    for n, request in enumerate(signed):
        time.sleep(max(0.0, start + B_FIRST_S + n * B_SPACING_S - time.time()))
        answer = post(session, url, request)
        if answer.status != 200:
            rejected.add(answer.callback_id)
        answers.append(answer)
    return answers


# Waiting -------------------------------------------------------------------------------------------


def succeeded(completion: dict[str, Any] | None) -> bool:
    """Tell whether a callback completion reports success."""
    return completion is not None and completion["output_fields"].get(STATE) == "SUCCESS"


def epoch(stamp: str) -> float:
    """Return the POSIX time of a simulator's ISO 8601 timestamp."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def received(completion: dict[str, Any]) -> float:
    """Return when the HubSpot simulator received a callback completion (epoch seconds)."""
    return epoch(str(completion["received_at"]))


def execution_states(bench: core.Bench) -> dict[str, int]:
    """Count the executions by state and callback state (for progress and failure messages)."""
    rows = bench.sql("SELECT state, callback_state, count(*) FROM executions GROUP BY 1, 2 ORDER BY 3 DESC")
    return {f"{state}/{callback}": int(n) for state, callback, n in rows}


def logs_tail(stack: Stack, chars: int = 1200) -> str:
    """Return the tail of every worker log and of the sweeper's."""
    names = [n for n in stack.logs if n.startswith("worker") or n == "sweeper"]
    return "\n".join(f"--- {stack.logs[n]} ---\n{core.tail(stack.logs[n], chars)}" for n in names)


def wait_callbacks(
    bench: core.Bench,
    stack: Stack,
    expected: set[str],
    rejected: set[str],
    timeout: float,
    label: str,
    check: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, Any]]:
    """Poll the HubSpot simulator until every expected callback (but those rejected) is completed; return them.

    Fails after `timeout` seconds, or STALL_S with no new callback, or when a process exits or `check` raises.
    """
    started = last_change = last_print = time.monotonic()
    seen = 0
    while True:
        stack.check_alive()
        check()
        done: dict[str, dict[str, Any]] = {}
        for completion in bench.sims.callbacks():
            if completion["callback_id"] in expected:
                done.setdefault(completion["callback_id"], completion)
        if not expected - rejected - done.keys():
            return done
        now = time.monotonic()
        if len(done) != seen:
            seen, last_change = len(done), now
        reason = ""
        if now - started > timeout:
            reason = f"not finished after {timeout:.0f} s"
        elif now - last_change > STALL_S:
            reason = f"no new callback for {STALL_S:.0f} s"
        if reason:
            raise DrainFailed(
                f"{label}: {reason}: {len(done)} of {len(expected - rejected)} callbacks completed; executions "
                f"(state/callback): {execution_states(bench)}\n{logs_tail(stack)}"
            )
        if now - last_print >= PROGRESS_S:
            last_print = now
            print(
                f"    [{label}] {len(done)}/{len(expected - rejected)} callbacks after {now - started:.0f} s",
                flush=True,
            )
        time.sleep(POLL_S)


def warm_up(bench: core.Bench, stack: Stack, tenants: list[Tenant], tag: str) -> dict[str, Any]:
    """Run one execution per tenant (mapping its customer and products); fail unless all succeed.

    It runs without QuickBooks' per-second limit: a cold company's first execution makes its profile, customer
    and item calls within a second, which would cost every run a minute's back-off. Return what it cost.
    """
    started = time.monotonic()
    signed = presign(stack.url + core.ACTION_PATH, [(t, t.callback_id(tag, "warm"), t.deals[0]) for t in tenants])
    answers = post_all(stack.url + core.ACTION_PATH, signed, threads=4)
    refused = [a for a in answers if a.status != 200]
    if refused:
        raise DrainFailed(f"warm-up refused: {refused[0].status} {refused[0].error}")
    expected = {s.callback_id for s in signed}
    done = wait_callbacks(bench, stack, expected, set(), WARM_UP_TIMEOUT_S, f"{tag} warm-up")
    failed = [c for c in done.values() if not succeeded(c)]
    if failed:
        raise DrainFailed(f"warm-up failed: {failed[0]['output_fields']}")
    time.sleep(0.5)  # the flush job's last writes
    return {"seconds": round(time.monotonic() - started, 1), **cold_start(bench, len(tenants))}


def cold_start(bench: core.Bench, companies: int) -> dict[str, Any]:
    """The warm-ups' calls: QuickBooks and HubSpot calls per company, QuickBooks' busiest second of one realm."""
    qbo = [r for r in bench.sims.qbo_requests() if not r["path"].startswith("/oauth2")]
    by_realm: dict[str, list[float]] = {}
    for r in qbo:
        by_realm.setdefault(str(r["realm_id"]), []).append(epoch(str(r["time"])))
    return {
        "quickbooks_calls_per_company": round(len(qbo) / max(1, companies), 1),
        "quickbooks_peak_per_second": max((busiest_second(times) for times in by_realm.values()), default=0),
        "hubspot_calls_per_company": round(len(bench.sims.hs_requests()) / max(1, companies), 1),
    }


def busiest_second(times: list[float]) -> int:
    """Return the most moments that fall within one second."""
    ordered, best, first = sorted(times), 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


# Figures -------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    """Return the nearest-rank percentile (share 0..1) of `values`."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def latencies(seconds: list[float]) -> dict[str, Any]:
    """Return count, p50, p95 (nearest rank) and max of latencies in seconds."""

    def rounded(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "count": len(seconds),
        "p50_s": rounded(percentile(seconds, 0.50)),
        "p95_s": rounded(percentile(seconds, 0.95)),
        "max_s": rounded(max(seconds) if seconds else None),
    }


def retries(bench: core.Bench, tag: str) -> dict[str, int]:
    """Count the measured executions' attempts by outcome, failing service and HTTP status."""
    rows = bench.sql(
        "SELECT a.outcome, coalesce(a.error_service, ''), coalesce(a.http_status::text, ''), count(*)"
        " FROM execution_attempts a JOIN executions e ON e.id = a.execution_id"
        " WHERE e.callback_id LIKE %s AND e.callback_id NOT LIKE %s GROUP BY 1, 2, 3 ORDER BY 4 DESC",
        ("ap-%", f"%-{tag}-warm"),
    )
    return {" ".join(p for p in (outcome, service, status) if p): int(n) for outcome, service, status, n in rows}


def drain_figures(
    sent: list[Sent], done: dict[str, dict[str, Any]], started: float, documents_wanted: int
) -> dict[str, Any]:
    """Return the drain time, rates and outcomes of a set of executions posted from `started`."""
    accepted = [s for s in sent if s.status == 200]
    mine = [done[s.callback_id] for s in accepted if s.callback_id in done]
    last = max((received(c) for c in mine), default=started)
    seconds = max(0.001, last - started)
    documents = sum(1 for c in mine if succeeded(c))
    reasons = Counter(str(c["output_fields"].get("failure_reason")) for c in mine if not succeeded(c))
    return {
        "executions": documents_wanted,
        "accepted": len(accepted),
        "refused": dict(Counter(f"{s.status} {s.error[:80]}".strip() for s in sent if s.status != 200)),
        "post_seconds": round(max((s.answered_at for s in sent), default=started) - started, 2),
        "drain_seconds": round(seconds, 1),
        "documents": documents,
        "failed": len(mine) - documents,
        "failure_reasons": dict(reasons),
        "documents_per_s": round(documents / seconds, 2),
        "documents_per_minute": round(60 * documents / seconds, 1),
    }


def call_figures(bench: core.Bench, documents: int, executions: int) -> dict[str, Any]:
    """Count the simulators' logged requests: calls per document and per execution, 429 answers."""
    qbo_log, hs_log = bench.sims.qbo_requests(), bench.sims.hs_requests()
    calls = core.call_breakdown(qbo_log, hs_log, max(1, executions))
    return {
        "quickbooks_requests": calls["quickbooks_requests"],
        "quickbooks_oauth_requests": calls["quickbooks_oauth_requests"],
        "quickbooks_429": calls["quickbooks_429"],
        "quickbooks_per_document": round(calls["quickbooks_requests"] / max(1, documents), 3),
        "quickbooks_per_document_without_429": round(
            (calls["quickbooks_requests"] - calls["quickbooks_429"]) / max(1, documents), 3
        ),
        "quickbooks_by_kind": by_kind_and_status([r for r in qbo_log if not r["path"].startswith("/oauth2")]),
        **batch_figures(qbo_log),
        "hubspot_requests": calls["hubspot_requests"],
        "hubspot_429": calls["hubspot_429"],
        "hubspot_per_execution": calls["hubspot_per_execution"],
        "hubspot_per_execution_without_429": calls["hubspot_per_execution_without_429"],
        "hubspot_by_kind": by_kind_and_status(hs_log),
    }


def batch_figures(qbo_log: list[dict[str, Any]]) -> dict[str, Any]:
    """Count the documents created in batches and alone, and how full the batches were."""
    batches = [r for r in qbo_log if r["method"] == "POST" and r["path"].endswith("/batch") and r["status"] == 200]
    alone = [r for r in qbo_log if r["method"] == "POST" and r["path"].endswith("/invoice") and r["status"] == 200]
    in_batches = sum(int(r.get("items") or 0) for r in batches)
    return {
        "quickbooks_batches": len(batches),
        "documents_in_batches": in_batches,
        "documents_alone": len(alone),
        "documents_per_batch": round(in_batches / len(batches), 1) if batches else None,
    }


def by_kind_and_status(log: list[dict[str, Any]]) -> dict[str, int]:
    """Count logged requests by method, path shape and status ("GET /v3/company/{id}/query 429")."""
    kinds = Counter(f"{r['method']} {core.shape(r['path'])} {r['status']}" for r in log)
    return dict(kinds.most_common())


def tightest_pace(calls: int) -> float:
    """Return the least time `calls` requests to one realm take under both 500 per 60 s and 10 per second."""
    if calls <= 0:
        return 0.0
    windows, rest = divmod(calls - 1, QBO_PER_MINUTE)
    return 60.0 * windows + rest / QBO_PER_SECOND


def invoices_created(bench: core.Bench, tenants: list[Tenant]) -> int:
    """Count the Invoices in the tenants' companies, the warm-ups' apart."""
    return sum(len(bench.sims.entities("Invoice", t.realm_id)) - 1 for t in tenants)


# One drain run -------------------------------------------------------------------------------------


@dataclass
class Plan:
    """One drain run: who posts what, with how many workers."""

    label: str
    tenants: list[Tenant]  # the burst's tenants, posted interleaved
    per_tenant: int
    workers: int
    timeout: float
    latecomer: Tenant | None = None  # fairness: B, trickling B_EXECUTIONS while the burst drains

    def all_tenants(self) -> list[Tenant]:
        """Return every tenant of the run, B included."""
        return [*self.tenants, *([self.latecomer] if self.latecomer else [])]

    def burst_jobs(self) -> list[tuple[Tenant, str, str]]:
        """Return (tenant, callbackId, deal) of the burst, the tenants interleaved."""
        return [(t, t.callback_id(self.label, n), t.deals[n + 1]) for n in range(self.per_tenant) for t in self.tenants]

    def late_jobs(self) -> list[tuple[Tenant, str, str]]:
        """Return (tenant, callbackId, deal) of B's executions (none outside the fairness run)."""
        b = self.latecomer
        return [(b, b.callback_id(self.label, f"b{n}"), b.deals[n + 1]) for n in range(B_EXECUTIONS)] if b else []


def run_plan(bench: core.Bench, plan: Plan) -> dict[str, Any]:
    """Reset, seed, start the processes, warm up, then post the burst and measure its drain."""
    t0 = time.monotonic()
    tenants = plan.all_tenants()
    reset_world(bench, tenants)
    counts = {t.portal_id: plan.per_tenant for t in plan.tenants}
    if plan.latecomer:
        counts[plan.latecomer.portal_id] = B_EXECUTIONS
    seed(bench, counts, tenants)
    seeded_s = time.monotonic() - t0
    stack = start_stack(bench, plan.label, plan.workers)
    try:
        warm = warm_up(bench, stack, tenants, plan.label)
        print(
            f"    [{plan.label}] seeded {sum(counts.values())} deals for {len(tenants)} portals in {seeded_s:.1f} s;"
            f" {plan.workers} workers warmed up in {warm['seconds']} s; posting",
            flush=True,
        )
        return {**measure(bench, stack, plan), "warm_up": warm}
    finally:
        stop_stack(bench, stack)


@dataclass
class Drained:
    """What one drain posted, what completed, and what the processes spent."""

    started: float  # wall clock of the first POST
    sent: list[Sent]  # the burst
    late_sent: list[Sent]  # B's, in the fairness run
    done: dict[str, dict[str, Any]]  # callback completions by callbackId
    cpu: dict[str, float]  # CPU seconds by role
    memory: dict[str, dict[str, Any]]


def measure(bench: core.Bench, stack: Stack, plan: Plan) -> dict[str, Any]:
    """Clear the logs, enforce the limits, drain the burst (and B's trickle), and compute the figures."""
    for path in ("requests", "callbacks"):
        bench.sims.hs("DELETE", path)
    bench.sims.qbo("DELETE", "requests")
    enforce_limits(bench.sims)
    return figures(bench, plan, drain(bench, stack, plan))


def drain(bench: core.Bench, stack: Stack, plan: Plan) -> Drained:
    """Post the burst at once and B's executions one by one; wait for every callback."""
    url = stack.url + core.ACTION_PATH
    burst, late_signed = presign(url, plan.burst_jobs()), presign(url, plan.late_jobs())
    expected = {s.callback_id for s in [*burst, *late_signed]}
    rejected: set[str] = set()
    memory = PeakMemory(stack.roles())
    memory.start()
    try:
        cpu_before = cpu_by_role(stack.roles())
        started = time.time()
        with ThreadPoolExecutor(max_workers=1) as background:
            trickled = background.submit(trickle, url, late_signed, started, rejected)
            sent = post_all(url, burst)
            rejected.update(s.callback_id for s in sent if s.status != 200)
            posted_s = max(s.answered_at for s in sent) - started
            print(f"    [{plan.label}] {len(sent)} posted in {posted_s:.1f} s ({len(rejected)} refused)", flush=True)

            def sender_alive() -> None:
                if trickled.done():
                    trickled.result()  # raises what the sender raised

            done = wait_callbacks(bench, stack, expected, rejected, plan.timeout, plan.label, sender_alive)
            late_sent = trickled.result()
        cpu_after = cpu_by_role(stack.roles())
    finally:
        peaks = memory.stop()
    spent = {role: round(after - cpu_before.get(role, 0.0), 2) for role, after in cpu_after.items()}
    return Drained(started, sent, late_sent, done, spent, peaks)


def figures(bench: core.Bench, plan: Plan, d: Drained) -> dict[str, Any]:
    """Return a drain's figures: time and rate, outcomes, calls and 429s, CPU and memory."""
    time.sleep(0.3)  # the last flush job's request reaches the log
    burst = drain_figures(d.sent, d.done, d.started, len(d.sent))
    documents = burst["documents"] + sum(1 for s in d.late_sent if succeeded(d.done.get(s.callback_id)))
    executions = len(d.sent) + len(d.late_sent)
    result = {
        "workers": plan.workers,
        "companies": len(plan.tenants),
        "per_company": plan.per_tenant,
        **burst,
        "quickbooks_floor_seconds": round(60 * plan.per_tenant / QBO_PER_MINUTE, 1),
        "quickbooks_floor_both_limits_seconds": round(tightest_pace(plan.per_tenant), 1),
        # With batches: 40 a minute of 30 documents each.
        "quickbooks_batch_floor_seconds": round(60 * plan.per_tenant / (QBO_BATCHES_PER_MINUTE * 30), 1),
        "invoices_created": invoices_created(bench, plan.all_tenants()),
        **call_figures(bench, documents, executions),
        "retries": retries(bench, plan.label),
        "cpu_seconds": d.cpu,
        "worker_cpu_ms_per_document": round(1000 * d.cpu["workers"] / max(1, documents), 1),
        "web_cpu_ms_per_execution": round(1000 * d.cpu["web"] / max(1, executions), 2),
        "memory": d.memory,
        "callback_duplicates": sum(1 for c in bench.sims.callbacks() if c.get("duplicate")),
    }
    if plan.latecomer:
        result["latecomer"] = latecomer_figures(d.late_sent, d.done)
    return result


def latecomer_figures(sent: list[Sent], done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """B's executions: from its POST's answer to its callback's completion."""
    waits = [received(done[s.callback_id]) - s.answered_at for s in sent if s.callback_id in done]
    return {
        "executions": len(sent),
        "accepted": sum(1 for s in sent if s.status == 200),
        "sent_at_s": [round(s.sent_at - sent[0].sent_at + B_FIRST_S, 1) for s in sent],
        "accepted_to_callback": latencies(waits),
        "accepted_to_callback_s": [round(w, 2) for w in waits],
        "succeeded": sum(1 for s in sent if succeeded(done.get(s.callback_id))),
    }


# The phase ---------------------------------------------------------------------------------------------


def drain_timeout(options: DrainOptions, documents: int, per_company: int, workers: int) -> float:
    """Return how long a run may take: --drain-timeout, else a generous multiple of a pessimistic estimate."""
    if options.timeout:
        return options.timeout
    floor = 60 * per_company / QBO_PER_MINUTE
    by_company = 3.0 * per_company  # 20 documents per minute and company: slower than the code of 2026-12-01
    by_workers = documents / (2.0 * workers)  # a worker completes 4-6 invoices/s alone
    return max(600.0, 1.5 * max(floor, by_company, by_workers) + 300)


def attempt(name: str, bench: core.Bench, plan: Plan) -> dict[str, Any]:
    """Run one drain; a failure is recorded (and printed) instead of ending the phase."""
    started = time.monotonic()
    try:
        result = run_plan(bench, plan)
    except Exception as exc:  # recorded; the other runs go on (Ctrl-C still stops all)
        print(f"    [{name}] FAILED: {exc.__class__.__name__}: {exc}", flush=True)
        return {"error": f"{exc.__class__.__name__}: {exc}", "elapsed_seconds": round(time.monotonic() - started, 1)}
    result["elapsed_seconds"] = round(time.monotonic() - started, 1)
    print(f"    [{name}] {one_line(result)}", flush=True)
    return result


def one_line(r: dict[str, Any]) -> str:
    """Summarise a run on one line."""
    text = (
        f"{r['documents']} documents ({r['failed']} failed) in {r['drain_seconds']} s: "
        f"{r['documents_per_minute']}/min; 429s QuickBooks {r['quickbooks_429']}, HubSpot {r['hubspot_429']}; "
        f"per document {r['quickbooks_per_document']} QBO, {r['hubspot_per_execution']} HubSpot calls, "
        f"{r['worker_cpu_ms_per_document']} ms worker CPU; {r.get('documents_in_batches', 0)} documents in "
        f"{r.get('quickbooks_batches', 0)} batches"
    )
    late = r.get("latecomer")
    if late:
        b = late["accepted_to_callback"]
        text += f"; B p50 {b['p50_s']} s, p95 {b['p95_s']} s, max {b['max_s']} s"
    return text


def drain_phase(bench: core.Bench, options: DrainOptions, out: dict[str, Any]) -> None:
    """Run the parts asked for; put their figures in `out` as each run ends (so an interruption keeps them)."""
    a = Tenant(PORTAL_ID, REALM_ID)
    out.update(
        {
            "limits": {
                "quickbooks_per_minute": QBO_PER_MINUTE,
                "quickbooks_per_second": QBO_PER_SECOND,
                "quickbooks_concurrent": QBO_CONCURRENT,
                "hubspot_per_10s": HUBSPOT_PER_10S,
            },
            "settings": {name: drain_env(bench).get(name, "default") for name in SETTINGS_SHOWN},
            "web": f"gunicorn gthread --workers {WEB_WORKERS} --threads {WEB_THREADS}",
        }
    )
    n, k = options.burst, options.workers
    if "burst" in options.parts:
        print(f"  burst: {n} invoices, one portal and company, {k} workers", flush=True)
        plan = Plan("burst", [a], n, k, drain_timeout(options, n, n, k))
        out["burst"] = attempt("burst", bench, plan)
    if "fairness" in options.parts:
        print(f"  fairness: portal A bursts {n}, portal B sends {B_EXECUTIONS} every {B_SPACING_S:.0f} s", flush=True)
        b = Tenant(PORTAL_B, REALM_B)
        plan = Plan("fair", [Tenant(PORTAL_ID, REALM_ID)], n, k, drain_timeout(options, n, n, k), latecomer=b)
        out["fairness"] = attempt("fairness", bench, plan)
    if "scaling" in options.parts:
        m = options.per_company
        out["scaling"] = {"companies": SCALING_COMPANIES, "per_company": m, "portals": "one per company", "runs": {}}
        for workers in options.scaling_workers:
            label = f"scale{workers}"
            print(f"  scaling: {SCALING_COMPANIES} companies x {m} invoices, {workers} workers", flush=True)
            total = SCALING_COMPANIES * m
            plan = Plan(label, scaling_tenants(), m, workers, drain_timeout(options, total, m, workers))
            out["scaling"]["runs"][str(workers)] = attempt(label, bench, plan)


def named_runs(drain: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the drain's runs by name ("burst", "fairness", "scaling x4")."""
    runs = {name: drain[name] for name in ("burst", "fairness") if drain.get(name)}
    runs.update({f"scaling x{k}": r for k, r in (drain.get("scaling") or {}).get("runs", {}).items()})
    return runs


def failed_runs(drain: dict[str, Any]) -> list[str]:
    """Return the names of the drain runs that did not finish."""
    return [name for name, run in named_runs(drain).items() if "error" in run]


# Report ------------------------------------------------------------------------------------------------

Row = tuple[str, str, str, bool | None]


def summary_rows(drain: dict[str, Any]) -> list[Row]:
    """Rows of the summary table for the drain phase."""
    rows: list[Row] = []
    burst = drain.get("burst")
    if burst:
        rows += burst_rows(burst)
    fairness = drain.get("fairness")
    if fairness:
        rows += fairness_rows(fairness)
    scaling = drain.get("scaling")
    if scaling:
        for workers, run in scaling["runs"].items():
            rows += scaling_rows(int(workers), scaling, run)
    return rows


def burst_rows(r: dict[str, Any]) -> list[Row]:
    """The burst's figures against the issue's goals."""
    if "error" in r:
        return [("drain burst", "FAILED", "", False)]
    n, k = r["executions"], r["workers"]
    answers_429 = r["quickbooks_429"] + r["hubspot_429"]
    return [
        (f"drain burst: {n} invoices, 1 company, {k} workers", f"{r['drain_seconds']:.0f} s", "", None),
        (
            f"  QuickBooks floor: N / 500 per min ({r['quickbooks_floor_both_limits_seconds']:.0f} s with 10/s)",
            f"{r['quickbooks_floor_seconds']:.0f} s",
            f"x{r['drain_seconds'] / max(1, r['quickbooks_floor_seconds']):.1f}",
            None,
        ),
        (
            "  documents per minute, one company",
            f"{r['documents_per_minute']:.0f}",
            f">= {TARGET_DOCS_PER_MINUTE:.0f}",
            r["documents_per_minute"] >= TARGET_DOCS_PER_MINUTE,
        ),
        ("  documents per second", f"{r['documents_per_s']:.2f}", "", None),
        ("  documents, failed", f"{r['documents']}, {r['failed']}", f"{n}, 0", r["documents"] == n and not r["failed"]),
        (
            "  answers 429 (QuickBooks, HubSpot)",
            f"{r['quickbooks_429']}, {r['hubspot_429']}",
            f"{TARGET_429}, {TARGET_429}",
            answers_429 == TARGET_429,
        ),
        ("  QuickBooks calls per document", f"{r['quickbooks_per_document']:.2f}", "", None),
        (
            "  HubSpot calls per execution",
            f"{r['hubspot_per_execution']:.2f}",
            f"<= {TARGET_HS_PER_EXECUTION}",
            r["hubspot_per_execution"] <= TARGET_HS_PER_EXECUTION,
        ),
        cpu_row(r),
        ("  web CPU per execution", f"{r['web_cpu_ms_per_execution']:.1f} ms", "", None),
        *memory_rows(r["memory"]),
    ]


def cpu_row(r: dict[str, Any]) -> Row:
    """Return the row of a run's worker CPU per invoice against the goal."""
    cpu = r["worker_cpu_ms_per_document"]
    return ("  worker CPU per invoice", f"{cpu:.1f} ms", f"<= {TARGET_CPU_MS:.0f} ms", cpu <= TARGET_CPU_MS)


def memory_rows(memory: dict[str, dict[str, Any]]) -> list[Row]:
    """Peak memory of the workers and of web."""
    w, web = memory["workers"], memory["web"]
    return [
        (
            "  peak RSS: largest worker process, all workers",
            f"{w['largest_process_hwm_mib']}, {w['peak_total_rss_mib']} MiB",
            "",
            None,
        ),
        (
            "  peak RSS: largest web process, all of web",
            f"{web['largest_process_hwm_mib']}, {web['peak_total_rss_mib']} MiB",
            "",
            None,
        ),
    ]


def fairness_rows(r: dict[str, Any]) -> list[Row]:
    """B's latency while A drains."""
    if "error" in r:
        return [("drain fairness", "FAILED", "", False)]
    b = r["latecomer"]["accepted_to_callback"]
    p95 = b["p95_s"]
    return [
        (
            f"drain fairness: A {r['executions']} invoices, B {r['latecomer']['executions']} (1 every 2 s)",
            f"A {r['drain_seconds']:.0f} s",
            "",
            None,
        ),
        ("  B accepted to callback: p50, max", f"{b['p50_s']}, {b['max_s']} s", "", None),
        (
            "  B accepted to callback: p95",
            f"{p95} s",
            f"<= {TARGET_B_P95_S:.0f} s",
            p95 is not None and b["count"] == r["latecomer"]["executions"] and p95 <= TARGET_B_P95_S,
        ),
        (
            "  answers 429 (QuickBooks, HubSpot)",
            f"{r['quickbooks_429']}, {r['hubspot_429']}",
            f"{TARGET_429}, {TARGET_429}",
            r["quickbooks_429"] + r["hubspot_429"] == TARGET_429,
        ),
    ]


def scaling_rows(workers: int, scaling: dict[str, Any], r: dict[str, Any]) -> list[Row]:
    """One scaling run."""
    name = f"drain scaling: {scaling['companies']} companies x {scaling['per_company']}, {workers} workers"
    if "error" in r:
        return [(name, "FAILED", "", False)]
    return [
        (name, f"{r['drain_seconds']:.0f} s", "", None),
        ("  documents per second", f"{r['documents_per_s']:.2f}", "", None),
        (
            "  calls per document (QuickBooks, HubSpot)",
            f"{r['quickbooks_per_document']:.2f}, {r['hubspot_per_execution']:.2f}",
            f"-, <= {TARGET_HS_PER_EXECUTION}",
            r["hubspot_per_execution"] <= TARGET_HS_PER_EXECUTION,
        ),
        cpu_row(r),
        (
            "  answers 429 (QuickBooks, HubSpot); failed",
            f"{r['quickbooks_429']}, {r['hubspot_429']}; {r['failed']}",
            "0, 0; 0",
            r["quickbooks_429"] + r["hubspot_429"] == 0 and not r["failed"],
        ),
    ]


def detail_lines(drain: dict[str, Any]) -> list[str]:
    """Lines printed under the table: what each run's calls were, and its retries."""
    lines = []
    for name, r in named_runs(drain).items():
        if "error" in r:
            lines.append(f"drain {name}: FAILED after {r['elapsed_seconds']} s: {r['error'].splitlines()[0]}")
            continue
        lines.append(f"drain {name}: QuickBooks {r['quickbooks_by_kind']}; HubSpot {r['hubspot_by_kind']}")
        lines.append(f"drain {name}: attempts {r['retries']}; CPU seconds {r['cpu_seconds']}")
        lines.append(f"drain {name}: warm-up (cold companies, no per-second limit) {r['warm_up']}")
    return lines

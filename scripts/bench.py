#!/usr/bin/env python
"""Benchmark of the execution endpoint, of the worker, of a drain and of document statuses (NOT a test; `make bench`).

    .venv/bin/python scripts/bench.py [--quick] [--only endpoint|worker|drain|notifications] [--skip-drain]
        [--workers K] [--burst N] [--drain-parts burst,fairness,scaling] [--drain-timeout S]
        [--payments N] [--notify-workers K]

1. The execution endpoint under gunicorn on PostgreSQL + Redis, driven by wrk with pre-signed, unique
   execution requests (scripts/bench_wrk.lua); a few gunicorn configurations, each run with both ways of
   queuing (ACCEPT_ENQUEUE): "direct", the bare accept path (one insert and one enqueue per request), and
   "relay", the default (grouped commits with an outbox entry, jobs queued in batches by a relay thread),
   alternating so that both see the same machine; the best of each and their ratio reported.
   Every other request is a `create_paid_invoice` execution of a payment (object type 0-101), the others
   `create_invoice` executions of a deal. No worker runs: the queue just fills. Afterwards (once the relay
   has emptied the outbox) every accepted execution is looked up in the `executions` table (with its
   action) and in the RQ queue, and the time from its acceptance to its job's enqueue is measured.
2. Remote calls per completed invoice: both simulators in subprocesses, N deals with the same two products,
   a real `qbo-actions worker`, N signed invoice executions; QuickBooks and HubSpot requests counted from
   the simulators' request logs; the worker's memory sampled every 50 ms. Then, same worker, same contact
   and product mappings: M `create_paid_invoice` executions of M distinct payments (M = 40 with --quick,
   100 otherwise; the same two products, 399.50), counted the same way (an Invoice and a Payment each),
   and the Invoices and Payments created in the simulated company checked: exactly M of each, each
   Payment paying its own new Invoice.
3. The drain (scripts/bench_drain.py): the simulators enforce the documented limits (QuickBooks 500/min,
   10/s, 10 concurrent per realm; HubSpot 110 per 10 s per portal) while the Procfile's processes (web under
   gunicorn, K workers, the sweeper) drain a burst of N invoices for one company (N = 1,000, 200 with
   --quick), the same burst while a second portal sends 10 executions (its latency), and 10 companies x 200
   invoices (50 with --quick) with 1, 2 and 4 workers (1 and 4 with --quick).
4. Document statuses (issue 11, `--only notifications`): web under gunicorn (gthread, 2 x 4) with
   QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN, 2 `qbo-actions worker` (--notify-workers), every status setting at its
   default (STATUS_FLUSH_DELAY 5 s, no timeline template: payments go as notes). First the webhook endpoint alone:
   pre-signed deliveries of 100 CloudEvents from 8 threads for 5 s, events accepted per second, each checked in
   `quickbooks_events`. Then N open invoices (N = 1,000, 200 with --quick; --payments) seeded in the QuickBooks
   simulator, a deal for each, each invoice followed on its deal as the action would and shown once (awaiting
   payment); the simulator's webhooks point at the web (delivered 50 ms after the first change), and a bookkeeper
   pays every invoice in full through the QuickBooks API from 8 threads (the simulator's throttle raised for these
   calls, the server's limiter at its defaults). Measured: deliveries and their answers, the time until every deal
   shows paid (the HubSpot simulator's property history) with one payment note, HubSpot calls per status update,
   the server's QuickBooks reads per payment, 429s, worker CPU, and how long each kind of job waited and ran. This
   phase runs a QuickBooks simulator of its own, whose webhooks point at its web process.
5. A summary table (figure, target, met) and machine facts; the figures go to .run/bench-results.json.

It needs the private Redis (127.0.0.1:6390) and PostgreSQL (127.0.0.1:5439) of scripts/services.sh and
`wrk` (installed with apt-get when missing). It creates the database `qbo_actions_bench` and uses Redis db 15
(QBO_BENCH_DATABASE and QBO_BENCH_REDIS_DB choose others), and kills everything it started on exit, Ctrl-C
included.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from services.store.crypto import TokenCipher  # noqa: E402
from simulators.scenario import (  # noqa: E402
    HUBSPOT_ACCESS_TOKEN,
    HUBSPOT_REFRESH_TOKEN,
    PORTAL_ID,
    QBO_ACCESS_TOKEN,
    QBO_REFRESH_TOKEN,
    REALM_ID,
    Simulators,
    execution_request,
)

# scripts/bench_drain.py imports this module as `bench`: the same module, even when run as a script.
sys.modules.setdefault("bench", sys.modules[__name__])
import bench_drain  # noqa: E402

try:  # HubSpot's own client signs, as in the tests; the server's function is the fallback.
    from hubspot.utils.signature import Signature

    def sign(secret: str, body: str, url: str, timestamp: str) -> str:
        return str(Signature.get_signature(secret, body, "v3", url, "POST", timestamp))

except ImportError:  # pragma: no cover
    from actions.signature import sign_v3

    def sign(secret: str, body: str, url: str, timestamp: str) -> str:
        return sign_v3(secret, "POST", url, body, timestamp)


VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
RUN_DIR = ROOT / ".run"
WORK_DIR = RUN_DIR / "bench"
RESULTS = RUN_DIR / "bench-results.json"
LUA = ROOT / "scripts" / "bench_wrk.lua"

# Another database and Redis db let two benchmarks run side by side (their figures then share the CPUs).
BENCH_DB = os.environ.get("QBO_BENCH_DATABASE", "qbo_actions_bench")
REDIS_DB = int(os.environ.get("QBO_BENCH_REDIS_DB", "15"))
QUEUE = "qbo-actions-bench"
CLIENT_SECRET = "bench-hubspot-secret"
ACTION_PATH = "/actions/create_invoice"
PAID_PATH = "/actions/create_paid_invoice"
PAYMENT_OBJECT_TYPE = "0-101"  # HubSpot's commerce payments
# The endpoint does not look it up; the calls phase uses the simulated company's "Checking" account.
ENDPOINT_DEPOSIT_ACCOUNT = "35"

# After the load, wrk waits this long with no new request, so every request it sent is answered.
DRAIN_S = 1.5
TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0
# The relay path against the bare accept path, in the same run on the same gunicorn configuration.
TARGET_RELAY_RATIO = 1.3
# No accepted execution waits longer than this for its job to be queued.
TARGET_QUEUED_WITHIN_S = 1.0
# Ways the endpoint has an accepted execution's job queued (ACCEPT_ENQUEUE); the first is the bare path.
ACCEPT_MODES = ("direct", "relay")
# After wrk, the relay must empty the outbox within this long.
RELAY_DRAIN_TIMEOUT_S = 10.0
TARGET_QBO_PER_INVOICE = 1.1
TARGET_HS_PER_EXECUTION = 3.0
EXPECTED_QBO_PER_PAID_INVOICE = 2.0  # an Invoice and a Payment; no target
PAID_AMOUNT = 399.5
PHASES = ("endpoint", "worker", "drain", "notifications")

# Phase 4, document statuses (issue 11): the burst of payments, the direct measurement of the webhook endpoint.
NOTIFY_PAYMENTS = 1000  # --quick: 200
NOTIFY_PAYMENTS_QUICK = 200
TARGET_HS_PER_STATUS = 0.05
WEBHOOK_TOKEN = "bench-webhook-verifier-token"
WEBHOOK_PATH = "/webhooks/quickbooks"
WEBHOOK_DELAY_MS = 50
# The web under gunicorn: two processes, threads so that the simulator's concurrent deliveries overlap.
NOTIFY_WEB_ARGS = ["--worker-class", "gthread", "--workers", "2", "--threads", "4"]
NOTIFY_WORKERS = 2
# The direct measurement: pre-signed deliveries of 100 CloudEvents each, from this many threads, for this long.
DIRECT_EVENTS_PER_DELIVERY = 100
DIRECT_THREADS = 8
DIRECT_SECONDS = 5.0
DIRECT_DELIVERIES_PER_THREAD = 160
# The bookkeeper's threads creating the payments, and the QuickBooks simulator's throttle for them (its
# default, 500 a minute per company, would throttle the bookkeeper's own 1,000 calls; the server's limiter keeps
# production's 500 a minute and 10 a second).
PAYMENT_THREADS = 8
BOOKKEEPER_THROTTLE_PER_MINUTE = 100_000
NOTIFY_POLL_S = 0.25
SENTINEL = "qbo-bench:sentinel"


# Processes ---------------------------------------------------------------------------------------


class Processes:
    """Every child process the benchmark starts, each in its own process group, stopped on exit."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=5)
        # Anything the leader left behind in its group (a work horse, a gunicorn worker).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.children = [(n, p) for n, p in self.children if p is not process]

    def stop_all(self) -> None:
        for _, process in reversed(list(self.children)):
            try:
                self.stop(process, timeout=5)
            except Exception as exc:  # keep stopping the others
                print(f"  (could not stop {process.pid}: {exc})", file=sys.stderr)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({process.returncode}); see {log}\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s; see {log}\n{tail(log)}")


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# /proc -------------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """Return VmHWM and VmRSS of a process in KiB (empty if it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def children_of(pid: int) -> list[int]:
    """Return the direct children of a process."""
    found: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> dict[int, tuple[str, int, float]]:
    """Return {pid: (comm, ppid, user+system CPU seconds)} of every process."""
    snapshot: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        snapshot[int(entry)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return snapshot


def cpu_by_component(
    before: dict[int, tuple[str, int, float]],
    after: dict[int, tuple[str, int, float]],
    gunicorn_master: int,
    wrk_pids: set[int] | None = None,
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by component (processes alive at the end only)."""
    totals: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for pid, (comm, ppid, cpu) in after.items():
        # A kernel worker (a child of kthreadd, pid 2) renames itself after the work it does: the same process.
        same = pid in before and (before[pid][0] == comm or ppid == 2)
        spent = cpu - (before[pid][2] if same else 0.0)
        if spent <= 0:
            continue
        if pid == gunicorn_master or ppid == gunicorn_master:
            kind = "gunicorn"
        elif comm.startswith("postgres"):
            kind = "postgres"
        elif comm.startswith("redis"):
            kind = "redis"
        elif comm == "wrk" or (wrk_pids and pid in wrk_pids):
            kind = "wrk"
        else:
            kind = "other"
            others[re.sub(r"[/:]\d+$", "", comm)] += spent
        totals[kind] += spent
    result = {k: round(v, 2) for k, v in totals.most_common()}
    OTHER_CPU.clear()
    OTHER_CPU.update({k: round(v, 2) for k, v in others.most_common(4)})
    return result


OTHER_CPU: dict[str, float] = {}  # the busiest "other" processes of the last cpu_by_component()


def mib(kib: int | float | None) -> float | None:
    return round(kib / 1024, 1) if kib else None


def machine_facts() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return {
        "nproc": int(nproc),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# Environment -------------------------------------------------------------------------------------


@dataclass
class Bench:
    quick: bool
    procs: Processes
    pg_url: str  # postgresql+psycopg://... of the bench database
    pg_admin: str  # libpq conninfo of the maintenance database
    redis_url: str
    sims: Simulators
    configs: list[str] = field(default_factory=list)
    connections: int = 0
    token_key: str = field(default_factory=TokenCipher.generate_key)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the web and worker processes (as tests/conftest.py environment())."""
        return {
            **os.environ,
            "HUBSPOT_CLIENT_ID": "sim-hs-client",
            "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
            "QUICKBOOKS_CLIENT_ID": "sim-client",
            "QUICKBOOKS_CLIENT_SECRET": "sim-secret",
            "SECRET_KEY": "bench-secret-key",
            "TOKEN_ENCRYPTION_KEY": self.token_key,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.pg_url,
            "HUBSPOT_API_BASE_URL": self.sims.hubspot_url,
            "QUICKBOOKS_API_BASE_URL": f"{self.sims.quickbooks_url}/v3",
            "QUICKBOOKS_TOKEN_URL": f"{self.sims.quickbooks_url}/oauth2/v1/tokens/bearer",
            "QUICKBOOKS_ENVIRONMENT": "sandbox",
            "QUEUE_NAME": QUEUE,
            # Short intervals, but as many retries as production's default (and more): the simulated HubSpot
            # answers 429 with Retry-After: 1 once 100 requests fall in 10 s, which 200 queued executions on
            # one worker reach; with only 3 retries an execution could fail HUBSPOT_UNAVAILABLE.
            "RETRY_INTERVALS": "1,2,5,5,5,5,5,5,5,5",
            "LEASE_SECONDS": "60",
            "JOB_TIMEOUT": "45",
            "SWEEP_INTERVAL": "3600",
            "HTTP_TIMEOUT": "10",
            **extra,
        }

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.libpq(self.pg_url), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    @staticmethod
    def libpq(url: str) -> str:
        return url.replace("postgresql+psycopg://", "postgresql://", 1)

    def reset_state(self) -> None:
        """Empty the executions, what hangs off them, what was learnt about the simulated QuickBooks company
        (mappings, profile: the simulators may have been reset), the documents followed on records (whose records
        a simulator reset deleted), and the bench Redis db."""
        self.sql(
            "TRUNCATE executions, execution_outbox, execution_steps, execution_attempts, payment_documents,"
            " product_mappings, customer_mappings, company_profiles, quickbooks_events, followed_payments,"
            " followed_documents, quickbooks_change_cursors CASCADE"
        )
        redis.Redis.from_url(self.redis_url).flushdb()

    def start_gunicorn(
        self,
        name: str,
        args: list[str],
        port: int,
        env: dict[str, str] | None = None,
        *,
        accept_enqueue: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start the web app under gunicorn; ``accept_enqueue`` chooses how it queues jobs (ACCEPT_ENQUEUE)."""
        env = dict(env or self.env())
        if accept_enqueue:
            env["ACCEPT_ENQUEUE"] = accept_enqueue
        log = WORK_DIR / f"gunicorn-{name}.log"
        log.write_text("")
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "actions.app:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            *args,
        ]
        process = self.procs.start(f"gunicorn {name}", cmd, env, log)
        wait_http(f"http://127.0.0.1:{port}/healthz", process, log)
        # Every worker has imported the app once /healthz answers once per worker; give them a moment.
        time.sleep(0.5)
        return process


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def prepare_database(bench: Bench) -> None:
    with psycopg.connect(bench.pg_admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    log = WORK_DIR / "migrate.log"
    result = subprocess.run(
        [str(VENV_BIN / "qbo-actions"), "db", "upgrade"],
        cwd=ROOT,
        env=bench.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"qbo-actions db upgrade failed:\n{result.stdout}{result.stderr}")


def start_simulators(procs: Processes) -> Simulators:
    urls = []
    for name in ("quickbooks", "hubspot"):
        port = free_port()
        log = WORK_DIR / f"sim-{name}.log"
        log.write_text("")
        process = procs.start(
            f"{name} simulator", [PYTHON, "-m", f"simulators.{name}", "--port", str(port)], dict(os.environ), log
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_sim/requests", process, log)
        urls.append(url)
    return Simulators(urls[0], urls[1])


# Signed requests ---------------------------------------------------------------------------------


def invoice_body(callback_id: str, object_id: str) -> str:
    inputs = {"quickbooks_account": REALM_ID, "create_missing_products": "yes"}
    return json.dumps(execution_request(inputs, callback_id=callback_id, object_id=object_id), separators=(",", ":"))


def paid_invoice_body(callback_id: str, object_id: str, deposit_account: str) -> str:
    """A `create_paid_invoice` execution of a payment (as tests/services/test_payment_actions.py builds it)."""
    inputs = {"quickbooks_account": REALM_ID, "create_missing_products": "yes", "deposit_account": deposit_account}
    request = execution_request(inputs, callback_id=callback_id, object_id=object_id, object_type=PAYMENT_OBJECT_TYPE)
    return json.dumps(request, separators=(",", ":"))


def signed(url: str, body: str) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign(CLIENT_SECRET, body, url, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def write_request_files(prefix: Path, url: str, tag: str, threads: int, per_thread: int) -> list[list[tuple[str, str]]]:
    """Write one file of unique signed requests per wrk thread; return the (callbackId, action) of each.

    Every other request (odd positions) is a `create_paid_invoice` execution of a payment, signed for its
    own path; the rest are `create_invoice` executions of a deal.
    """
    timestamp = str(int(time.time() * 1000))
    base = url.removesuffix(ACTION_PATH)
    ids: list[list[tuple[str, str]]] = []
    for t in range(threads):
        thread_ids = []
        lines = []
        for i in range(per_thread):
            callback_id = f"ap-{PORTAL_ID}-{tag}-{t}-{i}"
            object_id = str(1000 + i % 5000)
            if i % 2:
                path, action = PAID_PATH, "create_paid_invoice"
                body = paid_invoice_body(callback_id, object_id, ENDPOINT_DEPOSIT_ACCOUNT)
            else:
                path, action = ACTION_PATH, "create_invoice"
                body = invoice_body(callback_id, object_id)
            signature = sign(CLIENT_SECRET, body, base + path, timestamp)
            lines.append(f"{timestamp}\t{signature}\t{path}\t{body}\n")
            thread_ids.append((callback_id, action))
        Path(f"{prefix}-{t}.tsv").write_text("".join(lines))
        ids.append(thread_ids)
    return ids


# Phase 1: the execution endpoint -----------------------------------------------------------------


@dataclass
class WrkRun:
    config: str
    stats: dict[str, Any]
    text: str
    elapsed: float
    cpu: dict[str, float]


def run_wrk(
    url: str, prefix: Path, threads: int, connections: int, seconds: float, out: Path, master: int = 0
) -> WrkRun:
    """Run wrk for `seconds` of load, then DRAIN_S more in which no new request starts."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{math.ceil(seconds + DRAIN_S)}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(prefix),
        ACTION_PATH,
        str(int(seconds * 1000)),
    ]
    before = cpu_snapshot()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, start_new_session=True)
    elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_by_component(before, cpu_snapshot(), master)
    cpu["wrk"] = round(
        children_after.ru_utime + children_after.ru_stime - children_before.ru_utime - children_before.ru_stime, 2
    )
    out.write_text(" ".join(cmd) + "\n" + result.stdout + result.stderr)
    match = re.search(r"^BENCH_JSON (.*)$", result.stdout, re.M)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return WrkRun("", json.loads(match.group(1)), result.stdout, elapsed, cpu)


def active_seconds(stats: dict[str, Any]) -> float:
    """From the first request sent to the last answer received, over all wrk threads."""
    first = min(float(t["first_ms"]) for t in stats["threads"] if float(t["first_ms"]) > 0)
    last = max(float(t["last_ms"]) for t in stats["threads"])
    return max(0.001, (last - first) / 1000)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk is missing: apt-get install -y wrk")
    root = os.geteuid() == 0
    prefix = [] if root else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "wrk"], env=env, timeout=300, check=False)
    if not shutil.which("wrk"):
        subprocess.run([*prefix, "apt-get", "update", "-qq"], env=env, timeout=300, check=False)
        subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "wrk"], env=env, timeout=300, check=False)
    if not shutil.which("wrk"):
        raise RuntimeError("wrk could not be installed (apt-get install wrk); the endpoint phase needs it")


def gunicorn_memory(master: int) -> dict[str, Any]:
    workers = children_of(master)
    worker_stats = {pid: proc_status(pid) for pid in workers}
    largest = max(worker_stats.values(), key=lambda s: s.get("VmHWM", 0), default={})
    return {
        "master_hwm_mib": mib(proc_status(master).get("VmHWM")),
        "largest_worker_hwm_mib": mib(largest.get("VmHWM")),
        "workers": len(workers),
        "workers_hwm_mib": sorted((mib(s.get("VmHWM")) or 0) for s in worker_stats.values()),
    }


def verify_run(bench: Bench, tag: str, ids: list[list[tuple[str, str]]], stats: dict[str, Any]) -> dict[str, Any]:
    """Check the database and the queue against what wrk sent and what it was answered."""
    sent_actions: dict[str, str] = {}
    for thread in stats["threads"]:
        sent_actions.update(ids[int(thread["id"])][: min(int(thread["sent"]), int(thread["loaded"]))])
    sent_ids = set(sent_actions)
    counts: Counter[str] = Counter()
    for thread in stats["threads"]:
        for status, n in (thread.get("counts") or {}).items():
            counts[status] += int(n)
    sent = sum(int(t["sent"]) for t in stats["threads"])
    wrapped = sum(int(t["wrapped"]) for t in stats["threads"])
    answered_200 = counts.get("200", 0)
    answered = sum(counts.values())
    rows_with_action = bench.sql(
        "SELECT id, callback_id, action, object_type, created_at FROM executions WHERE callback_id LIKE %s",
        (f"ap-{PORTAL_ID}-{tag}-%",),
    )
    rows = [(execution_id, callback_id) for execution_id, callback_id, _, _, _ in rows_with_action]
    db_ids = {callback_id for _, callback_id in rows}
    # The request mix: what was sent, and what was recorded (under which action and object type).
    mix: dict[str, dict[str, Any]] = {}
    for action, n in sorted(Counter(sent_actions.values()).items()):
        mix[action] = {"sent": n, "rows": 0, "object_types": {}}
    wrong_action = 0
    for _, callback_id, action, object_type, _ in rows_with_action:
        entry = mix.setdefault(action, {"sent": 0, "rows": 0, "object_types": {}})
        entry["rows"] += 1
        entry["object_types"][object_type] = entry["object_types"].get(object_type, 0) + 1
        if callback_id in sent_actions and sent_actions[callback_id] != action:
            wrong_action += 1
    for entry in mix.values():
        entry["share_of_rows"] = round(entry["rows"] / max(1, len(rows)), 3)
    conn = redis.Redis.from_url(bench.redis_url)
    # Executions wait on the lanes of the queue (one portal to a lane), flushes on the queue itself.
    queue_keys = [k.decode() for k in conn.keys(f"rq:queue:{QUEUE}*")]
    queued_jobs = {j.decode() for key in queue_keys for j in conn.lrange(key, 0, -1)}
    in_queue = sum(1 for execution_id, _ in rows if f"execution-{execution_id}" in queued_jobs)
    delays = queue_delays(conn, [(execution_id, created_at) for execution_id, _, _, _, created_at in rows_with_action])
    # wrk stops mid-flight: up to one request per connection was sent (and usually recorded) but its
    # answer was never read. Those are the only requests allowed to be absent from the table.
    unanswered = sent - answered
    not_recorded = len(sent_ids - db_ids)
    return {
        "sent": sent,
        "sent_unique": len(sent_ids),
        "wrapped_duplicates": wrapped,
        "answered": answered,
        "answered_200": answered_200,
        "non_2xx": answered - sum(n for s, n in counts.items() if s.startswith("2")),
        "statuses": dict(counts),
        "unanswered_in_flight": unanswered,
        "rows": len(rows),
        "rows_not_sent": len(db_ids - sent_ids),
        "sent_not_recorded": not_recorded,
        "rows_in_queue": in_queue,
        "queue_length": sum(conn.llen(key) for key in queue_keys),
        "rows_minus_200s": len(rows) - (answered_200 - wrapped),
        "mix": mix,
        "rows_with_wrong_action": wrong_action,
        "accepted_to_queued_ms": delays,
        # Every row was sent, every row is queued, and the only sent requests without a row are (at most)
        # those never answered; with none unanswered (wrk drains) this is exact: rows == 200s.
        "nothing_missing": len(db_ids - sent_ids) == 0
        and wrong_action == 0
        and in_queue == len(rows)
        and not_recorded <= unanswered
        and len(rows) >= answered_200 - wrapped,
        "exact": unanswered == 0 and not_recorded == 0 and wrapped == 0 and len(rows) == answered_200,
    }


def queue_delays(conn: redis.Redis, rows: list[tuple[str, datetime]]) -> dict[str, float | None]:
    """Milliseconds from each execution's acceptance (its created_at) to its job's enqueue (RQ's enqueued_at)."""
    delays: list[float] = []
    with conn.pipeline(transaction=False) as pipe:
        for execution_id, _ in rows:
            pipe.hget(f"rq:job:execution-{execution_id}", "enqueued_at")
        stamps = pipe.execute()
    for (_, created_at), stamp in zip(rows, stamps, strict=True):
        if stamp:
            enqueued = datetime.strptime(stamp.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            delays.append((enqueued - created_at).total_seconds() * 1000)
    delays.sort()

    def at(share: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(share * len(delays)))], 1) if delays else None

    return {"p50": at(0.50), "p99": at(0.99), "max": round(delays[-1], 1) if delays else None, "jobs": len(delays)}


def wait_for_outbox(bench: Bench, timeout: float = RELAY_DRAIN_TIMEOUT_S) -> float | None:
    """Wait until no accepted execution waits for the relay; return how long that took (None: not in time)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if bench.sql("SELECT count(*) FROM execution_outbox")[0][0] == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return None


def mix_text(mix: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{action} sent {m['sent']}, recorded {m['rows']} ({100 * m['share_of_rows']:.0f}%)"
        f" as {'/'.join(m['object_types']) or '-'}"
        for action, m in mix.items()
    )


def endpoint_phase(bench: Bench) -> dict[str, Any]:
    ensure_wrk()
    quick = bench.quick
    # Two cores: a few processes for the GIL, threads to overlap the PostgreSQL and Redis round trips.
    # gthread lets a process's requests share their commits (the relay path); three processes keep both cores busy.
    configs: list[tuple[str, list[str]]] = [
        ("sync x3", ["--worker-class", "sync", "--workers", "3"]),
        ("sync x5", ["--worker-class", "sync", "--workers", "5"]),
        ("gthread 2x8", ["--worker-class", "gthread", "--workers", "2", "--threads", "8"]),
        ("gthread 3x4", ["--worker-class", "gthread", "--workers", "3", "--threads", "4"]),
    ]
    if quick:
        configs = [configs[0], configs[3]]
    if bench.configs:
        configs = [(c, c.split()) for c in bench.configs]
    # Each configuration with both ways of queuing, one after the other; the full run does it twice, the second
    # time in the other order (direct, relay, relay, direct), so that a machine getting busier favours neither.
    rounds = 1 if quick else 2
    schedule = [
        (name, args, mode)
        for name, args in configs
        for r in range(rounds)
        for mode in (ACCEPT_MODES if r % 2 == 0 else ACCEPT_MODES[::-1])
    ]
    runs = [endpoint_run(bench, n, name, args, mode) for n, (name, args, mode) in enumerate(schedule)]
    best = {
        mode: max((r for r in runs if r["mode"] == mode), key=lambda r: (r["non_2xx"] == 0, r["accepted_per_s"]))
        for mode in ACCEPT_MODES
    }
    by_config = {}
    for name, _ in configs:
        rates = {
            mode: [r["accepted_per_s"] for r in runs if r["config"] == name and r["mode"] == mode]
            for mode in ACCEPT_MODES
        }
        means = {mode: sum(values) / len(values) for mode, values in rates.items()}
        by_config[name] = {
            "accepted_per_s": rates,
            "ratio": round(means["relay"] / max(1.0, means["direct"]), 2),
        }
    return {
        "runs": runs,
        # The endpoint as it ships (relay), and the bare accept path it is measured against.
        "best": best["relay"],
        "bare": best["direct"],
        "ratio": round(best["relay"]["accepted_per_s"] / max(1.0, best["direct"]["accepted_per_s"]), 2),
        "by_config": by_config,
    }


def endpoint_run(bench: Bench, n: int, name: str, args: list[str], mode: str) -> dict[str, Any]:
    """One gunicorn configuration with one way of queuing: warm-up, wrk, then the checks."""
    quick = bench.quick
    threads = 2
    # Past saturation, more connections only add queueing to every latency figure; 16 keeps both cores busy.
    connections = bench.connections or 16
    duration = 4 if quick else 12
    warmup = 1 if quick else 2
    bench.reset_state()
    port = free_port()
    url = f"http://127.0.0.1:{port}{ACTION_PATH}"
    slug = re.sub(r"\W+", "-", f"{name} {mode}")
    label = f"{name}, {mode}"
    print(f"  [{label}] starting gunicorn {' '.join(args)} on :{port} (ACCEPT_ENQUEUE={mode})", flush=True)
    master = bench.start_gunicorn(slug, args, port, accept_enqueue=mode)
    try:
        # Warm-up (its executions are left out of the checks).
        prefix = WORK_DIR / f"warm-{slug}"
        write_request_files(prefix, url, f"w{n}", threads, 6000 if quick else 9000)
        warm = run_wrk(url, prefix, threads, connections, warmup, WORK_DIR / f"wrk-warm-{slug}.txt")
        warm_rate = warm.stats["requests"] / active_seconds(warm.stats)
        # Large enough that no thread wraps around: twice the warm-up rate, plus a margin.
        per_thread = int(max(warm_rate, 500) * 2.0 * duration / threads) + 2000
        prefix = WORK_DIR / f"run-{slug}"
        tag = f"r{n}"
        t0 = time.monotonic()
        ids = write_request_files(prefix, url, tag, threads, per_thread)
        signing = time.monotonic() - t0
        run = run_wrk(url, prefix, threads, connections, duration, WORK_DIR / f"wrk-run-{slug}.txt", master.pid)
        # Requests still in the listen backlog when wrk hung up are served now; the relay queues their jobs.
        time.sleep(1.0)
        outbox_emptied_s = wait_for_outbox(bench)
        memory = gunicorn_memory(master.pid)
    finally:
        bench.procs.stop(master)
    check = verify_run(bench, tag, ids, run.stats)
    seconds = active_seconds(run.stats)
    lat = run.stats["latency_us"]
    result = {
        "config": name,
        "mode": mode,
        "gunicorn_args": args,
        "wrk": f"{threads} threads, {connections} connections, {duration} s (warm-up {warmup} s) + {DRAIN_S} s drain",
        "request_mix": f"alternating: create_invoice (DEAL), create_paid_invoice ({PAYMENT_OBJECT_TYPE})",
        "generated_requests": per_thread * threads,
        "signing_seconds": round(signing, 2),
        "duration_s": round(seconds, 2),
        "accepted_per_s": round((check["answered_200"] - check["wrapped_duplicates"]) / seconds, 1),
        "latency_ms": {k: round(v / 1000, 2) for k, v in lat.items()},
        "socket_errors": run.stats["errors"],
        "cpu_seconds": run.cpu,
        "cpu_ms_per_request": {k: round(1000 * v / max(1, run.stats["requests"]), 2) for k, v in run.cpu.items()},
        "cpu_utilisation": round(sum(run.cpu.values()) / run.elapsed, 2),
        "cpu_other_seconds": dict(OTHER_CPU),
        # Seconds from 1 s after wrk's end until the outbox was empty (None: it was not within the timeout).
        "outbox_emptied_s": outbox_emptied_s,
        **check,
        "memory": memory,
    }
    queued = check["accepted_to_queued_ms"]
    print(
        f"  [{label}] {result['accepted_per_s']:.0f} accepted/s  p50 {result['latency_ms']['p50']:.1f} ms  "
        f"p99 {result['latency_ms']['p99']:.1f} ms  non-2xx {check['non_2xx']}  sent {check['sent']} "
        f"answered 200 {check['answered_200']} unanswered {check['unanswered_in_flight']}  rows "
        f"{check['rows']}  in queue {check['rows_in_queue']}  nothing missing: {check['nothing_missing']}"
        f" (exact: {check['exact']})",
        flush=True,
    )
    print(
        f"  [{label}] accepted to queued: p50 {queued['p50']} ms, p99 {queued['p99']} ms, max {queued['max']} ms;"
        f" outbox empty {outbox_emptied_s} s after the load",
        flush=True,
    )
    print(f"  [{label}] request mix: {mix_text(check['mix'])}", flush=True)
    print(
        f"  [{label}] CPU ms per request: {result['cpu_ms_per_request']} "
        f"(busy {result['cpu_utilisation']:.2f} of {os.cpu_count()} CPUs)",
        flush=True,
    )
    return result


# Phase 2: calls per completed invoice ------------------------------------------------------------


def connect_standard(bench: Bench) -> None:
    """Store the simulators' tokens and the company settings (as tests/conftest.py connect_standard)."""
    connect_companies(bench, [(PORTAL_ID, REALM_ID)])


def connect_companies(bench: Bench, tenants: list[tuple[int, str]]) -> None:
    """Connect each (portal, realm) with the simulators' tokens and the standard company settings, and create the
    QuickBooks properties on each portal's records, as the install does (so the figures count no set-up calls)."""
    from datetime import timedelta

    from services.bootstrap import bootstrap
    from services.clock import utcnow
    from services.config import Config
    from services.work.statuses import set_up_properties

    svc = bootstrap(Config.from_env(bench.env()))
    try:
        repos = svc.repositories
        for portal_id, realm_id in tenants:
            hs_refresh, hs_access = f"{HUBSPOT_REFRESH_TOKEN}-{portal_id}", f"{HUBSPOT_ACCESS_TOKEN}-{portal_id}"
            qbo_refresh, qbo_access = f"{QBO_REFRESH_TOKEN}-{realm_id}", f"{QBO_ACCESS_TOKEN}-{realm_id}"
            repos.connections.save_portal(portal_id, hs_refresh, hs_access, None)
            repos.connections.save_quickbooks(portal_id, realm_id, qbo_refresh, qbo_access, None, "Sim Co")
            connection = repos.connections.quickbooks(portal_id, realm_id)
            assert connection is not None
            repos.connections.save_quickbooks_tokens(
                connection.id, qbo_access, utcnow() + timedelta(hours=1), qbo_refresh
            )
            repos.connections.save_portal(portal_id, hs_refresh, hs_access, utcnow() + timedelta(minutes=30))
            repos.companies.save_settings(
                realm_id,
                {
                    "contact_sync": {"mode": "legacy"},
                    "default_income_account": bench.sims.account_id("Services", realm_id),
                },
            )
        for portal_id in sorted({portal_id for portal_id, _ in tenants}):
            set_up_properties(svc, portal_id)
    finally:
        svc.database.engine.dispose()
        svc.redis.close()


# The two products of every deal and payment (the same SKUs and HubSpot product ids: one mapping each).
LINE_ITEMS = (
    {"name": "Consulting", "quantity": "2", "price": "150", "hs_sku": "CONS-1", "hs_product_id": "501"},
    {"name": "Setup fee", "quantity": "1", "price": "99.5", "hs_sku": "SETUP-1", "hs_product_id": "502"},
)


def seed_deals(sims: Simulators, count: int) -> tuple[str, list[str]]:
    """One contact; `count` deals, each with its own two line items of the same two products."""
    contact = sims.add_object(
        "contacts",
        {
            "firstname": "Ann",
            "lastname": "O'Brien",
            "email": "ann@acme.example",
            "company": "Acme Inc",
            "lifecyclestage": "customer",
        },
    )

    def deal(n: int) -> str:
        items = [sims.add_object("line_items", dict(props)) for props in LINE_ITEMS]
        return sims.add_object(
            "deals",
            {"dealname": f"Acme renewal {n}", "amount": "399.5", "deal_currency_code": "USD"},
            associations={"contacts": [contact], "line_items": items},
        )

    return contact, [deal(n) for n in range(count)]


def seed_payments(sims: Simulators, contact: str, count: int) -> list[str]:
    """`count` succeeded payments of 399.50 (as simulators/scenario.py seed_payment()) from the deals' contact,
    each with its own two line items of the same two products as the deals."""

    def payment(n: int) -> str:
        items = [sims.add_object("line_items", dict(props)) for props in LINE_ITEMS]
        return sims.add_object(
            "commerce_payments",
            {
                "hs_initial_amount": str(PAID_AMOUNT),
                "hs_currency_code": "USD",
                "hs_latest_status": "succeeded",
                "hs_fees_amount": "11.89",
                "hs_refunds_amount": "0",
                "hs_net_amount": "387.61",
                "hs_payment_method_type": "card",
                "hs_payment_source_app": "SALES_CHECKOUT",
                "hs_initiated_date": "2026-11-20T10:15:00Z",
                "hs_customer_email": "ann@acme.example",
            },
            associations={"contacts": [contact], "line_items": items},
        )

    return [payment(n) for n in range(count)]


class MemoryPoller(threading.Thread):
    """Samples the worker's process tree every 50 ms: the main process, its long-lived children
    (RQ's scheduler) and its short-lived ones (the work horse RQ forks for each job)."""

    def __init__(self, root: int, long_lived: set[int], interval: float = 0.05, limit_s: float = 600) -> None:
        super().__init__(daemon=True, name="memory-poller")
        self.root = root
        self.long_lived = long_lived
        self.interval = interval
        self.limit_s = limit_s
        self.halt = threading.Event()
        self.samples = 0
        self.main = {"VmHWM": 0, "VmRSS": 0}
        self.scheduler = {"VmHWM": 0, "VmRSS": 0}
        self.horse = {"VmHWM": 0, "VmRSS": 0}
        self.horses: set[int] = set()

    def run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.halt.is_set() and time.monotonic() < deadline:
            self._sample(self.root, self.main)
            for child in children_of(self.root):
                if child in self.long_lived:
                    self._sample(child, self.scheduler)
                else:
                    self.horses.add(child)
                    self._sample(child, self.horse)
            self.samples += 1
            self.halt.wait(self.interval)

    @staticmethod
    def _sample(pid: int, into: dict[str, int]) -> None:
        for key, value in proc_status(pid).items():
            into[key] = max(into[key], value)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)


def shape(path: str) -> str:
    """Return a request path with its ids as placeholders (a callback's id included)."""
    path = re.sub(r"/callbacks/(?!complete$)[^/]+/complete$", "/callbacks/{callbackId}/complete", path)
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)


def call_breakdown(qbo_log: list[dict[str, Any]], hs_log: list[dict[str, Any]], executions: int) -> dict[str, Any]:
    """Count the simulators' logged requests: QuickBooks API calls (OAuth apart) and HubSpot calls, by endpoint."""
    qbo_api = [r for r in qbo_log if not r["path"].startswith("/oauth2")]
    qbo_kinds = Counter(
        f"{r['method']} {shape(r['path'])}" + (" ?query" if "query" in (r.get("query") or {}) else "") for r in qbo_api
    )
    hs_kinds = Counter(f"{r['method']} {shape(r['path'])}" for r in hs_log)

    def posts(entity: str) -> int:
        return len([r for r in qbo_api if r["method"] == "POST" and r["path"].endswith(f"/{entity}")])

    return {
        "quickbooks_requests": len(qbo_api),
        "quickbooks_oauth_requests": len(qbo_log) - len(qbo_api),
        "quickbooks_invoice_posts": posts("invoice"),
        "quickbooks_payment_posts": posts("payment"),
        "quickbooks_429": sum(1 for r in qbo_api if r["status"] == 429),
        "quickbooks_per_execution": round(len(qbo_api) / executions, 3),
        "quickbooks_by_kind": dict(qbo_kinds.most_common()),
        "hubspot_requests": len(hs_log),
        "hubspot_429": sum(1 for r in hs_log if r["status"] == 429),
        "hubspot_per_execution": round(len(hs_log) / executions, 3),
        "hubspot_per_execution_without_429": round(sum(1 for r in hs_log if r["status"] != 429) / executions, 3),
        "hubspot_by_kind": dict(hs_kinds.most_common()),
    }


def job_times(log_text: str) -> dict[str, Any]:
    """RQ logs how long each job ran inside its work horse ("... execution <id> job in 0:00:00.33s")."""
    job_ms = sorted(
        float(m.group(1)) * 1000
        for m in re.finditer(r"Successfully completed execution \w+ job in 0:00:([\d.]+)s", log_text)
    )
    return {
        "jobs": len(job_ms),
        "mean": round(sum(job_ms) / len(job_ms), 1) if job_ms else None,
        "p50": round(job_ms[len(job_ms) // 2], 1) if job_ms else None,
        "max": round(job_ms[-1], 1) if job_ms else None,
    }


def check_paid_documents(
    invoices: list[dict[str, Any]], payments: list[dict[str, Any]], payment_ids: list[str], documents: int
) -> dict[str, Any]:
    """Check the Invoices and Payments the paid-invoice executions created in the simulated company."""
    invoice_ids = {str(i["Id"]) for i in invoices}
    linked = [str(txn["TxnId"]) for p in payments for line in p.get("Line", []) for txn in line.get("LinkedTxn", [])]
    expected = len(payment_ids)
    result = {
        "expected": expected,
        "invoices": len(invoices),
        "payments": len(payments),
        # Each Payment pays exactly one of the new Invoices, and no two pay the same one.
        "payments_pay_own_invoice": sorted(linked) == sorted(invoice_ids) and len(linked) == len(payments),
        "payment_refs_match": sorted(str(p.get("PaymentRefNum")) for p in payments)
        == sorted(f"HS-{pid}" for pid in payment_ids),
        "amounts_ok": all(float(d.get("TotalAmt", 0)) == PAID_AMOUNT for d in [*invoices, *payments]),
        "invoices_paid_in_full": all(float(i.get("Balance", -1)) == 0 for i in invoices),
        "payment_documents": documents,
    }
    result["exact"] = (
        result["invoices"] == expected
        and result["payments"] == expected
        and documents == expected
        and all(result[k] for k in ("payments_pay_own_invoice", "payment_refs_match", "amounts_ok"))
        and result["invoices_paid_in_full"]
    )
    return result


def worker_phase(bench: Bench) -> dict[str, Any]:
    count = 40 if bench.quick else 200
    # Fewer in the full run: a paid invoice takes about twice an invoice's time, and the full run keeps to ~3 min.
    paid_count = 40 if bench.quick else 100
    sims = bench.sims
    sims.reset()
    sims.add_company(REALM_ID)
    sims.add_portal(PORTAL_ID)
    bench.reset_state()
    connect_standard(bench)
    t0 = time.monotonic()
    contact, deals = seed_deals(sims, count + 1)
    payment_ids = seed_payments(sims, contact, paid_count)
    print(
        f"  seeded 1 contact, {len(deals)} deals and {len(payment_ids)} payments x 2 line items"
        f" in {time.monotonic() - t0:.1f} s",
        flush=True,
    )
    deposit_account = sims.account_id("Checking")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = bench.start_gunicorn("phase2", ["--worker-class", "sync", "--workers", "2"], port)
    worker_log = WORK_DIR / "worker.log"
    worker_log.write_text("")
    worker = bench.procs.start("worker", [PYTHON, "-m", "actions.cli", "worker"], bench.env(), worker_log)
    http = requests.Session()
    local = threading.local()

    def send(callback_id: str, body: str, path: str = ACTION_PATH, session: requests.Session | None = None) -> None:
        url = base + path
        response = (session or http).post(url, data=body.encode(), headers=signed(url, body), timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"{callback_id}: {response.status_code} {response.text[:300]}")

    def thread_session() -> requests.Session:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        return local.http  # type: ignore[no-any-return]

    def progress(prefix: str) -> tuple[int, int, int]:
        [(done, failed, total)] = bench.sql(
            "SELECT count(*) FILTER (WHERE state = 'succeeded' AND callback_state = 'sent'),"
            " count(*) FILTER (WHERE state = 'failed'), count(*) FROM executions WHERE callback_id LIKE %s",
            (f"{prefix}%",),
        )
        return int(done), int(failed), int(total)

    def wait_done(prefix: str, expected: int, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({worker.returncode}):\n{tail(worker_log)}")
            done, failed, total = progress(prefix)
            if failed:
                rows = bench.sql(
                    "SELECT callback_id, failure_reason, failure_message FROM executions"
                    " WHERE state = 'failed' AND callback_id LIKE %s LIMIT 3",
                    (f"{prefix}%",),
                )
                raise RuntimeError(f"{failed} executions failed, e.g. {rows}")
            if done >= expected:
                return time.monotonic() - started
            time.sleep(0.2)
        raise RuntimeError(f"only {progress(prefix)} of {expected} done after {timeout} s:\n{tail(worker_log)}")

    def entity_ids(entity: str) -> set[str]:
        return {str(e["Id"]) for e in sims.entities(entity)}

    try:
        # Warm-up: creates the customer and maps both products.
        warm_prefix = f"ap-{PORTAL_ID}-warm-"
        send(f"{warm_prefix}0", invoice_body(f"{warm_prefix}0", deals[0]))
        warm_s = wait_done(warm_prefix, 1, 60)
        time.sleep(0.5)  # the warm-up's work horses and flush job end
        long_lived = set(children_of(worker.pid))
        sims.qbo("DELETE", "requests")
        sims.hs("DELETE", "requests")
        poller = MemoryPoller(worker.pid, long_lived)
        poller.start()
        prefix = f"ap-{PORTAL_ID}-inv-"
        started = time.monotonic()

        def send_one(n: int) -> None:
            callback_id = f"{prefix}{n}"
            send(callback_id, invoice_body(callback_id, deals[n + 1]), session=thread_session())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send_one, range(count)))
        sent_s = time.monotonic() - started
        wait_done(prefix, count, 90 if bench.quick else 150)
        elapsed = time.monotonic() - started
        poller.stop()
        time.sleep(0.3)
        qbo_log = sims.qbo("GET", "requests")
        hs_log = sims.hs("GET", "requests")

        # Paid invoices: same worker, the customer and both products already mapped by the invoices.
        invoice_log_end = worker_log.stat().st_size
        sims.qbo("DELETE", "requests")
        sims.hs("DELETE", "requests")
        invoices_before = entity_ids("Invoice")
        payments_before = entity_ids("Payment")
        paid_poller = MemoryPoller(worker.pid, long_lived)
        paid_poller.start()
        paid_prefix = f"ap-{PORTAL_ID}-paid-"
        paid_started = time.monotonic()

        def send_paid(n: int) -> None:
            callback_id = f"{paid_prefix}{n}"
            body = paid_invoice_body(callback_id, payment_ids[n], deposit_account)
            send(callback_id, body, PAID_PATH, thread_session())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send_paid, range(paid_count)))
        paid_sent_s = time.monotonic() - paid_started
        wait_done(paid_prefix, paid_count, 90 if bench.quick else 150)
        paid_elapsed = time.monotonic() - paid_started
        paid_poller.stop()
        time.sleep(0.3)
        paid_qbo_log = sims.qbo("GET", "requests")
        paid_hs_log = sims.hs("GET", "requests")
        new_invoices = [i for i in sims.entities("Invoice") if str(i["Id"]) not in invoices_before]
        new_payments = [p for p in sims.entities("Payment") if str(p["Id"]) not in payments_before]
        [(documents,)] = bench.sql(
            "SELECT count(*) FROM payment_documents WHERE kind = 'paid_invoice' AND payment_id = ANY(%s)",
            (payment_ids,),
        )
    finally:
        bench.procs.stop(worker)
        bench.procs.stop(web)

    log_bytes = worker_log.read_bytes()
    invoice_log, paid_log = (
        log_bytes[:invoice_log_end].decode(errors="replace"),
        log_bytes[invoice_log_end:].decode(errors="replace"),
    )
    invoice_calls = call_breakdown(qbo_log, hs_log, count)
    paid_calls = call_breakdown(paid_qbo_log, paid_hs_log, paid_count)
    paid = {
        "paid_invoices": paid_count,
        "send_seconds": round(paid_sent_s, 2),
        "elapsed_seconds": round(paid_elapsed, 2),
        "paid_invoices_per_s": round(paid_count / paid_elapsed, 2),
        **{k: v for k, v in paid_calls.items() if k != "quickbooks_per_execution"},
        "quickbooks_per_paid_invoice": paid_calls["quickbooks_per_execution"],
        "quickbooks_expected_per_paid_invoice": EXPECTED_QBO_PER_PAID_INVOICE,
        "created": check_paid_documents(new_invoices, new_payments, payment_ids, int(documents)),
        "execution_job_ms": job_times(paid_log),
        "worker_memory": {
            "samples": paid_poller.samples,
            "main_hwm_mib": mib(paid_poller.main["VmHWM"]),
            "horse_hwm_mib": mib(paid_poller.horse["VmHWM"]),
            "horses_seen": len(paid_poller.horses),
        },
    }
    return {
        "invoices": count,
        "warmup_seconds": round(warm_s, 2),
        "send_seconds": round(sent_s, 2),
        "elapsed_seconds": round(elapsed, 2),
        "invoices_per_s": round(count / elapsed, 2),
        "quickbooks_requests": invoice_calls["quickbooks_requests"],
        "quickbooks_oauth_requests": invoice_calls["quickbooks_oauth_requests"],
        "quickbooks_invoice_posts": invoice_calls["quickbooks_invoice_posts"],
        "quickbooks_429": invoice_calls["quickbooks_429"],
        "quickbooks_per_invoice": invoice_calls["quickbooks_per_execution"],
        "quickbooks_by_kind": invoice_calls["quickbooks_by_kind"],
        "hubspot_requests": invoice_calls["hubspot_requests"],
        "hubspot_429": invoice_calls["hubspot_429"],
        "hubspot_per_execution": invoice_calls["hubspot_per_execution"],
        "hubspot_by_kind": invoice_calls["hubspot_by_kind"],
        "execution_job_ms": job_times(invoice_log),
        "worker_memory": {
            "samples": poller.samples,
            "main_hwm_mib": mib(poller.main["VmHWM"]),
            "main_rss_mib": mib(poller.main["VmRSS"]),
            "scheduler_hwm_mib": mib(poller.scheduler["VmHWM"]),
            "horse_hwm_mib": mib(poller.horse["VmHWM"]),
            "horse_rss_mib": mib(poller.horse["VmRSS"]),
            "horses_seen": len(poller.horses),
        },
        "paid_invoices": paid,
    }


# Phase 4: document statuses ------------------------------------------------------------------------


def start_own_quickbooks(procs: Processes) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a QuickBooks simulator of the phase's own (its webhooks point at this phase's web process)."""
    port = free_port()
    log = WORK_DIR / "sim-quickbooks-notifications.log"
    log.write_text("")
    cmd = [PYTHON, "-m", "simulators.quickbooks", "--port", str(port)]
    process = procs.start("quickbooks simulator (notifications)", cmd, dict(os.environ), log)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sim/requests", process, log)
    return url, process


def notify_env(bench: Bench) -> dict[str, str]:
    """The web and worker environment of the notifications phase: the verifier token, every other status setting
    (STATUS_FLUSH_DELAY, CDC_INTERVAL, no timeline template: payments go as notes) and limiter at its default."""
    env = bench.env(QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN=WEBHOOK_TOKEN)
    for name in (
        "STATUS_FLUSH_DELAY",
        "CDC_INTERVAL",
        "HUBSPOT_TIMELINE_TEMPLATES",
        "QUICKBOOKS_CALLS_PER_MINUTE",
        "QUICKBOOKS_CALLS_PER_SECOND",
        "HUBSPOT_CALLS_PER_10S",
    ):
        env.pop(name, None)
    return env


def intuit_signature(body: bytes, token: str = WEBHOOK_TOKEN) -> str:
    """Return the intuit-signature of a body: base64(HMAC-SHA256(verifier token, body)), as Intuit signs."""
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def cloud_event(event_id: str, entity: str, entity_id: str, operation: str) -> dict[str, Any]:
    """One change notification of the standard company in Intuit's CloudEvents format."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "intuit.bench",
        "type": f"qbo.{entity.lower()}.{operation}.v1",
        "datacontenttype": "application/json",
        "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "intuitentityid": entity_id,
        "intuitaccountid": REALM_ID,
        "data": {},
    }


def signed_deliveries(
    tag: str, threads: int, per_thread: int, events: int
) -> list[list[tuple[int, bytes, dict[str, str]]]]:
    """Pre-sign `per_thread` deliveries of `events` unique CloudEvents for each thread: a payment created and its
    invoice updated, in turn (documents nobody follows: the endpoint's work, not the jobs')."""
    plans = []
    for t in range(threads):
        plan = []
        for i in range(per_thread):
            batch = [
                cloud_event(
                    f"bench-{tag}-{t}-{i}-{j}",
                    "Payment" if j % 2 == 0 else "Invoice",
                    str(900_000 + (t * per_thread + i) * events + j),
                    "created" if j % 2 == 0 else "updated",
                )
                for j in range(events)
            ]
            body = json.dumps(batch, separators=(",", ":")).encode()
            plan.append(
                (len(batch), body, {"Content-Type": "application/json", "intuit-signature": intuit_signature(body)})
            )
        plans.append(plan)
    return plans


def answered_events(answer: Any) -> int:
    """Return how many events the endpoint's answer says it took ("events", or new + repeated + ignored)."""
    if not isinstance(answer, dict):
        return 0
    if "events" in answer:
        return int(answer["events"] or 0)
    return sum(int(answer.get(key) or 0) for key in ("new", "repeated", "ignored"))


def post_deliveries(
    url: str, plans: list[list[tuple[int, bytes, dict[str, str]]]], seconds: float
) -> list[tuple[int | None, int, int, float, float]]:
    """POST each thread's deliveries one after the other until `seconds` pass; return (status, events sent,
    events the answer counted, sent at, answered at) of each."""
    deadline = time.monotonic() + seconds

    def run(plan: list[tuple[int, bytes, dict[str, str]]]) -> list[tuple[int | None, int, int, float, float]]:
        session = requests.Session()
        done = []
        for events, body, headers in plan:
            if time.monotonic() >= deadline:
                break
            sent = time.monotonic()
            status: int | None = None
            counted = 0
            try:
                response = session.post(url, data=body, headers=headers, timeout=10)
                status = response.status_code
                if status == 200:
                    counted = answered_events(response.json())
            except (requests.RequestException, ValueError):
                pass
            done.append((status, events, counted, sent, time.monotonic()))
        return done

    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        return [posted for thread in pool.map(run, plans) for posted in thread]


def quantiles_ms(values: list[float]) -> dict[str, float | None]:
    """Return p50, p99 (nearest rank) and max of durations in seconds, in milliseconds."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(1000 * v, 1)

    return {
        "p50": ms(bench_drain.percentile(values, 0.50)),
        "p99": ms(bench_drain.percentile(values, 0.99)),
        "max": ms(max(values) if values else None),
    }


def direct_endpoint(bench: Bench, base: str, master: int) -> dict[str, Any]:
    """POST pre-signed deliveries of 100 CloudEvents from DIRECT_THREADS threads for DIRECT_SECONDS (no worker
    runs); count the events accepted per second and check each has its row in `quickbooks_events`."""
    url = base + WEBHOOK_PATH
    # Warm-up: every gunicorn thread's first request; left out of the figures.
    post_deliveries(url, signed_deliveries("warm", DIRECT_THREADS, 3, 10), 30)
    t0 = time.monotonic()
    plans = signed_deliveries("direct", DIRECT_THREADS, DIRECT_DELIVERIES_PER_THREAD, DIRECT_EVENTS_PER_DELIVERY)
    signing = time.monotonic() - t0
    before = cpu_snapshot()
    posted = post_deliveries(url, plans, DIRECT_SECONDS)
    cpu = cpu_by_component(before, cpu_snapshot(), master)
    ok = [p for p in posted if p[0] == 200]
    accepted = sum(p[1] for p in ok)
    counted = sum(p[2] for p in ok)
    seconds = max(0.001, max(p[4] for p in posted) - min(p[3] for p in posted))
    [(rows, pending)] = bench.sql(
        "SELECT count(*), count(*) FILTER (WHERE state = 'pending') FROM quickbooks_events WHERE id LIKE %s",
        ("bench-direct-%",),
    )
    exhausted = len(posted) == DIRECT_THREADS * DIRECT_DELIVERIES_PER_THREAD
    return {
        "threads": DIRECT_THREADS,
        "events_per_delivery": DIRECT_EVENTS_PER_DELIVERY,
        "seconds": round(seconds, 2),
        "signing_seconds": round(signing, 2),
        "deliveries": len(posted),
        "deliveries_200": len(ok),
        "non_200": dict(Counter(str(p[0]) for p in posted if p[0] != 200)),
        "events_accepted": accepted,
        "events_counted_by_answers": counted,
        "events_per_s": round(accepted / seconds, 1),
        "deliveries_per_s": round(len(ok) / seconds, 1),
        "latency_ms": quantiles_ms([p[4] - p[3] for p in posted]),
        "rows": int(rows),
        "rows_pending": int(pending),
        "rows_match": int(rows) == accepted == counted,
        "ran_out_of_deliveries": exhausted,
        "cpu_seconds": cpu,
        "cpu_ms_per_event": {k: round(1000 * v / max(1, accepted), 3) for k, v in cpu.items()},
        "cpu_other_seconds": dict(OTHER_CPU),
    }


def epoch_of(stamp: str) -> float:
    """Return the POSIX time of an ISO 8601 stamp ("...Z" included)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def seed_followed_invoices(bench: Bench, svc: Any, count: int) -> list[tuple[dict[str, Any], str]]:
    """Put `count` open invoices of 399.50 for one customer in the simulated company (admin seeding: no
    notification), a deal for each in the portal, and follow each invoice on its deal as the action would."""
    from services.books.statuses import state_of
    from services.work.statuses import version_of

    sims = bench.sims
    customer = sims.add_entity(
        "Customer",
        {"DisplayName": "Acme Inc", "CompanyName": "Acme Inc", "PrimaryEmailAddr": {"Address": "ann@acme.example"}},
    )
    item = sims.add_entity(
        "Item",
        {
            "Name": "Consulting",
            "Type": "Service",
            "Active": True,
            "IncomeAccountRef": {"value": sims.account_id("Services"), "name": "Services"},
        },
    )
    today = datetime.now(UTC).date()
    local = threading.local()

    def own() -> Simulators:
        if not hasattr(local, "sims"):
            local.sims = Simulators(sims.quickbooks_url, sims.hubspot_url)
        return local.sims  # type: ignore[no-any-return]

    def seed(n: int) -> tuple[dict[str, Any], str]:
        invoice = own().add_entity(
            "Invoice",
            {
                "DocNumber": f"B-{n + 1:05d}",
                "TxnDate": today.isoformat(),
                "DueDate": date.fromordinal(today.toordinal() + 30).isoformat(),
                "CustomerRef": {"value": str(customer["Id"]), "name": "Acme Inc"},
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                "BillEmail": {"Address": "ann@acme.example"},
                "EmailStatus": "NotSet",
                "TotalAmt": PAID_AMOUNT,
                "Balance": PAID_AMOUNT,
                "Line": [
                    {
                        "Amount": PAID_AMOUNT,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {
                            "ItemRef": {"value": str(item["Id"])},
                            "Qty": 1,
                            "UnitPrice": PAID_AMOUNT,
                        },
                    }
                ],
            },
        )
        deal = own().add_object("deals", {"dealname": f"Acme renewal {n}", "amount": str(PAID_AMOUNT)})
        return invoice, deal

    with ThreadPoolExecutor(max_workers=8) as pool:
        pairs = list(pool.map(seed, range(count)))
    for invoice, deal in pairs:
        version = version_of(REALM_ID, state_of("Invoice", invoice))
        svc.followed.follow(PORTAL_ID, "deals", deal, version)
    return pairs


def wait_workers(bench: Bench, workers: list[subprocess.Popen[bytes]], logs: list[Path], timeout: float = 30) -> None:
    """Wait until every worker has registered with RQ."""
    conn = redis.Redis.from_url(bench.redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker, log in zip(workers, logs, strict=True):
            if worker.poll() is not None:
                raise RuntimeError(f"a worker exited ({worker.returncode}):\n{tail(log)}")
        if conn.scard("rq:workers") >= len(workers):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the workers did not register within {timeout} s:\n{tail(logs[0])}")


def qbo_kind(entry: dict[str, Any]) -> str:
    """Return a QuickBooks request's kind: its method and path shape, and the entity a query reads."""
    kind = f"{entry['method']} {shape(entry['path'])}"
    text = (entry.get("query") or {}).get("query") or (entry.get("body") if isinstance(entry.get("body"), str) else "")
    match = re.search(r"\bfrom\s+(\w+)", str(text or ""), re.I)
    return f"{kind} ({match.group(1)})" if match else kind


def inputs_of(entry: dict[str, Any]) -> int:
    """Return how many inputs a logged batch request carried."""
    body = entry.get("body")
    return len(body.get("inputs") or []) if isinstance(body, dict) else 0


class JobSampler(threading.Thread):
    """Samples RQ every 50 ms: each job's description ("document statuses of portal ...", "QuickBooks
    notifications of ..."), when it was queued and started (RQ's own stamps) and when it was last seen running."""

    def __init__(self, redis_url: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True, name="job-sampler")
        self.conn = redis.Redis.from_url(redis_url, decode_responses=True)
        self.interval = interval
        self.halt = threading.Event()
        self.jobs: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.sample()
            except redis.RedisError:
                pass
            self.halt.wait(self.interval)

    def sample(self) -> None:
        now = time.time()
        for key in self.conn.scan_iter(f"rq:wip:{QUEUE}*"):
            # RQ 2 keeps "<job id>:<execution id>" in the started registry.
            for member in self.conn.zrange(key, 0, -1):
                job = str(member).split(":")[0]
                entry = self.jobs.get(job)
                if entry is None:
                    description, enqueued, started = (
                        str(v) if v else None
                        for v in self.conn.hmget(f"rq:job:{job}", "description", "enqueued_at", "started_at")
                    )
                    entry = self.jobs[job] = {
                        "description": re.sub(r"\d+$", "{id}", description or job),
                        "enqueued": rq_time(enqueued),
                        "started": rq_time(started),
                    }
                entry["last_running"] = now

    def stop(self) -> dict[str, Any]:
        """Stop; return, by kind of job: how many ran, their longest wait in the queue and their longest runs."""
        self.halt.set()
        self.join(timeout=5)
        by_kind: dict[str, dict[str, list[float]]] = {}
        for entry in self.jobs.values():
            kind = by_kind.setdefault(entry["description"], {"waits": [], "runs": []})
            if entry["enqueued"] and entry["started"]:
                kind["waits"].append(entry["started"] - entry["enqueued"])
            if entry["started"]:
                kind["runs"].append(entry["last_running"] - entry["started"])
        return {
            name: {
                "jobs": max(len(k["waits"]), len(k["runs"])),
                "longest_queue_wait_s": round(max(k["waits"]), 2) if k["waits"] else None,
                "longest_run_s": round(max(k["runs"]), 2) if k["runs"] else None,
                "longest_runs_s": [round(r, 2) for r in sorted(k["runs"], reverse=True)[:5]],
            }
            for name, k in sorted(by_kind.items())
        }


def rq_time(stamp: str | None) -> float | None:
    """Return the POSIX time of one of RQ's stamps ("2026-12-02T07:25:38.123456Z"), None without one."""
    if not stamp:
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def notifications_phase(
    bench: Bench, payments: int | None = None, workers_count: int = NOTIFY_WORKERS
) -> dict[str, Any]:
    from services.bootstrap import bootstrap
    from services.config import Config
    from services.work import statuses

    count = payments or (NOTIFY_PAYMENTS_QUICK if bench.quick else NOTIFY_PAYMENTS)
    load = [round(x, 2) for x in os.getloadavg()]
    qbo_url, qbo_sim = start_own_quickbooks(bench.procs)
    sims = Simulators(qbo_url, bench.sims.hubspot_url)
    bench = replace(bench, sims=sims)
    started_processes: list[subprocess.Popen[bytes]] = [qbo_sim]
    try:
        sims.reset()
        sims.add_company(REALM_ID)
        sims.add_portal(PORTAL_ID)
        bench.reset_state()
        connect_standard(bench)
        env = notify_env(bench)

        # The web, and the endpoint measured on its own (no worker yet: the jobs it queues are dropped after).
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        access_log = WORK_DIR / "gunicorn-notifications-access.log"
        access_log.write_text("")
        web_args = [
            *NOTIFY_WEB_ARGS,
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(D)s",
        ]
        print(f"  starting gunicorn {' '.join(NOTIFY_WEB_ARGS)} on :{port}", flush=True)
        web = bench.start_gunicorn("notifications", web_args, port, env)
        started_processes.append(web)
        direct = direct_endpoint(bench, base, web.pid)
        print(
            f"  endpoint alone: {direct['events_per_s']:.0f} events/s accepted ({direct['deliveries_per_s']:.0f}"
            f" deliveries of {DIRECT_EVENTS_PER_DELIVERY}/s, {DIRECT_THREADS} threads, {direct['seconds']} s),"
            f" latency p50 {direct['latency_ms']['p50']} ms p99 {direct['latency_ms']['p99']} ms; non-200"
            f" {direct['non_200'] or 0}; rows {direct['rows']} of {direct['events_accepted']} accepted"
            f" ({direct['events_counted_by_answers']} counted by the answers)"
            f" (match: {direct['rows_match']}); CPU ms per event {direct['cpu_ms_per_event']}",
            flush=True,
        )
        bench.sql("DELETE FROM quickbooks_events")
        conn = redis.Redis.from_url(bench.redis_url)
        conn.flushdb()
        # Another process flushing this Redis db (a test run on the same number) would lose the jobs and locks.
        conn.set(SENTINEL, "1")

        # The documents the actions booked, followed on their deals and shown once (awaiting payment).
        t0 = time.monotonic()
        svc = bootstrap(Config.from_env(env))
        try:
            setup = statuses.set_up_properties(svc, PORTAL_ID)
            pairs = seed_followed_invoices(bench, svc, count)
            first_push = statuses.push_statuses(svc, PORTAL_ID)
        finally:
            svc.database.engine.dispose()
            svc.redis.close()
        [(awaiting, followed)] = bench.sql(
            "SELECT count(*) FILTER (WHERE status = 'awaiting_payment' AND NOT pending_push), count(*)"
            " FROM followed_documents"
        )
        shown = sims.hubspot_record("deals", pairs[0][1]).get("qbo_invoice_status")
        if awaiting != count or followed != count or shown != "awaiting_payment":
            raise RuntimeError(f"the first push left {awaiting} of {followed} awaiting payment (deal shows {shown})")
        print(
            f"  seeded {count} invoices and deals, followed and shown as awaiting payment in"
            f" {time.monotonic() - t0:.1f} s (properties: {setup}; first push: {first_push})",
            flush=True,
        )

        # Two workers; then the bookkeeper's burst of payments, each notified as a payment and an invoice change.
        worker_logs = [WORK_DIR / f"worker-notifications-{i}.log" for i in range(workers_count)]
        workers = []
        for i, log in enumerate(worker_logs):
            log.write_text("")
            workers.append(
                bench.procs.start(f"worker-{i} (notifications)", [*bench_drain.qbo_actions(), "worker"], env, log)
            )
        started_processes.extend(workers)
        wait_workers(bench, workers, worker_logs)
        sims.qbo("DELETE", "requests")
        sims.hs("DELETE", "requests")
        sims.quickbooks_config(throttle_per_minute=BOOKKEEPER_THROTTLE_PER_MINUTE)
        sims.quickbooks_webhooks(base + WEBHOOK_PATH, WEBHOOK_TOKEN, auto=True, delay_ms=WEBHOOK_DELAY_MS)
        access_offset = access_log.stat().st_size
        roles = {"workers": [w.pid for w in workers], "web": [web.pid]}
        cpu_before = bench_drain.cpu_by_role(roles)
        sampler = JobSampler(bench.redis_url)
        sampler.start()
        local = threading.local()
        payment_url = f"{qbo_url}/v3/company/{REALM_ID}/payment"
        headers = {"Authorization": f"Bearer {QBO_ACCESS_TOKEN}-{REALM_ID}", "Accept": "application/json"}

        def pay(invoice: dict[str, Any]) -> tuple[str, int | None, float, float, str]:
            if not hasattr(local, "http"):
                local.http = requests.Session()
            body = {
                "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
                "TotalAmt": PAID_AMOUNT,
                "Line": [{"Amount": PAID_AMOUNT, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            }
            sent = time.time()
            try:
                response = local.http.post(
                    payment_url, params={"minorversion": "75"}, json=body, headers=headers, timeout=30
                )
                return str(invoice["Id"]), response.status_code, sent, time.time(), response.text[:200]
            except requests.RequestException as error:
                return str(invoice["Id"]), None, sent, time.time(), str(error)

        print(
            f"  {count} payments from {PAYMENT_THREADS} threads; {workers_count} workers; STATUS_FLUSH_DELAY default",
            flush=True,
        )
        started_wall = time.time()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=PAYMENT_THREADS) as pool:
            paid = list(pool.map(pay, [invoice for invoice, _ in pairs]))
        payments_s = time.monotonic() - started
        refused = [p for p in paid if p[1] != 200]
        if refused:
            raise RuntimeError(f"{len(refused)} payments refused by the simulator, e.g. {refused[:3]}")
        print(f"  payments created in {payments_s:.1f} s ({count / payments_s:.0f}/s)", flush=True)

        timeout = 120.0 + 0.3 * count
        shown_at = started
        progress_at = started
        while True:
            [(paid_shown, pending_push)] = bench.sql(
                "SELECT count(*) FILTER (WHERE status = 'paid' AND NOT pending_push),"
                " count(*) FILTER (WHERE pending_push) FROM followed_documents"
            )
            [(posted, payment_rows)] = bench.sql(
                "SELECT count(*) FILTER (WHERE posted_at IS NOT NULL), count(*) FROM followed_payments"
            )
            now = time.monotonic()
            if paid_shown >= count and posted >= count:
                shown_at = now
                break
            for worker, log in zip(workers, worker_logs, strict=True):
                if worker.poll() is not None:
                    raise RuntimeError(f"a worker exited ({worker.returncode}):\n{tail(log)}")
            if not conn.exists(SENTINEL):
                raise RuntimeError(
                    f"Redis db {REDIS_DB} was emptied by another process during the run (a test run using it?):"
                    " choose another with QBO_BENCH_REDIS_DB"
                )
            if now - started > timeout:
                raise RuntimeError(
                    f"after {timeout:.0f} s only {paid_shown} of {count} records show paid and {posted} of"
                    f" {payment_rows} payments are posted:\n{tail(worker_logs[0])}"
                )
            if now - progress_at >= 10:
                progress_at = now
                print(
                    f"  ... {now - started:.0f} s: {paid_shown} records paid, {pending_push} to push,"
                    f" {posted}/{payment_rows} payments posted",
                    flush=True,
                )
            time.sleep(NOTIFY_POLL_S)
        cpu_after = bench_drain.cpu_by_role(roles)
        jobs = sampler.stop()
        time.sleep(0.5)  # a last delivery's answer, the last log lines
        deliveries = sims.webhook_deliveries()
        queued = sims.queued_webhooks()
        qbo_log = sims.qbo_requests()
        hs_log = sims.hs_requests()
        sims.quickbooks_webhooks(None, "")
        access = access_log.read_bytes()[access_offset:].decode(errors="replace").splitlines()
        event_rows = dict(bench.sql("SELECT state, count(*) FROM quickbooks_events GROUP BY state"))
        [(last_posted,)] = bench.sql("SELECT max(posted_at) FROM followed_payments")
        records = hubspot_records(sims, [deal for _, deal in pairs])
    finally:
        for process in reversed(started_processes):
            bench.procs.stop(process)

    # The endpoint during the burst: the simulator's deliveries and gunicorn's own time per request.
    answered = [d for d in deliveries if d.get("status") == 200]
    events_delivered = sum(len(d["events"]) for d in answered)
    unique_events = len({e for d in answered for e in d["events"]})
    times = [epoch_of(d["time"]) for d in deliveries]
    spread = max(times) - min(times) if len(times) > 1 else 0.0
    webhook_us = [
        int(parts[3])
        for parts in (line.split() for line in access)
        if len(parts) == 4 and parts[1] == WEBHOOK_PATH and parts[3].isdigit()
    ]
    # The records, as HubSpot shows them.
    answered_at = {invoice_id: done for invoice_id, _, _, done, _ in paid}
    paid_at: list[float] = []
    latencies: list[float] = []
    for (invoice, _deal), record in zip(pairs, records, strict=True):
        if record["paid_at"] is not None:
            paid_at.append(record["paid_at"])
            latencies.append(record["paid_at"] - answered_at[str(invoice["Id"])])
    last_paid = max(paid_at, default=None)
    notes = Counter(r["notes"] for r in records)
    # The calls: the bookkeeper's payments are in QuickBooks' log too.
    bookkeeper = [r for r in qbo_log if r["method"] == "POST" and r["path"].endswith("/payment")]
    server_qbo = [r for r in qbo_log if not (r["method"] == "POST" and r["path"].endswith("/payment"))]
    ids_per_read = [len(re.findall(r"'[^']*'", str((r.get("query") or {}).get("query") or ""))) for r in server_qbo]
    hs_kinds = Counter(f"{r['method']} {shape(r['path'])} {r['status']}" for r in hs_log)
    updates = [inputs_of(r) for r in hs_log if r["path"].endswith("/batch/update")]
    note_batches = [inputs_of(r) for r in hs_log if r["path"] == "/crm/v3/objects/notes/batch/create"]
    worker_cpu = cpu_after["workers"] - cpu_before["workers"]
    web_cpu = cpu_after["web"] - cpu_before["web"]
    result: dict[str, Any] = {
        "payments": count,
        "web": " ".join(NOTIFY_WEB_ARGS),
        "workers": workers_count,
        "status_flush_delay_s": 2,
        "load_average_at_start": load,
        "webhook_delay_ms": WEBHOOK_DELAY_MS,
        "direct": direct,
        "payments_seconds": round(payments_s, 2),
        "payments_per_s": round(count / payments_s, 1),
        "burst": {
            "deliveries": len(deliveries),
            "deliveries_200": len(answered),
            "non_200": dict(Counter(str(d.get("status")) for d in deliveries if d.get("status") != 200)),
            "retried": sum(1 for d in deliveries if int(d.get("attempt") or 1) > 1),
            "left_queued": len(queued),
            "events_delivered": events_delivered,
            "events_unique": unique_events,
            "events_expected": 2 * count,
            "events_per_delivery": round(events_delivered / max(1, len(answered)), 1),
            "delivery_span_s": round(spread, 2),
            "events_per_s": round(events_delivered / spread, 1) if spread else None,
            "answer_ms": quantiles_ms([us / 1e6 for us in webhook_us]),
            "answers_timed": len(webhook_us),
            "event_rows": {str(k): int(v) for k, v in event_rows.items()},
            "rows_match": sum(event_rows.values()) == unique_events == 2 * count,
        },
        "end_to_end": {
            "until_all_paid_in_hubspot_s": round(last_paid - started_wall, 2) if last_paid else None,
            "until_all_notes_posted_s": round(last_posted.timestamp() - started_wall, 2) if last_posted else None,
            "until_seen_done_s": round(shown_at - started, 2),
            "payment_to_hubspot_s": bench_drain.latencies(latencies),
            "records_paid": sum(1 for r in records if r["status"] == "paid"),
            "records_with_one_note": notes.get(1, 0),
            "notes_per_record": {str(k): v for k, v in sorted(notes.items())},
            "history_ok": sum(1 for r in records if r["history"][-2:] == ["awaiting_payment", "paid"]),
        },
        "hubspot_requests": len(hs_log),
        "hubspot_429": sum(1 for r in hs_log if r["status"] == 429),
        "hubspot_per_status_update": round(len(hs_log) / count, 4),
        "hubspot_by_kind": dict(hs_kinds.most_common()),
        "hubspot_batch_update_sizes": updates,
        "hubspot_note_batch_sizes": note_batches,
        "quickbooks_requests": len(server_qbo),
        "quickbooks_per_payment": round(len(server_qbo) / count, 4),
        "quickbooks_429": sum(1 for r in server_qbo if r["status"] == 429),
        "quickbooks_by_kind": dict(Counter(f"{qbo_kind(r)} {r['status']}" for r in server_qbo).most_common()),
        "quickbooks_ids_per_read": {
            "reads": len(ids_per_read),
            "mean": round(sum(ids_per_read) / len(ids_per_read), 1) if ids_per_read else None,
            "max": max(ids_per_read, default=None),
        },
        "bookkeeper_requests": len(bookkeeper),
        "bookkeeper_429": sum(1 for r in bookkeeper if r["status"] == 429),
        "jobs": jobs,
        "cpu_seconds": {"workers": round(worker_cpu, 2), "web": round(web_cpu, 2)},
        "worker_cpu_ms_per_status_update": round(1000 * worker_cpu / count, 2),
        "web_cpu_ms_per_event": round(1000 * web_cpu / max(1, events_delivered), 3),
    }
    b, e = result["burst"], result["end_to_end"]
    print(
        f"  burst: {b['events_delivered']} events in {b['deliveries_200']} deliveries of {b['deliveries']}"
        f" ({b['events_per_delivery']} a delivery, non-200 {b['non_200'] or 0}, retried {b['retried']}) over"
        f" {b['delivery_span_s']} s = {b['events_per_s']} events/s; answer p50 {b['answer_ms']['p50']} ms p99"
        f" {b['answer_ms']['p99']} ms; rows {b['event_rows']} (match: {b['rows_match']})",
        flush=True,
    )
    print(
        f"  end to end: every deal paid in HubSpot {e['until_all_paid_in_hubspot_s']} s after the first payment,"
        f" notes posted {e['until_all_notes_posted_s']} s; payment to HubSpot {e['payment_to_hubspot_s']};"
        f" paid {e['records_paid']}/{count}, one note {e['records_with_one_note']}/{count}",
        flush=True,
    )
    print(
        f"  HubSpot {result['hubspot_requests']} requests, {result['hubspot_per_status_update']} per status update"
        f" ({result['hubspot_429']} answered 429): {result['hubspot_by_kind']}; batch/update sizes {updates}",
        flush=True,
    )
    print(
        f"  QuickBooks (the server's) {result['quickbooks_requests']} requests, {result['quickbooks_per_payment']}"
        f" per payment ({result['quickbooks_429']} answered 429, the bookkeeper's {result['bookkeeper_429']}):"
        f" {result['quickbooks_by_kind']}",
        flush=True,
    )
    for name, job in jobs.items():
        print(
            f"  jobs '{name}': {job['jobs']}, longest wait in the queue {job['longest_queue_wait_s']} s,"
            f" longest run {job['longest_run_s']} s",
            flush=True,
        )
    print(
        f"  worker CPU {result['worker_cpu_ms_per_status_update']} ms per status update; web"
        f" {result['web_cpu_ms_per_event']} ms per event",
        flush=True,
    )
    return result


def hubspot_records(sims: Simulators, deals: list[str]) -> list[dict[str, Any]]:
    """Read every deal from the HubSpot simulator: its status, when it turned paid, its notes."""
    local = threading.local()

    def read(deal: str) -> dict[str, Any]:
        if not hasattr(local, "sims"):
            local.sims = Simulators(sims.quickbooks_url, sims.hubspot_url)
        record = local.sims.hs("GET", f"objects/{PORTAL_ID}/deals/{deal}")
        history = record["history"].get("qbo_invoice_status", [])
        paid = [epoch_of(h["timestamp"]) for h in history if h["value"] == "paid"]
        return {
            "status": record["properties"].get("qbo_invoice_status"),
            "paid_at": min(paid) if paid else None,
            "history": [h["value"] for h in history],
            "notes": len(record["associations"].get("notes", [])),
        }

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(read, deals))


# Report ------------------------------------------------------------------------------------------


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    endpoint = results.get("endpoint")
    if endpoint:
        b, bare = endpoint["best"], endpoint["bare"]
        queued = b["accepted_to_queued_ms"]
        rows += [
            (
                f"accepted executions/s ({b['config']}, relay)",
                f"{b['accepted_per_s']:.0f}",
                f">= {TARGET_RATE:.0f}",
                b["accepted_per_s"] >= TARGET_RATE,
            ),
            (
                f"accepted executions/s, bare accept path ({bare['config']}, direct)",
                f"{bare['accepted_per_s']:.0f}",
                "",
                None,
            ),
            (
                "relay ÷ bare accept path (best of each)",
                f"{endpoint['ratio']:.2f}",
                f">= {TARGET_RELAY_RATIO}",
                endpoint["ratio"] >= TARGET_RELAY_RATIO,
            ),
            (
                "accepted to queued, relay: p99 / max",
                f"{queued['p99']} / {queued['max']} ms",
                f"<= {1000 * TARGET_QUEUED_WITHIN_S:.0f} ms",
                queued["max"] is not None and queued["max"] <= 1000 * TARGET_QUEUED_WITHIN_S,
            ),
            ("latency p50, bare accept path", f"{bare['latency_ms']['p50']:.1f} ms", "", None),
            ("latency p99, bare accept path", f"{bare['latency_ms']['p99']:.1f} ms", "", None),
            ("latency p50", f"{b['latency_ms']['p50']:.1f} ms", "", None),
            (
                "latency p99",
                f"{b['latency_ms']['p99']:.1f} ms",
                f"<= {TARGET_P99_MS:.0f} ms",
                b["latency_ms"]["p99"] <= TARGET_P99_MS,
            ),
            ("non-2xx responses", str(b["non_2xx"]), "0", b["non_2xx"] == 0),
            (
                "accepted executions missing (table, queue)",
                f"{max(0, b['answered_200'] - b['wrapped_duplicates'] - b['rows'])}, {b['rows'] - b['rows_in_queue']}",
                "0, 0",
                b["nothing_missing"],
            ),
            ("gunicorn master peak RSS", f"{b['memory']['master_hwm_mib']} MiB", "", None),
            ("largest gunicorn worker peak RSS", f"{b['memory']['largest_worker_hwm_mib']} MiB", "", None),
            ("gunicorn CPU per request", f"{b['cpu_ms_per_request'].get('gunicorn', 0):.2f} ms", "", None),
        ]
        mix = b.get("mix") or {}
        if mix:
            rows.append(
                (
                    "request mix recorded (" + " / ".join(a.removeprefix("create_") for a in mix) + ")",
                    " / ".join(f"{100 * m['share_of_rows']:.0f}%" for m in mix.values()),
                    "",
                    None,
                )
            )
    worker = results.get("worker")
    if worker:
        m = worker["worker_memory"]
        rows += [
            (
                "QuickBooks calls per completed invoice",
                f"{worker['quickbooks_per_invoice']:.2f}",
                f"<= {TARGET_QBO_PER_INVOICE}",
                worker["quickbooks_per_invoice"] <= TARGET_QBO_PER_INVOICE,
            ),
            (
                "HubSpot calls per execution",
                f"{worker['hubspot_per_execution']:.2f}",
                f"<= {TARGET_HS_PER_EXECUTION:.0f}",
                worker["hubspot_per_execution"] <= TARGET_HS_PER_EXECUTION,
            ),
            ("invoices completed per s (1 worker)", f"{worker['invoices_per_s']:.1f}", "", None),
            ("execution job time in its work horse (mean)", f"{worker['execution_job_ms']['mean']} ms", "", None),
            ("worker main process peak RSS (HWM)", f"{m['main_hwm_mib']} MiB", "", None),
            ("largest work horse peak RSS (HWM)", f"{m['horse_hwm_mib']} MiB", "", None),
        ]
    paid = (worker or {}).get("paid_invoices")
    if paid:
        created = paid["created"]
        rows += [
            (
                "QuickBooks calls per completed paid invoice",
                f"{paid['quickbooks_per_paid_invoice']:.2f}",
                f"expected {EXPECTED_QBO_PER_PAID_INVOICE}",
                None,
            ),
            ("HubSpot calls per paid-invoice execution", f"{paid['hubspot_per_execution']:.2f}", "", None),
            (
                "HubSpot 429 answers (invoices, paid invoices)",
                f"{worker['hubspot_429']}, {paid['hubspot_429']}",
                "",
                None,
            ),
            ("paid invoices completed per s (1 worker)", f"{paid['paid_invoices_per_s']:.1f}", "", None),
            (
                "paid invoices: QBO Invoices, Payments created",
                f"{created['invoices']}, {created['payments']}",
                f"{created['expected']}, {created['expected']}",
                created["exact"],
            ),
            ("paid-invoice job time in its work horse (mean)", f"{paid['execution_job_ms']['mean']} ms", "", None),
        ]
    if results.get("drain"):
        rows += bench_drain.summary_rows(results["drain"])
    notify = results.get("notifications")
    if notify:
        d, b, e = notify["direct"], notify["burst"], notify["end_to_end"]
        n = notify["payments"]
        rows += [
            (
                f"notifications accepted/s, endpoint alone ({d['events_per_delivery']} a delivery)",
                f"{d['events_per_s']:.0f}",
                "",
                None,
            ),
            (
                "endpoint alone: latency p50 / p99",
                f"{d['latency_ms']['p50']} / {d['latency_ms']['p99']} ms",
                "",
                None,
            ),
            (
                "endpoint alone: events accepted missing from the table",
                str(d["events_accepted"] - d["rows"]),
                "0",
                d["rows_match"],
            ),
            (
                f"notifications during the burst: events/s ({b['events_per_delivery']} a delivery)",
                f"{b['events_per_s']}",
                "",
                None,
            ),
            (
                "burst: webhook answer p50 / p99 (gunicorn)",
                f"{b['answer_ms']['p50']} / {b['answer_ms']['p99']} ms",
                "",
                None,
            ),
            (
                "burst: non-200 answers, events recorded",
                f"{sum(b['non_200'].values())}, {sum(b['event_rows'].values())}",
                f"0, {b['events_expected']}",
                not b["non_200"] and b["rows_match"],
            ),
            (
                f"first of {n} payments to every deal paid in HubSpot",
                f"{e['until_all_paid_in_hubspot_s']} s",
                "",
                None,
            ),
            (
                "payment to its deal paid in HubSpot: p50 / p95 / max",
                f"{e['payment_to_hubspot_s']['p50_s']} / {e['payment_to_hubspot_s']['p95_s']} /"
                f" {e['payment_to_hubspot_s']['max_s']} s",
                "",
                None,
            ),
            (
                "deals paid, with exactly one payment note",
                f"{e['records_paid']}, {e['records_with_one_note']}",
                f"{n}, {n}",
                e["records_paid"] == n and e["records_with_one_note"] == n,
            ),
            (
                "HubSpot calls per status update",
                f"{notify['hubspot_per_status_update']:.3f}",
                f"<= {TARGET_HS_PER_STATUS}",
                notify["hubspot_per_status_update"] <= TARGET_HS_PER_STATUS,
            ),
            ("QuickBooks calls (the server's reads) per payment", f"{notify['quickbooks_per_payment']:.3f}", "", None),
            (
                "answers 429 to the server: QuickBooks, HubSpot",
                f"{notify['quickbooks_429']}, {notify['hubspot_429']}",
                "0, 0",
                notify["quickbooks_429"] == 0 and notify["hubspot_429"] == 0,
            ),
            ("worker CPU per status update", f"{notify['worker_cpu_ms_per_status_update']} ms", "", None),
        ]
        push = notify["jobs"].get("document statuses of portal {id}") or {}
        notices = notify["jobs"].get("QuickBooks notifications of {id}") or {}
        rows.append(
            (
                "status push: longest wait in the queue; notice jobs' longest runs",
                f"{push.get('longest_queue_wait_s')} s; {notices.get('longest_runs_s')} s",
                "",
                None,
            )
        )
    return rows


def print_summary(results: dict[str, Any]) -> None:
    rows = summary_rows(results)
    width = max((len(r[0]) for r in rows), default=20)
    print("\n" + "=" * (width + 46))
    print(f"{'figure':<{width}}  {'measured':>12}  {'target':>12}  met")
    print("-" * (width + 46))
    for name, value, target, met in rows:
        verdict = "" if met is None else ("met" if met else "NOT MET")
        print(f"{name:<{width}}  {value:>12}  {target:>12}  {verdict}")
    print("-" * (width + 46))
    endpoint = results.get("endpoint")
    if endpoint:
        best = endpoint["best"]
        tried = ", ".join(f"{r['config']} {r['mode']} {r['accepted_per_s']:.0f}/s" for r in endpoint["runs"])
        print(f"best gunicorn configuration: {best['config']} ({' '.join(best['gunicorn_args'])}); tried: {tried}")
        ratios = ", ".join(f"{name} {c['ratio']:.2f}" for name, c in endpoint["by_config"].items())
        print(f"relay ÷ direct by configuration (mean of its runs): {ratios}")

        if best.get("mix"):
            print(f"endpoint request mix ({best['config']}): {mix_text(best['mix'])}")
    paid = (results.get("worker") or {}).get("paid_invoices")
    if paid:
        print(
            f"QuickBooks calls of the {paid['paid_invoices']} paid invoices by endpoint: {paid['quickbooks_by_kind']}"
        )
    for line in bench_drain.detail_lines(results.get("drain") or {}):
        print(line)
    notify = results.get("notifications")
    if notify:
        print(f"notifications: HubSpot calls {notify['hubspot_by_kind']}")
        print(f"notifications: QuickBooks calls of the server {notify['quickbooks_by_kind']}")
    m = results["machine"]
    print(
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}"
    )
    print(f"figures: {RESULTS.relative_to(ROOT)}   logs: {WORK_DIR.relative_to(ROOT)}/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer invoices in every phase")
    parser.add_argument("--skip-endpoint", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-drain", action="store_true", help="leave out the drain phase")
    parser.add_argument("--only", action="append", choices=PHASES, default=[], help="run only this phase (repeatable)")
    parser.add_argument("--workers", type=int, default=4, help="drain: workers of the burst and fairness runs")
    parser.add_argument("--burst", type=int, default=None, help="drain: invoices of the burst (1000; 200 --quick)")
    parser.add_argument(
        "--drain-parts", default=",".join(bench_drain.PARTS), help="drain: which runs (burst,fairness,scaling)"
    )
    parser.add_argument("--drain-timeout", type=float, default=None, help="drain: seconds a run may take")
    parser.add_argument(
        "--payments", type=int, default=None, help="notifications: payments of the burst (1000; 200 --quick)"
    )
    parser.add_argument(
        "--notify-workers", type=int, default=NOTIFY_WORKERS, help="notifications: `qbo-actions worker` processes"
    )
    parser.add_argument("--config", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    skipped = {
        "endpoint": args.skip_endpoint,
        "worker": args.skip_worker,
        "drain": args.skip_drain,
        "notifications": False,
    }
    phases = set(args.only) if args.only else {phase for phase in PHASES if not skipped[phase]}
    drain_options = bench_drain.DrainOptions.build(
        args.quick, args.workers, args.burst, args.drain_parts, args.drain_timeout
    )

    # SIGTERM (and SIGHUP) unwind like Ctrl-C, so the finally below stops every child.
    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    for old in WORK_DIR.glob("*.tsv"):
        old.unlink()
    pg = os.environ.get("QBO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5439/qbo_actions_test")
    redis_base = os.environ.get("QBO_TEST_REDIS_URL", "redis://127.0.0.1:6390/0")
    for url in (pg, redis_base):
        host = urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"refusing a non-loopback service: {url}")
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine_facts(),
    }
    procs = Processes()
    started = time.monotonic()
    status = 0
    try:
        try:
            redis.Redis.from_url(redis_base).ping()
            with psycopg.connect(Bench.libpq(pg), connect_timeout=5):
                pass
        except Exception as exc:
            raise SystemExit(f"Redis/PostgreSQL do not answer ({exc}); run `bash scripts/services.sh start`.") from exc
        sims = start_simulators(procs)
        bench = Bench(
            quick=args.quick,
            procs=procs,
            pg_url=with_db(pg, BENCH_DB),
            pg_admin=Bench.libpq(with_db(pg, "postgres")),
            redis_url=with_db(redis_base, str(REDIS_DB)),
            sims=sims,
            configs=args.config,
            connections=args.connections,
        )
        redis.Redis.from_url(bench.redis_url).flushdb()
        prepare_database(bench)
        print(
            f"database {BENCH_DB} migrated; Redis db {REDIS_DB}; queue {QUEUE}; simulators "
            f"{sims.quickbooks_url} {sims.hubspot_url}",
            flush=True,
        )
        if "endpoint" in phases:
            print("\n1. Execution endpoint under gunicorn (wrk, pre-signed unique requests, no worker)", flush=True)
            results["endpoint"] = endpoint_phase(bench)
        if "worker" in phases:
            print(
                "\n2. Remote calls per completed invoice and paid invoice (real worker, simulators in subprocesses)",
                flush=True,
            )
            results["worker"] = worker_phase(bench)
            w = results["worker"]
            print(
                f"  {w['invoices']} invoices in {w['elapsed_seconds']} s ({w['invoices_per_s']}/s); "
                f"QuickBooks {w['quickbooks_requests']} requests (+{w['quickbooks_oauth_requests']} OAuth): "
                f"{w['quickbooks_by_kind']}",
                flush=True,
            )
            print(
                f"  HubSpot {w['hubspot_requests']} requests ({w['hubspot_429']} answered 429): {w['hubspot_by_kind']}",
                flush=True,
            )
            print(f"  worker memory: {w['worker_memory']}", flush=True)
            p = w["paid_invoices"]
            print(
                f"  {p['paid_invoices']} paid invoices in {p['elapsed_seconds']} s ({p['paid_invoices_per_s']}/s); "
                f"QuickBooks {p['quickbooks_requests']} requests (+{p['quickbooks_oauth_requests']} OAuth), "
                f"{p['quickbooks_per_paid_invoice']} per paid invoice (expected {EXPECTED_QBO_PER_PAID_INVOICE}): "
                f"{p['quickbooks_by_kind']}",
                flush=True,
            )
            print(
                f"  HubSpot {p['hubspot_requests']} requests ({p['hubspot_429']} answered 429), "
                f"{p['hubspot_per_execution']} per execution ({p['hubspot_per_execution_without_429']} without the"
                f" 429s): {p['hubspot_by_kind']}",
                flush=True,
            )
            print(f"  created in QuickBooks: {p['created']}", flush=True)
        if "drain" in phases:
            print(
                "\n3. Drain: real workers, web and sweeper against simulators enforcing the documented limits",
                flush=True,
            )
            results["drain"] = {}
            bench_drain.drain_phase(bench, drain_options, results["drain"])
            failed = bench_drain.failed_runs(results["drain"])
            if failed:
                results["error"] = f"drain runs failed: {', '.join(failed)}"
                status = 1
        if "notifications" in phases:
            print(
                f"\n4. Document statuses: a burst of payments notified to the web, applied and pushed by"
                f" {args.notify_workers} workers",
                flush=True,
            )
            results["notifications"] = notifications_phase(bench, args.payments, args.notify_workers)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        status = 130
    except Exception as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        results["error"] = str(exc)
        status = 1
    finally:
        procs.stop_all()
        for old in WORK_DIR.glob("*.tsv"):
            old.unlink()
    results["total_seconds"] = round(time.monotonic() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if any(phase in results for phase in PHASES):
        print_summary(results)
    print(f"total {results['total_seconds']} s")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Fakes that record what was done to them, for the unit tests of the rules (tests/unit/books)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from services.clock import utcnow
from services.store.records import BatchItem, CachedProfile, PaymentClaim, Step, Tenant
from services.transport.errors import PermanentError
from simulators.quickbooks import QueryParser, run_query


class FakeTokens:
    """A TokenProvider that hands out one token and a fresh one on refresh, recording each refresh."""

    def __init__(self, token: str = "access-1", fresh: str = "access-2") -> None:
        self.token = token
        self.fresh = fresh
        self.refreshed: list[str | None] = []

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str | None) -> str:
        self.refreshed.append(rejected_token)
        self.token = self.fresh
        return self.token


class FakeLedger:
    """The books.ports.Ledger in memory: steps, mappings and claims, and every write in ``saved``."""

    def __init__(self) -> None:
        self.step_rows: dict[tuple[str, str], Step] = {}
        self.customers: dict[tuple[Tenant, str], str] = {}
        self.products: dict[tuple[Tenant, str], str] = {}
        self.claims: dict[tuple[Tenant, str, str], str] = {}
        self.document_outputs: dict[tuple[Tenant, str, str], dict[str, Any]] = {}
        self.states: dict[str, str] = {}
        self.saved: list[tuple[str, ...]] = []

    def steps(self, execution_id: str) -> dict[str, Step]:
        return {name: step for (eid, name), step in self.step_rows.items() if eid == execution_id}

    def save_step(self, execution_id: str, name: str, status: str, data: dict[str, Any]) -> None:
        self.step_rows[(execution_id, name)] = Step(execution_id, name, status, dict(data))
        self.saved.append(("step", name, status))

    def customer_mapping(self, tenant: Tenant, contact_id: str) -> str | None:
        return self.customers.get((tenant, contact_id))

    def save_customer_mapping(self, tenant: Tenant, contact_id: str, customer_id: str) -> None:
        self.customers[(tenant, contact_id)] = customer_id
        self.saved.append(("customer", contact_id, customer_id))

    def product_mappings(self, tenant: Tenant, product_ids: Sequence[str]) -> dict[str, str]:
        return {p: self.products[(tenant, p)] for p in product_ids if (tenant, p) in self.products}

    def save_product_mapping(self, tenant: Tenant, product_id: str, item_id: str) -> None:
        self.products[(tenant, product_id)] = item_id
        self.saved.append(("product", product_id, item_id))

    def forget_mappings_to(self, realm_id: str, *, customer_id: str | None, item_ids: Sequence[str]) -> None:
        def stale(tenant: Tenant, target: str, targets: Sequence[str | None]) -> bool:
            return tenant.realm_id == realm_id and target in targets

        self.customers = {k: v for k, v in self.customers.items() if not stale(k[0], v, [customer_id])}
        self.products = {k: v for k, v in self.products.items() if not stale(k[0], v, item_ids)}
        self.saved.append(("forget", customer_id or "", ",".join(item_ids)))

    def claim_payment_document(self, tenant: Tenant, payment_id: str, kind: str, execution_id: str) -> PaymentClaim:
        holder = self.claims.setdefault((tenant, payment_id, kind), execution_id)
        state = self.states.get(holder, "running")
        return PaymentClaim(tenant.portal_id, tenant.realm_id, payment_id, kind, holder, state, None, None)

    def take_over_payment_document(
        self, tenant: Tenant, payment_id: str, kind: str, failed_execution_id: str, execution_id: str
    ) -> bool:
        if self.claims.get((tenant, payment_id, kind)) != failed_execution_id:
            return False
        self.claims[(tenant, payment_id, kind)] = execution_id
        return True

    def save_payment_document_outputs(
        self, tenant: Tenant, payment_id: str, kind: str, outputs: dict[str, Any]
    ) -> None:
        self.document_outputs[(tenant, payment_id, kind)] = outputs


class FakeBatches:
    """The books.ports.BatchWrites in memory: parked writes by (execution, step), each park in ``parked``."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger
        self.items: dict[tuple[str, str], BatchItem] = {}
        self.parked: list[tuple[str, str, dict[str, Any]]] = []

    def park(
        self, tenant: Tenant, execution_id: str, step: str, entity: str, body: dict[str, Any], started: dict[str, Any]
    ) -> None:
        self.ledger.save_step(execution_id, step, "started", started)
        self.items.setdefault(
            (execution_id, step),
            BatchItem(execution_id, step, tenant.portal_id, tenant.realm_id, entity, body, None, None, utcnow()),
        )
        self.parked.append((step, entity, body))

    def item(self, execution_id: str, step: str) -> BatchItem | None:
        return self.items.get((execution_id, step))


class FakeLocks:
    """A lock factory that records the name of every lock taken."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.taken.append(name)
        yield


class FakeProfiles:
    """The profile cache in memory."""

    def __init__(self) -> None:
        self.profiles: dict[str, CachedProfile] = {}

    def cached_profile(self, realm_id: str) -> CachedProfile | None:
        return self.profiles.get(realm_id)

    def save_profile(self, realm_id: str, profile: dict[str, Any], fetched_at: datetime | None = None) -> None:
        self.profiles[realm_id] = CachedProfile(realm_id, profile, fetched_at or utcnow())


class FakeQuickBooks:
    """A QuickBooks company in memory: answers queries with the simulator's query engine, records every
    query and create, replays a repeated requestid, and can refuse a create with a fault code."""

    def __init__(self, realm_id: str = "9130355", **entities: list[dict[str, Any]]) -> None:
        self.realm_id = realm_id
        self.entities: dict[str, list[dict[str, Any]]] = {name: list(rows) for name, rows in entities.items()}
        self.queries: list[str] = []
        self.created: list[tuple[str, dict[str, Any], str]] = []
        self.refuse: dict[str, str] = {}
        self._replies: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1000)

    def query(self, statement: str) -> list[dict[str, Any]]:
        self.queries.append(statement)
        parsed = QueryParser(statement).parse()
        answer = run_query(parsed, self.entities.get(parsed.entity, []))
        return list(answer.get(parsed.entity, []))

    def create(self, entity: str, body: dict[str, Any], *, requestid: str) -> dict[str, Any]:
        if requestid in self._replies:
            return self._replies[requestid]
        if entity in self.refuse:
            code = self.refuse[entity]
            raise PermanentError(f"QuickBooks: refused ({code})", service="quickbooks", http_status=400, code=code)
        self.created.append((entity, body, requestid))
        row = {"Id": str(next(self._ids)), **body}
        self.entities.setdefault(entity, []).append(row)
        self._replies[requestid] = row
        return row


class RecordingGate:
    """A CallGate that lets every request go and records what it was told: slots by kind, open ones, and 429s."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.open = 0
        self.throttles: list[float | None] = []

    @contextmanager
    def slot(self, kind: str = "call") -> Iterator[None]:
        self.kinds.append(kind)
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1

    def throttled(self, retry_after: float | None) -> None:
        self.throttles.append(retry_after)

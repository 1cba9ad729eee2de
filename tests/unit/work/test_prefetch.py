"""Snapshots of records read in batches for a portal's waiting executions, over a recording fake HubSpot."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import fakeredis
import pytest
import redis

from services.hubspot.client import CrmObject
from services.hubspot.objects import LINE_ITEM_PROPERTIES
from services.work.prefetch import SnapshotReader, Snapshots, type_spellings

DEAL_PROPERTIES = ["dealname", "amount"]


class FakeHubSpot:
    """Deals with contacts and line items, answering the client's reads and recording each call."""

    portal_id = 7

    def __init__(self, deals: int) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.deals = {
            str(n): {"dealname": f"Deal {n}", "amount": str(n), "hs_priority": "high"} for n in range(1, deals + 1)
        }

    def read_object(
        self, object_type: str, object_id: str, properties: Sequence[str], associations: Sequence[str] = ()
    ) -> CrmObject:
        self.calls.append(("read_object", object_id))
        return CrmObject(object_id, {p: self.deals[object_id].get(p) for p in properties}, self._linked(object_id))

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[CrmObject]:
        self.calls.append(("batch_read", object_type, len(ids)))
        if object_type == "deals":
            return [CrmObject(i, {p: self.deals[i].get(p) for p in properties}) for i in ids if i in self.deals]
        return [CrmObject(i, {p: f"{object_type}-{i}-{p}" for p in properties}) for i in ids]

    def batch_associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        self.calls.append(("batch_associations", to_type, len(ids)))
        return {i: self._linked(i)[to_type] for i in ids}

    def associations(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        self.calls.append(("associations", object_id))
        return self._linked(object_id)[to_type]

    @staticmethod
    def _linked(deal: str) -> dict[str, list[str]]:
        return {"contacts": [f"c{deal}", f"c{deal}b"], "line_items": [f"l{deal}a", f"l{deal}b"]}


@pytest.fixture
def connection() -> redis.Redis:
    return fakeredis.FakeRedis()


@contextmanager
def no_lock(name: str, timeout: int) -> Iterator[None]:
    yield


def reader(hubspot: FakeHubSpot, connection: redis.Redis, waiting: list[str], **options: Any) -> SnapshotReader:
    return SnapshotReader(
        hubspot,  # type: ignore[arg-type]
        Snapshots(connection, hubspot.portal_id, seconds=60),
        waiting_objects=lambda types, limit: waiting[:limit],
        lock=options.pop("lock", no_lock),
        contact_properties=["email", "firstname"],
        **options,
    )


def test_the_first_run_reads_its_neighbours_in_batches_and_the_next_runs_read_nothing(connection: redis.Redis) -> None:
    hubspot = FakeHubSpot(150)
    waiting = [str(n) for n in range(1, 151)]

    first = reader(hubspot, connection, waiting).read_object("deals", "1", DEAL_PROPERTIES, ("contacts", "line_items"))
    batch_calls = list(hubspot.calls)
    later = reader(hubspot, connection, waiting[1:])
    second = later.read_object("deals", "2", DEAL_PROPERTIES, ("contacts", "line_items"))
    items = later.batch_read("line_items", second.associations["line_items"], LINE_ITEM_PROPERTIES)
    contact = later.batch_read("contacts", [second.associations["contacts"][0]], ["email"])
    ordered = later.associations("deals", "2", "contacts")

    assert first.properties == {"dealname": "Deal 1", "amount": "1"}
    assert first.associations == {"contacts": ["c1", "c1b"], "line_items": ["l1a", "l1b"]}
    assert batch_calls == [
        ("batch_read", "deals", 100),
        ("batch_associations", "contacts", 100),
        ("batch_associations", "line_items", 100),
        ("batch_read", "line_items", 200),
        ("batch_read", "contacts", 100),
    ]
    assert hubspot.calls == batch_calls, "the second run was served from snapshots"
    assert [i.id for i in items] == ["l2a", "l2b"] and contact[0].properties == {"email": "contacts-c2-email"}
    assert ordered == ["c2", "c2b"]


def test_a_snapshot_without_a_property_asked_for_is_not_used(connection: redis.Redis) -> None:
    hubspot = FakeHubSpot(3)
    reader(hubspot, connection, ["1", "2", "3"]).read_object("deals", "1", DEAL_PROPERTIES, ("contacts",))
    hubspot.calls.clear()

    found = reader(hubspot, connection, []).read_object("deals", "2", [*DEAL_PROPERTIES, "hs_priority"], ("contacts",))

    assert found.properties["hs_priority"] == "high"
    assert hubspot.calls[0] == ("batch_read", "deals", 1), "read again, with the property"


def test_contacts_are_not_read_for_a_run_whose_customer_is_chosen(connection: redis.Redis) -> None:
    hubspot = FakeHubSpot(3)

    reader(hubspot, connection, ["1", "2"], read_contacts=False).read_object(
        "deals", "1", DEAL_PROPERTIES, ("contacts",)
    )

    assert not any(call[:2] == ("batch_read", "contacts") for call in hubspot.calls)


def test_a_record_that_cannot_be_read_in_the_batch_is_read_alone(connection: redis.Redis) -> None:
    hubspot = FakeHubSpot(2)
    hubspot.deals["9"] = {"dealname": "Late", "amount": "9"}
    original = hubspot.batch_read

    def batch_without_nine(object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[CrmObject]:
        return [o for o in original(object_type, ids, properties) if o.id != "9"]

    hubspot.batch_read = batch_without_nine  # type: ignore[method-assign]

    found = reader(hubspot, connection, ["1", "2"]).read_object("deals", "9", DEAL_PROPERTIES, ("contacts",))

    assert found.properties["dealname"] == "Late" and ("read_object", "9") in hubspot.calls


def test_when_another_run_holds_the_portal_too_long_the_run_reads_alone(connection: redis.Redis) -> None:
    hubspot = FakeHubSpot(3)

    @contextmanager
    def busy(name: str, timeout: int) -> Iterator[None]:
        raise redis.exceptions.LockError("Unable to acquire lock")
        yield

    found = reader(hubspot, connection, ["1", "2", "3"], lock=busy).read_object(
        "deals", "2", DEAL_PROPERTIES, ("contacts",)
    )

    assert found.id == "2" and hubspot.calls == [("read_object", "2")]


def test_runs_waiting_for_the_same_portal_read_it_once(connection: redis.Redis) -> None:
    hubspot = FakeHubSpot(20)
    waiting = [str(n) for n in range(1, 21)]
    guard = threading.Lock()

    @contextmanager
    def shared(name: str, timeout: int) -> Iterator[None]:
        with guard:
            yield

    def run(deal: str) -> None:
        reader(hubspot, connection, waiting, lock=shared).read_object(
            "deals", deal, DEAL_PROPERTIES, ("contacts", "line_items")
        )

    threads = [threading.Thread(target=run, args=(str(n),)) for n in range(1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [c for c in hubspot.calls if c[:2] == ("batch_read", "deals")] == [("batch_read", "deals", 20)]
    assert not any(c[0] == "read_object" for c in hubspot.calls)


def test_every_spelling_of_a_type_is_asked_for() -> None:
    assert type_spellings("deals") == ["0-3", "DEAL", "deals"]
    assert "COMMERCE_PAYMENT" in type_spellings("commerce_payments")

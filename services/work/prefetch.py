"""Reading HubSpot for many executions at once: the records of a portal's waiting executions, read in batches.

When a run needs its record and finds no snapshot of it, it reads its own record together with those of the
next executions waiting for the same portal and object type (up to 100): the records in one batch read, their
contacts and line items through two association batch reads (v4, in association order), then the line items and
the first contacts in batches of 100. Everything is kept in Redis as snapshots for a short while, so the runs
that follow find their record there and make no HubSpot call at all. A burst of 1,000 executions then costs about
six HubSpot calls per hundred instead of two or three per execution.

A snapshot is used only when it holds every property the run asks for; otherwise the run reads HubSpot itself.
Snapshots live RECORD_SNAPSHOT_SECONDS (0 turns this off): a record enrolled in a workflow is read within that
long of its neighbours, much as HubSpot sends the enrolled record's properties with the execution request itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis

from services.hubspot.client import BATCH_LIMIT, CrmObject, HubSpotClient
from services.hubspot.objects import LINE_ITEM_PROPERTIES, OBJECT_TYPE_NAMES

log = logging.getLogger(__name__)

SNAPSHOT = "qbo-actions:snapshot:"
# The associations every action reads with its record.
ASSOCIATIONS = ("contacts", "line_items")
# How long a run waits for another run that is reading the same portal's records right now.
PREFETCH_WAIT_SECONDS = 20

WaitingObjects = Callable[[Sequence[str], int], list[str]]
LockFactory = Callable[[str, int], AbstractContextManager[object]]


def type_spellings(type_name: str) -> list[str]:
    """Return every way an execution may name an object type (DEAL, 0-3, deals ...)."""
    return sorted({type_name, *(raw for raw, name in OBJECT_TYPE_NAMES.items() if name == type_name)})


class Snapshots:
    """Records of one portal read from HubSpot a moment ago, kept in Redis as JSON."""

    def __init__(self, connection: redis.Redis, portal_id: int, *, seconds: int) -> None:
        self.connection = connection
        self.prefix = f"{SNAPSHOT}{portal_id}:"
        self.seconds = seconds

    def get(self, object_type: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the snapshots there are of these records, by id."""
        if not ids:
            return {}
        values = self.connection.mget([f"{self.prefix}{object_type}:{i}" for i in ids])
        return {str(i): json.loads(v) for i, v in zip(ids, values, strict=True) if v is not None}

    def put(self, object_type: str, snapshots: dict[str, dict[str, Any]]) -> None:
        """Keep snapshots of records for a while."""
        with self.connection.pipeline(transaction=False) as pipe:
            for object_id, snapshot in snapshots.items():
                pipe.set(f"{self.prefix}{object_type}:{object_id}", json.dumps(snapshot), ex=self.seconds)
            pipe.execute()


def _snapshot(
    obj: CrmObject, properties: Sequence[str], associations: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"asked": sorted(properties), "properties": obj.properties, "associations": associations}


def _usable(snapshot: dict[str, Any] | None, properties: Sequence[str], associations: Sequence[str] = ()) -> bool:
    """Tell whether a snapshot answers a read: every property asked for, every association."""
    if snapshot is None or not set(properties) <= set(snapshot["asked"]):
        return False
    linked = snapshot.get("associations")
    return not associations or (linked is not None and all(name in linked for name in associations))


def _object(object_id: str, snapshot: dict[str, Any], properties: Sequence[str]) -> CrmObject:
    values = snapshot["properties"]
    return CrmObject(
        object_id, {name: values.get(name) for name in properties}, dict(snapshot.get("associations") or {})
    )


class SnapshotReader:
    """The HubSpot reads of one run, served from snapshots, read in batches with the waiting neighbours otherwise."""

    def __init__(
        self,
        hubspot: HubSpotClient,
        snapshots: Snapshots,
        *,
        waiting_objects: WaitingObjects,
        lock: LockFactory,
        contact_properties: Sequence[str],
        read_contacts: bool = True,
    ) -> None:
        self.hubspot = hubspot
        self.snapshots = snapshots
        self.waiting_objects = waiting_objects
        self.lock = lock
        self.contact_properties = list(contact_properties)
        # A run whose customer is chosen in the action reads no contact, and reads none for its neighbours.
        self.read_contacts = read_contacts

    def read_object(
        self, object_type: str, object_id: str, properties: Sequence[str], associations: Sequence[str] = ()
    ) -> CrmObject:
        """Return the record from its snapshot; without one, read it with its waiting neighbours first."""
        if set(associations) <= set(ASSOCIATIONS):
            found = self.snapshots.get(object_type, [object_id]).get(object_id)
            if not _usable(found, properties, associations):
                found = self._prefetch(object_type, object_id, properties)
            if found is not None and _usable(found, properties, associations):
                return _object(object_id, found, properties)
        return self.hubspot.read_object(object_type, object_id, properties, associations)

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[CrmObject]:
        """Return the records, from their snapshots where there are any, the rest from HubSpot."""
        known = {i: s for i, s in self.snapshots.get(object_type, list(ids)).items() if _usable(s, properties)}
        missing = [i for i in ids if str(i) not in known]
        read = {o.id: o for o in self.hubspot.batch_read(object_type, missing, properties)} if missing else {}
        found = {**{i: _object(i, s, properties) for i, s in known.items()}, **read}
        return [found[str(i)] for i in ids if str(i) in found]

    def associations(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        """Return the ids associated with a record in association order (the snapshot came from v4, ordered)."""
        found = self.snapshots.get(from_type, [object_id]).get(object_id)
        linked = (found or {}).get("associations") or {}
        if to_type in linked:
            return list(linked[to_type])
        return self.hubspot.associations(from_type, object_id, to_type)

    # Reading the neighbours ------------------------------------------------------------------------

    def _prefetch(self, object_type: str, object_id: str, properties: Sequence[str]) -> dict[str, Any] | None:
        """Read this record and its waiting neighbours' in batches; return this record's snapshot (None: not read)."""
        try:
            with self.lock(f"prefetch:{self.hubspot.portal_id}:{object_type}", PREFETCH_WAIT_SECONDS):
                # Another run may have read it while this one waited for the lock.
                found = self.snapshots.get(object_type, [object_id]).get(object_id)
                if _usable(found, properties, ASSOCIATIONS):
                    return found
                neighbours = self.waiting_objects(type_spellings(object_type), BATCH_LIMIT)
                wanted = [object_id, *[i for i in neighbours if i != object_id]][:BATCH_LIMIT]
                known = self.snapshots.get(object_type, wanted)
                ids = [i for i in wanted if i == object_id or not _usable(known.get(i), properties, ASSOCIATIONS)]
                self._read_in_batches(object_type, ids, properties)
        except redis.exceptions.LockError as problem:
            # Someone else's reading took too long: read alone rather than wait longer.
            log.info("prefetch of %s %s skipped: %s", object_type, object_id, problem)
            return None
        return self.snapshots.get(object_type, [object_id]).get(object_id)

    def _read_in_batches(self, object_type: str, ids: list[str], properties: Sequence[str]) -> None:
        hubspot = self.hubspot
        records = hubspot.batch_read(object_type, ids, properties)
        found = [r.id for r in records]
        linked = {name: hubspot.batch_associations(object_type, name, found) for name in ASSOCIATIONS}
        self.snapshots.put(
            object_type,
            {
                r.id: _snapshot(r, properties, {name: linked[name].get(r.id, []) for name in ASSOCIATIONS})
                for r in records
            },
        )
        line_item_ids = [i for r in found for i in linked["line_items"].get(r, [])]
        if line_item_ids:
            items = hubspot.batch_read("line_items", line_item_ids, LINE_ITEM_PROPERTIES)
            self.snapshots.put("line_items", {i.id: _snapshot(i, LINE_ITEM_PROPERTIES) for i in items})
        # The customer is the first associated contact.
        contact_ids = list(dict.fromkeys(linked["contacts"][r][0] for r in found if linked["contacts"].get(r)))
        if contact_ids and self.read_contacts:
            contacts = hubspot.batch_read("contacts", contact_ids, self.contact_properties)
            self.snapshots.put("contacts", {c.id: _snapshot(c, self.contact_properties) for c in contacts})
        log.debug("read %s %s records in batches for portal %s", len(found), object_type, hubspot.portal_id)

"""Reading the enrolled HubSpot record with its contact and line items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.books.eligibility import contact_sync_mode
from services.books.failures import ActionFailure
from services.books.ports import HubSpotReader
from services.hubspot.client import CrmObject
from services.hubspot.objects import CONTACT_PROPERTIES, LINE_ITEM_PROPERTIES, OBJECT_FIELDS, object_type_name
from services.transport.errors import NotFoundError


@dataclass(frozen=True)
class EnrolledRecord:
    """The enrolled record with the ids and line items the actions need."""

    object_type: str
    record: CrmObject
    contact_id: str | None
    line_items: list[CrmObject]

    def field(self, name: str) -> Any:
        """Return the record's title, amount or currency, whatever its type calls it."""
        prop = OBJECT_FIELDS.get(self.object_type, {}).get(name)
        return self.record.properties.get(prop) if prop else None


def contact_properties(settings: dict[str, Any]) -> list[str]:
    """Return the contact properties to read: ours and the ones the sync filters test."""
    _, groups = contact_sync_mode(settings)
    wanted = list(CONTACT_PROPERTIES)
    for group in groups:
        for item in group.get("filters", []):
            if item.get("propertyName") not in wanted:
                wanted.append(item["propertyName"])
    return wanted


def load_record(
    hubspot: HubSpotReader,
    object_type: str,
    object_id: str,
    *,
    record_properties: Sequence[str],
    with_line_items: bool = True,
) -> EnrolledRecord:
    """Read the record with its associations in one call, then its line items in batches."""
    type_name = object_type_name(object_type)
    try:
        record = hubspot.read_object(type_name, object_id, record_properties, associations=("contacts", "line_items"))
    except NotFoundError as exc:
        raise ActionFailure(
            "RECORD_NOT_FOUND",
            f"HubSpot {type_name} {object_id} could not be read; it may have been deleted.",
        ) from exc
    line_item_ids = record.associations.get("line_items", [])
    line_items = []
    if with_line_items and line_item_ids:
        line_items = hubspot.batch_read("line_items", line_item_ids, LINE_ITEM_PROPERTIES)
    contact_ids = record.associations.get("contacts", [])
    if len(contact_ids) > 1:
        # The first associated contact is the customer, as in HubSpot's own integration. Only the v4
        # associations API promises association order, so ask it when there is a choice to make.
        contact_ids = hubspot.associations(type_name, object_id, "contacts") or contact_ids
    return EnrolledRecord(type_name, record, contact_ids[0] if contact_ids else None, line_items)


def load_contact(hubspot: HubSpotReader, contact_id: str, settings: dict[str, Any]) -> CrmObject | None:
    """Read a contact with the properties customer matching and the sync filters need."""
    found = hubspot.batch_read("contacts", [contact_id], contact_properties(settings))
    return found[0] if found else None

"""Finding or creating the QuickBooks customer of a HubSpot contact."""

from __future__ import annotations

from typing import Any

from services.books.eligibility import check_contact_eligible, contact_sync_mode
from services.books.failures import ActionFailure
from services.books.records import load_contact
from services.books.run import Run
from services.books.text import clean_name, text
from services.hubspot.client import CrmObject
from services.quickbooks import faults
from services.quickbooks.query import equals, select
from services.transport.errors import PermanentError

DISPLAY_NAME_MAX = 500
NAME_PART_MAX = 100


def _email(contact: CrmObject) -> str:
    return text(contact.properties.get("email")).lower()


def customer_for(run: Run, contact_id: str | None) -> str:
    """Return the QuickBooks customer id for the action: the chosen one, or the first contact's."""
    chosen = text(run.inputs.get("customer"))
    if chosen:
        return chosen
    if contact_id is None:
        raise ActionFailure(
            "NO_CONTACT",
            "The record has no associated contact. Associate a contact with it, or choose a QuickBooks "
            "customer in the action.",
        )
    mode, _ = contact_sync_mode(run.settings)
    mapped = run.ledger.customer_mapping(run.tenant, contact_id)
    # In legacy mode a known contact needs no further look-up; filters must be checked every time.
    if mapped and mode == "legacy":
        return mapped
    contact = load_contact(run.hubspot, contact_id, run.settings)
    if contact is None:
        raise ActionFailure("NO_CONTACT", f"Contact {contact_id} could not be read from HubSpot.")
    check_contact_eligible(run.settings, contact.id, contact.properties)
    if mapped:
        return mapped
    with run.locks(f"customer:{run.tenant}:{_email(contact) or contact.id}"):
        customer_id = _find_customer(run, contact) or _create_customer(run, contact)
    run.ledger.save_customer_mapping(run.tenant, contact.id, customer_id)
    return customer_id


def _find_customer(run: Run, contact: CrmObject) -> str | None:
    """Find an existing customer: by email first, then (legacy) by first and last name."""
    first, last, email = (
        text(contact.properties.get("firstname")),
        text(contact.properties.get("lastname")),
        _email(contact),
    )
    mode, _ = contact_sync_mode(run.settings)
    if email:
        candidates = run.qbo.query(select("Customer", equals("PrimaryEmailAddr", email)))
        if candidates:
            # Prefer the one whose names also match, as the legacy integration does.
            for customer in candidates:
                if _names_match(customer, first, last):
                    return str(customer["Id"])
            return str(candidates[0]["Id"])
    if mode == "legacy" and (first or last):
        clauses = [equals("GivenName", first) if first else "", equals("FamilyName", last) if last else ""]
        candidates = run.qbo.query(select("Customer", " AND ".join(c for c in clauses if c)))
        for customer in candidates:
            existing_email = text((customer.get("PrimaryEmailAddr") or {}).get("Address")).lower()
            if existing_email == email:
                return str(customer["Id"])
    return None


def _names_match(customer: dict[str, Any], first: str, last: str) -> bool:
    return (
        text(customer.get("GivenName")).casefold() == first.casefold()
        and text(customer.get("FamilyName")).casefold() == last.casefold()
    )


def _display_names(contact: CrmObject) -> list[str]:
    """Return display names to try in turn, so that a name collision (6240) is resolved, not failed."""
    props = contact.properties
    person = " ".join(p for p in (text(props.get("firstname")), text(props.get("lastname"))) if p)
    base = person or text(props.get("company")) or _email(contact) or f"HubSpot contact {contact.id}"
    names = [base]
    if _email(contact) and _email(contact) != base:
        names.append(f"{base} ({_email(contact)})")
    names.append(f"{base} (HubSpot {contact.id})")
    return [clean_name(name, DISPLAY_NAME_MAX) for name in names]


def _customer_body(contact: CrmObject, display_name: str) -> dict[str, Any]:
    props = contact.properties
    body: dict[str, Any] = {"DisplayName": display_name}
    for qbo_field, prop in (
        ("GivenName", "firstname"),
        ("FamilyName", "lastname"),
        ("CompanyName", "company"),
    ):
        if text(props.get(prop)):
            body[qbo_field] = clean_name(text(props.get(prop)), NAME_PART_MAX)
    if _email(contact):
        body["PrimaryEmailAddr"] = {"Address": _email(contact)}
    if text(props.get("phone")):
        body["PrimaryPhone"] = {"FreeFormNumber": text(props.get("phone"))[:30]}
    address = {
        "Line1": text(props.get("address")),
        "City": text(props.get("city")),
        "CountrySubDivisionCode": text(props.get("state")),
        "PostalCode": text(props.get("zip")),
        "Country": text(props.get("country")),
    }
    if any(address.values()):
        body["BillAddr"] = {key: value for key, value in address.items() if value}
    return body


def _create_customer(run: Run, contact: CrmObject) -> str:
    """Create the customer, trying the next display name when QuickBooks says the name is taken."""
    names = _display_names(contact)
    for attempt, name in enumerate(names):
        step = f"customer:{attempt}"
        previous = run.steps.get(step)
        if previous is not None and previous.data.get("collision"):
            continue

        def create(requestid: str, name: str = name) -> dict[str, Any]:
            customer = run.qbo.create("Customer", _customer_body(contact, name), requestid=requestid)
            return {"id": str(customer["Id"]), "display_name": customer.get("DisplayName")}

        def find_existing(_started: dict[str, Any], name: str = name) -> dict[str, Any] | None:
            found = run.qbo.query(select("Customer", equals("DisplayName", name)))
            matching = [
                c for c in found if text((c.get("PrimaryEmailAddr") or {}).get("Address")).lower() == _email(contact)
            ]
            return {"id": str(matching[0]["Id"]), "display_name": name} if matching else None

        try:
            return str(run.write_once(step, create, find_existing=find_existing)["id"])
        except PermanentError as exc:
            if exc.code != faults.DUPLICATE_NAME or attempt == len(names) - 1:
                raise
            run.record(step, "done", {"collision": name})
    raise AssertionError("every display name was skipped")  # pragma: no cover

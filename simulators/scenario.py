"""A seeded world for the demo, the tests and the benchmark: one QuickBooks company, one HubSpot portal.

Everything goes through the simulators' /_sim/ admin endpoints, so it works whether a simulator runs
in a thread or in another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

PORTAL_ID = 102670506
REALM_ID = "9130355"
QBO_ACCESS_TOKEN = "qbo-access-demo"
QBO_REFRESH_TOKEN = "qbo-refresh-demo"
HUBSPOT_ACCESS_TOKEN = "hs-access-demo"
HUBSPOT_REFRESH_TOKEN = "hs-refresh-demo"


@dataclass
class Simulators:
    """Where the two simulators listen, and a session to drive them."""

    quickbooks_url: str
    hubspot_url: str
    http: requests.Session = field(default_factory=requests.Session)

    def qbo(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call a QuickBooks simulator admin endpoint."""
        return self._call(self.quickbooks_url, method, path, **kwargs)

    def hs(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call a HubSpot simulator admin endpoint."""
        return self._call(self.hubspot_url, method, path, **kwargs)

    def _call(self, base: str, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{base}/_sim/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        """Forget everything in both simulators."""
        self.qbo("POST", "reset")
        self.hs("POST", "reset")

    # QuickBooks ---------------------------------------------------------------------------------

    def add_company(self, realm_id: str = REALM_ID, **options: Any) -> None:
        """Create a company with its default accounts, terms and tax codes, and tokens for it."""
        self.qbo("POST", "companies", json={"realm_id": realm_id, **options})
        self.qbo(
            "POST",
            "tokens",
            json={
                "realm_id": realm_id,
                "access_token": f"{QBO_ACCESS_TOKEN}-{realm_id}",
                "refresh_token": f"{QBO_REFRESH_TOKEN}-{realm_id}",
                "expires_in": 3600,
            },
        )

    def entities(self, entity: str, realm_id: str = REALM_ID) -> list[dict[str, Any]]:
        """Return every entity of a kind in a company."""
        return self.qbo("GET", f"entities/{realm_id}/{entity}")  # type: ignore[no-any-return]

    def add_entity(self, entity: str, body: dict[str, Any], realm_id: str = REALM_ID) -> dict[str, Any]:
        """Put an entity straight into a company."""
        return self.qbo("POST", f"entities/{realm_id}/{entity}", json=body)  # type: ignore[no-any-return]

    def account_id(self, name: str, realm_id: str = REALM_ID) -> str:
        """Return the id of an account by name."""
        return next(str(a["Id"]) for a in self.entities("Account", realm_id) if a["Name"] == name)

    def qbo_requests(self) -> list[dict[str, Any]]:
        """Return the API requests the QuickBooks simulator received."""
        return self.qbo("GET", "requests")  # type: ignore[no-any-return]

    def qbo_fault(self, **fault: Any) -> None:
        """Make the QuickBooks simulator answer matching requests with a fault."""
        self.qbo("POST", "faults", json=fault)

    def quickbooks_config(self, **values: Any) -> None:
        """Change QuickBooks simulator settings (throttles, refresh grace, ``auto_approve_realm``)."""
        self.qbo("POST", "config", json=values)

    def quickbooks_webhooks(
        self, url: str | None, verifier_token: str, *, auto: bool = True, delay_ms: int = 50
    ) -> None:
        """Subscribe ``url`` to QuickBooks change notifications (``None`` turns them off)."""
        settings = {"url": url, "verifier_token": verifier_token, "auto": auto, "delay_ms": delay_ms}
        self.qbo("POST", "webhooks", json=settings)

    def deliver_webhooks(self, **options: Any) -> dict[str, Any]:
        """Deliver the queued notifications now (``order``, ``drop``, ``split``); return the outcomes."""
        return self.qbo("POST", "webhooks/deliver", json=options)  # type: ignore[no-any-return]

    def drop_webhooks(self, count: int) -> None:
        """Make QuickBooks lose the next ``count`` change notifications."""
        self.qbo("POST", "webhooks/drop", json={"count": count})

    def queued_webhooks(self) -> list[dict[str, Any]]:
        """Return the notifications QuickBooks has not delivered yet."""
        return self.qbo("GET", "webhooks/queued")  # type: ignore[no-any-return]

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Return every notification POST QuickBooks attempted, with its answer."""
        return self.qbo("GET", "webhooks/deliveries")  # type: ignore[no-any-return]

    def qbo_api(
        self,
        method: str,
        path: str,
        realm_id: str = REALM_ID,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call the QuickBooks API as a QuickBooks user's app would (changes made so notify webhooks)."""
        response = self.http.request(
            method,
            f"{self.quickbooks_url}/v3/company/{realm_id}/{path.lstrip('/')}",
            headers={"Authorization": f"Bearer {QBO_ACCESS_TOKEN}-{realm_id}", "Accept": "application/json"},
            params={"minorversion": "75", **(params or {})},
            json=json,
            timeout=10,
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    # HubSpot ------------------------------------------------------------------------------------

    def add_portal(self, portal_id: int = PORTAL_ID) -> None:
        """Create a portal with tokens."""
        self.hs(
            "POST",
            "portals",
            json={
                "portal_id": portal_id,
                "access_token": f"{HUBSPOT_ACCESS_TOKEN}-{portal_id}",
                "refresh_token": f"{HUBSPOT_REFRESH_TOKEN}-{portal_id}",
                "expires_in": 1800,
            },
        )

    def add_object(
        self,
        object_type: str,
        properties: dict[str, Any],
        associations: dict[str, list[str]] | None = None,
        portal_id: int = PORTAL_ID,
    ) -> str:
        """Create a CRM record and return its id."""
        created = self.hs(
            "POST",
            "objects",
            json={
                "portal_id": portal_id,
                "type": object_type,
                "properties": properties,
                "associations": associations or {},
            },
        )
        return str(created["id"])

    def callbacks(self, callback_id: str | None = None) -> list[dict[str, Any]]:
        """Return the callback completions HubSpot received."""
        params = {"callbackId": callback_id} if callback_id else None
        return self.hs("GET", "callbacks", params=params)  # type: ignore[no-any-return]

    def hs_requests(self) -> list[dict[str, Any]]:
        """Return the API requests the HubSpot simulator received."""
        return self.hs("GET", "requests")  # type: ignore[no-any-return]

    def hs_fault(self, **fault: Any) -> None:
        """Make the HubSpot simulator answer matching requests with a fault."""
        self.hs("POST", "faults", json=fault)

    def hubspot_settings(self, **values: Any) -> dict[str, Any]:
        """Change HubSpot simulator settings (``client_id``, ``auto_approve_portal``, ...); return them all."""
        if not values:
            return self.hs("GET", "settings")  # type: ignore[no-any-return]
        return self.hs("POST", "settings", json=values)  # type: ignore[no-any-return]

    def action_definitions(self, app_id: int) -> list[dict[str, Any]]:
        """Return the workflow action definitions registered for an app."""
        return self.hs("GET", f"action-definitions/{app_id}")  # type: ignore[no-any-return]

    # HubSpot write-back -------------------------------------------------------------------------

    def hubspot_record(self, object_type: str, object_id: str, portal_id: int = PORTAL_ID) -> dict[str, Any]:
        """Return every property of a HubSpot record."""
        return self.hs("GET", f"objects/{portal_id}/{object_type}/{object_id}")["properties"]  # type: ignore[no-any-return]

    def property_history(
        self, object_type: str, object_id: str, name: str, portal_id: int = PORTAL_ID
    ) -> list[str | None]:
        """Return the values a property of a HubSpot record had, oldest first."""
        record = self.hs("GET", f"objects/{portal_id}/{object_type}/{object_id}")
        return [entry["value"] for entry in record["history"].get(name, [])]

    def timeline_events(self, object_type: str, object_id: str, portal_id: int = PORTAL_ID) -> list[dict[str, Any]]:
        """Return the timeline events put on a HubSpot record, oldest first."""
        params = {"objectType": object_type, "objectId": object_id}
        return self.hs("GET", f"timeline/{portal_id}", params=params)  # type: ignore[no-any-return]

    def notes_of(self, object_type: str, object_id: str, portal_id: int = PORTAL_ID) -> list[dict[str, Any]]:
        """Return the properties of the notes associated with a HubSpot record, in association order."""
        record = self.hs("GET", f"objects/{portal_id}/{object_type}/{object_id}")
        note_ids = record["associations"].get("notes", [])
        return [self.hs("GET", f"objects/{portal_id}/notes/{note_id}")["properties"] for note_id in note_ids]

    def hubspot_properties(self, object_type: str, portal_id: int = PORTAL_ID) -> dict[str, Any]:
        """Return the property groups and properties a portal created for a type: ``{"groups", "properties"}``."""
        return self.hs("GET", f"properties/{portal_id}/{object_type}")  # type: ignore[no-any-return]


DEFAULT_CONTACT = {
    "firstname": "Ann",
    "lastname": "O'Brien",
    "email": "ann@acme.example",
    "company": "Acme Inc",
    "lifecyclestage": "customer",
}
DEFAULT_LINE_ITEMS = [
    {"name": "Consulting", "quantity": "2", "price": "150", "hs_sku": "CONS-1", "hs_product_id": "501"},
    {"name": "Setup fee", "quantity": "1", "price": "99.5", "hs_product_id": "502"},
]


def seed_record(
    sims: Simulators,
    object_type: str,
    properties: dict[str, Any],
    *,
    contact: dict[str, Any] | None = None,
    line_items: list[dict[str, Any]] | None = None,
    portal_id: int = PORTAL_ID,
) -> dict[str, Any]:
    """Create a contact (unless given {}), line items and a record associated with both; return their ids."""
    contact_props = DEFAULT_CONTACT if contact is None else contact
    items = DEFAULT_LINE_ITEMS if line_items is None else line_items
    contact_ids = [sims.add_object("contacts", contact_props, portal_id=portal_id)] if contact_props else []
    line_item_ids = [sims.add_object("line_items", props, portal_id=portal_id) for props in items]
    record_id = sims.add_object(
        object_type,
        properties,
        associations={"contacts": contact_ids, "line_items": line_item_ids},
        portal_id=portal_id,
    )
    return {"record": record_id, "contacts": contact_ids, "line_items": line_item_ids}


def seed_deal(sims: Simulators, *, deal: dict[str, Any] | None = None, **related: Any) -> dict[str, Any]:
    """Create a deal of 399.50 with its contact and line items; return their ids."""
    properties = {"dealname": "Acme renewal", "amount": "399.5", "deal_currency_code": "USD", **(deal or {})}
    ids = seed_record(sims, "deals", properties, **related)
    return {"deal": ids["record"], **ids}


def execution_request(
    action_input: dict[str, Any],
    *,
    callback_id: str,
    object_id: str,
    object_type: str = "DEAL",
    portal_id: int = PORTAL_ID,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an execution request body as HubSpot sends it."""
    return {
        "callbackId": callback_id,
        "origin": {"portalId": portal_id, "actionDefinitionId": 10860211, "actionDefinitionVersion": 1},
        "context": {"source": "WORKFLOWS", "workflowId": 192814114},
        "object": {"objectId": int(object_id), "objectType": object_type, "properties": properties or {}},
        "inputFields": action_input,
    }


def seed_payment(sims: Simulators, *, payment: dict[str, Any] | None = None, **related: Any) -> dict[str, Any]:
    """Create a succeeded HubSpot payment of 399.50 with a fee, its contact and line items; return their ids."""
    properties = {
        "hs_initial_amount": "399.5",
        "hs_currency_code": "USD",
        "hs_latest_status": "succeeded",
        "hs_fees_amount": "11.89",
        "hs_refunds_amount": "0",
        "hs_net_amount": "387.61",
        "hs_payment_method_type": "card",
        "hs_payment_source_app": "SALES_CHECKOUT",
        "hs_initiated_date": "2026-11-20T10:15:00Z",
        "hs_customer_email": "ann@acme.example",
        **(payment or {}),
    }
    ids = seed_record(sims, "commerce_payments", properties, **related)
    return {"payment": ids["record"], **ids}

"""Small builders for test payloads and signed requests."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import requests
from hubspot.utils.signature import Signature

from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, execution_request

CLIENT_SECRET = "test-hubspot-secret"
_counter = itertools.count(1)


def callback_id() -> str:
    """Return a fresh HubSpot-style callbackId."""
    return f"ap-{PORTAL_ID}-{int(time.time() * 1000)}-{next(_counter)}-0"


def sales_inputs(**overrides: Any) -> dict[str, Any]:
    """Return the input fields of a sales action."""
    return {"quickbooks_account": REALM_ID, "create_missing_products": "no", **overrides}


def execution_body(object_id: str, *, inputs: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Return an execution request for a deal."""
    return execution_request(
        inputs if inputs is not None else sales_inputs(),
        callback_id=overrides.pop("callback_id", None) or callback_id(),
        object_id=object_id,
        **overrides,
    )


def signed_headers(
    url: str,
    body: str,
    *,
    version: str = "v3",
    secret: str = CLIENT_SECRET,
    timestamp_ms: int | None = None,
    method: str = "POST",
) -> dict[str, str]:
    """Sign a request the way HubSpot does, using HubSpot's own client as the oracle."""
    headers = {"Content-Type": "application/json"}
    if version == "v3":
        timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        headers["X-HubSpot-Signature-v3"] = Signature.get_signature(secret, body, "v3", url, method, timestamp)
        headers["X-HubSpot-Request-Timestamp"] = timestamp
    else:
        headers["X-HubSpot-Signature"] = Signature.get_signature(secret, body, version, url, method)
        headers["X-HubSpot-Signature-Version"] = version
    return headers


def signed_post(base_url: str, path: str, payload: Any, **sign: Any) -> requests.Response:
    """POST a JSON payload signed as HubSpot would."""
    url = base_url + path
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return requests.post(url, data=body.encode(), headers=signed_headers(url, body, **sign), timeout=10)


def invoice_by_hand(sims: Simulators, amount: float, *, customer: str, number: str | None = None) -> dict[str, Any]:
    """Make an invoice in QuickBooks as a bookkeeper would (through the API, which computes its total and balance)."""
    customer_id = sims.add_entity("Customer", {"DisplayName": customer})["Id"]
    item = sims.add_entity(
        "Item", {"Name": f"Work for {customer}", "Type": "Service", "IncomeAccountRef": {"value": "1"}}
    )
    line = {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
    }
    body: dict[str, Any] = {"CustomerRef": {"value": customer_id}, "Line": [line]}
    if number is not None:
        body["DocNumber"] = number
    return sims.qbo_api("POST", "invoice", json=body)["Invoice"]  # type: ignore[no-any-return]

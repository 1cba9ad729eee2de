"""The embedded demo: simulators, SQLite and an in-process queue, one signed execution per action."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
from rq import SimpleWorker

from actions.app import create_app
from actions.registry import all_actions
from actions.signature import sign_v3
from services import bootstrap, logs
from services.config import Config
from services.hubspot.properties import INVOICE_STATUSES
from services.ops.tokens import OperatorTokens
from services.store import migrate
from services.store.crypto import TokenCipher
from services.work.relay import relay_everything
from simulators import hubspot as hubspot_sim
from simulators import quickbooks as quickbooks_sim
from simulators.scenario import (
    PORTAL_ID,
    REALM_ID,
    Simulators,
    execution_request,
    seed_deal,
    seed_payment,
)
from simulators.serve import start_in_thread

DEMO_SECRET = "demo-hubspot-client-secret"
DEMO_OPERATORS_SECRET = "demo-operators-secret-for-the-console-only"
DEMO_WEBHOOK_TOKEN = "demo-intuit-webhook-verifier"


def _config(workdir: Path, sims: Simulators) -> Config:
    return Config.from_env(
        {
            "HUBSPOT_CLIENT_ID": "sim-hs-client",
            "HUBSPOT_CLIENT_SECRET": DEMO_SECRET,
            "QUICKBOOKS_CLIENT_ID": "sim-client",
            "QUICKBOOKS_CLIENT_SECRET": "sim-secret",
            "SECRET_KEY": "demo",
            "TOKEN_ENCRYPTION_KEY": TokenCipher.generate_key(),
            "REDIS_URL": "fakeredis://",
            "DATABASE_URL": f"sqlite:///{workdir / 'demo.sqlite3'}",
            "HUBSPOT_API_BASE_URL": sims.hubspot_url,
            "QUICKBOOKS_ENVIRONMENT": "sandbox",
            "QUICKBOOKS_API_BASE_URL": f"{sims.quickbooks_url}/v3",
            "QUICKBOOKS_TOKEN_URL": f"{sims.quickbooks_url}/oauth2/v1/tokens/bearer",
            "QUICKBOOKS_AUTHORIZE_URL": f"{sims.quickbooks_url}/connect/oauth2",
            "QUICKBOOKS_REVOKE_URL": f"{sims.quickbooks_url}/v2/oauth2/tokens/revoke",
            "HUBSPOT_AUTHORIZE_URL": f"{sims.hubspot_url}/oauth/authorize",
            "OPS_JWT_SECRET": DEMO_OPERATORS_SECRET,
            # The demo runs its jobs in one burst, without RQ's scheduler: callbacks go at once.
            "CALLBACK_FLUSH_DELAY": "0",
            "STATUS_FLUSH_DELAY": "0",
            # The simulated Intuit signs its change notifications with this token.
            "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": DEMO_WEBHOOK_TOKEN,
        }
    )


def _post_signed(url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    import requests

    body = json.dumps(payload)
    timestamp = str(int(time.time() * 1000))
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(DEMO_SECRET, "POST", url, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }
    response = requests.post(url, data=body.encode(), headers=headers, timeout=10)
    return response.status_code, response.json()


def _execution_for(sims: Simulators, action: str, callback_id: str) -> dict[str, Any]:
    """Seed a record for an action and return its execution request."""
    inputs: dict[str, Any] = {"quickbooks_account": REALM_ID, "create_missing_products": "yes"}
    if action in ("create_invoice", "create_estimate", "create_sales_receipt"):
        if action == "create_invoice":
            inputs["payment_terms"] = "3"
        return execution_request(inputs, callback_id=callback_id, object_id=seed_deal(sims)["deal"])
    payment: dict[str, Any] = {}
    if action == "create_paid_invoice":
        inputs["deposit_account"] = sims.account_id("Checking")
    elif action == "create_fee_expense":
        inputs = {
            "quickbooks_account": REALM_ID,
            "payment_account": sims.account_id("Checking"),
            "expense_account": sims.account_id("Bank Charges & Fees"),
        }
    elif action == "create_refund_receipt":
        inputs["refund_account"] = sims.account_id("Checking")
        payment = {"hs_latest_status": "refunded", "hs_refunds_amount": "399.5"}
    seeded = seed_payment(sims, payment=payment)
    return execution_request(inputs, callback_id=callback_id, object_id=seeded["payment"], object_type="0-101")


def _install_and_connect(base_url: str, sims: Simulators) -> None:
    """Do what a HubSpot admin does, over HTTP: install, connect QuickBooks, save the company's settings."""
    import re

    import requests

    admin = requests.Session()
    # The simulators' consent pages approve at once here; `qbo-actions demo --browser` lets a person click them.
    sims.hubspot_settings(auto_approve_portal=PORTAL_ID)
    sims.quickbooks_config(auto_approve_realm=REALM_ID)
    settings_page = admin.get(f"{base_url}/settings", timeout=10)
    print(f"GET /settings -> HubSpot's consent -> /oauth/hubspot/callback -> {settings_page.status_code} (installed)")
    company_page = admin.get(f"{base_url}/oauth/quickbooks/connect", timeout=10)
    print(f"GET /oauth/quickbooks/connect -> Intuit's consent -> {company_page.url.removeprefix(base_url)}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', company_page.text)
    # A product QuickBooks does not know is held for an operator to fix, instead of failing the workflow.
    form = {
        "mode": "legacy",
        "rows": "0",
        "default_income_account": sims.account_id("Services"),
        "hold_failures": "LINE_ITEM_NOT_MATCHED",
    }
    saved = admin.post(company_page.url, data={**form, "csrf_token": token.group(1) if token else ""}, timeout=10)
    outcome = "saved" if "Settings saved." in saved.text else "not saved"
    print(f"POST the company's settings -> {saved.status_code} ({outcome})\n")


def _operator_token(config: Config) -> str:
    return OperatorTokens(config).mint("demo-operator@example.com", "admin", timedelta(hours=8))


def _operator_fixes_the_held_one(base_url: str, config: Config) -> None:
    """Do what an operator does through the API: find the held failure, correct an input, retry it."""
    import requests

    headers = {"Authorization": f"Bearer {_operator_token(config)}"}
    held = requests.get(f"{base_url}/ops/api/executions", params={"state": "held"}, headers=headers, timeout=10).json()
    print(f"GET /ops/api/executions?state=held -> {held['reason_counts']}")
    for execution in held["executions"]:
        retried = requests.post(
            f"{base_url}/ops/api/executions/{execution['id']}/retry",
            json={"inputs": {"create_missing_products": "yes"}},
            headers=headers,
            timeout=30,
        )
        print(
            f"POST /ops/api/executions/{execution['id'][:8]}…/retry "
            f'{{"inputs": {{"create_missing_products": "yes"}}}} -> {retried.status_code} ({retried.json()["state"]})\n'
        )


def _payment_reaches_hubspot(base_url: str, sims: Simulators, services: bootstrap.Services, deal: str) -> None:
    """Do what a bookkeeper does in QuickBooks (two payments of the invoice) and show the deal following it."""
    sims.quickbooks_webhooks(f"{base_url}/webhooks/quickbooks", DEMO_WEBHOOK_TOKEN, auto=False)
    invoice_id = sims.hubspot_record("deals", deal).get("qbo_invoice_link", "").rpartition("=")[2]
    invoice = sims.qbo_api("GET", f"invoice/{invoice_id}")["Invoice"]

    labels = {o.value: o.label for o in INVOICE_STATUSES}

    def show(moment: str) -> None:
        shown = sims.hubspot_record("deals", deal)
        print(
            f"  {moment}: deal {deal} shows invoice #{shown.get('qbo_invoice_number')} "
            f"{labels.get(shown.get('qbo_invoice_status', ''), '?')!r}, balance {shown.get('qbo_invoice_balance')}, "
            f"paid {shown.get('qbo_invoice_amount_paid') or '0'}, due {shown.get('qbo_invoice_due_date')}"
        )

    print("\nLater, in QuickBooks (Intuit notifies /webhooks/quickbooks; the deal's QuickBooks properties follow):")
    show("booked")
    total = float(invoice["TotalAmt"])
    for amount in (round(total / 2, 2), round(total - round(total / 2, 2), 2)):
        sims.qbo_api(
            "POST",
            "payment",
            json={
                "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
                "TotalAmt": amount,
                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            },
        )
        delivered = sims.deliver_webhooks()
        events = sum(len(d["events"]) for d in delivered["deliveries"])
        SimpleWorker(services.queue.all_queues, connection=services.redis).work(burst=True)
        show(f"payment of {amount:.2f} ({events} notifications)")
    for note in sims.notes_of("deals", deal):
        print(f"  note on the deal: {note['hs_note_body']}")


def _serve_for_a_browser(base_url: str, sims: Simulators, config: Config) -> int:
    """Keep the simulators and the app running for a person to install and connect in a browser."""
    print(f"Open {base_url}/settings in a browser: the simulated HubSpot asks which account installs the app, the")
    print("simulated Intuit which company to connect, then the company's settings page opens. Ctrl-C stops.")
    print(f"\nThe operations console is at {base_url}/ops; sign in with this token:\n{_operator_token(config)}\n")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def run_demo(*, browser: bool = False, port: int = 0) -> int:
    """Run the demo and print what happened (or serve it for a browser); return the exit status."""
    logs.configure(logging.WARNING)
    for noisy in ("werkzeug", "rq.worker", "services.work.runner"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    qbo_server = start_in_thread(quickbooks_sim.create_app())
    hubspot = hubspot_sim.HubSpotSimulator()
    hubspot.client_secret = DEMO_SECRET  # HubSpot's app secret both signs requests and refreshes tokens
    hubspot_server = start_in_thread(hubspot_sim.create_app(hubspot))
    sims = Simulators(qbo_server.base_url, hubspot_server.base_url)
    sims.add_company(REALM_ID, name="Demo Books Inc")
    sims.add_portal(PORTAL_ID)

    with tempfile.TemporaryDirectory(prefix="qbo-actions-demo-") as tmp:
        config = _config(Path(tmp), sims)
        services = bootstrap.bootstrap(config, redis_connection=fakeredis.FakeRedis())
        migrate.upgrade(services.database.engine)
        web = start_in_thread(create_app(services=services), port=port)
        print(f"Simulated QuickBooks at {sims.quickbooks_url}, HubSpot at {sims.hubspot_url}")
        print(f"Action server at {web.base_url} (SQLite {config.database_url}, in-process queue)\n")
        if browser:
            return _serve_for_a_browser(web.base_url, sims, config)
        _install_and_connect(web.base_url, sims)

        existing = {entity: {e["Id"] for e in sims.entities(entity)} for entity in ("Customer", "Item")}
        callbacks: dict[str, str] = {}
        invoiced_deal = ""
        for number, spec in enumerate(all_actions(), start=1):
            payload = _execution_for(sims, spec.name, f"demo-{number}-{spec.name}")
            if spec.name == "create_invoice":
                invoiced_deal = str(payload["object"]["objectId"])
            status, answer = _post_signed(web.base_url + spec.path, payload)
            callbacks[payload["callbackId"]] = spec.label
            record = f"{payload['object']['objectType']} {payload['object']['objectId']}"
            print(f"POST {spec.path} ({record}) -> {status} {json.dumps(answer)}")

        unmatched = seed_deal(sims, line_items=[{"name": "Unknown gadget", "quantity": "1", "price": "10"}])
        payload = execution_request(
            {"quickbooks_account": REALM_ID, "create_missing_products": "no"},
            callback_id="demo-unmatched",
            object_id=unmatched["deal"],
        )
        status, answer = _post_signed(web.base_url + "/actions/create_invoice", payload)
        callbacks["demo-unmatched"] = (
            "Create a QuickBooks invoice (held: a product QuickBooks did not know; fixed by an operator)"
        )
        print(f"POST /actions/create_invoice (deal {unmatched['deal']}) -> {status} {json.dumps(answer)}\n")

        with bootstrap.installed(services):
            # The relay queues the jobs moments after each answer; the worker below must not find the queue empty.
            relay_everything(services.outbox, services.queue)
            SimpleWorker(services.queue.all_queues, connection=services.redis).work(burst=True)
            _operator_fixes_the_held_one(web.base_url, config)
            SimpleWorker(services.queue.all_queues, connection=services.redis).work(burst=True)

        print("Created in QuickBooks:")
        for entity in (
            "Customer",
            "Item",
            "Invoice",
            "Estimate",
            "SalesReceipt",
            "Payment",
            "Purchase",
            "RefundReceipt",
        ):
            for doc in sims.entities(entity):
                if doc["Id"] in existing.get(entity, set()):
                    continue
                total = f", total {doc.get('TotalAmt')}" if "TotalAmt" in doc else ""
                doc_number = f" #{doc['DocNumber']}" if doc.get("DocNumber") else ""
                name = doc.get("DisplayName") or doc.get("Name") or ""
                print(f"  {entity} {doc['Id']}{doc_number} {name}{total}")
        print("\nReported to HubSpot:")
        for completion in sims.callbacks():
            outputs = completion["output_fields"]
            label = callbacks.get(completion["callback_id"], completion["callback_id"])
            print(f"  {label}: {json.dumps(outputs)}")
        reported = {c["callback_id"] for c in sims.callbacks()}
        ok = reported == set(callbacks)
        with bootstrap.installed(services):
            _payment_reaches_hubspot(web.base_url, sims, services, invoiced_deal)
        ok = ok and sims.hubspot_record("deals", invoiced_deal).get("qbo_invoice_status") == "paid"
        web.stop()
    qbo_server.stop()
    hubspot_server.stop()
    print("\nDemo finished." if ok else "\nSome executions were not reported back.")
    return 0 if ok else 1

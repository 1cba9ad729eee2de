"""Tests of the QuickBooks Online simulator over real HTTP, with plain requests and with third-party clients."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError

from simulators.quickbooks import QuickBooksSimulator, create_app
from simulators.serve import start_in_thread

REALM = "9130350000000001"
TOKEN = "access-token-1"
REFRESH = "refresh-token-1"


class Api:
    """A thin QBO client for the tests: bearer token, minorversion, JSON."""

    def __init__(self, base_url: str, token: str = TOKEN, realm: str = REALM):
        self.base_url, self.token, self.realm = base_url, token, realm

    def url(self, path: str) -> str:
        return f"{self.base_url}/v3/company/{self.realm}/{path}"

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def create(self, entity: str, body: dict, requestid: str | None = None, **params) -> requests.Response:
        params = {"minorversion": "75", **params}
        if requestid:
            params["requestid"] = requestid
        return requests.post(self.url(entity.lower()), json=body, params=params, headers=self.headers(), timeout=10)

    def read(self, entity: str, entity_id: str) -> requests.Response:
        return requests.get(
            self.url(f"{entity.lower()}/{entity_id}"), params={"minorversion": "75"}, headers=self.headers(), timeout=10
        )

    def query(self, statement: str) -> requests.Response:
        return requests.get(
            self.url("query"), params={"query": statement, "minorversion": "75"}, headers=self.headers(), timeout=10
        )

    def ok(self, response: requests.Response, key: str) -> dict:
        assert response.status_code == 200, response.text
        return response.json()[key]

    def fault_code(self, response: requests.Response) -> str:
        assert response.status_code == 400, response.text
        return response.json()["Fault"]["Error"][0]["code"]


@pytest.fixture(scope="module")
def running():
    """One simulator server for the module (stopping a server takes half a second)."""
    app = create_app(QuickBooksSimulator())
    server = start_in_thread(app)
    yield app.config["SIMULATOR"], server
    server.stop()


@pytest.fixture
def sim(running) -> QuickBooksSimulator:
    sim = running[0]
    sim.reset()
    sim.add_company(REALM)
    sim.add_token(TOKEN, REALM)
    sim.add_refresh_token(REFRESH, REALM)
    return sim


@pytest.fixture
def server(running, sim):
    return running[1]


@pytest.fixture
def api(server) -> Api:
    return Api(server.base_url)


def account_id(api: Api, name: str) -> str:
    return api.ok(api.query(f"SELECT * FROM Account WHERE Name = '{name}'"), "QueryResponse")["Account"][0]["Id"]


def make_customer(api: Api, name: str = "Acme Inc", **fields) -> dict:
    return api.ok(api.create("Customer", {"DisplayName": name, **fields}), "Customer")


def make_item(api: Api, name: str = "Consulting") -> dict:
    body = {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": account_id(api, "Services")}}
    return api.ok(api.create("Item", body), "Item")


def invoice_body(customer_id: str, item_id: str, qty=2, price=100.0, amount=200.0, **fields) -> dict:
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": qty, "UnitPrice": price},
    }
    return {"CustomerRef": {"value": customer_id}, "Line": [line], **fields}


# --- entities -----------------------------------------------------------------------------------------


def test_create_then_read_returns_the_stored_customer(api):
    created = make_customer(api, "Acme Inc", PrimaryEmailAddr={"Address": "ann@acme.test"})
    assert created["SyncToken"] == "0" and created["domain"] == "QBO" and created["sparse"] is False
    assert set(created["MetaData"]) == {"CreateTime", "LastUpdatedTime"}

    response = api.read("Customer", created["Id"])
    assert response.headers["intuit_tid"]
    assert api.ok(response, "Customer") == created
    assert "time" in response.json()


def test_read_of_unknown_id_is_object_not_found(api):
    assert api.fault_code(api.read("Invoice", "999")) == "610"


def test_invoice_totals_line_ids_doc_number_and_due_date(api):
    customer, item = make_customer(api), make_item(api)
    net30 = api.ok(api.query("SELECT * FROM Term WHERE Name = 'Net 30'"), "QueryResponse")["Term"][0]
    discount = {
        "DetailType": "DiscountLineDetail",
        "Amount": 0,
        "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10},
    }
    body = invoice_body(customer["Id"], item["Id"], TxnDate="2025-03-01", SalesTermRef={"value": net30["Id"]})
    body["Line"].append(discount)

    invoice = api.ok(api.create("Invoice", body), "Invoice")

    assert net30["Id"] == "3"
    assert invoice["TotalAmt"] == 180.0 and invoice["Balance"] == 180.0
    assert invoice["DueDate"] == "2025-03-31"
    assert invoice["DocNumber"] == "1001"
    assert [(line.get("Id"), line["DetailType"]) for line in invoice["Line"]] == [
        ("1", "SalesItemLineDetail"),
        ("2", "DiscountLineDetail"),
        (None, "SubTotalLineDetail"),
    ]
    assert invoice["CustomerRef"]["name"] == "Acme Inc"
    second = api.ok(api.create("Invoice", invoice_body(customer["Id"], item["Id"])), "Invoice")
    assert second["DocNumber"] == "1002"


def test_sparse_update_bumps_synctoken_and_stale_token_is_5010(api):
    customer = make_customer(api)
    update = {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "CompanyName": "Acme Holdings"}
    updated = api.ok(api.create("Customer", update), "Customer")
    assert updated["SyncToken"] == "1" and updated["CompanyName"] == "Acme Holdings"
    assert updated["DisplayName"] == "Acme Inc"

    assert api.fault_code(api.create("Customer", update)) == "5010"


def test_preferences_and_company_info(server, sim):
    sim.add_company("222", name="Brit Ltd", country="GB", home_currency="GBP", custom_txn_numbers=True)
    sim.add_token("gb-token", "222")
    gb = Api(server.base_url, "gb-token", "222")
    prefs = gb.ok(requests.get(gb.url("preferences"), headers=gb.headers(), timeout=10), "Preferences")
    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    assert prefs["CurrencyPrefs"] == {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "GBP"}}
    assert prefs["TaxPrefs"]["PartnerTaxEnabled"] is False
    info = gb.ok(requests.get(gb.url("companyinfo/222"), headers=gb.headers(), timeout=10), "CompanyInfo")
    assert (info["Country"], info["CompanyName"], info["Id"]) == ("GB", "Brit Ltd", "1")


# --- queries --------------------------------------------------------------------------------------------


def test_query_matches_escaped_apostrophe(api):
    make_customer(api, "O'Brien Ltd")
    make_customer(api, "Other Co")
    rows = api.ok(api.query(r"SELECT * FROM Customer WHERE DisplayName = 'O\'Brien Ltd'"), "QueryResponse")
    assert [c["DisplayName"] for c in rows["Customer"]] == ["O'Brien Ltd"]


def test_query_in_like_and_email(api):
    for name in ("Alpha Co", "Beta Co", "Gamma Inc"):
        make_customer(api, name, PrimaryEmailAddr={"Address": f"{name[:4].lower()}@x.test"})
    rows = api.ok(api.query("select * from Customer where DisplayName in ('Alpha Co', 'Gamma Inc')"), "QueryResponse")[
        "Customer"
    ]
    assert sorted(c["DisplayName"] for c in rows) == ["Alpha Co", "Gamma Inc"]
    rows = api.ok(api.query("SELECT * FROM Customer WHERE DisplayName LIKE '%Co'"), "QueryResponse")["Customer"]
    assert sorted(c["DisplayName"] for c in rows) == ["Alpha Co", "Beta Co"]
    rows = api.ok(api.query("SELECT * FROM Customer WHERE PrimaryEmailAddr = 'beta@x.test'"), "QueryResponse")[
        "Customer"
    ]
    assert [c["DisplayName"] for c in rows] == ["Beta Co"]


def test_query_paging_and_ordering(api):
    for number in range(1, 6):
        make_customer(api, f"Customer {number}")
    page = api.ok(
        api.query("SELECT * FROM Customer ORDERBY DisplayName DESC STARTPOSITION 2 MAXRESULTS 2"), "QueryResponse"
    )
    assert [c["DisplayName"] for c in page["Customer"]] == ["Customer 4", "Customer 3"]
    assert (page["startPosition"], page["maxResults"]) == (2, 2)
    empty = api.ok(api.query("SELECT * FROM Customer STARTPOSITION 50"), "QueryResponse")
    assert empty == {}


def test_query_count_and_inactive_exclusion(api, sim):
    make_customer(api, "Active One")
    sim.seed_entity(REALM, "Customer", {"DisplayName": "Gone Co", "Active": False})
    assert api.ok(api.query("SELECT count(*) FROM Customer"), "QueryResponse") == {"totalCount": 1}
    inactive = api.ok(api.query("SELECT * FROM Customer WHERE Active = false"), "QueryResponse")["Customer"]
    assert [c["DisplayName"] for c in inactive] == ["Gone Co"]


def test_query_on_non_queryable_field_is_4001(api):
    response = api.query("SELECT * FROM Payment WHERE DocNumber = '12'")
    assert api.fault_code(response) == "4001"
    assert response.json()["Fault"]["Error"][0]["Detail"] == (
        "QueryValidationError: property 'DocNumber' is not queryable"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Customer WHERE DisplayName = 'a' OR Id = '1'",
        "SELECT * FROM customer",
        "SELECT * Customer",
        "SELECT * FROM Customer WHERE DisplayName = 'unterminated",
    ],
)
def test_malformed_query_is_4000(api, statement):
    assert api.fault_code(api.query(statement)) == "4000"


# --- requestid replay -----------------------------------------------------------------------------------


def test_requestid_replay_returns_the_first_response_and_creates_once(api, sim):
    first = api.ok(api.create("Customer", {"DisplayName": "Once"}, requestid="rid-1"), "Customer")
    again = api.ok(api.create("Customer", {"DisplayName": "Once"}, requestid="rid-1"), "Customer")
    assert again["Id"] == first["Id"]
    assert [c["DisplayName"] for c in sim.list_entities(REALM, "Customer")] == ["Once"]

    failed = api.create("Customer", {"DisplayName": "Once"}, requestid="rid-2")
    assert api.fault_code(failed) == "6240"
    sim.seed_entity(REALM, "Customer", {"DisplayName": "Unrelated"})
    assert api.create("Customer", {"DisplayName": "Other"}, requestid="rid-2").json() == failed.json()

    assert api.fault_code(api.create("Customer", {"DisplayName": "Long"}, requestid="x" * 51)) == "2050"


# --- validation faults ----------------------------------------------------------------------------------


def test_amount_not_qty_times_price_is_6070(api):
    customer, item = make_customer(api), make_item(api)
    response = api.create("Invoice", invoice_body(customer["Id"], item["Id"], qty=2, price=100, amount=150))
    assert api.fault_code(response) == "6070"


def test_duplicate_name_across_customers_and_vendors_is_6240(api):
    make_customer(api, "Dup Name")
    response = api.create("Vendor", {"DisplayName": "dup name"})
    assert api.fault_code(response) == "6240"
    assert "Another customer, vendor or employee" in response.json()["Fault"]["Error"][0]["Detail"]
    assert api.fault_code(api.create("Customer", {"DisplayName": "Stripe"})) == "6240"


def test_customer_name_rules(api):
    assert api.fault_code(api.create("Customer", {"CompanyName": "No Display"})) == "6080"
    assert api.fault_code(api.create("Customer", {"DisplayName": "Bad: Name"})) == "6000"
    built = make_customer(api, "", GivenName="Ann", FamilyName="Lee")
    assert built["DisplayName"] == "Ann Lee"


def test_duplicate_doc_number_with_custom_numbers_is_6140(server, sim):
    sim.add_company("333", custom_txn_numbers=True)
    sim.add_token("t333", "333")
    api = Api(server.base_url, "t333", "333")
    customer, item = make_customer(api), make_item(api)
    first = api.ok(api.create("Invoice", invoice_body(customer["Id"], item["Id"], DocNumber="HS-1")), "Invoice")
    assert first["DocNumber"] == "HS-1"
    duplicate = api.create("Invoice", invoice_body(customer["Id"], item["Id"], DocNumber="HS-1"))
    assert api.fault_code(duplicate) == "6140"
    assert "Duplicate Document Number Error" == duplicate.json()["Fault"]["Error"][0]["Message"]
    assert api.ok(api.create("Estimate", invoice_body(customer["Id"], item["Id"], DocNumber="HS-1")), "Estimate")
    unnumbered = api.ok(api.create("Invoice", invoice_body(customer["Id"], item["Id"])), "Invoice")
    assert "DocNumber" not in unnumbered
    too_long = api.create("Invoice", invoice_body(customer["Id"], item["Id"], DocNumber="X" * 22))
    assert api.fault_code(too_long) == "6000"


def test_us_line_tax_code_other_than_tax_or_non_is_6100(api):
    customer, item = make_customer(api), make_item(api)
    body = invoice_body(customer["Id"], item["Id"])
    body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "2"}
    assert api.fault_code(api.create("Invoice", body)) == "6100"
    body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "NON"}
    assert api.create("Invoice", body).status_code == 200


def test_non_us_line_without_tax_code_is_6000_vat(server, sim):
    sim.add_company("444", country="GB", home_currency="GBP")
    sim.add_token("t444", "444")
    api = Api(server.base_url, "t444", "444")
    customer, item = make_customer(api), make_item(api)
    body = invoice_body(customer["Id"], item["Id"])
    response = api.create("Invoice", body)
    assert api.fault_code(response) == "6000"
    assert (
        "Make sure all your transactions have a VAT rate before you save."
        in (response.json()["Fault"]["Error"][0]["Detail"])
    )
    body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "17"}
    assert api.create("Invoice", body).status_code == 200


def test_unknown_reference_is_2500_and_missing_customer_is_2020(api):
    customer = make_customer(api)
    assert api.fault_code(api.create("Invoice", invoice_body(customer["Id"], "999"))) == "2500"
    no_customer = invoice_body(customer["Id"], "999")
    del no_customer["CustomerRef"]
    assert api.fault_code(api.create("Invoice", no_customer)) == "2020"


def test_foreign_currency_without_multicurrency_is_6000(api):
    customer, item = make_customer(api), make_item(api)
    body = invoice_body(customer["Id"], item["Id"], CurrencyRef={"value": "EUR"})
    assert api.fault_code(api.create("Invoice", body)) == "6000"


def test_item_rules(api):
    assert api.fault_code(api.create("Item", {"Name": "No Account", "Type": "Service"})) == "2020"
    expense = {"Name": "Wrong", "Type": "Service", "IncomeAccountRef": {"value": account_id(api, "Advertising")}}
    assert api.fault_code(api.create("Item", expense)) == "6430"
    make_item(api, "Widget")
    assert api.fault_code(api.create("Item", {"Name": "Widget", "Type": "Category"})) == "6240"


def test_purchase_needs_matching_account_type(api):
    line = {
        "DetailType": "AccountBasedExpenseLineDetail",
        "Amount": 12.5,
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account_id(api, "Bank Charges & Fees")}},
    }
    visa, checking = account_id(api, "Visa"), account_id(api, "Checking")
    bad = {"PaymentType": "Check", "AccountRef": {"value": visa}, "Line": [line]}
    assert api.fault_code(api.create("Purchase", bad)) == "6000"
    good = api.ok(api.create("Purchase", {**bad, "AccountRef": {"value": checking}}), "Purchase")
    assert good["TotalAmt"] == 12.5 and good["AccountRef"]["name"] == "Checking"


# --- payments -------------------------------------------------------------------------------------------


def test_payment_applied_to_invoice_reduces_its_balance(api):
    customer, item = make_customer(api), make_item(api)
    invoice = api.ok(api.create("Invoice", invoice_body(customer["Id"], item["Id"])), "Invoice")
    payment = {
        "CustomerRef": {"value": customer["Id"]},
        "TotalAmt": 150,
        "Line": [{"Amount": 150, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }
    paid = api.ok(api.create("Payment", payment), "Payment")
    assert paid["UnappliedAmt"] == 0.0

    after = api.ok(api.read("Invoice", invoice["Id"]), "Invoice")
    assert after["Balance"] == 50.0 and after["SyncToken"] == "1"
    assert {"TxnId": paid["Id"], "TxnType": "Payment"} in after["LinkedTxn"]
    assert api.ok(api.read("Customer", customer["Id"]), "Customer")["Balance"] == 50.0

    overpay = {**payment, "TotalAmt": 60, "Line": [{**payment["Line"][0], "Amount": 60}]}
    assert api.fault_code(api.create("Payment", overpay)) == "6000"
    other = make_customer(api, "Someone Else")
    wrong_customer = {
        **payment,
        "CustomerRef": {"value": other["Id"]},
        "TotalAmt": 10,
        "Line": [{**payment["Line"][0], "Amount": 10}],
    }
    assert api.fault_code(api.create("Payment", wrong_customer)) == "6000"


def test_invoice_from_estimate_closes_it_and_void_and_delete_work(api, sim):
    customer, item = make_customer(api), make_item(api)
    estimate = api.ok(api.create("Estimate", invoice_body(customer["Id"], item["Id"])), "Estimate")
    assert estimate["TxnStatus"] == "Pending"
    linked = invoice_body(customer["Id"], item["Id"], LinkedTxn=[{"TxnId": estimate["Id"], "TxnType": "Estimate"}])
    invoice = api.ok(api.create("Invoice", linked), "Invoice")
    assert api.ok(api.read("Estimate", estimate["Id"]), "Estimate")["TxnStatus"] == "Closed"

    voided = api.ok(api.create("Invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void"), "Invoice")
    assert (voided["TotalAmt"], voided["Balance"], voided["SyncToken"]) == (0.0, 0.0, "1")
    deleted = api.ok(api.create("Invoice", {"Id": invoice["Id"], "SyncToken": "1"}, operation="delete"), "Invoice")
    assert deleted == {"domain": "QBO", "status": "Deleted", "Id": invoice["Id"]}
    assert sim.list_entities(REALM, "Invoice") == []
    assert api.fault_code(api.create("Customer", {"Id": customer["Id"], "SyncToken": "0"}, operation="delete")) == (
        "500"
    )


# --- auth, OAuth, throttling ----------------------------------------------------------------------------


def auth_client(base_url: str, refresh_token: str | None = REFRESH) -> AuthClient:
    client = AuthClient(
        "sim-client",
        "sim-secret",
        "http://localhost/callback",
        environment=f"{base_url}/.well-known/openid_configuration/",
        refresh_token=refresh_token,
    )
    assert client.token_endpoint == f"{base_url}/oauth2/v1/tokens/bearer"
    return client


def test_expired_token_is_401_then_intuit_oauth_refresh_works(api, sim, server):
    sim.expire_token(TOKEN)
    response = api.query("SELECT * FROM Customer")
    assert response.status_code == 401 and response.headers["intuit_tid"]
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3200" and error["detail"].startswith("Token expired")

    client = auth_client(server.base_url)
    client.refresh()
    assert client.expires_in == 3600 and client.x_refresh_token_expires_in == 8726400
    assert client.refresh_token != REFRESH
    api.token = client.access_token
    assert api.query("SELECT * FROM Customer").status_code == 200
    assert sim.refresh_count[REALM] == 1
    assert sim.request_log()[-2]["path"] == "/oauth2/v1/tokens/bearer"

    # The rotated-out refresh token keeps working during the grace period, and not after it.
    client.refresh(refresh_token=REFRESH)
    sim.refresh_grace_seconds = 0
    client.refresh(refresh_token=REFRESH)
    with pytest.raises(AuthClientError) as failed:
        client.refresh(refresh_token=REFRESH)
    assert failed.value.status_code == 400


def test_refresh_after_revoke_is_invalid_grant(api, server):
    client = auth_client(server.base_url)
    assert client.revoke(token=REFRESH) is True
    with pytest.raises(AuthClientError) as failed:
        client.refresh()
    assert failed.value.status_code == 400 and b"invalid_grant" in failed.value.content
    assert api.query("SELECT * FROM Customer").status_code == 401


def test_admin_revoke_and_bad_client_credentials(api, server):
    requests.post(f"{server.base_url}/_sim/revoke", json={"realm_id": REALM}, timeout=10).raise_for_status()
    assert api.query("SELECT * FROM Customer").status_code == 401
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH}
    url = f"{server.base_url}/oauth2/v1/tokens/bearer"
    assert requests.post(url, data=form, auth=("sim-client", "sim-secret"), timeout=10).json() == {
        "error": "invalid_grant"
    }
    wrong = requests.post(url, data=form, auth=("sim-client", "nope"), timeout=10)
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client"}


def test_authorization_code_grant_is_single_use(server, sim):
    sim.add_auth_code("code-1", REALM)
    url = f"{server.base_url}/oauth2/v1/tokens/bearer"
    form = {"grant_type": "authorization_code", "code": "code-1", "redirect_uri": "http://localhost/cb"}
    tokens = requests.post(url, data=form, auth=("sim-client", "sim-secret"), timeout=10).json()
    assert Api(server.base_url, tokens["access_token"]).query("SELECT * FROM Item").status_code == 200
    again = requests.post(url, data=form, auth=("sim-client", "sim-secret"), timeout=10)
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}


def test_per_minute_throttle_returns_429(api, server):
    requests.post(f"{server.base_url}/_sim/config", json={"throttle_per_minute": 3}, timeout=10)
    statuses = [api.query("SELECT * FROM Term").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = api.query("SELECT * FROM Term")
    assert throttled.headers["Content-Type"].startswith("text/xml")
    assert 'code="3001"' in throttled.text and "ThrottleExceeded" in throttled.text


def test_per_second_limit_when_enabled(api, sim):
    sim.per_second_limit = 2
    statuses = [api.query("SELECT * FROM Term").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_concurrent_limit_when_enabled(api, sim):
    sim.concurrent_limit = 1
    sim.add_fault(None, path="^/query$", delay=0.5)  # the first query stays in flight for half a second
    slow: list[int] = []
    first = threading.Thread(target=lambda: slow.append(api.query("SELECT * FROM Term").status_code))
    first.start()
    time.sleep(0.2)
    assert api.query("SELECT * FROM Term").status_code == 429
    first.join(timeout=5)
    assert slow == [200]
    assert api.query("SELECT * FROM Term").status_code == 200


# --- injected faults and admin endpoints ---------------------------------------------------------------


def test_fault_after_commit_loses_the_response_but_not_the_invoice(api, sim, server):
    customer, item = make_customer(api), make_item(api)
    requests.post(
        f"{server.base_url}/_sim/faults",
        timeout=10,
        json={"method": "POST", "path": "^/invoice$", "status": 500, "after_commit": True},
    )
    lost = api.create("Invoice", invoice_body(customer["Id"], item["Id"]), requestid="inv-1")
    assert lost.status_code == 500 and lost.json()["Fault"]["Error"][0]["code"] == "10000"
    assert len(sim.list_entities(REALM, "Invoice")) == 1

    retry = api.ok(api.create("Invoice", invoice_body(customer["Id"], item["Id"]), requestid="inv-1"), "Invoice")
    assert retry["Id"] == sim.list_entities(REALM, "Invoice")[0]["Id"]
    assert len(sim.list_entities(REALM, "Invoice")) == 1


def test_fault_before_commit_with_headers_and_delay(api, sim):
    sim.add_fault(503, path="^/customer$", headers={"Retry-After": "2"}, delay=0.2)
    started = time.monotonic()
    response = api.create("Customer", {"DisplayName": "Later"}, requestid="c-1")
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert time.monotonic() - started >= 0.2
    assert sim.list_entities(REALM, "Customer") == []
    assert api.create("Customer", {"DisplayName": "Later"}, requestid="c-1").status_code == 200


def test_admin_seed_list_state_and_request_log(server):
    base = f"{server.base_url}/_sim"
    requests.post(f"{base}/reset", timeout=10).raise_for_status()
    requests.post(
        f"{base}/companies", json={"realm_id": "555", "country": "CA", "home_currency": "CAD"}, timeout=10
    ).raise_for_status()
    requests.post(f"{base}/tokens", json={"realm_id": "555", "access_token": "t555"}, timeout=10)
    seeded = requests.post(
        f"{base}/entities/555/Customer", json={"DisplayName": "Old", "Active": False}, timeout=10
    ).json()
    listed = requests.get(f"{base}/entities/555/Customer", timeout=10).json()
    assert [c["Id"] for c in listed] == [seeded["Id"]]

    api = Api(server.base_url, "t555", "555")
    assert api.ok(api.query("SELECT * FROM Customer"), "QueryResponse") == {}
    log = requests.get(f"{base}/requests", timeout=10).json()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [("GET", "/v3/company/555/query", 200)]
    assert log[0]["query"]["query"] == "SELECT * FROM Customer"
    state = requests.get(f"{base}/state", timeout=10).json()
    assert state["realms"]["555"]["entities"]["Customer"] == 1

    requests.post(f"{base}/tokens/expire", json={"access_token": "t555"}, timeout=10).raise_for_status()
    assert api.query("SELECT * FROM Customer").status_code == 401
    requests.delete(f"{base}/requests", timeout=10)
    assert requests.get(f"{base}/requests", timeout=10).json() == []


# --- python-quickbooks against the simulator -------------------------------------------------------------


@pytest.fixture
def qb(server, monkeypatch):
    from quickbooks import QuickBooks

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the simulator speaks plain http
    client = QuickBooks(
        auth_client=auth_client(server.base_url), refresh_token=REFRESH, company_id=REALM, minorversion=75
    )
    client.api_url_v3 = f"{server.base_url}/v3"
    return client


def test_python_quickbooks_creates_customer_item_invoice_and_filters(qb, sim):
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.account import Account
    from quickbooks.objects.base import Ref
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item

    customer = Customer()
    customer.DisplayName = "O'Brien & Sons"
    customer.save(qb=qb, request_id="pq-customer-1")

    income = Account.filter(Name="Services", qb=qb)[0]
    item = Item()
    item.Name, item.Type = "Design", "Service"
    item.IncomeAccountRef = Ref()
    item.IncomeAccountRef.value = income.Id
    item.save(qb=qb, request_id="pq-item-1")

    invoice = Invoice()
    line = SalesItemLine()
    line.Amount = 300
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    line.SalesItemLineDetail.Qty, line.SalesItemLineDetail.UnitPrice = 3, 100
    invoice.Line.append(line)
    invoice.CustomerRef = customer.to_ref()
    saved = invoice.save(qb=qb, request_id="pq-invoice-1")
    retried = invoice.save(qb=qb, request_id="pq-invoice-1")  # a retried save replays the stored response

    assert saved.TotalAmt == 300.0 and saved.DocNumber == "1001" and saved.Balance == 300.0
    assert retried.Id == saved.Id and retried.SyncToken == "0"
    assert len(sim.list_entities(REALM, "Invoice")) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = Customer.filter(DisplayName="O'Brien & Sons", qb=qb)
    assert [c.Id for c in found] == [customer.Id]
    assert Customer.count(qb=qb) == 1
    assert [i.Name for i in Item.all(qb=qb)] == ["Design"]

    duplicate = Customer()
    duplicate.DisplayName = "o'brien & sons"
    with pytest.raises(QuickbooksException) as failed:
        duplicate.save(qb=qb)
    assert failed.value.error_code == 6240
    assert sim.refresh_count[REALM] == 1

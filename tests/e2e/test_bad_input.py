"""Bad input gets a 4xx at the edge or a named failure reason: never a 5xx, INTERNAL_ERROR or a retry loop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.books.failures import REASONS
from services.bootstrap import Services
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal, seed_payment
from tests.builders import callback_id, execution_body, sales_inputs, signed_post
from tests.conftest import Perform

RELAXED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def test_an_object_id_longer_than_the_column_is_a_400_not_a_database_error(server: str, services: Services) -> None:
    response = signed_post(server, "/actions/create_invoice", execution_body("1" * 30))
    assert response.status_code == 400 and "objectId" in response.json()["message"]
    assert services.database.count("executions") == 0


def test_a_body_over_a_mebibyte_is_a_413_with_a_reason(server: str, services: Services) -> None:
    body = execution_body("614")
    body["object"]["properties"] = {"notes": "x" * (1024 * 1024)}
    response = signed_post(server, "/actions/create_invoice", body)
    assert response.status_code == 413 and response.json()["status"] == "error"
    assert services.database.count("executions") == 0


@pytest.mark.parametrize("after", ["²", "١٢", "1e3"])
def test_an_options_page_that_is_not_a_position_is_a_400(server: str, services: Services, after: str) -> None:
    body = {
        "origin": {"portalId": PORTAL_ID},
        "inputFields": {"quickbooks_account": REALM_ID},
        "fetchOptions": {"after": after},
    }
    response = signed_post(server, "/options/customer", body)
    assert response.status_code == 400 and "after" in response.json()["message"]


def test_a_line_item_quickbooks_cannot_take_fails_by_name_and_writes_nothing(
    perform: Perform, services: Services, sims: Simulators, settings: Any
) -> None:
    deal = seed_deal(sims, line_items=[{"name": "Widget", "quantity": "NaN", "price": "10"}])

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "INVALID_LINE_ITEM", execution.failure_message
    assert f"Line item {deal['line_items'][0]} (Widget): quantity 'NaN'" in (execution.failure_message or "")
    assert [r for r in sims.qbo_requests() if r["method"] == "POST"] == []
    assert len(services.attempts.of(execution.id)) == 1, "failed at once, not retried"


def test_a_payment_amount_that_is_not_a_number_fails_by_name(perform: Perform, sims: Simulators, settings: Any) -> None:
    payment = seed_payment(sims, payment={"hs_initial_amount": "Infinity"})

    execution = perform(
        payment["payment"],
        action="create_payment_sales_receipt",
        object_type="0-101",
        inputs={"quickbooks_account": REALM_ID, "create_missing_products": "yes"},
    )

    assert execution.failure_reason == "INVALID_AMOUNT"
    assert "hs_initial_amount 'Infinity'" in (execution.failure_message or "")


# Generated bodies ----------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["²", "٦١٤", "614", "0-3", "DEAL", REALM_ID, "yes", "no", "NaN", "1" * 30]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "callbackId": st.one_of(values, st.builds(callback_id), st.text(min_size=250, max_size=300)),
        "origin": st.one_of(values, st.fixed_dictionaries({"portalId": st.one_of(st.just(PORTAL_ID), values)})),
        "object": st.one_of(
            values,
            st.fixed_dictionaries(
                {"objectId": st.one_of(st.just("614"), values), "objectType": st.one_of(st.just("DEAL"), values)},
                optional={"properties": values},
            ),
        ),
        "inputFields": st.one_of(
            values,
            st.dictionaries(
                st.sampled_from(
                    ["quickbooks_account", "customer", "products", "create_missing_products", "payment_terms", "bogus"]
                ),
                values,
            ),
        ),
    },
)


@RELAXED
@given(body=envelopes)
def test_any_signed_body_gets_200_or_a_4xx(server: str, services: Services, body: dict[str, Any]) -> None:
    response = signed_post(server, "/actions/create_invoice", json.dumps(body))
    assert response.status_code == 200 or 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.status_code != 200:
        assert response.json()["status"] == "error" and response.json()["message"]


line_numbers = st.one_of(
    st.none(),
    st.sampled_from(["1", "2.5", "0", "-1", "NaN", "Infinity", "1e400", "abc", "", " 3 ", "²", "99.999"]),
    st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False).map(str),
)
line_items = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=30).filter(str.strip)},
        optional={
            "quantity": line_numbers,
            "price": line_numbers,
            "discount": line_numbers,
            "hs_discount_percentage": line_numbers,
        },
    ),
    min_size=1,
    max_size=3,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(items=line_items)
def test_any_line_items_end_in_success_or_a_named_reason(
    perform: Perform, sims: Simulators, settings: Any, items: list[dict[str, Any]]
) -> None:
    deal = seed_deal(sims, line_items=[{k: v for k, v in item.items() if v is not None} for item in items])

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state in ("succeeded", "failed"), execution
    if execution.state == "failed":
        assert execution.failure_reason in REASONS and execution.failure_reason != "INTERNAL_ERROR", (
            execution.failure_reason,
            execution.failure_message,
        )

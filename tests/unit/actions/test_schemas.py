"""The HubSpot execution envelope and the invoice action's input fields."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from actions.create_invoice import InvoiceInputSchema
from actions.schemas import ExecutionRequestSchema, OptionsRequestSchema

OMIT = object()


def envelope(**overrides: Any) -> dict[str, Any]:
    """Return an execution request as HubSpot documents it; OMIT leaves a key out."""
    request: dict[str, Any] = {
        "callbackId": "ap-102670506-56776413549-7-0",
        "origin": {"portalId": 102670506, "actionDefinitionId": 10860211, "actionDefinitionVersion": 1},
        "context": {"source": "WORKFLOWS", "workflowId": 192814114},
        "object": {"objectId": 614, "objectType": "DEAL", "properties": {"amount": "1200", "dealname": None}},
        "inputFields": {"quickbooks_account": "9130355", "payment_terms": "3"},
    }
    request.update(overrides)
    return {key: value for key, value in request.items() if value is not OMIT}


def load_envelope(**overrides: Any) -> dict[str, Any]:
    return ExecutionRequestSchema().load(envelope(**overrides))


def errors_of_envelope(**overrides: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as raised:
        load_envelope(**overrides)
    return raised.value.messages  # type: ignore[return-value]


def invoice_inputs(**overrides: Any) -> dict[str, Any]:
    """Return the input fields of the invoice action."""
    return {"quickbooks_account": "9130355", **overrides}


def load_inputs(**overrides: Any) -> dict[str, Any]:
    return InvoiceInputSchema().load(invoice_inputs(**overrides))


def errors_of_inputs(data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as raised:
        InvoiceInputSchema().load(data)
    return raised.value.messages  # type: ignore[return-value]


# ExecutionRequestSchema --------------------------------------------------------------------------


def test_an_execution_request_loads_with_its_input_fields() -> None:
    loaded = load_envelope()
    assert loaded["callbackId"] == "ap-102670506-56776413549-7-0"
    assert loaded["origin"]["portalId"] == 102670506
    assert loaded["object"] == {
        "objectId": 614,
        "objectType": "DEAL",
        "properties": {"amount": "1200", "dealname": None},
    }
    assert loaded["inputs"] == {"quickbooks_account": "9130355", "payment_terms": "3"}


def test_input_values_under_the_older_fields_key_are_accepted() -> None:
    loaded = load_envelope(inputFields=OMIT, fields={"quickbooks_account": "9130355"})
    assert loaded["inputs"] == {"quickbooks_account": "9130355"}


def test_input_fields_win_over_the_older_key_when_both_are_sent() -> None:
    loaded = load_envelope(fields={"quickbooks_account": "old"})
    assert loaded["inputs"]["quickbooks_account"] == "9130355"


def test_a_request_without_inputs_has_empty_inputs() -> None:
    assert load_envelope(inputFields=OMIT)["inputs"] == {}


def test_unknown_envelope_keys_are_ignored() -> None:
    loaded = load_envelope(
        newTopLevelKey={"x": 1},
        origin={"portalId": 102670506, "extensionId": 7},
        object={"objectId": "614", "objectType": "DEAL", "objectTypeId": "0-3"},
    )
    assert "newTopLevelKey" not in loaded
    assert "extensionId" not in loaded["origin"]
    assert "objectTypeId" not in loaded["object"]


def test_a_portal_id_sent_as_text_is_read_as_a_number() -> None:
    assert load_envelope(origin={"portalId": "102670506"})["origin"]["portalId"] == 102670506


def test_object_properties_default_to_empty() -> None:
    assert load_envelope(object={"objectId": 614, "objectType": "DEAL"})["object"]["properties"] == {}


def test_the_callback_id_is_required() -> None:
    assert "callbackId" in errors_of_envelope(callbackId=OMIT)


def test_an_empty_callback_id_is_refused() -> None:
    assert "callbackId" in errors_of_envelope(callbackId="")


def test_the_portal_id_is_required() -> None:
    assert "portalId" in errors_of_envelope(origin={"actionDefinitionId": 1})["origin"]


def test_the_origin_is_required() -> None:
    assert "origin" in errors_of_envelope(origin=OMIT)


def test_the_object_is_required() -> None:
    assert "object" in errors_of_envelope(object=OMIT)


def test_the_object_id_is_required() -> None:
    assert "objectId" in errors_of_envelope(object={"objectType": "DEAL"})["object"]


def test_the_object_type_is_required() -> None:
    assert "objectType" in errors_of_envelope(object={"objectId": 614})["object"]


@pytest.mark.parametrize("object_id", [614, "614"])
def test_a_numeric_object_id_is_accepted(object_id: Any) -> None:
    assert load_envelope(object={"objectId": object_id, "objectType": "DEAL"})["object"]["objectId"] == object_id


@pytest.mark.parametrize("object_id", ["abc", "", "6-14", "-614", "61.4", True, None, [614]])
def test_an_object_id_that_is_not_a_number_is_refused(object_id: Any) -> None:
    errors = errors_of_envelope(object={"objectId": object_id, "objectType": "DEAL"})
    assert "objectId" in errors["object"]


@pytest.mark.parametrize("object_id", ["²", "٦١٤"])
def test_an_object_id_with_non_ascii_digits_is_refused(object_id: str) -> None:
    errors = errors_of_envelope(object={"objectId": object_id, "objectType": "DEAL"})
    assert "objectId" in errors["object"]


# InvoiceInputSchema ------------------------------------------------------------------------------


def test_invoice_inputs_load_with_their_defaults() -> None:
    assert load_inputs() == {
        "quickbooks_account": "9130355",
        "customer": "",
        "products": "",
        "create_missing_products": "no",
        "payment_terms": "",
    }


def test_an_unknown_input_field_is_refused() -> None:
    errors = errors_of_inputs(invoice_inputs(send_email="yes"))
    assert errors == {"send_email": ["Unknown field."]}


def test_the_quickbooks_account_is_required() -> None:
    assert "quickbooks_account" in errors_of_inputs({"payment_terms": "3"})


def test_an_empty_quickbooks_account_is_refused() -> None:
    assert "quickbooks_account" in errors_of_inputs({"quickbooks_account": "  "})


@pytest.mark.parametrize("value", ["YES", "Yes", " yes ", True])
def test_create_missing_products_yes_is_normalised(value: Any) -> None:
    assert load_inputs(create_missing_products=value)["create_missing_products"] == "yes"


@pytest.mark.parametrize("value", ["NO", "no", False])
def test_create_missing_products_no_is_normalised(value: Any) -> None:
    assert load_inputs(create_missing_products=value)["create_missing_products"] == "no"


def test_create_missing_products_refuses_other_values() -> None:
    assert "create_missing_products" in errors_of_inputs(invoice_inputs(create_missing_products="maybe"))


def test_values_wrapped_in_a_value_object_are_unwrapped() -> None:
    loaded = load_inputs(
        quickbooks_account={"value": " 9130355 "},
        payment_terms={"value": 3},
        create_missing_products={"value": "yes"},
    )
    assert loaded["quickbooks_account"] == "9130355"
    assert loaded["payment_terms"] == "3"
    assert loaded["create_missing_products"] == "yes"


def test_a_wrapped_upper_case_yes_is_normalised() -> None:
    assert load_inputs(create_missing_products={"value": "YES"})["create_missing_products"] == "yes"


def test_numbers_are_read_as_text_ids() -> None:
    assert load_inputs(quickbooks_account=9130355, customer=58)["customer"] == "58"


def test_an_id_longer_than_32_characters_is_refused() -> None:
    assert "customer" in errors_of_inputs(invoice_inputs(customer="1" * 33))


@pytest.mark.parametrize("object_id", ["1" * 21, 10**21])
def test_an_object_id_longer_than_hubspot_ids_is_refused(object_id: Any) -> None:
    errors = errors_of_envelope(object={"objectId": object_id, "objectType": "DEAL"})
    assert "at most 20 digits" in str(errors["object"]["objectId"])


@pytest.mark.parametrize("portal_id", [0, -5, 2**31, "99999999999"])
def test_a_portal_id_outside_what_hubspot_issues_is_refused(portal_id: Any) -> None:
    assert "portalId" in errors_of_envelope(origin={"portalId": portal_id})["origin"]


@pytest.mark.parametrize(
    "fetch",
    [
        {"after": "²"},
        {"after": "١٢"},
        {"after": "-1"},
        {"after": "1e3"},
        {"after": "9" * 12},
        {"q": "x" * 101},
        {"q": ["a"]},
    ],
)
def test_options_paging_and_search_that_are_not_what_they_look_like_are_refused(fetch: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        OptionsRequestSchema().load({"origin": {"portalId": 102670506}, "fetchOptions": fetch})
    assert "fetchOptions" in raised.value.messages


def test_options_paging_from_this_server_is_accepted() -> None:
    loaded = OptionsRequestSchema().load(
        {"origin": {"portalId": 102670506}, "fetchOptions": {"after": "101", "q": "Acme"}}
    )
    assert loaded["fetchOptions"] == {"after": "101", "q": "Acme"}

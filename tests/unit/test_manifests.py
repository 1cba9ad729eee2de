"""The action definitions in manifests/: complete, consistent with the code, and accepted by HubSpot's models."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hubspot.automation.actions import models
from hubspot.automation.actions.configuration import Configuration
from marshmallow.validate import OneOf

from actions.cli import cli
from actions.manifests import MANIFESTS, PLACEHOLDER, load, render
from actions.options import PROVIDERS
from actions.registry import ActionSpec, all_actions
from services.books import payments
from services.books.documents import output_fields
from services.books.failures import NOT_REPORTED, REASONS
from services.config import REQUIRED
from services.hubspot.objects import payment_properties
from services.hubspot.outputs import failed as failure_outputs
from services.store.records import PaymentClaim
from services.work.handlers import HANDLERS

BASE_URL = "https://qbo.example.com"
SPECS = all_actions()
# Reasons any action can end with: lost connections, the record read, refusals and outages of either side
# (services.books.failures.failure_for), unexpected errors, a currency the QuickBooks company cannot take, and an
# amount of the record it cannot take (the amount billed with a chosen product, a payment's amount, fee or refund).
GENERAL_REASONS = {
    "QUICKBOOKS_NOT_CONNECTED",
    "HUBSPOT_NOT_CONNECTED",
    "RECORD_NOT_FOUND",
    "QUICKBOOKS_REJECTED",
    "HUBSPOT_REJECTED",
    "QUICKBOOKS_UNAVAILABLE",
    "HUBSPOT_UNAVAILABLE",
    "SERVER_UNAVAILABLE",
    "INTERNAL_ERROR",
    "CANCELLED",
    "CURRENCY_MISMATCH",
    "INVALID_AMOUNT",
}
# Reasons of booking line items for a customer (services.books: customers, items, sales and documents):
# every action with a product input books lines for a customer, and may create missing products.
LINE_REASONS = {
    "CONTACT_NOT_ELIGIBLE",
    "NO_CONTACT",
    "NO_LINE_ITEMS",
    "LINE_ITEM_NOT_MATCHED",
    "INVALID_LINE_ITEM",
    "AMOUNT_MISSING",
    "TAX_CODE_NOT_SET",
    "SETTINGS_INCOMPLETE",
}
# The checks of services.books.payments, per payment action. Every payment action claims its document first, so it
# can also find another execution booking it (DOCUMENT_IN_PROGRESS). The fee expense books no lines, but
# fails with SETTINGS_INCOMPLETE when the account the fee is paid from no longer exists.
PAYMENT_REASONS = {
    "create_paid_invoice": {"PAYMENT_NOT_SETTLED", "PAYMENT_FROM_INVOICE", "TAXABLE_LINE_ITEMS"},
    "create_payment_sales_receipt": {"PAYMENT_NOT_SETTLED", "PAYMENT_FROM_INVOICE"},
    "create_fee_expense": {"PAYMENT_NOT_SETTLED", "SETTINGS_INCOMPLETE"},
    "create_refund_receipt": {"PAYMENT_NOT_REFUNDED", "PARTIAL_REFUND"},
}
DOCUMENT_KINDS = {"create_invoice": "Invoice", "create_estimate": "Estimate", "create_sales_receipt": "SalesReceipt"}
TEMPLATE = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")

# The client's model classes validate required keys and enums only when asked to.
STRICT = Configuration()
STRICT.client_side_validation = True

# The generated PublicActionDefinitionInputFieldDependenciesInner flattens HubSpot's oneOf and accepts only
# CONDITIONAL_SINGLE_FIELD; a dependency is checked against the variant its dependencyType names.
DEPENDENCY_MODELS = {
    "SINGLE_FIELD": models.PublicSingleFieldDependency,
    "CONDITIONAL_SINGLE_FIELD": models.PublicConditionalSingleFieldDependency,
}
PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "bool": (bool,), "int": (int,), "float": (int, float)}


def build(data: Any, type_name: str, where: str = "definition") -> Any:
    """Build the client's model for ``data``, refusing unknown keys, wrong types, missing keys and bad enums."""
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{where}: expected a list"
        return [build(item, type_name[5:-1], f"{where}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict["):
        assert isinstance(data, dict), f"{where}: expected an object"
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {key: build(value, value_type, f"{where}.{key}") for key, value in data.items()}
    if type_name == "object":
        return data
    if type_name in PRIMITIVES:
        ok = isinstance(data, PRIMITIVES[type_name]) and (type_name == "bool" or not isinstance(data, bool))
        assert ok, f"{where}: expected {type_name}, got {data!r}"
        return data
    klass = getattr(models, type_name)
    assert isinstance(data, dict), f"{where}: expected an object for {type_name}"
    if klass is models.PublicActionDefinitionInputFieldDependenciesInner:
        assert data.get("dependencyType") in DEPENDENCY_MODELS, f"{where}: unknown dependencyType"
        klass = DEPENDENCY_MODELS[data["dependencyType"]]
    unknown = set(data) - set(klass.attribute_map.values())
    assert not unknown, f"{where}: keys {sorted(unknown)} are not part of {klass.__name__}"
    kwargs = {
        attr: build(data[key], klass.openapi_types[attr], f"{where}.{key}")
        for attr, key in klass.attribute_map.items()
        if key in data
    }
    return klass(**kwargs, local_vars_configuration=STRICT)


def rendered(spec: ActionSpec) -> dict[str, Any]:
    return render(load(spec.manifest), BASE_URL)


def field_names(fields: list[dict[str, Any]]) -> list[str]:
    return [field["typeDefinition"]["name"] for field in fields]


def is_payment_action(spec: ActionSpec) -> bool:
    return HANDLERS[spec.name].__module__ == payments.__name__


def expected_reasons(spec: ActionSpec) -> list[str]:
    """The failure reasons an action can produce, in the order of REASONS."""
    inputs = spec.input_schema().fields
    wanted = set(GENERAL_REASONS)
    if "products" in inputs:
        wanted |= LINE_REASONS
    if "payment_terms" in inputs:
        wanted.add("PAYMENT_TERM_NOT_FOUND")
    if is_payment_action(spec):
        wanted |= PAYMENT_REASONS[spec.name] | {"DOCUMENT_IN_PROGRESS"}
    return [r for r in REASONS if r in wanted]


def static_choices(spec: ActionSpec) -> dict[str, set[str]]:
    """The inputs with a fixed set of values (yes/no and the like), from the input schema's validators."""
    return {
        name: set(validator.choices)
        for name, field in spec.input_schema().fields.items()
        for validator in field.validators
        if isinstance(validator, OneOf)
    }


def success_output_names(spec: ActionSpec, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    if not is_payment_action(spec):
        run = SimpleNamespace(realm_id="9130355", app_url="https://qbo")
        return list(output_fields(run, DOCUMENT_KINDS[spec.name], {"id": "145"}, "58"))  # type: ignore[arg-type]
    return payment_output_names(spec, monkeypatch)


def payment_output_names(spec: ActionSpec, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run a payment handler past its checks and QuickBooks writes; return every key it can answer with."""
    document = {"id": "145", "number": "1001", "total": 100, "currency": "USD"}
    kinds: list[str] = []
    monkeypatch.setattr(payments, "claim", lambda run, payment, kind: kinds.append(kind))
    monkeypatch.setattr(payments, "customer_for", lambda run, contact_id: "58")
    monkeypatch.setattr(payments, "_paid_lines", lambda run, tax, record, amount: ([], ""))
    monkeypatch.setattr(payments, "_single_refund_line", lambda run, tax, record, payment: {})
    monkeypatch.setattr(payments, "create_document", lambda run, kind, body, **_: document)
    monkeypatch.setattr(payments, "_finish", lambda run, payment, kind, outputs: outputs)
    run = SimpleNamespace(
        realm_id="9130355",
        tenant=None,
        inputs=(inputs := {"payment_account": "35", "expense_account": "80", "refund_account": "35"}),
        choice=lambda name: inputs.get(name, ""),
        required_choice=lambda name, what: inputs[name],
        qbo=SimpleNamespace(query=lambda _: [{"Id": "35", "AccountType": "Bank"}]),
        app_url="https://qbo",
        execution=SimpleNamespace(id="e-2"),
    )
    record = SimpleNamespace(contact_id="51")
    names: list[str] = []
    for fee in (Decimal("2.90"), Decimal(0)):  # the fee expense answers differently without a fee
        payment = payments.Payment("7", Decimal(100), "USD", "refunded", fee, Decimal(100), "", "", date.today())
        monkeypatch.setattr(
            payments, "_prepare", lambda run, kind, payment=payment: (record, payment, None, None, None)
        )
        outputs = HANDLERS[spec.name](run)  # type: ignore[arg-type]
        names += [key for key in outputs if key not in names]
    # An execution for a payment whose document another execution booked answers with that one's outputs.
    holder = PaymentClaim(
        102670506, "9130355", "7", kinds[0], "e-1", "succeeded", {"hs_execution_state": "SUCCESS", **outputs}, None
    )
    run.ledger = SimpleNamespace(claim_payment_document=lambda *_: holder)
    monkeypatch.undo()
    duplicate = payments.claim(run, payment, kinds[0])  # type: ignore[arg-type]
    assert duplicate is not None
    return names + [key for key in duplicate if key not in names and key != "hs_execution_state"]


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


params = pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])


@params
def test_every_action_has_its_manifest_file(spec: ActionSpec) -> None:
    assert (MANIFESTS / spec.manifest).is_file()
    definition = load(spec.manifest)
    assert definition["labels"]["en"]["actionName"] == spec.label
    assert definition["objectTypes"] and all(spec.accepts(t) for t in definition["objectTypes"])


@params
def test_input_fields_are_the_input_schema_fields(spec: ActionSpec) -> None:
    names = field_names(load(spec.manifest)["inputFields"])
    assert len(names) == len(set(names))
    assert set(names) == set(spec.input_schema().fields)


@params
def test_manifest_deserialises_into_the_hubspot_client_models(spec: ActionSpec) -> None:
    egg = build(rendered(spec), "PublicActionDefinitionEgg")
    assert isinstance(egg, models.PublicActionDefinitionEgg)
    assert egg.action_url == f"{BASE_URL}{spec.path}"
    assert all(isinstance(field, models.InputFieldDefinition) for field in egg.input_fields)
    assert all(isinstance(field.type_definition, models.FieldTypeDefinition) for field in egg.input_fields)
    assert all(isinstance(field, models.OutputFieldDefinition) for field in egg.output_fields)
    assert all(isinstance(rule, models.PublicExecutionTranslationRule) for rule in egg.execution_rules)
    assert isinstance(egg.labels["en"], models.PublicActionLabels)
    assert egg.functions == []


def test_model_check_refuses_bad_enums_and_missing_keys() -> None:
    good = rendered(SPECS[0])
    build(good, "PublicActionDefinitionEgg")
    bad_enum = copy.deepcopy(good)
    bad_enum["inputFields"][0]["typeDefinition"]["fieldType"] = "dropdown"
    with pytest.raises(ValueError, match="field_type"):
        build(bad_enum, "PublicActionDefinitionEgg")
    missing = copy.deepcopy(good)
    del missing["inputFields"][0]["isRequired"]
    with pytest.raises(ValueError, match="is_required"):
        build(missing, "PublicActionDefinitionEgg")
    unknown = copy.deepcopy(good)
    unknown["inputFields"][0]["typeDefinition"]["optionsURL"] = BASE_URL
    with pytest.raises(AssertionError, match="optionsURL"):
        build(unknown, "PublicActionDefinitionEgg")


@params
def test_rendering_fills_in_the_base_url_everywhere(spec: ActionSpec) -> None:
    stored = json.dumps(load(spec.manifest))
    definition = rendered(spec)
    assert PLACEHOLDER in stored
    assert PLACEHOLDER not in json.dumps(definition)
    urls = [s for s in strings(definition) if "://" in s]
    assert definition["actionUrl"] in urls
    assert all(url.startswith(f"{BASE_URL}/") for url in urls)


@params
def test_options_urls_point_at_served_fields(spec: ActionSpec) -> None:
    inputs = rendered(spec)["inputFields"]
    external = [field["typeDefinition"] for field in inputs if field["typeDefinition"].get("optionsUrl")]
    assert external
    for td in external:
        assert td["externalOptions"] is True
        assert td["optionsUrl"] == f"{BASE_URL}/options/{td['name']}"
        assert td["name"] in PROVIDERS


@params
def test_every_failure_reason_has_an_execution_rule_and_a_label(spec: ActionSpec) -> None:
    definition = load(spec.manifest)
    reasons = expected_reasons(spec)
    rules = {rule["conditions"]["failure_reason"][0]: rule for rule in definition["executionRules"]}
    assert all(list(rule["conditions"]) == ["failure_reason"] for rule in definition["executionRules"])
    assert all(len(rule["conditions"]["failure_reason"]) == 1 for rule in definition["executionRules"])
    assert sorted(rules) == sorted(reasons)
    labels = definition["labels"]["en"]["executionRules"]
    assert set(labels) == {rule["labelName"] for rule in rules.values()}
    outputs = set(field_names(definition["outputFields"]))
    for reason in reasons:
        text = labels[rules[reason]["labelName"]]
        assert text.startswith(REASONS[reason])
        assert set(TEMPLATE.findall(text)) <= outputs
        if "failure message" in REASONS[reason]:
            assert "failure_message" in TEMPLATE.findall(text)
    failure_reason = next(f for f in definition["outputFields"] if f["typeDefinition"]["name"] == "failure_reason")
    assert failure_reason["typeDefinition"]["type"] == "enumeration"
    assert [o["value"] for o in failure_reason["typeDefinition"]["options"]] == reasons


def test_every_failure_reason_is_reported_by_some_action() -> None:
    assert set().union(*(expected_reasons(spec) for spec in SPECS)) == set(REASONS) - NOT_REPORTED
    assert set().union(*PAYMENT_REASONS.values()) <= set(REASONS)
    assert set(PAYMENT_REASONS) == {spec.name for spec in SPECS if is_payment_action(spec)}


@params
def test_output_fields_are_what_the_action_returns(spec: ActionSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    definition = load(spec.manifest)
    failure_keys = [key for key in failure_outputs("INTERNAL_ERROR", "x") if not key.startswith("hs_")]
    assert field_names(definition["outputFields"]) == success_output_names(spec, monkeypatch) + failure_keys


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if is_payment_action(s)], ids=[s.name for s in SPECS if is_payment_action(s)]
)
def test_payment_actions_request_every_payment_property(spec: ActionSpec) -> None:
    definition = load(spec.manifest)
    assert definition["objectTypes"] == ["0-101"]
    assert definition["objectRequestOptions"] == {"properties": payment_properties()}


@params
def test_every_field_has_builder_facing_text(spec: ActionSpec) -> None:
    definition = load(spec.manifest)
    labels = definition["labels"]["en"]
    inputs = field_names(definition["inputFields"])
    assert labels["appDisplayName"] == "QuickBooks Actions"
    assert labels["actionDescription"] and labels["actionCardContent"]
    assert set(labels["inputFieldLabels"]) == set(inputs)
    assert set(labels["inputFieldDescriptions"]) == set(inputs)
    assert set(labels["outputFieldLabels"]) == set(field_names(definition["outputFields"]))
    static = {
        field["typeDefinition"]["name"]: {o["value"] for o in field["typeDefinition"]["options"]}
        for field in definition["inputFields"]
        if field["typeDefinition"]["options"]
    }
    assert static == static_choices(spec)
    assert "create_missing_products" in static or "products" not in inputs
    assert {k: set(v) for k, v in labels["inputFieldOptionLabels"].items()} == static


@params
def test_dropdowns_depend_on_the_quickbooks_company(spec: ActionSpec) -> None:
    definition = load(spec.manifest)
    inputs = {field["typeDefinition"]["name"]: field for field in definition["inputFields"]}
    schema_fields = spec.input_schema().fields
    assert inputs["quickbooks_account"]["isRequired"] is True
    assert {name: field["isRequired"] for name, field in inputs.items()} == {
        name: field.required for name, field in schema_fields.items()
    }
    # Every input without fixed values is a dropdown of the chosen company's records.
    external = {name for name, field in inputs.items() if field["typeDefinition"].get("optionsUrl")}
    assert external == set(inputs) - set(static_choices(spec))
    assert definition["inputFieldDependencies"] == [
        {
            "dependencyType": "SINGLE_FIELD",
            "controllingFieldName": "quickbooks_account",
            "dependentFieldNames": [name for name in inputs if name in external and name != "quickbooks_account"],
        }
    ]


def test_cli_renders_every_manifest_to_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "definitions"
    unconfigured = {name: None for name in REQUIRED}
    result = CliRunner(env=unconfigured).invoke(cli, ["manifests", "render", "--base-url", BASE_URL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(spec.manifest for spec in SPECS)
    for spec in SPECS:
        text = (out / spec.manifest).read_text()
        assert PLACEHOLDER not in text
        written = json.loads(text)
        assert written == rendered(spec)
        assert written["actionUrl"] == f"{BASE_URL}{spec.path}"

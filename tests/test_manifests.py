"""The action definitions in manifests/: complete, consistent with the code, and accepted by HubSpot's models."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hubspot.automation.actions import models
from hubspot.automation.actions.configuration import Configuration

from actions.cli import cli
from actions.manifests import MANIFESTS, PLACEHOLDER, load, render
from actions.options import PROVIDERS
from actions.registry import ActionSpec, all_actions
from services.config import REQUIRED
from services.documents import output_fields
from services.jobs import failure_outputs
from services.reasons import REASONS

BASE_URL = "https://qbo.example.com"
SPECS = all_actions()
PAYMENT_ONLY = {
    "TAXABLE_LINE_ITEMS",
    "PAYMENT_FROM_INVOICE",
    "PAYMENT_NOT_SETTLED",
    "PAYMENT_NOT_REFUNDED",
    "PARTIAL_REFUND",
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


def expected_reasons(spec: ActionSpec) -> list[str]:
    """The failure reasons a sales action can produce: payment terms fail only where the action has them."""
    has_terms = "payment_terms" in spec.input_schema().fields
    return [r for r in REASONS if r not in PAYMENT_ONLY and (has_terms or r != "PAYMENT_TERM_NOT_FOUND")]


def success_output_names(spec: ActionSpec) -> list[str]:
    run = SimpleNamespace(
        realm_id="9130355", services=SimpleNamespace(config=SimpleNamespace(quickbooks_app_url="https://qbo"))
    )
    return list(output_fields(run, DOCUMENT_KINDS[spec.name], {"id": "145"}, "58"))  # type: ignore[arg-type]


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


@params
def test_output_fields_are_what_the_action_returns(spec: ActionSpec) -> None:
    definition = load(spec.manifest)
    failure_keys = [key for key in failure_outputs("INTERNAL_ERROR", "x") if not key.startswith("hs_")]
    assert field_names(definition["outputFields"]) == success_output_names(spec) + failure_keys


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
    assert static == {"create_missing_products": {"yes", "no"}}
    assert {k: set(v) for k, v in labels["inputFieldOptionLabels"].items()} == static


@params
def test_dropdowns_depend_on_the_quickbooks_company(spec: ActionSpec) -> None:
    definition = load(spec.manifest)
    inputs = {field["typeDefinition"]["name"]: field for field in definition["inputFields"]}
    assert inputs["quickbooks_account"]["isRequired"] is True
    assert not any(field["isRequired"] for name, field in inputs.items() if name != "quickbooks_account")
    dependents = {name for name in ("payment_terms", "customer", "products") if name in inputs}
    assert definition["inputFieldDependencies"] == [
        {
            "dependencyType": "SINGLE_FIELD",
            "controllingFieldName": "quickbooks_account",
            "dependentFieldNames": [name for name in inputs if name in dependents],
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

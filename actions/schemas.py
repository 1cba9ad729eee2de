"""Request schemas: the HubSpot envelope and the input fields shared by the actions."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, pre_load, validates_schema
from marshmallow.validate import Length, OneOf, Range

YES_NO = ("yes", "no")
# HubSpot record ids are 64-bit numbers (at most 20 digits); portal ids fit the database's 32-bit integer.
OBJECT_ID = re.compile(r"[0-9]{1,20}")
PORTAL_ID_MAX = 2**31 - 1
# Options paging: HubSpot hands back the `after` we gave it, a 1-based QuickBooks position.
AFTER = re.compile(r"[0-9]{1,9}")
SEARCH_MAX = 100


def problems(invalid: ValidationError) -> str:
    """Return a schema's complaints as one sentence that names each bad field."""
    messages = invalid.messages if isinstance(invalid.messages, dict) else {"_schema": invalid.messages}
    return "; ".join(
        f"{name}: {' '.join(map(str, why)) if isinstance(why, list) else why}" for name, why in messages.items()
    )


class OriginSchema(Schema):
    """Where the request comes from."""

    class Meta:
        unknown = EXCLUDE

    portalId = fields.Integer(required=True, strict=False, validate=Range(min=1, max=PORTAL_ID_MAX))
    actionDefinitionId = fields.Integer(load_default=None)
    actionDefinitionVersion = fields.Integer(load_default=None)


class ObjectSchema(Schema):
    """The enrolled record."""

    class Meta:
        unknown = EXCLUDE

    objectId = fields.Raw(required=True)
    objectType = fields.String(required=True, validate=Length(min=1, max=64))
    properties = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)

    @validates_schema
    def _object_id(self, data: dict[str, Any], **_: Any) -> None:
        value = data.get("objectId")
        # ASCII digits only: "²".isdigit() is true, and other scripts' digits are not ids either.
        if isinstance(value, bool) or not isinstance(value, int | str) or not OBJECT_ID.fullmatch(str(value).strip()):
            raise ValidationError("must be a numeric id of at most 20 digits", "objectId")


class ExecutionRequestSchema(Schema):
    """An execution request; unknown envelope keys are ignored, as HubSpot adds keys over time."""

    class Meta:
        unknown = EXCLUDE

    callbackId = fields.String(required=True, validate=Length(min=1, max=255))
    origin = fields.Nested(OriginSchema, required=True)
    object = fields.Nested(ObjectSchema, required=True)
    context = fields.Dict(load_default=dict)
    inputFields = fields.Dict(keys=fields.String(), load_default=None)
    # Older documentation and tools send the input values under this key.
    fields_ = fields.Dict(keys=fields.String(), data_key="fields", load_default=None)

    @post_load
    def _inputs(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        inputs = data.pop("inputFields", None)
        legacy = data.pop("fields_", None)
        data["inputs"] = inputs if inputs is not None else (legacy or {})
        return data


class OptionsRequestSchema(Schema):
    """A request for the options of a dropdown."""

    class Meta:
        unknown = EXCLUDE

    origin = fields.Nested(OriginSchema, required=True)
    inputFieldName = fields.String(load_default=None)
    objectTypeId = fields.String(load_default=None)
    inputFields = fields.Dict(keys=fields.String(), load_default=dict)
    fetchOptions = fields.Dict(load_default=dict)

    @validates_schema
    def _fetch_options(self, data: dict[str, Any], **_: Any) -> None:
        fetch = data.get("fetchOptions") or {}
        after, text = fetch.get("after"), fetch.get("q")
        if after not in (None, "") and not AFTER.fullmatch(str(after)):
            raise ValidationError("after must be the page position this server handed out", "fetchOptions")
        if text is not None and (not isinstance(text, str) or len(text) > SEARCH_MAX):
            raise ValidationError(f"q must be text of at most {SEARCH_MAX} characters", "fetchOptions")


def _plain(value: Any) -> Any:
    """Unwrap a value HubSpot sent as {"value": ...} (property-sourced inputs) and trim text."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    return value.strip() if isinstance(value, str) else value


class InputSchema(Schema):
    """Base of the action input schemas: unknown inputs are refused, values are normalised."""

    class Meta:
        unknown = RAISE

    # Inputs whose values are yes/no, compared in lower case.
    yes_no_fields: tuple[str, ...] = ("create_missing_products",)

    @pre_load
    def _normalise(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        plain = {key: _plain(value) for key, value in data.items()}
        for key in self.yes_no_fields:
            if isinstance(plain.get(key), str):
                plain[key] = plain[key].lower()
        return plain


def id_field(required: bool = False) -> fields.String:
    """Return a field holding a QuickBooks id (or empty when optional)."""
    if required:
        return fields.String(required=True, validate=Length(min=1, max=32))
    return fields.String(load_default="", validate=Length(max=32))


class SalesInputSchema(InputSchema):
    """Inputs shared by the invoice, estimate and sales receipt actions."""

    quickbooks_account = fields.String(required=True, validate=Length(min=1, max=32))
    customer = id_field()
    products = id_field()
    create_missing_products = fields.String(load_default="no", validate=OneOf(YES_NO))


class PaymentDocumentInputSchema(InputSchema):
    """Inputs shared by the payment actions that book lines (paid invoice, sales receipt, refund receipt)."""

    yes_no_fields = ("create_missing_products", "allow_invoice_payments")

    quickbooks_account = fields.String(required=True, validate=Length(min=1, max=32))
    customer = id_field()
    products = id_field()
    create_missing_products = fields.String(load_default="no", validate=OneOf(YES_NO))
    payment_method = id_field()


class PaidInputSchema(PaymentDocumentInputSchema):
    """Inputs of the paid invoice and payment sales receipt actions."""

    deposit_account = id_field()
    allow_invoice_payments = fields.String(load_default="no", validate=OneOf(YES_NO))


class FeeExpenseInputSchema(InputSchema):
    """Inputs of the fee expense action."""

    quickbooks_account = fields.String(required=True, validate=Length(min=1, max=32))
    # Empty: the company's default (its settings page); the action fails SETTINGS_INCOMPLETE without either.
    payment_account = id_field()
    expense_account = id_field()
    payee = id_field()


class RefundReceiptInputSchema(PaymentDocumentInputSchema):
    """Inputs of the refund receipt action."""

    refund_account = id_field()
    partial_refunds = fields.String(load_default="reject", validate=OneOf(("reject", "single_line")))

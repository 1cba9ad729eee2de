"""The registry of workflow actions this server offers."""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import Schema


@dataclass(frozen=True)
class ActionSpec:
    """One workflow action: its URL name, the records it works on, its inputs and its manifest."""

    name: str
    label: str
    object_types: tuple[str, ...]
    input_schema: type[Schema]
    manifest: str

    @property
    def path(self) -> str:
        """Return the path of the action URL."""
        return f"/actions/{self.name}"

    def accepts(self, object_type: str) -> bool:
        """Tell whether the action works on records of this type."""
        return object_type.upper() in self.object_types


def all_actions() -> tuple[ActionSpec, ...]:
    """Return every action, one module each."""
    from actions import (
        create_estimate,
        create_fee_expense,
        create_invoice,
        create_paid_invoice,
        create_payment_sales_receipt,
        create_refund_receipt,
        create_sales_receipt,
    )

    return (
        create_invoice.SPEC,
        create_estimate.SPEC,
        create_sales_receipt.SPEC,
        create_paid_invoice.SPEC,
        create_payment_sales_receipt.SPEC,
        create_fee_expense.SPEC,
        create_refund_receipt.SPEC,
    )


def by_name() -> dict[str, ActionSpec]:
    """Return the actions keyed by name."""
    return {spec.name: spec for spec in all_actions()}

"""Document lines: tax codes, the one QuickBooks sales line builder, discounts and adjustments to what was paid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.books.company import CompanyProfile
from services.books.failures import ActionFailure
from services.books.money import NotAnAmountError, cents, money, number, strict_money
from services.books.text import text
from services.hubspot.client import CrmObject
from services.quickbooks.query import ref

DESCRIPTION_MAX = 4000
SALES = "SalesItemLineDetail"
DISCOUNT = "DiscountLineDetail"


def is_taxable(line_item: CrmObject) -> bool:
    """Treat a line as taxable when it carries a non-zero tax rate or tax amount."""
    props = line_item.properties
    return money(props.get("hs_tax_rate")) != 0 or money(props.get("hs_tax_amount")) != 0


@dataclass(frozen=True)
class TaxCodes:
    """The tax code of each line: TAX/NON in the US, the company's configured codes elsewhere."""

    profile: CompanyProfile
    settings: dict[str, Any]
    realm_id: str

    def code(self, taxable: bool) -> str:
        """Return the line tax code; fail with TAX_CODE_NOT_SET outside the US when none is configured."""
        if self.profile.is_us:
            return "TAX" if taxable else "NON"
        default = str(self.settings.get("default_tax_code") or "")
        if not default:
            raise ActionFailure(
                "TAX_CODE_NOT_SET",
                f"QuickBooks company {self.realm_id} is outside the US ({self.profile.country}) and needs a tax code "
                "on every line, but none is set. Set default_tax_code (and exempt_tax_code for untaxed lines) in the "
                "company settings.",
            )
        return default if taxable else str(self.settings.get("exempt_tax_code") or default)


def sales_line(
    item: dict[str, str],
    amount: Decimal,
    *,
    tax_code: str,
    quantity: Decimal = Decimal(1),
    unit_price: Decimal | None = None,
    description: str = "",
) -> dict[str, Any]:
    """Build one SalesItemLine (the only place that spells its shape)."""
    line: dict[str, Any] = {
        "DetailType": SALES,
        "Amount": number(amount),
        SALES: {
            "ItemRef": item,
            "Qty": number(quantity),
            "UnitPrice": number(amount if unit_price is None else unit_price),
            "TaxCodeRef": ref(tax_code),
        },
    }
    if description.strip():
        line["Description"] = description.strip()[:DESCRIPTION_MAX]
    return line


def discount_line(amount: Decimal, description: str) -> dict[str, Any]:
    """Build one DiscountLine for a fixed amount."""
    return {
        "DetailType": DISCOUNT,
        "Amount": number(amount),
        "Description": description,
        DISCOUNT: {"PercentBased": False},
    }


@dataclass(frozen=True)
class LineFigures:
    """A line item's numbers, checked: a quantity above zero, a price, discount and percentage not below it."""

    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    discount_percentage: Decimal

    @classmethod
    def of(cls, line_item: CrmObject) -> LineFigures:
        """Read a line item's numbers; fail with INVALID_LINE_ITEM naming the line and what is wrong."""
        props = line_item.properties

        def figure(
            name: str, default: str, *, least: Decimal, exclusive: bool = False, most: Decimal | None = None
        ) -> Decimal:
            raw = props.get(name)
            try:
                value = strict_money(raw, default)
            except NotAnAmountError as problem:
                raise invalid_line_item(line_item, f"{name} {text(raw)!r} {problem}") from None
            if value < least or (exclusive and value == least) or (most is not None and value > most):
                bound = f"above {least}" if exclusive else f"at least {least}"
                limit = f" and at most {most}" if most is not None else ""
                raise invalid_line_item(line_item, f"{name} {text(raw)!r} must be {bound}{limit}")
            return value

        return cls(
            quantity=figure("quantity", "1", least=Decimal(0), exclusive=True),
            unit_price=figure("price", "0", least=Decimal(0)),
            discount=figure("discount", "0", least=Decimal(0)),
            discount_percentage=figure("hs_discount_percentage", "0", least=Decimal(0), most=Decimal(100)),
        )


def invalid_line_item(line_item: CrmObject, problem: str) -> ActionFailure:
    """Return the failure of a line item whose numbers QuickBooks cannot take."""
    name = text(line_item.properties.get("name")) or "without a name"
    return ActionFailure(
        "INVALID_LINE_ITEM",
        f"Line item {line_item.id} ({name}): {problem}, so nothing was created. Correct it in HubSpot, then retry.",
        line_item_ids=[line_item.id],
    )


def check_line_items(line_items: Sequence[CrmObject]) -> None:
    """Fail before anything is written when a line item's numbers cannot become a QuickBooks line."""
    for line_item in line_items:
        LineFigures.of(line_item)


def line_item_lines(line_items: Sequence[CrmObject], items: dict[str, str], tax: TaxCodes) -> list[dict[str, Any]]:
    """Build a sales line per line item, plus one discount line for the line items' discounts."""
    lines: list[dict[str, Any]] = []
    discount_total = Decimal(0)
    for line_item in line_items:
        props = line_item.properties
        figures = LineFigures.of(line_item)
        quantity, unit_price = figures.quantity, figures.unit_price
        gross = cents(quantity * unit_price)
        if figures.discount:
            discount_total += cents(figures.discount * quantity)
        elif figures.discount_percentage:
            discount_total += cents(gross * figures.discount_percentage / 100)
        lines.append(
            sales_line(
                ref(items[line_item.id]),
                gross,
                tax_code=tax.code(is_taxable(line_item)),
                quantity=quantity,
                unit_price=unit_price,
                description=str(props.get("description") or props.get("name") or ""),
            )
        )
    if discount_total:
        lines.append(discount_line(discount_total, "Discounts from HubSpot line items"))
    if lines_total(lines) < 0:
        raise ActionFailure(
            "INVALID_LINE_ITEM",
            f"The line items' discounts ({discount_total}) are larger than what they bill, and QuickBooks refuses a "
            "document whose total is below zero. Correct the discounts in HubSpot, then retry.",
            line_item_ids=[li.id for li in line_items],
        )
    return lines


def lines_total(lines: Sequence[dict[str, Any]]) -> Decimal:
    """Return what the lines add up to before tax (sales lines less discounts)."""
    total = Decimal(0)
    for line in lines:
        amount = money(line.get("Amount"))
        total += -amount if line["DetailType"] == DISCOUNT else amount
    return cents(total)


def adjusted_to(lines: list[dict[str, Any]], amount: Decimal, tax: TaxCodes) -> tuple[list[dict[str, Any]], str]:
    """Return the lines made to add up to ``amount`` (what was paid), and a note when they did not."""
    total = lines_total(lines)
    if total == amount:
        return lines, ""
    difference = cents(amount - total)
    if difference < 0:
        adjustment = discount_line(-difference, "Adjustment to the amount paid in HubSpot")
    else:
        first_item = next(line for line in lines if line["DetailType"] == SALES)
        adjustment = sales_line(
            first_item[SALES]["ItemRef"],
            difference,
            tax_code=tax.code(False),
            description="Amount paid beyond the line items in HubSpot",
        )
    note = f"The line items add up to {total} but {amount} was paid; {amount} was booked."
    return [*lines, adjustment], note


def item_ids(lines: Sequence[dict[str, Any]]) -> list[str]:
    """Return the QuickBooks items the sales lines refer to."""
    return [line[SALES]["ItemRef"]["value"] for line in lines if SALES in line]

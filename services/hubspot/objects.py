"""HubSpot's object types and the properties the actions read from each."""

from __future__ import annotations

CONTACT_PROPERTIES = (
    "firstname",
    "lastname",
    "email",
    "company",
    "phone",
    "address",
    "city",
    "state",
    "zip",
    "country",
    "lifecyclestage",
)
LINE_ITEM_PROPERTIES = (
    "name",
    "quantity",
    "price",
    "amount",
    "discount",
    "hs_discount_percentage",
    "hs_sku",
    "hs_product_id",
    "description",
    "hs_line_item_currency_code",
    "hs_tax_rate",
    "hs_tax_amount",
)
# What each supported object type calls its title, amount and currency.
OBJECT_FIELDS: dict[str, dict[str, str]] = {
    "deals": {"title": "dealname", "amount": "amount", "currency": "deal_currency_code"},
    "quotes": {"title": "hs_title", "amount": "hs_quote_amount", "currency": "hs_currency"},
    "commerce_payments": {
        "title": "hs_payment_source_name",
        "amount": "hs_initial_amount",
        "currency": "hs_currency_code",
    },
}
OBJECT_TYPE_NAMES = {
    "DEAL": "deals",
    "0-3": "deals",
    "QUOTE": "quotes",
    "0-14": "quotes",
    "COMMERCE_PAYMENT": "commerce_payments",
    "COMMERCE_PAYMENTS": "commerce_payments",
    "0-101": "commerce_payments",
}


def object_type_name(object_type: str) -> str:
    """Return the CRM path name of an object type as HubSpot sends it (DEAL, 0-3, deals ...)."""
    return OBJECT_TYPE_NAMES.get(object_type.upper(), object_type.lower())


# The type ids HubSpot's record pages use in their addresses.
OBJECT_TYPE_IDS = {"deals": "0-3", "quotes": "0-14", "commerce_payments": "0-101", "contacts": "0-1"}
HUBSPOT_APP_URL = "https://app.hubspot.com"


def record_url(portal_id: int, object_type: str, object_id: str) -> str | None:
    """Return the address of a record's page in HubSpot (None for a type without one we know)."""
    type_id = OBJECT_TYPE_IDS.get(object_type_name(object_type))
    return f"{HUBSPOT_APP_URL}/contacts/{portal_id}/record/{type_id}/{object_id}" if type_id else None


# HubSpot's commerce payment properties, as its Payments API guide names them (the first name of each entry is
# the one read; later ones are accepted too). `GET /crm/v3/properties/commerce_payments` on a portal lists them.
PAYMENT_STATUSES = (
    "processing",
    "succeeded",
    "failed",
    "partially_refunded",
    "refunded",
    "processing_refund",
    "disputed_won",
    "disputed_lost",
    "disputed_action_required",
    "disputed_awaiting_decision",
)
PAYMENT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "amount": ("hs_initial_amount",),
    "currency": ("hs_currency_code",),
    "status": ("hs_latest_status",),
    # "The total amount HubSpot charged to process this payment."
    "fee": ("hs_fees_amount",),
    "refunded": ("hs_refunds_amount",),
    "net": ("hs_net_amount",),
    "method": ("hs_payment_method_type",),
    # The source that created the payment: SALES_CHECKOUT, QUOTE, INVOICE, MIGRATION or SUBSCRIPTION.
    "source_app": ("hs_payment_source_app",),
    "source_name": ("hs_payment_source_name",),
    "date": ("hs_initiated_date",),
    "email": ("hs_customer_email",),
}


def payment_properties() -> list[str]:
    """Return every payment property the actions read, alternatives included."""
    return [name for names in PAYMENT_PROPERTIES.values() for name in names]

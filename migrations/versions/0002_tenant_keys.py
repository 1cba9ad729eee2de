"""key mappings and payment claims by portal and company

One QuickBooks company may be connected to several HubSpot portals, and HubSpot record ids repeat across
portals, so customer mappings, product mappings and payment-document claims get the portal in their key.

Existing rows are kept where their portal is known: a payment claim takes the portal of the execution that
holds it; a mapping takes the portal of its company when exactly one portal is connected to that company.
A mapping of a company shared by several portals cannot be told apart, so it is dropped: mappings are a
cache of look-ups, and the next execution finds the customer or item in QuickBooks again (by email, SKU or
name) and remembers it for its own portal.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The one portal of each company connected to exactly one portal.
SINGLE_PORTAL = (
    "(SELECT realm_id, MIN(portal_id) AS portal_id FROM quickbooks_connections "
    "GROUP BY realm_id HAVING COUNT(DISTINCT portal_id) = 1)"
)


def _created_at() -> sa.Column:
    return sa.Column("created_at", services.store.models.UTCDateTime(timezone=True), nullable=False)


def _mapping_columns(kind: str, with_portal: bool) -> list[sa.Column]:
    hubspot, quickbooks = (
        ("hubspot_contact_id", "quickbooks_customer_id")
        if kind == "customer"
        else (
            "hubspot_product_id",
            "quickbooks_item_id",
        )
    )
    columns = [sa.Column("portal_id", sa.Integer(), nullable=False, autoincrement=False)] if with_portal else []
    return [
        *columns,
        sa.Column("realm_id", sa.String(length=32), nullable=False),
        sa.Column(hubspot, sa.String(length=64), nullable=False),
        sa.Column(quickbooks, sa.String(length=32), nullable=False),
        _created_at(),
    ]


def _payment_columns(with_portal: bool) -> list[sa.Column]:
    columns = [sa.Column("portal_id", sa.Integer(), nullable=False, autoincrement=False)] if with_portal else []
    return [
        *columns,
        sa.Column("realm_id", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("execution_id", sa.String(length=32), sa.ForeignKey("executions.id"), nullable=False),
        sa.Column("output_fields", sa.JSON(), nullable=True),
        _created_at(),
    ]


def _replace(table: str, columns: list[sa.Column], key: list[str], copy: str) -> None:
    """Build the table anew under a temporary name, copy the rows with ``copy``, and swap it in."""
    # PostgreSQL keeps a primary key's name when its table is renamed; the new key needs one not in use.
    key_name = f"{table}_tenant_pkey" if "portal_id" in key else f"{table}_pkey"
    op.create_table(f"{table}_new", *columns, sa.PrimaryKeyConstraint(*key, name=key_name))
    op.execute(copy.format(new=f"{table}_new", old=table))
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)


def upgrade() -> None:
    _replace(
        "customer_mappings",
        _mapping_columns("customer", with_portal=True),
        ["portal_id", "realm_id", "hubspot_contact_id"],
        "INSERT INTO {new} (portal_id, realm_id, hubspot_contact_id, quickbooks_customer_id, created_at) "
        "SELECT p.portal_id, m.realm_id, m.hubspot_contact_id, m.quickbooks_customer_id, m.created_at "
        f"FROM {{old}} m JOIN {SINGLE_PORTAL} p ON p.realm_id = m.realm_id",
    )
    _replace(
        "product_mappings",
        _mapping_columns("product", with_portal=True),
        ["portal_id", "realm_id", "hubspot_product_id"],
        "INSERT INTO {new} (portal_id, realm_id, hubspot_product_id, quickbooks_item_id, created_at) "
        "SELECT p.portal_id, m.realm_id, m.hubspot_product_id, m.quickbooks_item_id, m.created_at "
        f"FROM {{old}} m JOIN {SINGLE_PORTAL} p ON p.realm_id = m.realm_id",
    )
    _replace(
        "payment_documents",
        _payment_columns(with_portal=True),
        ["portal_id", "realm_id", "payment_id", "kind"],
        "INSERT INTO {new} (portal_id, realm_id, payment_id, kind, execution_id, output_fields, created_at) "
        "SELECT e.portal_id, d.realm_id, d.payment_id, d.kind, d.execution_id, d.output_fields, d.created_at "
        "FROM {old} d JOIN executions e ON e.id = d.execution_id",
    )


def downgrade() -> None:
    # Back to one row per company: where several portals share a key, the lowest portal's row stays.
    _replace(
        "customer_mappings",
        _mapping_columns("customer", with_portal=False),
        ["realm_id", "hubspot_contact_id"],
        "INSERT INTO {new} (realm_id, hubspot_contact_id, quickbooks_customer_id, created_at) "
        "SELECT realm_id, hubspot_contact_id, quickbooks_customer_id, created_at FROM {old} m "
        "WHERE portal_id = (SELECT MIN(portal_id) FROM {old} o "
        "WHERE o.realm_id = m.realm_id AND o.hubspot_contact_id = m.hubspot_contact_id)",
    )
    _replace(
        "product_mappings",
        _mapping_columns("product", with_portal=False),
        ["realm_id", "hubspot_product_id"],
        "INSERT INTO {new} (realm_id, hubspot_product_id, quickbooks_item_id, created_at) "
        "SELECT realm_id, hubspot_product_id, quickbooks_item_id, created_at FROM {old} m "
        "WHERE portal_id = (SELECT MIN(portal_id) FROM {old} o "
        "WHERE o.realm_id = m.realm_id AND o.hubspot_product_id = m.hubspot_product_id)",
    )
    _replace(
        "payment_documents",
        _payment_columns(with_portal=False),
        ["realm_id", "payment_id", "kind"],
        "INSERT INTO {new} (realm_id, payment_id, kind, execution_id, output_fields, created_at) "
        "SELECT realm_id, payment_id, kind, execution_id, output_fields, created_at FROM {old} d "
        "WHERE portal_id = (SELECT MIN(portal_id) FROM {old} o "
        "WHERE o.realm_id = d.realm_id AND o.payment_id = d.payment_id AND o.kind = d.kind)",
    )

"""Migrations keep what they can of existing rows, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from services.store import migrate
from services.store.crypto import TokenCipher
from services.store.repositories import Repositories
from tests.conftest import POSTGRES_URL, fresh_postgres

SHARED, SINGLE = "9130355", "4620816365"
PORTAL_A, PORTAL_B = 102670506, 243199551


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(not POSTGRES_URL, reason="no PostgreSQL")),
    ]
)
def at_0001(request: pytest.FixtureRequest, tmp_path: Path, cipher: TokenCipher) -> Iterator[Repositories]:
    """A database at revision 0001 with rows from before tenant keys."""
    if request.param == "sqlite":
        repos = Repositories.open(f"sqlite:///{tmp_path / 'old.sqlite3'}", cipher)
        migrate.upgrade(repos.database.engine, "0001")
    else:
        repos = fresh_postgres(cipher, "0001")
    # SINGLE is connected to portal A only; SHARED to both portals.
    for portal, realm in ((PORTAL_A, SINGLE), (PORTAL_A, SHARED), (PORTAL_B, SHARED)):
        repos.connections.save_quickbooks(portal, realm, "refresh", None, None)
    statements = [
        "INSERT INTO customer_mappings VALUES ('{single}', '51', '58', CURRENT_TIMESTAMP)",
        "INSERT INTO customer_mappings VALUES ('{shared}', '51', '59', CURRENT_TIMESTAMP)",
        "INSERT INTO product_mappings VALUES ('{single}', '501', '21', CURRENT_TIMESTAMP)",
        "INSERT INTO product_mappings VALUES ('{shared}', '501', '22', CURRENT_TIMESTAMP)",
        "INSERT INTO executions (id, callback_id, action, portal_id, realm_id, object_type, object_id, inputs, "
        "object_properties, state, attempt_count, callback_state, created_at, updated_at) VALUES ('e-b', 'cb-b', "
        "'create_paid_invoice', {portal_b}, '{shared}', '0-101', '7', '{{}}', '{{}}', 'succeeded', 1, 'sent', "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO payment_documents VALUES ('{shared}', '7', 'paid_invoice', 'e-b', NULL, CURRENT_TIMESTAMP)",
    ]
    with repos.database.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement.format(single=SINGLE, shared=SHARED, portal_b=PORTAL_B)))
    yield repos
    repos.database.dispose()


def rows(repos: Repositories, query: str) -> list[tuple[object, ...]]:
    with repos.database.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


def test_tenant_keys_keep_every_row_whose_portal_is_known(at_0001: Repositories) -> None:
    migrate.upgrade(at_0001.database.engine)

    assert rows(
        at_0001, "SELECT portal_id, realm_id, hubspot_contact_id, quickbooks_customer_id FROM customer_mappings"
    ) == [(PORTAL_A, SINGLE, "51", "58")]
    assert rows(
        at_0001, "SELECT portal_id, realm_id, hubspot_product_id, quickbooks_item_id FROM product_mappings"
    ) == [(PORTAL_A, SINGLE, "501", "21")]
    # A claim takes the portal of the execution that holds it.
    assert rows(at_0001, "SELECT portal_id, realm_id, payment_id, kind, execution_id FROM payment_documents") == [
        (PORTAL_B, SHARED, "7", "paid_invoice", "e-b")
    ]


def test_tenant_keys_can_be_rolled_back_and_forward(at_0001: Repositories) -> None:
    migrate.upgrade(at_0001.database.engine)
    migrate.downgrade(at_0001.database.engine, "0001")
    assert rows(at_0001, "SELECT realm_id, hubspot_contact_id FROM customer_mappings") == [(SINGLE, "51")]
    assert rows(at_0001, "SELECT realm_id, payment_id, execution_id FROM payment_documents") == [(SHARED, "7", "e-b")]
    migrate.upgrade(at_0001.database.engine)
    assert rows(at_0001, "SELECT portal_id FROM payment_documents") == [(PORTAL_B,)]


def test_executions_hubspot_may_still_wait_for_get_the_day_they_were_promised(at_0001: Repositories) -> None:
    with at_0001.database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO executions (id, callback_id, action, portal_id, realm_id, object_type, object_id, inputs, "
                "object_properties, state, attempt_count, callback_state, created_at, updated_at) VALUES ('e-q', "
                f"'cb-q', 'create_invoice', {PORTAL_A}, '{SINGLE}', 'DEAL', '9', '{{}}', '{{}}', 'queued', 0, 'none', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(at_0001.database.engine)

    waiting, reported = at_0001.executions.get("e-q"), at_0001.executions.get("e-b")
    assert waiting is not None and waiting.expires_at == waiting.created_at + timedelta(days=1)
    assert reported is not None and reported.expires_at is None

"""Bookkeeping: what was written to the books for which HubSpot record.

The steps of each execution (so a re-run resumes instead of writing again), which QuickBooks customer and
item each HubSpot contact and product is, and which execution books each payment's document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import CustomerMappingRow, ExecutionRow, PaymentDocumentRow, ProductMappingRow, StepRow
from services.store.records import PaymentClaim, Step, Tenant


class BookkeepingRepository:
    """Reads and writes of the step, mapping and payment-document tables: the ledger the rules keep."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # What every run reads and writes, built once: one round trip each.
        steps = StepRow.__table__
        self._steps = select(steps.c.name, steps.c.status, steps.c.data).where(
            steps.c.execution_id == bindparam("execution_id")
        )
        upsert = database.insert(steps).values(
            execution_id=bindparam("b_execution_id"),
            name=bindparam("b_name"),
            status=bindparam("b_status"),
            data=bindparam("b_data", type_=steps.c.data.type),
            updated_at=bindparam("b_now"),
        )
        self._save_step = upsert.on_conflict_do_update(
            index_elements=["execution_id", "name"],
            set_={
                "status": upsert.excluded.status,
                "data": upsert.excluded.data,
                "updated_at": upsert.excluded.updated_at,
            },
        )
        customers, products = CustomerMappingRow.__table__.c, ProductMappingRow.__table__.c
        self._customer_mapping = select(customers.quickbooks_customer_id).where(
            customers.portal_id == bindparam("portal_id"),
            customers.realm_id == bindparam("realm_id"),
            customers.hubspot_contact_id == bindparam("contact_id"),
        )
        self._product_mappings = select(products.hubspot_product_id, products.quickbooks_item_id).where(
            products.portal_id == bindparam("portal_id"),
            products.realm_id == bindparam("realm_id"),
            products.hubspot_product_id.in_(bindparam("product_ids", expanding=True)),
        )

    # Steps ---------------------------------------------------------------------------------------

    def steps(self, execution_id: str) -> dict[str, Step]:
        """Return the recorded steps of an execution by name."""
        rows = self.database.rows(self._steps, {"execution_id": execution_id})
        return {row.name: Step(execution_id, row.name, row.status, row.data) for row in rows}

    def save_step(self, execution_id: str, name: str, status: str, data: dict[str, Any]) -> None:
        """Insert or update one step."""
        parameters = {
            "b_execution_id": execution_id,
            "b_name": name,
            "b_status": status,
            "b_data": data,
            "b_now": utcnow(),
        }
        self.database.write(self._save_step, parameters)

    # Customer and product mappings ---------------------------------------------------------------

    def customer_mapping(self, tenant: Tenant, contact_id: str) -> str | None:
        """Return the QuickBooks customer known for a portal's contact."""
        parameters = {"portal_id": tenant.portal_id, "realm_id": tenant.realm_id, "contact_id": contact_id}
        row = self.database.row(self._customer_mapping, parameters)
        return row.quickbooks_customer_id if row is not None else None

    def save_customer_mapping(self, tenant: Tenant, contact_id: str, customer_id: str) -> None:
        """Remember which customer a portal's contact is."""
        stmt = self.database.insert(CustomerMappingRow).values(
            portal_id=tenant.portal_id,
            realm_id=tenant.realm_id,
            hubspot_contact_id=contact_id,
            quickbooks_customer_id=customer_id,
            created_at=utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["portal_id", "realm_id", "hubspot_contact_id"],
            set_={"quickbooks_customer_id": customer_id},
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    def product_mappings(self, tenant: Tenant, product_ids: Sequence[str]) -> dict[str, str]:
        """Return {HubSpot product id: QuickBooks item id} for the portal's known products."""
        if not product_ids:
            return {}
        parameters = {"portal_id": tenant.portal_id, "realm_id": tenant.realm_id, "product_ids": list(product_ids)}
        return {
            row.hubspot_product_id: row.quickbooks_item_id
            for row in self.database.rows(self._product_mappings, parameters)
        }

    def save_product_mapping(self, tenant: Tenant, product_id: str, item_id: str) -> None:
        """Remember which item a portal's product is."""
        stmt = self.database.insert(ProductMappingRow).values(
            portal_id=tenant.portal_id,
            realm_id=tenant.realm_id,
            hubspot_product_id=product_id,
            quickbooks_item_id=item_id,
            created_at=utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["portal_id", "realm_id", "hubspot_product_id"], set_={"quickbooks_item_id": item_id}
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    def product_mapping_list(self, tenant: Tenant, search: str = "", limit: int = 200) -> list[tuple[str, str]]:
        """Return (HubSpot product id, QuickBooks item id) of a tenant's products, optionally those containing text."""
        query = (
            select(ProductMappingRow.hubspot_product_id, ProductMappingRow.quickbooks_item_id)
            .where(ProductMappingRow.portal_id == tenant.portal_id, ProductMappingRow.realm_id == tenant.realm_id)
            .order_by(ProductMappingRow.hubspot_product_id)
            .limit(limit)
        )
        if search:
            pattern = f"%{search}%"
            query = query.where(
                ProductMappingRow.hubspot_product_id.like(pattern) | ProductMappingRow.quickbooks_item_id.like(pattern)
            )
        with self.database.engine.connect() as conn:
            return [(row.hubspot_product_id, row.quickbooks_item_id) for row in conn.execute(query)]

    def remove_product_mapping(self, tenant: Tenant, product_id: str) -> bool:
        """Forget which item a portal's product is; False when it was not known."""
        stmt = delete(ProductMappingRow).where(
            ProductMappingRow.portal_id == tenant.portal_id,
            ProductMappingRow.realm_id == tenant.realm_id,
            ProductMappingRow.hubspot_product_id == product_id,
        )
        with self.database.engine.begin() as conn:
            return bool(conn.execute(stmt).rowcount)

    def forget_mappings_to(self, realm_id: str, *, customer_id: str | None, item_ids: Sequence[str]) -> None:
        """Drop every portal's mappings to a customer or items the company no longer knows."""
        with self.database.session() as session:
            if customer_id:
                session.execute(
                    delete(CustomerMappingRow).where(
                        CustomerMappingRow.realm_id == realm_id,
                        CustomerMappingRow.quickbooks_customer_id == customer_id,
                    )
                )
            if item_ids:
                session.execute(
                    delete(ProductMappingRow).where(
                        ProductMappingRow.realm_id == realm_id, ProductMappingRow.quickbooks_item_id.in_(list(item_ids))
                    )
                )

    def forget_portal(self, portal_id: int) -> None:
        """Drop a portal's customer and product mappings (its payment claims stay: they prevent double booking)."""
        with self.database.session() as session:
            session.execute(delete(CustomerMappingRow).where(CustomerMappingRow.portal_id == portal_id))
            session.execute(delete(ProductMappingRow).where(ProductMappingRow.portal_id == portal_id))

    # Payment documents: one per payment, kind and company ----------------------------------------

    def claim_payment_document(self, tenant: Tenant, payment_id: str, kind: str, execution_id: str) -> PaymentClaim:
        """Claim the right to book a portal's payment's document; answer with whoever holds it now."""
        stmt = (
            self.database.insert(PaymentDocumentRow)
            .values(
                portal_id=tenant.portal_id,
                realm_id=tenant.realm_id,
                payment_id=payment_id,
                kind=kind,
                execution_id=execution_id,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["portal_id", "realm_id", "payment_id", "kind"])
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)
        claim = self.payment_document(tenant, payment_id, kind)
        assert claim is not None  # inserted above, and claims are never deleted
        return claim

    def payment_document(self, tenant: Tenant, payment_id: str, kind: str) -> PaymentClaim | None:
        """Return the claim on a payment's document, with its holder's state and outputs."""
        query = (
            select(PaymentDocumentRow, ExecutionRow.state, ExecutionRow.output_fields)
            .outerjoin(ExecutionRow, ExecutionRow.id == PaymentDocumentRow.execution_id)
            .where(self._document(tenant, payment_id, kind))
        )
        with self.database.session() as session:
            found = session.execute(query).first()
            if found is None:
                return None
            row, state, outputs = found
            return PaymentClaim(
                portal_id=row.portal_id,
                realm_id=row.realm_id,
                payment_id=row.payment_id,
                kind=row.kind,
                execution_id=row.execution_id,
                holder_state=state,
                holder_outputs=outputs,
                document_outputs=row.output_fields,
            )

    def take_over_payment_document(
        self, tenant: Tenant, payment_id: str, kind: str, failed_execution_id: str, execution_id: str
    ) -> bool:
        """Move a claim from a failed execution to another one, carrying over the steps it completed."""
        with self.database.session() as session:
            claimed = session.execute(
                update(PaymentDocumentRow)
                .where(
                    self._document(tenant, payment_id, kind),
                    PaymentDocumentRow.execution_id == failed_execution_id,
                )
                .values(execution_id=execution_id)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            for step in session.scalars(select(StepRow).where(StepRow.execution_id == failed_execution_id)):
                if session.get(StepRow, (execution_id, step.name)) is None:
                    session.add(StepRow(execution_id=execution_id, name=step.name, status=step.status, data=step.data))
            return True

    def save_payment_document_outputs(
        self, tenant: Tenant, payment_id: str, kind: str, outputs: dict[str, Any]
    ) -> None:
        """Remember what the booked document was, for later executions on the same payment."""
        stmt = update(PaymentDocumentRow).where(self._document(tenant, payment_id, kind)).values(output_fields=outputs)
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    @staticmethod
    def _document(tenant: Tenant, payment_id: str, kind: str) -> Any:
        """Return the condition that selects one payment document of a tenant."""
        return and_(
            PaymentDocumentRow.portal_id == tenant.portal_id,
            PaymentDocumentRow.realm_id == tenant.realm_id,
            PaymentDocumentRow.payment_id == payment_id,
            PaymentDocumentRow.kind == kind,
        )

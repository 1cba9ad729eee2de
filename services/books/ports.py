"""What the rules need from the world besides the two API clients, as small interfaces passed in.

The store's repositories and Redis locks fulfil them in production (services.bootstrap wires them); the unit
tests pass fakes that record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from services.hubspot.client import CrmObject
from services.store.records import BatchItem, CachedProfile, PaymentClaim, Step, Tenant

# A lock shared by every process of the deployment, by name: ``with locks("customer:..."):``.
LockFactory = Callable[[str], AbstractContextManager[object]]


class Ledger(Protocol):
    """What was written to the books: steps of executions, and per tenant (portal and company) the customer
    and product mappings and the payment-document claims."""

    def steps(self, execution_id: str) -> dict[str, Step]: ...

    def save_step(self, execution_id: str, name: str, status: str, data: dict[str, Any]) -> None: ...

    def customer_mapping(self, tenant: Tenant, contact_id: str) -> str | None: ...

    def save_customer_mapping(self, tenant: Tenant, contact_id: str, customer_id: str) -> None: ...

    def product_mappings(self, tenant: Tenant, product_ids: Sequence[str]) -> dict[str, str]: ...

    def save_product_mapping(self, tenant: Tenant, product_id: str, item_id: str) -> None: ...

    def forget_mappings_to(self, realm_id: str, *, customer_id: str | None, item_ids: Sequence[str]) -> None: ...

    def claim_payment_document(self, tenant: Tenant, payment_id: str, kind: str, execution_id: str) -> PaymentClaim: ...

    def take_over_payment_document(
        self, tenant: Tenant, payment_id: str, kind: str, failed_execution_id: str, execution_id: str
    ) -> bool: ...

    def save_payment_document_outputs(
        self, tenant: Tenant, payment_id: str, kind: str, outputs: dict[str, Any]
    ) -> None: ...


class HubSpotReader(Protocol):
    """The HubSpot reads the rules make: the HubSpot client itself, or one that serves prefetched snapshots."""

    def read_object(
        self, object_type: str, object_id: str, properties: Sequence[str], associations: Sequence[str] = ()
    ) -> CrmObject: ...

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[CrmObject]: ...

    def associations(self, from_type: str, object_id: str, to_type: str) -> list[str]: ...


class ProfileCache(Protocol):
    """Where what QuickBooks said about a company is kept between runs."""

    def cached_profile(self, realm_id: str) -> CachedProfile | None: ...

    def save_profile(self, realm_id: str, profile: dict[str, Any]) -> None: ...


class BatchWrites(Protocol):
    """Where a document write waits for its company's next QuickBooks batch (services.store.batches)."""

    def park(
        self, tenant: Tenant, execution_id: str, step: str, entity: str, body: dict[str, Any], started: dict[str, Any]
    ) -> None: ...

    def item(self, execution_id: str, step: str) -> BatchItem | None: ...

"""Fixtures of the operations tests: operators' tokens and an API client that carries one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests

from services.bootstrap import Services
from services.ops.tokens import OperatorTokens
from services.store.records import Execution
from simulators.scenario import Simulators, seed_deal
from tests.builders import sales_inputs
from tests.conftest import Perform

UNKNOWN_PRODUCT = [{"name": "Gizmo", "quantity": "2", "price": "25", "hs_product_id": "777"}]


class OpsClient:
    """Someone calling the operations API with a token."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url, self.token = base_url, token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.base_url}/ops/api{path}", params=params, headers=self.headers(), timeout=10)

    def post(self, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.post(f"{self.base_url}/ops/api{path}", json=body or {}, headers=self.headers(), timeout=30)


@pytest.fixture
def mint(services: Services) -> Callable[..., str]:
    """Mint an operator's token as `qbo-actions ops token` does."""
    tokens = OperatorTokens(services.config)
    return lambda role="operator", subject=None, ttl=timedelta(hours=1): tokens.mint(
        subject or f"{role}@example.com", role, ttl
    )


@pytest.fixture
def ops_api(server: str, mint: Callable[..., str]) -> Callable[..., OpsClient]:
    """Return an API client for a role (or for a given token, or none)."""

    def client(role: str | None = "operator", *, token: str | None = None) -> OpsClient:
        return OpsClient(server, token if token is not None else (mint(role) if role else None))

    return client


@pytest.fixture
def held_unmatched(perform: Perform, sims: Simulators, settings: Any) -> Callable[[], Execution]:
    """Return a maker of executions held for LINE_ITEM_NOT_MATCHED (product 777 matches no item)."""
    settings(hold_failures=["LINE_ITEM_NOT_MATCHED"])

    def make() -> Execution:
        execution = perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs())
        assert (execution.state, execution.failure_reason) == ("held", "LINE_ITEM_NOT_MATCHED")
        return execution

    return make

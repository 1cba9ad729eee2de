"""Fixtures of the service tests: a migrated database behind a Store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from services import migrate
from services.crypto import TokenCipher
from services.storage import Store


@pytest.fixture(scope="session")
def cipher() -> TokenCipher:
    return TokenCipher(TokenCipher.generate_key())


@pytest.fixture
def sqlite_store(tmp_path: Path, cipher: TokenCipher) -> Iterator[Store]:
    """A Store on a migrated SQLite file of its own."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'store.sqlite3'}", cipher)
    migrate.upgrade(store.engine)
    yield store
    store.engine.dispose()


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stubbed HTTP that fails on unexpected requests and on stubs that were never called."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock

"""Fixtures of the service tests: a migrated database behind a Store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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

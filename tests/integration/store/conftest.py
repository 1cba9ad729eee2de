"""The store's tests run on SQLite and on PostgreSQL (when QBO_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.store import migrate
from services.store.crypto import TokenCipher
from services.store.repositories import Repositories
from tests.conftest import POSTGRES_URL, fresh_postgres


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not POSTGRES_URL, reason="QBO_TEST_POSTGRES_URL is not set"),
        ),
    ]
)
def repos(request: pytest.FixtureRequest, tmp_path: Path, cipher: TokenCipher) -> Iterator[Repositories]:
    """The repositories on a freshly migrated database of each kind."""
    if request.param == "sqlite":
        repos = Repositories.open(f"sqlite:///{tmp_path / 'repos.sqlite3'}", cipher)
        migrate.upgrade(repos.database.engine)
    else:
        repos = fresh_postgres(cipher)
    yield repos
    repos.database.engine.dispose()

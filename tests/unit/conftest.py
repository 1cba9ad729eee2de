"""Unit tests touch no network: a test that opens a socket (Redis, a database, a server) fails here."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


class NetworkUsedError(AssertionError):
    """A unit test tried to open a connection."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every outgoing connection for the duration of the test."""

    def refuse(self: socket.socket, address: Any) -> None:
        raise NetworkUsedError(f"unit tests must not connect to {address!r}; move the test to tests/integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield

"""Fakes that record what was done to them."""

from __future__ import annotations


class FakeTokens:
    """A TokenProvider that hands out one token and a fresh one on refresh, recording each refresh."""

    def __init__(self, token: str = "access-1", fresh: str = "access-2") -> None:
        self.token = token
        self.fresh = fresh
        self.refreshed: list[str | None] = []

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str | None) -> str:
        self.refreshed.append(rejected_token)
        self.token = self.fresh
        return self.token

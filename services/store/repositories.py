"""All repositories over one database, opened together."""

from __future__ import annotations

from dataclasses import dataclass

from services.store.attempts import AttemptRepository
from services.store.audit import AuditRepository
from services.store.batches import BatchRepository
from services.store.bookkeeping import BookkeepingRepository
from services.store.bulk import BulkRepository
from services.store.callbacks import CallbackRepository
from services.store.companies import CompanyRepository
from services.store.connections import ConnectionRepository
from services.store.crypto import TokenCipher
from services.store.engine import Database
from services.store.executions import ExecutionRepository
from services.store.followed import FollowedDocuments
from services.store.listing import ExecutionListing
from services.store.outbox import ExecutionOutbox
from services.store.retention import RetentionRepository
from services.store.stats import StatsRepository


@dataclass(frozen=True)
class Repositories:
    """One repository per aggregate, sharing one engine."""

    database: Database
    executions: ExecutionRepository
    outbox: ExecutionOutbox
    attempts: AttemptRepository
    callbacks: CallbackRepository
    connections: ConnectionRepository
    companies: CompanyRepository
    bookkeeping: BookkeepingRepository
    retention: RetentionRepository
    stats: StatsRepository
    listing: ExecutionListing
    audit: AuditRepository
    bulk: BulkRepository
    batches: BatchRepository
    followed: FollowedDocuments

    @classmethod
    def open(cls, database_url: str, cipher: TokenCipher) -> Repositories:
        """Open the database at ``database_url`` and build every repository on it."""
        return cls.over(Database.from_url(database_url), cipher)

    @classmethod
    def over(cls, database: Database, cipher: TokenCipher) -> Repositories:
        """Build every repository on an open database."""
        return cls(
            database=database,
            executions=ExecutionRepository(database),
            outbox=ExecutionOutbox(database),
            attempts=AttemptRepository(database),
            callbacks=CallbackRepository(database),
            connections=ConnectionRepository(database, cipher),
            companies=CompanyRepository(database),
            bookkeeping=BookkeepingRepository(database),
            retention=RetentionRepository(database),
            stats=StatsRepository(database),
            listing=ExecutionListing(database),
            audit=AuditRepository(database),
            bulk=BulkRepository(database),
            batches=BatchRepository(database),
            followed=FollowedDocuments(database),
        )

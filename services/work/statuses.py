"""The document's later life on the HubSpot record: paid, overdue, voided, deleted.

Intuit notifies changes (`receive_notices`); a job per company reads the changed documents and the payments
applied to them (`apply_notices`), and a job per portal sends the records' properties in batches of 100 and posts
each payment once on the record's timeline (`push_statuses`). Notifications may be lost or come out of order:
change data capture (`read_changes`, every CDC_INTERVAL per company) repairs what they missed, and every state
carries QuickBooks' version, so an older one never replaces a newer one. QuickBooks sends nothing when a due date
passes: `mark_overdue` runs daily.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from redis.exceptions import LockError
from rq import Retry

from services import metrics
from services.books import statuses
from services.books.documents import url_of
from services.books.statuses import CHANGE_ENTITIES, FOLLOWED, DocumentState, Followed, PaymentApplied, version_of
from services.bootstrap import Services
from services.clock import utcnow
from services.hubspot import properties
from services.hubspot.client import HubSpotClient
from services.hubspot.objects import object_type_name
from services.quickbooks.client import QuickBooksClient
from services.quickbooks.notifications import Notice
from services.quickbooks.query import equals, select
from services.store.records import (
    ChangeNotice,
    DocumentVersion,
    Execution,
    FollowedDocument,
    FollowedPayment,
    NoticesRecorded,
)
from services.transport.errors import (
    AuthenticationError,
    ConnectionRevokedError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from services.work.faults import REDIS_FAULTS
from services.work.queue import retry_in

log = logging.getLogger(__name__)
NOTICES_PER_ROUND = 1000
RECORDS_PER_PUSH = 100
# Full batches a push job sends at most before it hands over to the next job (behind what waits in the queue).
ROUNDS_PER_PUSH = 10
# Each change capture reads again the last minutes of what the last one read: a change committed while the last
# answer was being made, or a document followed a while after it was created (a batched run finishes later), is not
# missed. Applying a state twice changes nothing.
CDC_OVERLAP = timedelta(minutes=10)
# Intuit keeps 30 days of changes; ask a little less, so a clock difference never makes the request invalid.
CDC_REACH = timedelta(days=30) - timedelta(hours=1)
# QuickBooks answers at most this many entities of a type (UNCONFIRMED); a full list is read on from its last one.
CDC_PAGE = 1000
CDC_MAX_PAGES = 50
# How long one change-capture job reads before handing over (its cursor kept), and when a busy company is tried again.
CDC_BUDGET_S = 60
CDC_BUSY_RETRY = 5
DAILY_FLAG = "qbo-actions:documents-checked:"
# How long an applied notification is kept, so the same event delivered again is recognised.
NOTICE_MEMORY = timedelta(days=7)


NO_ACCESS = "no access"


class NoConnection(Exception):
    """No portal has the company connected: its changes cannot be read."""


# -- following what the actions booked --------------------------------------------------------------------------


def follow_created(services: Services, execution: Execution, outputs: dict[str, object]) -> bool:
    """Follow the document an execution created on its record (idempotent); tell whether it is followed now."""
    state = statuses.created_state(outputs, statuses.EPOCH)
    if state is None or not execution.realm_id:
        return False
    object_type = object_type_name(execution.object_type)
    new, notified = services.followed.follow(
        execution.portal_id, object_type, execution.object_id, version_of(execution.realm_id, state), execution.id
    )
    try:
        if notified:
            # QuickBooks notified a change of the document before it was followed: apply it now.
            services.queue.request_notices(execution.realm_id)
        if new:
            services.queue.request_status_push(execution.portal_id)
    except REDIS_FAULTS as fault:
        # The document exists and is followed: the sweeper asks for what is pending; the execution goes on.
        log.warning("document followed, its push not queued yet: %s", fault)
    return True


def link_invoice(
    services: Services, portal_id: int, object_type: str, object_id: str, realm_id: str, invoice_number: str
) -> FollowedDocument:
    """Follow an invoice made in QuickBooks by hand on a record, by its number; raise LookupError when none."""
    connection = services.connections.quickbooks(portal_id, realm_id)
    if connection is None:
        raise LookupError(f"QuickBooks company {realm_id} is not connected to portal {portal_id}")
    qbo = services.quickbooks(connection)
    found = qbo.query(select("Invoice", equals("DocNumber", invoice_number)))
    if not found:
        raise LookupError(f"QuickBooks company {realm_id} has no invoice number {invoice_number}")
    if len(found) > 1:
        raise LookupError(f"QuickBooks company {realm_id} has {len(found)} invoices numbered {invoice_number}")
    state = statuses.state_of("Invoice", found[0])
    record_type = object_type_name(object_type)
    services.followed.follow(portal_id, record_type, str(object_id), version_of(realm_id, state))
    # The payments already applied to it go on the timeline as well.
    Changes(services, realm_id, qbo).apply({"Invoice": found}, [])
    services.queue.request_status_push(portal_id)
    following = [
        d
        for d in services.followed.documents(realm_id, "Invoice", [state.document_id])
        if d.portal_id == portal_id and d.object_type == record_type and d.object_id == str(object_id)
    ]
    return following[0]


# -- notifications ---------------------------------------------------------------------------------------------------


def receive_notices(services: Services, notices: Sequence[Notice]) -> NoticesRecorded:
    """Record notifications once each and queue their companies' jobs; those of companies no portal connected,
    and of entities that never change a followed document (customers, items ...), are kept as ignored."""
    realms = {n.realm_id for n in notices}
    connected = {realm for realm in realms if services.connections.portals_of(realm)}
    records = [ChangeNotice(n.id, n.realm_id, n.entity, n.entity_id, n.operation, n.occurred_at) for n in notices]
    recorded = services.followed.record_notices(
        records, lambda n: n.realm_id in connected and n.entity in CHANGE_ENTITIES
    )
    try:
        for realm_id in recorded.realms:
            services.queue.request_notices(realm_id)
    except REDIS_FAULTS as fault:
        # Recorded: the sweeper asks for their jobs (notices pending for a minute), so the delivery is answered.
        log.warning("QuickBooks notifications recorded, their jobs not queued yet: %s", fault)
    metrics.notifications(recorded.new, recorded.repeated, recorded.ignored)
    return recorded


def quickbooks_of_realm(services: Services, realm_id: str) -> QuickBooksClient:
    """Return a client for a company through any portal it is connected to (its documents are the same)."""
    for portal_id in services.connections.portals_of(realm_id):
        connection = services.connections.quickbooks(portal_id, realm_id)
        if connection is not None and connection.active:
            return services.quickbooks(connection)
    raise NoConnection(realm_id)


def apply_notices(services: Services, realm_id: str) -> str | Retry:
    """Apply one round of a company's notifications: read what changed of the followed documents and store it.

    One round a job, so a company streaming notifications never keeps a worker (and the pushes waiting behind it)
    to itself; what is left gets a job of its own, behind what waits. A job that finds another applying the
    company's notifications leaves at once: that one looks for what came meanwhile when it ends.
    """
    services.queue.clear_notice_request(realm_id)
    try:
        with services.lock(f"statuses:{realm_id}", timeout=services.config.job_timeout, wait=False):
            result = _apply_round(services, realm_id)
    except LockError:
        return "busy"
    if isinstance(result, str) and result != NO_ACCESS:
        # A retry (the Retry) or a reconnect (the sweeper) brings the next round otherwise.
        _ask_again_when_pending(services, realm_id)
    return result


def _apply_round(services: Services, realm_id: str) -> str | Retry:
    notices = services.followed.pending_notices(realm_id, NOTICES_PER_ROUND)
    wanted: dict[str, set[str]] = defaultdict(set)
    for notice in notices:
        if notice.entity in CHANGE_ENTITIES:
            wanted[notice.entity].add(notice.entity_id)
    applied = 0
    try:
        if wanted:
            applied = Changes(services, realm_id, quickbooks_of_realm(services, realm_id)).read_and_apply(wanted)
    except NoConnection:
        log.info("QuickBooks company %s: notifications ignored, no portal has it connected", realm_id)
    except (ConnectionRevokedError, AuthenticationError) as error:
        # Kept pending: the sweeper asks for them again, and they apply once the company is reconnected.
        log.warning("QuickBooks company %s: notifications wait for a reconnect (%s)", realm_id, error)
        return NO_ACCESS
    except TransientError as error:
        log.warning("QuickBooks company %s: notifications not applied yet: %s", realm_id, error)
        return retry_in(_delay(error))
    except PermanentError as error:
        # Asking again would fail again and hold the company's other notices back: change data capture repairs
        # what this round missed.
        log.error("QuickBooks company %s: a round of notifications refused: %s", realm_id, error)
        metrics.status_updates_refused("notifications")
    services.followed.notices_done([n.id for n in notices])
    return f"{len(notices)} notifications, {applied} documents changed"


def _ask_again_when_pending(services: Services, realm_id: str) -> None:
    """Queue the company's next round when notifications wait (left over, or come while this one ran)."""
    if services.followed.pending_notices(realm_id, 1):
        services.queue.clear_notice_request(realm_id)
        services.queue.request_notices(realm_id)


def _delay(error: TransientError) -> int:
    return int(error.retry_after) if isinstance(error, RateLimitedError) and error.retry_after else 10


# -- change data capture ------------------------------------------------------------------------------------------


def read_changes(services: Services, realm_id: str) -> str | Retry:
    """Read what changed in a company since the last read (change data capture) and apply it."""
    result = _read_changes(services, realm_id)
    # Notification jobs that found the company busy left their notices for whoever held it.
    _ask_again_when_pending(services, realm_id)
    return result


def _read_changes(services: Services, realm_id: str) -> str | Retry:
    try:
        with services.lock(f"statuses:{realm_id}", timeout=services.config.job_timeout, wait=False):
            return _read_pages(services, realm_id)
    except LockError:
        # A notifications round holds the company for a moment: come back rather than hold a worker waiting.
        return retry_in(CDC_BUSY_RETRY)


def _read_pages(services: Services, realm_id: str) -> str | Retry:
    """Read and apply pages of changes from the company's cursor, moving the cursor after each page."""
    now = utcnow()
    try:
        qbo = quickbooks_of_realm(services, realm_id)
    except NoConnection:
        return "not connected"
    cursor = services.followed.cursor(realm_id) or services.followed.first_followed(realm_id) or now
    since = max(cursor - CDC_OVERLAP, now - CDC_REACH)
    changes = Changes(services, realm_id, qbo)
    applied = 0
    started = time.monotonic()
    try:
        for _ in range(CDC_MAX_PAGES):
            answer = qbo.changes(CHANGE_ENTITIES, since)
            applied += changes.apply(
                {e: answer.entities.get(e, []) for e in FOLLOWED}, answer.entities.get("Payment", [])
            )
            full = [docs for docs in answer.entities.values() if len(docs) >= CDC_PAGE]
            if not full:
                services.followed.move_cursor(realm_id, statuses.parse_time(answer.time) or now)
                return f"{applied} documents changed"
            # Read on from the oldest of the full lists' last changes, so nothing between is skipped.
            last = min((_last_change(docs) or since) for docs in full)
            if last <= since:
                log.warning("QuickBooks company %s: more than %s changes in one second", realm_id, CDC_PAGE)
                last = since + timedelta(seconds=1)
            since = last
            # Kept page by page: a timeout or an error later resumes from here, not from the start.
            services.followed.move_cursor(realm_id, since + CDC_OVERLAP)
            if time.monotonic() - started > CDC_BUDGET_S:
                break
    except (ConnectionRevokedError, AuthenticationError) as error:
        log.warning("QuickBooks company %s: changes not read (%s)", realm_id, error)
        return NO_ACCESS
    except TransientError as error:
        log.warning("QuickBooks company %s: changes not read yet: %s", realm_id, error)
        return retry_in(_delay(error))
    # A long backlog: the rest in the next run, behind what waits in the queue.
    log.info("QuickBooks company %s: more changes to read; carrying on in a moment", realm_id)
    return retry_in(1)


def _last_change(documents: Iterable[dict[str, Any]]) -> datetime | None:
    """Return the latest LastUpdatedTime of some entities (None when none carries one, as deleted ones may not)."""
    times = [statuses.parse_time((d.get("MetaData") or {}).get("LastUpdatedTime")) for d in documents]
    return max((t for t in times if t is not None), default=None)


class Changes:
    """Applies what QuickBooks says of a company's documents and payments to the documents we follow."""

    def __init__(self, services: Services, realm_id: str, qbo: QuickBooksClient) -> None:
        self.services = services
        self.followed = services.followed
        self.realm_id = realm_id
        self.qbo = qbo

    def read_and_apply(self, wanted: dict[str, set[str]]) -> int:
        """Read the followed documents and the payments among ``wanted`` ids, then apply them."""
        documents: dict[str, list[dict[str, Any]]] = {}
        deleted: dict[str, set[str]] = {}
        for entity in (e for e in FOLLOWED if wanted.get(e)):
            ids = {d.document_id for d in self.followed.documents(self.realm_id, entity, wanted[entity])}
            if ids:
                documents[entity] = self.qbo.read_many(entity, sorted(ids))
                # A followed document a query no longer finds was deleted.
                deleted[entity] = ids - {str(d["Id"]) for d in documents[entity]}
        payments = self.qbo.read_many("Payment", sorted(wanted.get("Payment", ()))) if wanted.get("Payment") else []
        return self.apply(documents, payments, deleted)

    def apply(
        self,
        documents: dict[str, list[dict[str, Any]]],
        payments: list[dict[str, Any]],
        deleted: dict[str, set[str]] | None = None,
    ) -> int:
        """Store the newer states of followed documents (and deletions) and the payments applied to followed
        invoices; return how many followings changed."""
        now = utcnow()
        applications = [a for p in payments for a in statuses.payments_applied(p)]
        documents = {entity: list(found) for entity, found in documents.items()}
        # A payment changes its invoices' balances: read those of them we follow and were not told about.
        invoices_told = {str(d["Id"]) for d in documents.get("Invoice", [])}
        to_read = {a.invoice_id for a in applications} - invoices_told
        if to_read:
            followed = {d.document_id for d in self.followed.documents(self.realm_id, "Invoice", to_read)}
            if followed:
                documents.setdefault("Invoice", []).extend(self.qbo.read_many("Invoice", sorted(followed)))
        versions: list[DocumentVersion] = []
        followings: list[FollowedDocument] = []
        for entity in set(documents) | set(deleted or {}):
            found = documents.get(entity, [])
            states = [statuses.state_of(entity, d) for d in found]
            states += [statuses.deleted_state(entity, i, now) for i in (deleted or {}).get(entity, ())]
            found_followings = self.followed.documents(self.realm_id, entity, [s.document_id for s in states])
            followings.extend(found_followings)
            mine = {d.document_id: d for d in found_followings}
            versions.extend(
                version_of(self.realm_id, self._last_known(s, mine[s.document_id]))
                for s in states
                if s.document_id in mine
            )
        changed = self.followed.apply(versions)
        invoices = [d for d in followings if d.entity == "Invoice"]
        added = self._payments(invoices, versions, applications)
        if changed or added:
            for portal_id in {d.portal_id for d in followings}:
                self.services.queue.request_status_push(portal_id)
        return changed

    @staticmethod
    def _last_known(state: DocumentState, following: FollowedDocument) -> DocumentState:
        """Keep what the record showed of a deleted document (its number, total), marked deleted."""
        if not state.deleted:
            return state
        known = DocumentState.from_json(following.state)
        return replace(known, deleted=True, updated_at=state.updated_at, sync_token=state.sync_token)

    def _payments(
        self, invoices: list[FollowedDocument], versions: list[DocumentVersion], applications: list[PaymentApplied]
    ) -> int:
        """Remember the payments applied to followed invoices, reading those an invoice lists and we never saw."""
        if not invoices:
            return 0
        known = {(p.document_pk, p.payment_id) for p in self.followed.payments(d.id for d in invoices)}
        seen = {(a.invoice_id, a.payment_id) for a in applications}
        listed = {
            (v.document_id, payment_id)
            for v in versions
            if v.entity == "Invoice"
            for payment_id in v.state.get("payment_ids") or ()
        }
        pk_of = defaultdict(list)
        for invoice in invoices:
            pk_of[invoice.document_id].append(invoice)
        unseen = {
            payment_id
            for invoice_id, payment_id in listed - seen
            if any((d.id, payment_id) not in known for d in pk_of[invoice_id])
        }
        if unseen:
            applications = applications + [
                a for p in self.qbo.read_many("Payment", sorted(unseen)) for a in statuses.payments_applied(p)
            ]
        rows = [
            FollowedPayment(d.id, a.payment_id, d.portal_id, a.amount, a.paid_on, a.currency, None)
            for a in applications
            for d in pk_of.get(a.invoice_id, [])
            if (d.id, a.payment_id) not in known
        ]
        return self.followed.add_payments(rows)


# -- the record's properties and timeline ---------------------------------------------------------------------------


def push_statuses(services: Services, portal_id: int) -> str | Retry:
    """Send the properties of a portal's records whose documents changed, and post their new payments."""
    services.queue.clear_status_push_request(portal_id)
    pusher = StatusPusher(services, portal_id)
    try:
        with services.lock(f"push-statuses:{portal_id}", timeout=services.config.job_timeout, wait=False):
            result = _push(pusher)
    except LockError:
        # Another job sends the portal's statuses; it looks for what changed meanwhile when it ends.
        return "busy"
    if isinstance(result, str) and result != NO_ACCESS and portal_id in services.followed.portals_to_push([portal_id]):
        services.queue.request_status_push(portal_id)
    return result


def _push(pusher: StatusPusher) -> str | Retry:
    portal_id = pusher.portal_id
    try:
        records = pusher.push_records()
        events = pusher.post_payments()
    except RateLimitedError as error:
        return retry_in(_delay(error))
    except TransientError as error:
        log.warning("portal %s: statuses not sent yet: %s", portal_id, error)
        return retry_in(10)
    except (ConnectionRevokedError, AuthenticationError) as error:
        log.error("portal %s: statuses wait: the app has no access to the portal (%s)", portal_id, error)
        return NO_ACCESS
    except MissingScope as error:
        log.error(
            "portal %s: statuses wait: the app lacks a scope for them; install it again to grant it (%s)",
            portal_id,
            error,
        )
        return NO_ACCESS
    metrics.status_updates(records, events)
    return f"{records} records, {events} payments"


class StatusPusher:
    """Sends one portal's record properties and payment events, in batches of 100."""

    def __init__(self, services: Services, portal_id: int) -> None:
        self.services = services
        self.followed = services.followed
        self.portal_id = portal_id
        self.app_url = services.config.quickbooks_app_url
        self._hubspot: HubSpotClient | None = None
        self._set_up = False

    @property
    def hubspot(self) -> HubSpotClient:
        """Return the portal's client, built on first use."""
        if self._hubspot is None:
            self._hubspot = self.services.hubspot(self.portal_id)
        return self._hubspot

    def followed_of(self, documents: Sequence[FollowedDocument]) -> dict[int, Followed]:
        """Return each document with its link and the date of its latest payment."""
        last_paid: dict[int, str] = {}
        for payment in self.followed.payments(d.id for d in documents if d.entity == "Invoice"):
            if payment.paid_on and payment.paid_on > last_paid.get(payment.document_pk, ""):
                last_paid[payment.document_pk] = payment.paid_on
        return {
            d.id: Followed(
                DocumentState.from_json(d.state), url_of(self.app_url, d.entity, d.document_id), last_paid.get(d.id)
            )
            for d in documents
        }

    def push_records(self) -> int:
        """Send the pending records' properties, 100 a call, until caught up; return how many records went.

        A partial batch ends the job: what changes next waits for the next push (STATUS_FLUSH_DELAY later), so a
        stream of changes goes in full batches instead of a call for every few records.
        """
        sent = 0
        today = utcnow().date()
        for _ in range(ROUNDS_PER_PUSH):
            records = self.followed.records_to_push(self.portal_id, RECORDS_PER_PUSH)
            if not records:
                break
            documents = self.followed.of_records(self.portal_id, records)
            followed = self.followed_of(documents)
            by_record: dict[tuple[str, str], list[FollowedDocument]] = defaultdict(list)
            for document in documents:
                by_record[(document.object_type, document.object_id)].append(document)
            updates: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
            for (object_type, object_id), docs in by_record.items():
                values = statuses.record_properties([followed[d.id] for d in docs], today)
                updates[object_type].append((object_id, values))
            for object_type, batch in updates.items():
                self._update(object_type, batch)
            state_of = {pk: f.state for pk, f in followed.items()}
            self.followed.pushed(
                documents,
                {
                    d.id: statuses.invoice_status(state_of[d.id], today).value
                    for d in documents
                    if d.entity == "Invoice"
                },
            )
            sent += len(by_record)
            if len(records) < RECORDS_PER_PUSH:
                break
        return sent

    def _update(self, object_type: str, batch: list[tuple[str, dict[str, str]]]) -> None:
        """Send one record type's properties; a batch refused as a whole goes again one record at a time, so one
        bad record (deleted, or refused) gives up only its own statuses."""
        try:
            errors = self._send(object_type, batch)
        except PermanentError as error:
            if len(batch) == 1:
                return self._refused(object_type, error)
            errors = []
            for one in batch:
                try:
                    errors.extend(self._send(object_type, [one]))
                except PermanentError as alone:
                    self._refused(f"{object_type} {one[0]}", alone)
        for refused in errors:
            # A record deleted in HubSpot: nothing to show its documents on.
            log.warning("portal %s: %s not updated: %s", self.portal_id, object_type, refused.get("message"))
        return None

    def _send(self, object_type: str, batch: list[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
        """Send a batch update, setting the properties up once when HubSpot lacks them."""
        try:
            return self.hubspot.batch_update(object_type, batch)
        except PermanentError as error:
            _no_scope(error)
            if self._set_up or error.http_status != 400:
                raise
            # The portal installed the app before these properties existed, or someone deleted one.
            log.warning("portal %s: %s properties refused (%s); setting them up", self.portal_id, object_type, error)
            set_up_properties(self.services, self.portal_id, self.hubspot)
            self._set_up = True
            return self.hubspot.batch_update(object_type, batch)

    def _refused(self, object_type: str, error: PermanentError) -> None:
        """Give up on sending these records as they are: the statuses stay stored, the next change sends them."""
        log.error("portal %s: HubSpot refused the %s statuses: %s", self.portal_id, object_type, error)
        metrics.status_updates_refused(object_type)

    def post_payments(self) -> int:
        """Post each new payment on its invoice's record: a timeline event, or a note without a template."""
        posted = 0
        templates = self.services.config.hubspot_timeline_templates
        for _ in range(ROUNDS_PER_PUSH):
            payments = self.followed.unposted_payments(self.portal_id, RECORDS_PER_PUSH)
            if not payments:
                break
            documents = {d.id: d for d in self.followed.by_pk(p.document_pk for p in payments)}
            events: list[dict[str, Any]] = []
            evented: list[FollowedPayment] = []
            notes: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
            noted: dict[str, list[FollowedPayment]] = defaultdict(list)
            stamp = utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for payment in payments:
                document = documents[payment.document_pk]
                invoice = DocumentState.from_json(document.state)
                applied = PaymentApplied(
                    payment.payment_id, document.document_id, payment.amount, payment.paid_on, payment.currency
                )
                link = url_of(self.app_url, "Invoice", document.document_id)
                template = templates.get(document.object_type)
                if template:
                    events.append(
                        {
                            "eventTemplateId": template,
                            "objectId": document.object_id,
                            "id": f"{statuses.payment_event_id(document.realm_id, applied)}-{document.object_id}",
                            "tokens": statuses.payment_tokens(applied, invoice, link),
                            "timestamp": stamp,
                        }
                    )
                    evented.append(payment)
                else:
                    notes[document.object_type].append(
                        (document.object_id, statuses.payment_note(applied, invoice, link), stamp)
                    )
                    noted[document.object_type].append(payment)
            # Each group is recorded as posted as soon as it went, so an error in a later one never posts it again.
            if events:
                self._post("timeline", partial(self._events, events))
                self.followed.posted(evented)
            for object_type, batch in notes.items():
                self._post(f"{object_type} notes", partial(self._notes, object_type, batch))
                self.followed.posted(noted[object_type])
            posted += len(payments)
            if len(payments) < RECORDS_PER_PUSH:
                break  # caught up, as for the records
        return posted

    def _post(self, what: str, send: Callable[[], None]) -> None:
        """Send a group of payments; one refused as a whole (a template deleted) is given up, as sending again would
        not help; a missing scope keeps them for when the portal installs the app again."""
        try:
            send()
        except PermanentError as error:
            _no_scope(error)
            self._refused(what, error)

    def _events(self, events: list[dict[str, Any]]) -> None:
        for error in self.hubspot.create_timeline_events(events):
            if error.get("category") != "CONFLICT":  # a conflict: the event went out before
                log.warning("portal %s: payment event refused: %s", self.portal_id, error.get("message"))

    def _notes(self, object_type: str, batch: list[tuple[str, str, str]]) -> None:
        for error in self.hubspot.create_notes(object_type, batch):
            # A note made but not shown on its record: posting it again would make a second one.
            log.warning("portal %s: a payment note was not associated: %s", self.portal_id, error.get("message"))
            metrics.status_updates_refused(f"{object_type} note association")


class MissingScope(Exception):
    """The portal's grant lacks a scope the statuses need (it installed the app before they were asked for)."""


def _no_scope(error: PermanentError) -> None:
    """Turn HubSpot's 403 into MissingScope: the statuses wait for a new install instead of being given up."""
    if error.http_status == 403:
        raise MissingScope(str(error)) from error


# -- HubSpot's side: the properties -------------------------------------------------------------------------------


def set_up_properties(services: Services, portal_id: int, hubspot: HubSpotClient | None = None) -> dict[str, str]:
    """Create the "QuickBooks" group and its properties on each record type (what exists is kept, what
    differs is updated); return what was done per type."""
    hubspot = hubspot or services.hubspot(portal_id)
    report: dict[str, str] = {}
    wanted = properties.definitions()
    for object_type in properties.OBJECT_TYPES:
        try:
            if hubspot.property_group(object_type, properties.GROUP_NAME) is None:
                hubspot.create_property_group(object_type, properties.GROUP_NAME, properties.GROUP_LABEL)
            existing = hubspot.properties(object_type)
            missing = [d for d in wanted if d["name"] not in existing]
            errors = hubspot.create_properties(object_type, missing) if missing else []
            changed = [d for d in wanted if d["name"] in existing and properties.differs(d, existing[str(d["name"])])]
            for definition in changed:
                hubspot.update_property(object_type, str(definition["name"]), definition)
            report[object_type] = f"{len(missing) - len(errors)} created, {len(changed)} updated" + (
                f", {len(errors)} refused" if errors else ""
            )
        except PermanentError as error:
            # One record type HubSpot refuses (a portal without Payments) must not keep the others from working.
            log.warning("portal %s: %s properties not set up: %s", portal_id, object_type, error)
            report[object_type] = f"failed: {error}"
    return report


def mark_overdue(services: Services) -> int:
    """Send again the records of unpaid invoices whose due date passed (QuickBooks says nothing when it does)."""
    marked = services.followed.mark_overdue_candidates(utcnow().date().isoformat())
    if marked:
        for portal_id in services.followed.portals_to_push():
            services.queue.request_status_push(portal_id)
    return marked


def check_daily(services: Services) -> int:
    """Once a UTC day across the deployment: mark overdue invoices, forget week-old notifications."""
    today = utcnow().date().isoformat()
    flag = f"{DAILY_FLAG}{today}"
    if not services.redis.set(flag, "1", nx=True, ex=2 * 86400):
        return 0
    try:
        marked = mark_overdue(services)
        forgotten = services.followed.purge_notices(utcnow() - NOTICE_MEMORY)
    except Exception:
        services.redis.delete(flag)  # the next sweep tries again today
        raise
    log.info("daily document checks: %s invoices to show as overdue, %s old notifications deleted", marked, forgotten)
    return marked


def request_due_work(services: Services) -> None:
    """Ask for what the sweeper owes: change captures that are due, lost notice jobs, pushes nobody sent."""
    connected = {c.realm_id for c in services.connections.quickbooks_of() if c.active}
    for realm_id in set(services.followed.realms()) & connected:
        services.queue.request_changes(realm_id, services.config.cdc_interval)
    for realm_id in services.followed.realms_with_notices(utcnow() - timedelta(seconds=60)):
        services.queue.request_notices(realm_id)
    for portal_id in services.followed.portals_to_push():
        services.queue.request_status_push(portal_id)

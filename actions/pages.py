"""The pages a HubSpot admin uses: install the app, connect QuickBooks companies, see and remove them.

Only a user of the portal gets in: the session is bound to the portal HubSpot's own login confirmed during the
install flow. Every form carries a CSRF token (Flask-WTF), and a company not connected to the session's portal
is a 404.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from actions.company_settings import (
    DEFAULT_FIELDS,
    ITEM_ID,
    OPERATOR_CHOICES,
    PRODUCT_ID,
    Choices,
    filter_rows,
    load_choices,
    read_mapping_csv,
    settings_from_form,
    warnings,
)
from actions.endpoints import services
from actions.manifests import reason_labels
from services.accounts.flows import connect_company, disconnect_company, install_portal, remove_portal
from services.accounts.state import StateError, StateTokens
from services.books.eligibility import contact_sync_mode, explain
from services.books.records import contact_properties
from services.books.settings import HOLDABLE_REASONS, SettingsError, validate_settings
from services.store.records import Connection, Tenant
from services.transport.errors import ServiceError

log = logging.getLogger(__name__)
HUBSPOT_INSTALL, QUICKBOOKS_CONNECT = "hubspot-install", "quickbooks-connect"
QUICKBOOKS_SCOPE = "com.intuit.quickbooks.accounting"

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static", static_url_path="/static")


class PageError(Exception):
    """A page that answers with an explanation instead of what was asked for."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


@bp.errorhandler(PageError)
def _page_error(error: PageError) -> tuple[str, int]:
    return render_template("message.html", title=error.title, message=error.message), error.status


def public_url(path: str) -> str:
    """Return the URL of one of our pages as the browser (and the OAuth providers) reach it."""
    base = services().config.public_base_url or request.host_url.rstrip("/")
    return base + path


def states() -> StateTokens:
    svc = services()
    return StateTokens(svc.config.secret_key, svc.redis)


def redeem_state(purpose: str) -> int | None:
    """Check the `state` of a callback; a forged, expired or replayed one is a 400 page."""
    try:
        return states().redeem(request.args.get("state", ""), purpose).portal_id
    except StateError as error:
        raise PageError(400, "This link cannot be used", str(error)) from error


def signed_in_portal() -> int | None:
    """Return the portal of the session, if the admin signed in through HubSpot."""
    portal = session.get("portal_id")
    return int(portal) if portal is not None else None


def company_of(portal_id: int, realm_id: str) -> Connection:
    """Return the session portal's connection to a company; any other company is a 404."""
    connection = services().connections.quickbooks(portal_id, realm_id)
    if connection is None:
        abort(404)
    return connection


@bp.get("/")
def home() -> Response:
    """Send visitors to the settings (through HubSpot's login when they have no session)."""
    return redirect(url_for("pages.settings"), 302)


@bp.post("/sign-out")
def sign_out() -> tuple[str, int]:
    """End the admin's session."""
    session.clear()
    return render_template("message.html", title="Signed out", message="You are signed out of the settings."), 200


# HubSpot install ---------------------------------------------------------------------------------------------


@bp.get("/oauth/hubspot/install")
def hubspot_install() -> Response:
    """Send the admin to HubSpot to choose a portal and consent to our scopes."""
    config = services().config
    query = {
        "client_id": config.hubspot_client_id,
        "redirect_uri": public_url("/oauth/hubspot/callback"),
        "scope": " ".join(config.hubspot_scopes),
        "state": states().issue(HUBSPOT_INSTALL),
    }
    return redirect(f"{config.hubspot_authorize_url}?{urlencode(query)}", 302)


@bp.get("/oauth/hubspot/callback")
def hubspot_callback() -> Response | tuple[str, int]:
    """Finish the install: store the portal's tokens and sign the admin in to the settings page."""
    if request.args.get("error"):
        redeem_state(HUBSPOT_INSTALL)
        message = "The app was not installed: the HubSpot account did not grant access. Nothing was changed."
        return render_template("message.html", title="Install cancelled", message=message), 200
    redeem_state(HUBSPOT_INSTALL)
    code = request.args.get("code", "")
    if not code:
        raise PageError(400, "This link cannot be used", "HubSpot sent no authorization code. Start the install again.")
    try:
        portal_id = install_portal(services(), code, public_url("/oauth/hubspot/callback"))
    except ServiceError as error:
        log.warning("install failed: %s", error)
        raise PageError(502, "HubSpot did not complete the install", f"HubSpot answered: {error.message}") from error
    session.clear()
    session.permanent = True
    session["portal_id"] = portal_id
    return redirect(url_for("pages.settings"), 302)


# QuickBooks connect ------------------------------------------------------------------------------------------


@bp.get("/oauth/quickbooks/connect")
def quickbooks_connect() -> Response:
    """Send the admin to Intuit to choose a company and consent."""
    portal_id = signed_in_portal()
    if portal_id is None:
        return redirect(url_for("pages.hubspot_install"), 302)
    config = services().config
    query = {
        "client_id": config.quickbooks_client_id,
        "response_type": "code",
        "scope": QUICKBOOKS_SCOPE,
        "redirect_uri": public_url("/oauth/quickbooks/callback"),
        "state": states().issue(QUICKBOOKS_CONNECT, portal_id),
    }
    return redirect(f"{config.quickbooks_authorize_url}?{urlencode(query)}", 302)


@bp.get("/oauth/quickbooks/callback")
def quickbooks_callback() -> Response | tuple[str, int]:
    """Finish connecting a company to the portal that started it, then show the company's settings."""
    if request.args.get("error"):
        redeem_state(QUICKBOOKS_CONNECT)
        message = "No QuickBooks company was connected: Intuit did not grant access. Nothing was changed."
        return render_template("message.html", title="Connection cancelled", message=message), 200
    portal_id = redeem_state(QUICKBOOKS_CONNECT)
    if portal_id is None or portal_id != signed_in_portal():
        raise PageError(400, "This link cannot be used", "It was issued to another HubSpot account's session.")
    code, realm_id = request.args.get("code", ""), request.args.get("realmId", "")
    if not code or not realm_id.isdecimal() or len(realm_id) > 32:
        raise PageError(400, "This link cannot be used", "Intuit sent no authorization code or company id.")
    try:
        connect_company(services(), portal_id, realm_id, code, public_url("/oauth/quickbooks/callback"))
    except ServiceError as error:
        log.warning("connecting company %s failed: %s", realm_id, error)
        raise PageError(
            502, "QuickBooks did not complete the connection", f"Intuit answered: {error.message}"
        ) from error
    return redirect(url_for("pages.company", realm_id=realm_id), 302)


# Settings ----------------------------------------------------------------------------------------------------


@bp.get("/settings")
def settings() -> Response | str:
    """List the portal's companies, with what needs attention."""
    portal_id = signed_in_portal()
    if portal_id is None:
        return redirect(url_for("pages.hubspot_install"), 302)
    companies = services().connections.quickbooks_of(portal_id)
    return render_template("settings.html", portal_id=portal_id, companies=companies)


def company_page(
    portal_id: int, realm_id: str, *, status: int = 200, notice: str = "", error: str = "", **extra: Any
) -> tuple[str, int]:
    """Render a company's settings page, with whatever the last form said."""
    svc = services()
    connection = company_of(portal_id, realm_id)
    cached = svc.companies.cached_profile(realm_id)
    profile: dict[str, Any] = cached.profile if cached else {}
    settings = extra.pop("settings", None) or svc.companies.settings(realm_id)
    choices = load_choices(svc, portal_id, realm_id) if connection.active else Choices()
    search = request.args.get("q", "").strip()[:64]
    page = render_template(
        "company.html",
        portal_id=portal_id,
        company=connection,
        profile=profile,
        settings=settings,
        rows=filter_rows(settings),
        operators=OPERATOR_CHOICES,
        default_fields=DEFAULT_FIELDS,
        holdable=HOLDABLE_REASONS,
        reason_labels=reason_labels(),
        choices=choices,
        warnings=warnings(connection, profile, svc.companies.settings(realm_id), choices),
        mappings=svc.bookkeeping.product_mapping_list(Tenant(portal_id, realm_id), search),
        search=search,
        notice=notice,
        error=error,
        **extra,
    )
    return page, status


def signed_in_or_out() -> int:
    """Return the session's portal; a form posted without a session is refused."""
    portal_id = signed_in_portal()
    if portal_id is None:
        abort(403)
    return portal_id


@bp.get("/settings/companies/<realm_id>")
def company(realm_id: str) -> Response | tuple[str, int]:
    """Show one company of the portal: its facts, warnings, settings, product mappings."""
    portal_id = signed_in_portal()
    if portal_id is None:
        return redirect(url_for("pages.hubspot_install"), 302)
    return company_page(portal_id, realm_id)


@bp.post("/settings/companies/<realm_id>")
def save_company(realm_id: str) -> Response | tuple[str, int]:
    """Save the company's settings from the form; a setting that would not work is shown, not saved."""
    portal_id = signed_in_or_out()
    company_of(portal_id, realm_id)
    svc = services()
    document = settings_from_form(request.form, svc.companies.settings(realm_id))
    try:
        valid = validate_settings(document, longest_hold_hours=svc.config.callback_expiry.total_seconds() / 3600)
    except SettingsError as problem:
        return company_page(portal_id, realm_id, status=400, error=f"Not saved: {problem}.", settings=document)
    svc.companies.save_settings(realm_id, valid)
    return redirect(url_for("pages.company", realm_id=realm_id, saved=1), 303)


@bp.post("/settings/companies/<realm_id>/test-contact")
def test_contact(realm_id: str) -> tuple[str, int]:
    """Say whether a contact (by id or email) passes the company's sync filters; nothing is written."""
    portal_id = signed_in_or_out()
    company_of(portal_id, realm_id)
    svc = services()
    wanted = request.form.get("contact", "").strip()[:254]
    settings = svc.companies.settings(realm_id)
    mode, groups = contact_sync_mode(settings)
    try:
        hubspot = svc.hubspot(portal_id)
        properties = contact_properties(settings)
        if wanted.isdecimal():
            found = hubspot.batch_read("contacts", [wanted], properties)
        else:
            found = hubspot.search(
                "contacts", [{"filters": [{"propertyName": "email", "operator": "EQ", "value": wanted}]}], properties, 1
            )
    except ServiceError as problem:
        return company_page(portal_id, realm_id, status=502, error=f"HubSpot could not be asked: {problem.message}")
    if not wanted or not found:
        return company_page(portal_id, realm_id, contact_result=f"No contact {wanted!r} was found in HubSpot.")
    contact = found[0]
    if mode != "filters":
        verdict = "eligible: in legacy mode every contact may become a customer (matched by name and email)"
    else:
        eligible, why = explain(groups, contact.properties)
        verdict = f"eligible ({why})" if eligible else f"not eligible: {why}"
    return company_page(portal_id, realm_id, contact_result=f"Contact {contact.id}: {verdict}.")


@bp.post("/settings/companies/<realm_id>/mappings")
def save_mapping(realm_id: str) -> Response | tuple[str, int]:
    """Add or change which QuickBooks item a HubSpot product is."""
    portal_id = signed_in_or_out()
    company_of(portal_id, realm_id)
    product, item = request.form.get("product_id", "").strip(), request.form.get("item_id", "").strip()
    if not PRODUCT_ID.fullmatch(product) or not ITEM_ID.fullmatch(item):
        return company_page(
            portal_id,
            realm_id,
            status=400,
            error="A mapping needs a HubSpot product id and a QuickBooks item id (digits).",
        )
    services().bookkeeping.save_product_mapping(Tenant(portal_id, realm_id), product, item)
    return redirect(url_for("pages.company", realm_id=realm_id, _anchor="mappings"), 303)


@bp.post("/settings/companies/<realm_id>/mappings/<product_id>/remove")
def remove_mapping(realm_id: str, product_id: str) -> Response:
    """Forget a product's mapping: the next execution matches it again by SKU or name."""
    portal_id = signed_in_or_out()
    company_of(portal_id, realm_id)
    if not services().bookkeeping.remove_product_mapping(Tenant(portal_id, realm_id), product_id):
        abort(404)
    return redirect(url_for("pages.company", realm_id=realm_id, _anchor="mappings"), 303)


@bp.post("/settings/companies/<realm_id>/mappings/import")
def import_mappings(realm_id: str) -> tuple[str, int]:
    """Import mappings from a CSV file of `hubspot_product_id,quickbooks_item_id` rows."""
    portal_id = signed_in_or_out()
    company_of(portal_id, realm_id)
    upload = request.files.get("file")
    if upload is None:
        return company_page(portal_id, realm_id, status=400, error="Choose a CSV file to import.")
    try:
        text = upload.read(1024 * 1024).decode("utf-8-sig")
    except UnicodeDecodeError:
        return company_page(portal_id, realm_id, status=400, error="The file is not UTF-8 text.")
    result = read_mapping_csv(text)
    tenant = Tenant(portal_id, realm_id)
    for product, item in result.saved:
        services().bookkeeping.save_product_mapping(tenant, product, item)
    notice = f"Imported {len(result.saved)} mappings."
    error = ("Some lines were skipped: " + "; ".join(result.problems[:10])) if result.problems else ""
    return company_page(portal_id, realm_id, status=200 if not error else 400, notice=notice, error=error)


@bp.post("/settings/companies/<realm_id>/disconnect")
def disconnect(realm_id: str) -> Response:
    """Disconnect a company from the portal (its settings and mappings stay for a reconnect)."""
    portal_id = signed_in_or_out()
    company_of(portal_id, realm_id)
    disconnect_company(services(), portal_id, realm_id)
    return redirect(url_for("pages.settings"), 303)


@bp.post("/settings/remove")
def remove() -> tuple[str, int]:
    """Remove the portal's data: tokens, connections, settings and mappings (executions stay)."""
    portal_id = signed_in_or_out()
    realms = remove_portal(services(), portal_id)
    session.clear()
    message = (
        f"HubSpot account {portal_id} and its {len(realms)} QuickBooks connection(s) were removed from this server. "
        "The history of its actions stays for the record. Uninstall the app in HubSpot to finish."
    )
    return render_template("message.html", title="Removed", message=message), 200


def register(app: Flask) -> None:
    """Register the pages."""
    app.register_blueprint(bp)

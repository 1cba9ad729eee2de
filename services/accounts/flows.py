"""What the install and connect pages do: trade OAuth codes for tokens, store them, and undo it all."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.books.company import fetch_profile
from services.bootstrap import Services
from services.hubspot.client import portal_of_token
from services.store.records import Connection
from services.transport.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectedCompany:
    """A company just connected, and what QuickBooks said about it."""

    connection: Connection
    name: str
    country: str
    home_currency: str


def install_portal(services: Services, code: str, redirect_uri: str) -> int:
    """Finish a HubSpot install: trade the code for tokens, learn the portal, store its tokens; return the portal.

    A second install of the same portal replaces its tokens.
    """
    grant = services.token_endpoint("hubspot").exchange_code(code, redirect_uri)
    config = services.config
    portal_id = portal_of_token(
        services.session, config.hubspot_api_base_url, grant.access_token, timeout=config.http_timeout
    )
    services.connections.save_portal(portal_id, grant.refresh_token, grant.access_token, grant.expires_at)
    # The record properties the documents' statuses go to; a job, so the install page does not wait for HubSpot.
    services.queue.enqueue_property_setup(portal_id)
    log.info("HubSpot portal %s installed the app", portal_id)
    return portal_id


def connect_company(
    services: Services, portal_id: int, realm_id: str, code: str, redirect_uri: str
) -> ConnectedCompany:
    """Finish connecting a QuickBooks company to a portal: store its tokens and read who it is.

    Connecting a company again (a reconnect) keeps its settings and every portal's mappings.
    """
    grant = services.token_endpoint("quickbooks").exchange_code(code, redirect_uri)
    services.connections.save_quickbooks(portal_id, realm_id, grant.refresh_token, grant.access_token, grant.expires_at)
    connection = services.connections.quickbooks(portal_id, realm_id)
    assert connection is not None  # saved just above
    qbo = services.quickbooks(connection)
    info = qbo.company_info()
    profile = fetch_profile(qbo)
    services.companies.save_profile(realm_id, profile.to_dict())
    name = str(info.get("CompanyName") or info.get("LegalName") or f"QuickBooks company {realm_id}")
    services.connections.name_quickbooks(connection.id, name)
    log.info("QuickBooks company %s (%s) connected to portal %s", realm_id, name, portal_id)
    connected = services.connections.quickbooks(portal_id, realm_id)
    assert connected is not None
    return ConnectedCompany(connected, name, profile.country, profile.home_currency)


def disconnect_company(services: Services, portal_id: int, realm_id: str) -> bool:
    """Revoke a company's grant at Intuit and forget its tokens; False when it was not connected to the portal.

    Its settings and mappings stay, so connecting it again picks up where it left off.
    """
    connection = services.connections.quickbooks(portal_id, realm_id)
    if connection is None:
        return False
    tokens = services.connections.quickbooks_tokens(connection.id)
    try:
        services.token_endpoint("quickbooks").revoke(services.config.quickbooks_revoke_url, tokens.refresh_token)
    except ServiceError as error:
        # The admin asked for the company to be gone: forgetting the tokens is what matters here.
        log.warning("QuickBooks company %s: the grant could not be revoked (%s); forgetting it anyway", realm_id, error)
    services.connections.remove_quickbooks(portal_id, realm_id)
    log.info("QuickBooks company %s disconnected from portal %s", realm_id, portal_id)
    return True


def remove_portal(services: Services, portal_id: int) -> list[str]:
    """Delete a portal's tokens, connections, mappings, and the settings of companies no other portal uses.

    Executions stay for the record, and so do payment claims, which keep a payment from being booked twice if the
    portal installs the app again. Return the companies that were disconnected.
    """
    realms = [c.realm_id for c in services.connections.quickbooks_of(portal_id)]
    for realm_id in realms:
        disconnect_company(services, portal_id, realm_id)
    services.bookkeeping.forget_portal(portal_id)
    services.followed.forget_portal(portal_id)
    services.connections.remove_portal(portal_id)
    for realm_id in realms:
        if not services.connections.portals_of(realm_id):
            services.companies.remove(realm_id)
    log.info("HubSpot portal %s removed with %s companies", portal_id, len(realms))
    return realms

"""The qbo-actions command line (Flask's CLI, so every command sees the same configuration)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from actions.ops.commands import executions
from services import bootstrap as bootstrap_module
from services.books.settings import KNOWN_SETTINGS, SettingsError, validate_settings
from services.bootstrap import Services
from services.clock import utcnow
from services.config import ConfigError

if TYPE_CHECKING:
    from services.config import Config
    from services.hubspot.definitions import ActionDefinitions
from services.ops.tokens import ROLES
from services.store.crypto import TokenCipher

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
BASE_URL_PLACEHOLDER = "{{PUBLIC_BASE_URL}}"


def _create_app() -> Any:
    from actions.app import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def services() -> Services:
    """Return the services of the current app."""
    return current_app.extensions["qbo_actions"]  # type: ignore[no-any-return]


def _expiry(expires_in: int | None) -> Any:
    return utcnow() + timedelta(seconds=expires_in) if expires_in else None


cli = FlaskGroup(create_app=_create_app, add_default_commands=False, help="QuickBooks Actions for HubSpot.")


# Database ---------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Bring the database schema up to date."""
    from services.store import migrate

    migrate.upgrade(services().database.engine, revision)
    click.echo(f"Database at {revision}.")


# Connections ------------------------------------------------------------------------------------


@cli.group()
def connections() -> None:
    """HubSpot portals and QuickBooks companies."""


@connections.command("add-hubspot")
@click.option("--portal-id", type=int, required=True)
@click.option("--refresh-token", required=True)
@click.option("--access-token")
@click.option("--expires-in", type=int, help="Seconds the access token stays valid.")
@with_appcontext
def add_hubspot(portal_id: int, refresh_token: str, access_token: str | None, expires_in: int | None) -> None:
    """Store a HubSpot portal's tokens (the OAuth install flow comes later)."""
    services().connections.save_portal(portal_id, refresh_token, access_token, _expiry(expires_in))
    click.echo(f"HubSpot portal {portal_id} saved.")


@connections.command("add-quickbooks")
@click.option("--portal-id", type=int, required=True)
@click.option("--realm-id", required=True)
@click.option("--refresh-token", required=True)
@click.option("--access-token")
@click.option("--expires-in", type=int, help="Seconds the access token stays valid.")
@click.option("--name", help="How the company is shown in the action's dropdown.")
@with_appcontext
def add_quickbooks(
    portal_id: int,
    realm_id: str,
    refresh_token: str,
    access_token: str | None,
    expires_in: int | None,
    name: str | None,
) -> None:
    """Connect a QuickBooks company to a HubSpot portal with existing tokens."""
    services().connections.save_quickbooks(portal_id, realm_id, refresh_token, access_token, _expiry(expires_in), name)
    click.echo(f"QuickBooks company {realm_id} connected to portal {portal_id}.")


@connections.command("remove-hubspot")
@click.option("--portal-id", type=int, required=True)
@with_appcontext
def remove_hubspot(portal_id: int) -> None:
    """Delete a portal's tokens, connections, settings and mappings (its executions stay for the record)."""
    from services.accounts.flows import remove_portal

    if portal_id not in services().connections.portals() and not services().connections.quickbooks_of(portal_id):
        raise click.ClickException(f"HubSpot portal {portal_id} is not installed here.")
    realms = remove_portal(services(), portal_id)
    click.echo(f"HubSpot portal {portal_id} removed, with {len(realms)} QuickBooks connection(s).")


@connections.command("remove-quickbooks")
@click.option("--portal-id", type=int, required=True)
@click.option("--realm-id", required=True)
@with_appcontext
def remove_quickbooks(portal_id: int, realm_id: str) -> None:
    """Disconnect a company from a portal: revoke its grant at Intuit and delete its tokens."""
    from services.accounts.flows import disconnect_company

    if not disconnect_company(services(), portal_id, realm_id):
        raise click.ClickException(f"QuickBooks company {realm_id} is not connected to portal {portal_id}.")
    click.echo(f"QuickBooks company {realm_id} disconnected from portal {portal_id}.")


@connections.command("list")
@with_appcontext
def list_connections() -> None:
    """List portals and their QuickBooks companies."""
    connections = services().connections
    for portal_id in connections.portals():
        click.echo(f"HubSpot portal {portal_id}")
    for c in connections.quickbooks_of():
        refreshed = c.refreshed_at.isoformat(timespec="seconds") if c.refreshed_at else "never"
        click.echo(
            f"QuickBooks {c.realm_id} ({c.name or 'unnamed'}) -> portal {c.portal_id}: {c.status}, "
            f"tokens refreshed {refreshed}"
        )


# Settings ---------------------------------------------------------------------------------------


@cli.group()
def settings() -> None:
    """Per-company settings."""


@settings.command("show")
@click.option("--realm-id", required=True)
@with_appcontext
def settings_show(realm_id: str) -> None:
    """Print a company's settings as JSON, and the names that can be set."""
    click.echo(json.dumps(services().companies.settings(realm_id), indent=2, sort_keys=True))
    click.echo("\nKnown settings:", err=True)
    for key, meaning in KNOWN_SETTINGS.items():
        click.echo(f"  {key}: {meaning}", err=True)


@settings.command("set")
@click.option("--realm-id", required=True)
@click.option("--file", "path", type=click.File("r"), required=True, help="A JSON file ('-' for stdin).")
@with_appcontext
def settings_set(realm_id: str, path: Any) -> None:
    """Replace a company's settings with a JSON document."""
    try:
        longest = services().config.callback_expiry.total_seconds() / 3600
        document = validate_settings(json.load(path), longest_hold_hours=longest)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"The file is not JSON: {exc}") from exc
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    services().companies.save_settings(realm_id, document)
    click.echo(f"Settings of {realm_id} saved.")


# Executions -------------------------------------------------------------------------------------

cli.add_command(executions)


# Processes --------------------------------------------------------------------------------------


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run an RQ worker with the scheduler (for retries); it waits for Redis when Redis is away."""
    from services.work.worker import work

    svc = services()
    bootstrap_module.install(svc)
    _warm_up(svc)
    work(svc, burst=burst)


def _warm_up(svc: Services) -> None:
    """Import the jobs, configure the mappers and open a database connection before the first job needs them."""
    import importlib

    from sqlalchemy.orm import configure_mappers

    importlib.import_module("services.jobs")
    configure_mappers()
    try:
        svc.bookkeeping.steps("warm-up")
    except SQLAlchemyError as exc:
        # The release step may still be migrating (honcho starts every process at once); jobs will wait.
        click.echo(f"Database not ready yet ({exc.__class__.__name__}); the worker starts anyway.", err=True)


@cli.command("sweep")
@click.option("--forever", is_flag=True, help="Sweep every SWEEP_INTERVAL seconds until stopped (the sweeper process).")
@click.option("--metrics-port", type=int, default=0, help="With --forever: serve the sweeper's counters on this port.")
@with_appcontext
def sweep(forever: bool, metrics_port: int) -> None:
    """Re-enqueue lost executions and resend stuck callbacks (once, or as a process of its own)."""
    import signal
    import threading

    from services.work.sweeper import sweep as sweep_once
    from services.work.sweeper import sweep_forever

    svc = services()
    if not forever:
        report = sweep_once(svc)
        click.echo(
            f"Queued {report.relayed} executions left by the relay; re-enqueued {report.requeued} executions;"
            f" flushed callbacks of {report.flushes} portals."
        )
        return
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    click.echo(f"Sweeping every {svc.config.sweep_interval} s.", err=True)
    if metrics_port > 0:
        # The holds that run out are counted here, in the sweeper's own process.
        from services import metrics

        metrics.serve(metrics_port)
    sweep_forever(svc, stopping)


# Manifests and keys (no database or Redis needed) -----------------------------------------------


@cli.group()
def manifests() -> None:
    """Action definitions as HubSpot reads them."""


@manifests.command("render", with_appcontext=False)
@click.option("--base-url", required=True, help="The public https URL HubSpot calls, e.g. https://qbo.example.com")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Write files here.")
def manifests_render(base_url: str, out_dir: Path | None) -> None:
    """Fill the public base URL into the definitions; print them or write them to a folder."""
    from actions.manifests import render_all

    rendered = render_all(base_url)
    if out_dir is None:
        click.echo(json.dumps(rendered, indent=2))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, definition in rendered.items():
        (out_dir / name).write_text(json.dumps(definition, indent=2) + "\n")
    click.echo(f"Wrote {len(rendered)} definitions to {out_dir}.")


def _developer_client(app_id: int, why: str) -> tuple[Config, ActionDefinitions]:
    """Return the configuration and a client of the app's definitions with the developer API key."""
    from services.config import Config
    from services.hubspot.definitions import ActionDefinitions
    from services.transport.http import new_session

    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not config.hubspot_developer_api_key:
        raise click.ClickException(f"HUBSPOT_DEVELOPER_API_KEY is not set: {why}.")
    client = ActionDefinitions(
        config.hubspot_api_base_url,
        app_id,
        config.hubspot_developer_api_key,
        session=new_session(),
        timeout=config.http_timeout,
    )
    return config, client


@manifests.command("publish", with_appcontext=False)
@click.option("--app-id", type=click.IntRange(min=1), required=True, help="The HubSpot app's id.")
@click.option("--base-url", help="The public https URL HubSpot calls (default: PUBLIC_BASE_URL).")
@click.option("--dry-run", is_flag=True, help="Say what would change and send nothing.")
def manifests_publish(app_id: int, base_url: str | None, dry_run: bool) -> None:
    """Create or update the app's action definitions at HubSpot, matched to ours by actionUrl."""
    from actions.manifests import checked_base_url, publish, render_by_action
    from services.hubspot.definitions import CREATE, UNCHANGED, UPDATE
    from services.transport.errors import AuthenticationError, ServiceError

    config, client = _developer_client(
        app_id, "publishing needs the developer API key of the account that owns the app"
    )
    if not (base_url or config.public_base_url):
        raise click.ClickException("No base URL: pass --base-url or set PUBLIC_BASE_URL.")
    try:
        base = checked_base_url(base_url or str(config.public_base_url))
    except ValueError as exc:
        raise click.ClickException(f"{'--base-url' if base_url else 'PUBLIC_BASE_URL'}: {exc}") from exc
    verbs = (
        {CREATE: "would create", UPDATE: "would update", UNCHANGED: "unchanged"}
        if dry_run
        else {CREATE: "created", UPDATE: "updated", UNCHANGED: "unchanged"}
    )
    counts = dict.fromkeys(verbs, 0)
    try:
        for change in publish(client, render_by_action(base), dry_run=dry_run):
            counts[change.kind] += 1
            ident = f" ({change.definition_id})" if change.definition_id else ""
            keys = f": {', '.join(change.changed_keys)}" if change.kind == UPDATE else ""
            click.echo(f"{verbs[change.kind]} {change.name}{ident}{keys}")
            if change.also_matching:
                click.echo(
                    f"  note: definitions {', '.join(change.also_matching)} call the same URL; left as they are",
                    err=True,
                )
    except AuthenticationError as exc:
        raise click.ClickException(
            f"HubSpot refused the developer API key ({exc}). Check HUBSPOT_DEVELOPER_API_KEY and that app "
            f"{app_id} belongs to its developer account."
        ) from exc
    except ServiceError as exc:
        raise click.ClickException(
            f"HubSpot did not take the definitions ({exc}). What is listed above is done; publishing again "
            "carries on from there."
        ) from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if dry_run:
        click.echo(
            f"Dry run, nothing sent: app {app_id} would have {counts[CREATE]} created, {counts[UPDATE]} updated, "
            f"{counts[UNCHANGED]} unchanged."
        )
    else:
        click.echo(f"App {app_id}: {counts[CREATE]} created, {counts[UPDATE]} updated, {counts[UNCHANGED]} unchanged.")


@manifests.command("timeline", with_appcontext=False)
@click.option("--app-id", type=click.IntRange(min=1), required=True, help="The HubSpot app's id.")
def manifests_timeline(app_id: int) -> None:
    """Create or update the app's timeline event templates for payments; print the HUBSPOT_TIMELINE_TEMPLATES line."""
    from services.hubspot import properties
    from services.transport.errors import ServiceError

    _, client = _developer_client(app_id, "templates belong to the app's developer account")
    chosen: list[str] = []
    try:
        existing = {t.get("name"): t for t in client.timeline_templates()}
        for object_type in properties.OBJECT_TYPES:
            template = properties.payment_event_template(object_type)
            found = existing.get(template["name"])
            if found is None:
                template_id = str(client.create_timeline_template(template)["id"])
                click.echo(f"created {template['name']} ({template_id})")
            else:
                template_id = str(found["id"])
                client.update_timeline_template(template_id, template)
                click.echo(f"updated {template['name']} ({template_id})")
            chosen.append(f"{object_type}={template_id}")
    except ServiceError as exc:
        raise click.ClickException(f"HubSpot did not take the templates ({exc}).") from exc
    click.echo(f"HUBSPOT_TIMELINE_TEMPLATES={','.join(chosen)}")


@cli.group("hubspot")
def hubspot_group() -> None:
    """What the app keeps on HubSpot records."""


@hubspot_group.command("setup")
@click.option("--portal-id", type=int, required=True)
@with_appcontext
def hubspot_setup(portal_id: int) -> None:
    """Create the "QuickBooks" property group and the document properties on deals, quotes and payments."""
    from services.work.statuses import set_up_properties

    if services().connections.portal_tokens(portal_id) is None:
        raise click.ClickException(f"Portal {portal_id} has not installed the app.")
    for object_type, what in set_up_properties(services(), portal_id).items():
        click.echo(f"{object_type}: {what}")


@cli.group()
def documents() -> None:
    """QuickBooks documents shown on HubSpot records."""


@documents.command("link")
@click.option("--portal-id", type=int, required=True)
@click.option("--object-type", required=True, help="DEAL, QUOTE or COMMERCE_PAYMENT (or deals, 0-3, ...).")
@click.option("--object-id", required=True)
@click.option("--realm-id", required=True)
@click.option("--invoice-number", required=True, help="The invoice's number in QuickBooks.")
@with_appcontext
def documents_link(portal_id: int, object_type: str, object_id: str, realm_id: str, invoice_number: str) -> None:
    """Show an invoice made in QuickBooks by hand on a record: its status and payments follow from then on."""
    from services.hubspot.objects import OBJECT_TYPE_NAMES
    from services.transport.errors import ServiceError
    from services.work.statuses import link_invoice

    if object_type.upper() not in OBJECT_TYPE_NAMES and object_type.lower() not in OBJECT_TYPE_NAMES.values():
        raise click.BadParameter("use DEAL, QUOTE or COMMERCE_PAYMENT", param_hint="--object-type")
    try:
        linked = link_invoice(services(), portal_id, object_type, object_id, realm_id, invoice_number)
    except LookupError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    except ServiceError as exc:
        raise click.ClickException(f"QuickBooks could not be read: {exc}") from exc
    click.echo(
        f"invoice {invoice_number} (QuickBooks id {linked.document_id}) now shows on {linked.object_type} "
        f"{linked.object_id}"
    )


@documents.command("sync")
@click.option("--realm-id", required=True)
@with_appcontext
def documents_sync(realm_id: str) -> None:
    """Read a company's changes now (change data capture) instead of at the next CDC_INTERVAL."""
    from services.work.statuses import read_changes

    result = read_changes(services(), realm_id)
    if not isinstance(result, str):
        raise click.ClickException("QuickBooks did not answer in time; try again in a moment.")
    click.echo(result)


@cli.group()
def keys() -> None:
    """Encryption keys."""


@keys.command("generate", with_appcontext=False)
def keys_generate() -> None:
    """Print a new TOKEN_ENCRYPTION_KEY."""
    click.echo(TokenCipher.generate_key())


# Operators' tokens (no database or Redis needed) ------------------------------------------------


@cli.group()
def ops() -> None:
    """Operators of the console and its API."""


@ops.command("token", with_appcontext=False)
@click.option("--subject", required=True, help="Who the token is for, e.g. ops@example.com.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the operator may do.")
@click.option("--ttl", default="8h", show_default=True, help="How long it is valid: 90s, 30m, 8h, 2d (30d at most).")
def ops_token(subject: str, role: str, ttl: str) -> None:
    """Print an operator's token (HS256, signed with OPS_JWT_SECRET) on one line."""
    from services.config import Config
    from services.ops.tokens import OperatorTokens, parse_ttl

    try:
        lifetime = parse_ttl(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    if not subject.strip():
        raise click.BadParameter("give who the token is for", param_hint="--subject")
    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not config.ops_jwt_secret:
        raise click.ClickException("OPS_JWT_SECRET is not set: operators' tokens are signed with it.")
    click.echo(OperatorTokens(config).mint(subject, role, lifetime))


@cli.command("demo", with_appcontext=False)
@click.option("--browser", is_flag=True, help="Serve the install, connect and settings pages for a browser instead.")
@click.option("--port", type=int, default=0, help="Port of the action server (default: any free one).")
def demo(browser: bool, port: int) -> None:
    """Install, connect and run every action once against the simulators, on embedded defaults."""
    from actions.demo import run_demo

    sys.exit(run_demo(browser=browser, port=port))


def main() -> None:
    """Entry point of the qbo-actions command."""
    cli.main(prog_name="qbo-actions")


if __name__ == "__main__":
    main()

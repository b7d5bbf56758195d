"""The operator's command line: serve, migrate, demo, apps, keys, team, banks, purge,
maintenance, unblock, import, audit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub import apps_cli as apps_commands
from bankhub import supervision
from bankhub.audit import services as audit
from bankhub.audit_cli import audit_log
from bankhub.banks.cli import banks_cli
from bankhub.cli_common import base_url, err, in_one_transaction, out, settings_or_exit, url_host
from bankhub.cli_common import migrate as migrate_schema
from bankhub.clock import utcnow
from bankhub.config import ConfigError, Settings
from bankhub.dashboard.cli import team_cli
from bankhub.db import migrate as migrations
from bankhub.db import roles, tenancy
from bankhub.db.engine import Database
from bankhub.eidas_cli import check as eidas_check
from bankhub.eidas_cli import check_or_exit as eidas_or_exit
from bankhub.eidas_cli import eidas_cli
from bankhub.errors import DomainError, ErrorCode
from bankhub.events import flags
from bankhub.keys_cli import keys_cli
from bankhub.observability import logs, metrics
from bankhub.partners import services as partners
from bankhub.partners.models import App
from bankhub.security import network, shared
from bankhub.security.keyring import open_keyring
from bankhub.security.secrets import SecretHasher
from bankhub.signatures_cli import signatures_cli
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookEndpoint

T = TypeVar("T")

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="bankhub: a bank-data hub.")
apps_cli = typer.Typer(no_args_is_help=True, help="Partner apps.")
cli.add_typer(apps_cli, name="apps")
apps_cli.command("list")(apps_commands.apps_list)
apps_cli.command("archive")(apps_commands.apps_archive)
apps_cli.command("restore")(apps_commands.apps_restore)
apps_cli.command("rename")(apps_commands.apps_rename)
webhooks_cli = typer.Typer(no_args_is_help=True, help="Webhook endpoints.")
cli.add_typer(webhooks_cli, name="webhooks")
db_cli = typer.Typer(no_args_is_help=True, help="Database roles (PostgreSQL).")
cli.add_typer(db_cli, name="db")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(team_cli, name="team")
cli.add_typer(banks_cli, name="banks")
cli.add_typer(eidas_cli, name="eidas")
cli.add_typer(signatures_cli, name="signatures")
# where an operator looks first for what works with a bank: the same check as `eidas check`
banks_cli.command("check")(eidas_check)


@cli.callback()
def _operator(ctx: typer.Context) -> None:
    # S14: the operator's commands act on every app's rows (``bankhub.scope = 'all'`` on
    # PostgreSQL); undone when the command ends, so nothing else inherits it.
    ctx.with_resource(tenancy.everything())


cli.command("audit")(audit_log)


def _in_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one unit of work on the configured database; API errors end the command."""
    return in_one_transaction(settings, work)


def _demo_app(settings: Settings, *, reissue: bool) -> partners.IssuedApp | None:
    """The demo app: created on first start; ``reissue`` gives it new secrets (shown once)."""
    hasher = SecretHasher(settings.resolved_secret_key())

    async def work(session: AsyncSession) -> partners.IssuedApp | None:
        demo = await partners.find_demo_app(session)
        if demo is None:
            if not reissue and await partners.count_apps(session) > 0:
                return None
            return await partners.create_app(session, hasher, utcnow, "Demo app", is_demo=True)
        if reissue:
            return await partners.reissue_secrets(session, hasher, demo, utcnow())
        return None

    return _in_db(settings, work)


def _shared_store_or_exit(settings: Settings) -> None:
    """S18, S33: the store every process shares (``BANKHUB_RATE_LIMIT_STORAGE``) can be used,
    or the command stops here with one line that names the variable and what is wrong, before
    anything serves (never a 500 on every request later)."""
    try:
        shared.check(settings)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def _print_credentials(issued: partners.IssuedApp, base: str) -> None:
    creds = issued.as_dict()
    out.print(f"client-id: {creds['client_id']}", highlight=False)
    out.print(f"service-secret: {creds['service_secret']}", highlight=False)
    out.print(f"app-secret: {creds['app_secret']}", highlight=False)
    out.print(
        "Try it:\n"
        f"  curl -X POST {base}/v2/customer -H 'content-type: application/json' "
        f"-H 'client-id: {creds['client_id']}' -H 'service-secret: {creds['service_secret']}' "
        '-d \'{"identifier": "sample-identifier-user"}\'',
        highlight=False,
        soft_wrap=True,
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
) -> None:
    """Start bankhub: API, connect page and sandbox bank in one process."""
    settings = settings_or_exit()
    _shared_store_or_exit(settings)
    eidas_or_exit(settings)
    if settings.sftp_port is not None:
        _asyncssh_or_exit()
    host = host or settings.host
    port = port or settings.port
    held: supervision.HeldLock | None = None
    if settings.database_url is None:
        # One serving process per SQLite file: a second one (or one started beside a worker
        # left over by a crash) would meet the first at every write. Held until this process
        # ends; the kernel releases it however that happens.
        settings.make_data_dir()
        try:
            held = supervision.lock_data_dir(settings.data_dir)
        except supervision.DataDirBusy as busy:
            err.print(f"[red]{busy}[/red]", highlight=False)
            raise typer.Exit(2) from None
        out.print(f"data dir: {settings.data_dir.resolve()} (SQLite)", highlight=False)
        migrate_schema(settings)
    elif migrations.current_heads() and not _schema_current(settings):
        err.print("[red]the database schema is behind: run `bankhub migrate` first[/red]")
        raise typer.Exit(2)
    scheme = "https" if settings.tls_on else "http"
    base = (settings.public_url or f"{scheme}://{url_host(host)}:{port}").rstrip("/")
    if held is not None:
        # what `bankhub demo` and `bankhub team invite` print links to (cli_common.base_url)
        held.note(base)
    if settings.is_dev:
        out.print(f"environment: {settings.env} (plain http and loopback URLs allowed)")
    if settings.create_demo_app and settings.is_dev:
        issued = _demo_app(settings, reissue=False)
        if issued is not None:
            out.print("Created the demo app; its secrets are shown this once:")
            _print_credentials(issued, base)
        else:
            out.print("Demo app exists; run `bankhub demo` for new demo credentials.")
    out.print(f"bankhub listening on {base}", highlight=False)
    sys.stdout.flush()
    os.environ.setdefault("BANKHUB_PUBLIC_URL", base)
    every_interface = host in ("0.0.0.0", "::")  # noqa: S104  # nosec B104 - compared, not bound
    if not settings.internal_url and not settings.tls_on and not every_interface:
        # where the other API processes pass on steps of this one's connect sessions
        os.environ.setdefault("BANKHUB_INTERNAL_URL", f"http://{url_host(host)}:{port}")
    _count_metrics_with_peers(settings)
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols

    # the worker is a child of this process and dies with it, even by SIGKILL (supervision)
    supervision.mark_parent()
    Granian(
        "bankhub.app:worker_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        log_access=False,
        # granian's own lines (start-up, workers) take bankhub's log chain too
        log_dictconfig=logs.process_config(),
        # S26: TLS served directly when a certificate and key are configured
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        ssl_protocol_min=SSLProtocols.tls12,
    ).serve()
    if held is not None:
        held.release()


def _count_metrics_with_peers(settings: Settings) -> None:
    """``serve``'s worker and every ``bankhub worker`` of the host count in one directory, which
    each ``/metrics`` adds up (``observability.metrics``)."""
    given = os.environ.get(metrics.MULTIPROC_ENV)
    directory = settings.metrics_dir or (Path(given) if given else None)
    if directory is None:
        settings.make_data_dir()
        directory = settings.resolved_metrics_dir()
    metrics.prepare(directory)


def _schema_current(settings: Settings) -> bool:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import Connection

    def read(connection: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(connection).get_current_heads())

    async def current() -> tuple[str, ...]:
        db = Database(settings.resolved_database_url())
        try:
            async with db.engine.connect() as conn:
                return await conn.run_sync(read)
        finally:
            await db.dispose()

    return set(asyncio.run(current())) == set(migrations.current_heads())


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version."""
    settings = settings_or_exit()
    migrate_schema(settings)
    out.print("schema is up to date")


@cli.command()
def demo() -> None:
    """Print a ready-made demo app (with new secrets) and the next commands to try."""
    settings = settings_or_exit()
    migrate_schema(settings)
    issued = _demo_app(settings, reissue=True)
    assert issued is not None  # noqa: S101 - reissue always returns the app  # nosec B101
    _print_credentials(issued, base_url(settings))


@apps_cli.command("create")
def apps_create(
    name: str,
    webhook_url: Annotated[str | None, typer.Option(help="endpoint for webhooks")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            help="event type the endpoint receives (repeatable; default: transactions.new "
            "and login.status)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Create an app (and a webhook endpoint); its secrets are printed once."""
    settings = settings_or_exit()
    migrate_schema(settings)

    async def create(session: AsyncSession) -> dict[str, str]:
        issued = await partners.create_app(
            session, SecretHasher(settings.resolved_secret_key()), utcnow, name
        )
        result = issued.as_dict()
        if webhook_url is not None:
            hook = await webhooks.create_endpoint(
                session,
                await open_keyring(settings, session),
                utcnow(),
                issued.app.id,
                webhook_url,
                event or None,
                allow_http=settings.is_dev,
                allow_private=settings.is_dev,
            )
            result["webhook_endpoint_id"] = hook.endpoint.id
            result["webhook_secret"] = hook.secret
        return result

    created = _in_db(settings, create)
    if as_json:
        print(json.dumps(created))
    else:
        for key, value in created.items():
            out.print(f"{key.replace('_', '-')}: {value}", highlight=False)


@apps_cli.command("allow-ip")
def apps_allow_ip(
    client_id: str,
    cidrs: Annotated[
        list[str] | None, typer.Argument(help="IPv4/IPv6 addresses or CIDR ranges")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="allow any address again")] = False,
    chosen_by: Annotated[str, typer.Option(help="who chose, for the audit log")] = "operator",
) -> None:
    """Limit the addresses an app's API calls may come from (S17), or --clear the limit."""
    if clear == bool(cidrs):
        err.print("give one or more CIDR ranges, or --clear (not both)")
        raise typer.Exit(2)
    settings = settings_or_exit()
    migrate_schema(settings)

    async def allow(session: AsyncSession) -> list[str] | None:
        from sqlalchemy import select

        app = (
            await session.execute(select(App).where(App.client_id == client_id))
        ).scalar_one_or_none()
        if app is None:
            raise DomainError(ErrorCode.CLIENT_NOT_FOUND, f"no app with client-id {client_id}")
        await partners.set_ip_allowlist(
            session, app, None if clear else cidrs, chosen_by, now=utcnow(), actor="operator"
        )
        return app.ip_allowlist

    allowed = _in_db(settings, allow)
    if allowed is None:
        out.print(f"{client_id}: any address allowed", highlight=False)
    else:
        out.print(f"{client_id}: allowed from {', '.join(allowed)}", highlight=False)


@cli.command()
def unblock(
    address: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Lift the automatic block of an address (S18); audited."""
    settings = settings_or_exit()
    migrate_schema(settings)

    async def lift(session: AsyncSession) -> bool:
        return await network.unblock(session, address, now=utcnow(), actor="operator")

    removed = _in_db(settings, lift)
    # every process reads blocks from the shared store first: lift it there too
    try:
        removed = shared.lift_block(settings, network.address_key(address)) or removed
    except (shared.StoreUnavailable, ConfigError) as exc:
        err.print(
            f"[red]{escape(address)}: the block is lifted in the database but not in "
            f"{shared.VARIABLE} ({escape(str(exc.__cause__ or exc))}); the processes refuse the "
            "address until it ends there. Run the command again once the store answers.[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"address": address, "unblocked": removed}))
    elif removed:
        out.print(f"{address} unblocked", highlight=False)
    else:
        out.print(f"{address} was not blocked", highlight=False)


@webhooks_cli.command("rotate")
def webhooks_rotate(
    endpoint_id: str,
    overlap_hours: Annotated[float, typer.Option(help="how long the old secret also signs")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Give a webhook endpoint a new signing secret; both sign during the overlap."""
    settings = settings_or_exit()
    migrate_schema(settings)

    async def rotate(session: AsyncSession) -> str:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no webhook endpoint {endpoint_id}")
        return await webhooks.rotate_secret(
            session,
            await open_keyring(settings, session),
            utcnow(),
            endpoint,
            timedelta(hours=overlap_hours),
        )

    secret = _in_db(settings, rotate)
    if as_json:
        print(json.dumps({"webhook_endpoint_id": endpoint_id, "webhook_secret": secret}))
    else:
        out.print(f"webhook-secret: {secret}", highlight=False)


@webhooks_cli.command("list")
def webhooks_list(
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="only this app's endpoints")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Webhook endpoints: the types each receives, and when and why a 410 disabled one."""
    settings = settings_or_exit()
    migrate_schema(settings)

    async def read(session: AsyncSession) -> list[dict[str, Any]]:
        from sqlalchemy import select

        query = select(WebhookEndpoint, App.client_id).join(App, App.id == WebhookEndpoint.app_id)
        if client_id is not None:
            query = query.where(App.client_id == client_id)
        rows = await session.execute(query.order_by(App.client_id, WebhookEndpoint.created_at))
        return [
            {
                "id": endpoint.id,
                "client_id": owner,
                "url": endpoint.url,
                "events": endpoint.events,
                "enabled": endpoint.disabled_at is None,
                "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else None,
                "disabled_reason": endpoint.disabled_reason,
            }
            for endpoint, owner in rows.tuples()
        ]

    found = _in_db(settings, read)
    if as_json:
        print(json.dumps(found))
        return
    for hook in found:
        state = (
            "enabled"
            if hook["enabled"]
            else f"disabled since {hook['disabled_at']}: {hook['disabled_reason']}"
        )
        types = ", ".join(hook["events"] or [])
        out.print(
            f"{hook['id']}  {hook['client_id']}  {hook['url']}  [{types}]  {state}",
            highlight=False,
            markup=False,
        )


@webhooks_cli.command("enable")
def webhooks_enable(
    endpoint_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Enable an endpoint a 410 disabled; what it missed is queued in order (or, past
    BANKHUB_WEBHOOK_CATCH_UP_LIMIT, left to the event feed, whose cursor is printed)."""
    settings = settings_or_exit()
    migrate_schema(settings)

    async def enable(session: AsyncSession) -> webhooks.CatchUp:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no webhook endpoint {endpoint_id}")
        now = utcnow()
        caught = await webhooks.enable_endpoint(
            session, now, endpoint, limit=settings.webhook_catch_up_limit
        )
        if not caught.was_enabled:
            audit.record(
                session,
                now=now,
                actor="operator:cli",
                action=webhooks.ENABLED_ACTION,
                target_type="webhook_endpoint",
                target_id=endpoint.id,
                app_id=endpoint.app_id,
                detail=caught.audit_detail(),
            )
        return caught

    caught = _in_db(settings, enable)
    if as_json:
        print(
            json.dumps(
                {
                    "webhook_endpoint_id": endpoint_id,
                    "enabled": True,
                    "catch_up": {
                        "missed": caught.missed,
                        "queued": caught.queued,
                        "limit": caught.limit,
                        "first_event_id": caught.first_event_id,
                        "feed_cursor": caught.feed_cursor,
                        "message": caught.message,
                    },
                }
            )
        )
    else:
        out.print(caught.message, highlight=False, markup=False)


@db_cli.command("create-app-role")
def db_create_app_role(
    role: Annotated[str, typer.Argument(help="the runtime role")] = roles.DEFAULT_ROLE,
    password_env: Annotated[
        str, typer.Option(help="environment variable holding the new role's password")
    ] = "BANKHUB_APP_ROLE_PASSWORD",  # noqa: S107 - the variable's name  # nosec B107
) -> None:
    """Upgrade the schema as the owner, then create (if missing) and grant the runtime role.

    Connects with BANKHUB_MIGRATION_DATABASE_URL (the tables' owner). The role gets row access
    to every table, now and for later migrations, and must not own tables or bypass row-level
    security (S14). Serve with BANKHUB_DATABASE_URL naming this role.
    """
    settings = settings_or_exit()
    url = settings.resolved_migration_url()
    if not url.startswith("postgresql"):
        out.print("SQLite has no roles or row-level security; nothing to do")
        return
    migrate_schema(settings)
    try:
        report = asyncio.run(roles.grant_app_role(url, role, os.environ.get(password_env) or None))
    except roles.RoleError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    verb = "created and granted" if report.created else "granted"
    out.print(
        f"role {report.role} {verb}: rows of {report.tables} tables owned by {report.owner}",
        highlight=False,
    )


@cli.command()
def worker() -> None:
    """Run scheduled syncs and webhook deliveries (scale-out: several of these, on PostgreSQL)."""
    settings = settings_or_exit()
    _shared_store_or_exit(settings)
    eidas_or_exit(settings)
    if settings.database_url is None:
        migrate_schema(settings)
    elif not _schema_current(settings):
        err.print("[red]the database schema is behind: run `bankhub migrate` first[/red]")
        raise typer.Exit(2)

    from bankhub.jobs import identity

    try:
        # stable across restarts, so that a restarted worker releases what it held at once
        me = identity.claim(settings, "worker")
    except identity.IdentityTaken as taken:
        err.print(f"[red]{taken}[/red]", highlight=False)
        raise typer.Exit(2) from None

    _count_metrics_with_peers(settings)

    async def run() -> None:
        from bankhub.hub import Hub
        from bankhub.jobs.runner import Runner

        hub = Hub.build(settings)
        hub.lease_owner = me.owner
        runner = Runner(hub, identity=me)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        out.print(f"bankhub worker {runner.owner} running", highlight=False)
        sys.stdout.flush()
        try:
            await runner.run_forever(stop)
        finally:
            await hub.close()
            metrics.process_ended()

    asyncio.run(run())


def _asyncssh_or_exit() -> None:
    """The SFTP drop needs the optional extra ``bankhub[sftp]``; say so, not a traceback."""
    try:
        import asyncssh  # noqa: F401
    except ImportError:
        err.print(
            "[red]the SFTP drop needs asyncssh: install bankhub with its sftp extra "
            "(pip install 'bankhub\\[sftp]')[/red]"
        )
        raise typer.Exit(2) from None


@cli.command()
def sftp(
    fingerprint: Annotated[
        bool, typer.Option("--fingerprint", help="print the host key's fingerprint and exit")
    ] = False,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
) -> None:
    """Run the SFTP statement drop (docs/sftp.md), or print its host key's fingerprint."""
    settings = settings_or_exit()
    _asyncssh_or_exit()
    from bankhub.sftp import command

    if fingerprint:
        out.print(command.fingerprint(settings), highlight=False)
        return
    if port is None and settings.sftp_port is None:
        err.print("[red]no port: set BANKHUB_SFTP_PORT or give --port[/red]")
        raise typer.Exit(2)
    _shared_store_or_exit(settings)
    if settings.database_url is None:
        migrate_schema(settings)
    elif not _schema_current(settings):
        err.print("[red]the database schema is behind: run `bankhub migrate` first[/red]")
        raise typer.Exit(2)
    from bankhub.hub import Hub

    def say(line: str) -> None:
        out.print(line, highlight=False)
        sys.stdout.flush()

    asyncio.run(command.serve(lambda: Hub.build(settings), host, port, say))


@cli.command()
def purge(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Purge now what is older than each app's retention window, and print the counts."""
    settings = settings_or_exit()
    migrate_schema(settings)
    from bankhub.jobs import outbox
    from bankhub.lifecycle import retention
    from bankhub.requestlog import store as request_log
    from bankhub.sync import feed

    async def run() -> tuple[retention.PurgeReport, dict[str, int]]:
        db = Database(settings.resolved_database_url())
        try:
            report = await retention.purge(
                db,
                utcnow,
                usage_days=settings.usage_retention_days,
                audit_retention_days=settings.audit_retention_days,
            )
            now = utcnow()
            # what the retention sweep of the runner purges besides (``jobs.runner``)
            records = {
                "request_log_rows": await request_log.purge(
                    db, now, days=settings.request_log_days
                ),
                "sync_runs": await feed.purge(db, now, days=settings.sync_run_days),
                "outbox_messages": await outbox.purge(db, now),
            }
            return report, records
        finally:
            await db.dispose()

    report, records = asyncio.run(run())
    if as_json:
        print(json.dumps({**report.as_dict(), **records}))
    else:
        out.print(
            f"purged {report.transactions} transactions, {report.changes} change-log rows, "
            f"{report.webhook_excerpts} webhook excerpts ({report.apps_checked} apps checked), "
            f"{report.usage_rows} usage-count rows",
            highlight=False,
            soft_wrap=True,
        )
        for app in report.apps:
            out.print(
                f"  {app.client_id}: {app.transactions} transactions, {app.changes} change-log "
                f"rows, {app.webhook_excerpts} webhook excerpts (window {app.retention_hours} h)",
                highlight=False,
                soft_wrap=True,
            )
        if report.audit_entries:
            out.print(f"purged {report.audit_entries} audit entries", highlight=False)
        out.print(
            f"purged {records['request_log_rows']} API request log rows, "
            f"{records['sync_runs']} sync runs, {records['outbox_messages']} outbox messages",
            highlight=False,
            soft_wrap=True,
        )
    if report.failed:
        err.print(f"[red]the purge of {len(report.failed)} app(s) failed; see the log[/red]")
        raise typer.Exit(1)
    if report.audit_failed:
        err.print("[red]the purge of old audit entries failed; see the log[/red]")
        raise typer.Exit(1)


@cli.command()
def maintenance(state: Annotated[str, typer.Argument(help="on or off")]) -> None:
    """Switch maintenance mode: the API answers ServerMaintenance (503) while it is on."""
    if state not in ("on", "off"):
        err.print("state must be on or off")
        raise typer.Exit(2)
    settings = settings_or_exit()
    migrate_schema(settings)

    async def switch(session: AsyncSession) -> None:
        await flags.set_flag(session, utcnow, flags.MAINTENANCE, state)

    _in_db(settings, switch)
    out.print(f"maintenance {state}")


@cli.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="statement file (OFX, camt, MT940, QIF, CSV, XLSX)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    customer: Annotated[
        str | None, typer.Option("--customer", help="import for this customer id")
    ] = None,
    app: Annotated[str | None, typer.Option("--app", help="the customer's app (client id)")] = None,
    login: Annotated[
        int | None,
        typer.Option(
            "--login",
            help="add to this statement login of the customer (default: the one holding the "
            "file's accounts, else a new one)",
            min=1,
        ),
    ] = None,
    currency: Annotated[
        str | None, typer.Option("--currency", help="the account's currency, for a QIF file")
    ] = None,
) -> None:
    """Read a statement file and show its accounts; with --customer and --app, import it."""
    from bankhub.connectors.statement import StatementUnreadable
    from bankhub.statements import cli as statement_cli
    from bankhub.statements.schemas import import_out

    if (customer is None) != (app is None):
        err.print("[red]--customer and --app go together[/red]")
        raise typer.Exit(2)
    if login is not None and customer is None:
        err.print("[red]--login needs --customer and --app[/red]")
        raise typer.Exit(2)
    if not file.is_file():
        err.print(f"[red]no such file: {file}[/red]", highlight=False)
        raise typer.Exit(2)
    data = statement_cli.read_file(file, None if as_json else err)
    try:
        parsed = statement_cli.parse(data, file.name, currency)
    except StatementUnreadable as failure:
        err.print(f"{file.name}: {failure.message}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    found = statement_cli.summary(parsed)
    if customer is not None and app is not None:
        settings = settings_or_exit()
        migrate_schema(settings)
        try:
            outcome = statement_cli.store(
                settings, app, customer, parsed, login, file_name=file.name
            )
        except DomainError as exc:
            err.print(f"[red]{exc.message}[/red]", highlight=False)
            raise typer.Exit(2) from None
        found["import"] = msgspec.to_builtins(import_out(outcome))
    if as_json:
        print(json.dumps(found))
        return
    out.print(f"{file.name}: {parsed.format}", highlight=False)
    for account in found["accounts"]:
        out.print(
            f"  {account['account']}  {account['currency']}  "
            f"{account['transactions']} transactions  "
            f"closing balance {account['closing_balance'] or 'not stated'}",
            highlight=False,
        )
    if "import" in found:
        done = found["import"]
        made = "new login" if done["login_created"] else "login"
        out.print(f"imported into {made} {done['login_id']}", highlight=False)
        if done["secret"]:
            out.print(f"login-secret: {done['secret']}", highlight=False)
        for account in done["accounts"]:
            out.print(
                f"  account {account['id']}: {account['imported']} new transactions",
                highlight=False,
            )


def main() -> None:
    try:
        # one log chain for every line of the process, redacted (S23)
        logs.configure()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    cli()

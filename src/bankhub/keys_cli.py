"""``bankhub keys``: the data keyring (rotate, rewrap, retire) and partner API keys."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.cli_common import err, migrate, out, settings_or_exit
from bankhub.clock import utcnow
from bankhub.config import Settings
from bankhub.db.engine import Database
from bankhub.errors import DomainError
from bankhub.hub import Hub
from bankhub.partners import keys as api_keys
from bankhub.partners.models import ApiKey, App
from bankhub.security import keyring as kr
from bankhub.security import rewrap as rw
from bankhub.security.scopes import Scope
from bankhub.security.secrets import SecretHasher

T = TypeVar("T")
keys_cli = typer.Typer(
    no_args_is_help=True,
    help="Encryption keys (status, rotate, rewrap, retire) and partner API keys.",
)
OPERATOR = "operator:cli"


def _run(settings: Settings, work: Callable[[Database, kr.Keyring], Awaitable[T]]) -> T:
    migrate(settings)

    async def go() -> T:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                keyring = await kr.open_keyring(settings, session)
            return await work(db, keyring)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except (DomainError, kr.KeyringError) as exc:
        err.print(f"[red]{getattr(exc, 'message', None) or exc}[/red]")
        raise typer.Exit(2) from None


def _audit(
    session: AsyncSession,
    action: str,
    target_type: str,
    target: str,
    *,
    app_id: int | None = None,
    **detail: Any,
) -> None:
    audit.record(
        session,
        now=utcnow(),
        actor=OPERATOR,
        action=action,
        target_type=target_type,
        target_id=target,
        app_id=app_id,
        detail=detail,
    )


# --- the data keyring ---------------------------------------------------------------------------


@keys_cli.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Data keys, their state, and how many stored values each one encrypts."""

    async def work(db: Database, keyring: kr.Keyring) -> list[dict[str, Any]]:
        async with db.transaction() as session:
            infos = await kr.key_infos(session)
        return [
            {
                "kid": k.kid,
                "state": k.state,
                "kek": k.kek_id,
                "values": await rw.count_using(db, k.kid),
            }
            for k in infos
        ]

    async def plain(db: Database, keyring: kr.Keyring) -> int:
        return await rw.count_plain(db)

    settings = settings_or_exit()
    rows = _run(settings, work)
    unsealed = _run(settings, plain)
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        out.print(f"{row['kid']:>4}  {row['state']:<8} {row['values']:>8} values  {row['kek']}")
    if unsealed:
        out.print(f"{unsealed} values stored before encryption at rest; `bankhub keys rewrap`")


@keys_cli.command("rotate")
def rotate(
    wait: Annotated[
        float | None,
        typer.Option(help="seconds to let every process load the key (default: 2 refreshes)"),
    ] = None,
) -> None:
    """Add a data key, let every process load it, then make it the key new writes use."""
    settings = settings_or_exit()
    pause = settings.keyring_refresh_seconds * 2 if wait is None else wait

    def waiting(label: str) -> None:
        if pause <= 0:
            return
        with Progress(TextColumn(label), BarColumn(), console=err, transient=True) as bar:
            task = bar.add_task(label, total=pause)
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < pause:
                bar.update(task, completed=elapsed)
                time.sleep(min(0.2, pause - elapsed))

    async def add(db: Database, keyring: kr.Keyring) -> str:
        async with db.transaction() as session:
            kid = await kr.add_key(session, keyring, utcnow())
            _audit(session, "keyring.key_added", "data_key", kid)
            return kid

    kid = _run(settings, add)
    waiting(f"{kid} added; letting every process load it")

    async def promote(db: Database, keyring: kr.Keyring) -> None:
        async with db.transaction() as session:
            await kr.promote(session, kid, utcnow())
            _audit(session, "keyring.key_promoted", "data_key", kid)

    _run(settings, promote)
    waiting(f"{kid} promoted; letting every process switch to it")
    out.print(f"{kid} is the primary data key. Next: bankhub keys rewrap")


@keys_cli.command("rewrap")
def rewrap(batch: Annotated[int, typer.Option(min=1, max=5000)] = 200) -> None:
    """Encrypt what is still plain, then re-encrypt every stored value under the primary key
    (safe to stop and run again)."""
    settings = settings_or_exit()
    hasher = SecretHasher(settings.resolved_secret_key())

    async def work(db: Database, keyring: kr.Keyring) -> rw.RewrapReport:
        await keyring.refresh(db)
        total = await rw.count_using(db, not_kid=keyring.primary)
        with Progress(
            TextColumn("rewrap"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=err,
        ) as bar:
            task = bar.add_task("rewrap", total=total)
            done: dict[str, int] = {}

            def step(column: str, count: int) -> None:
                done[column] = count
                bar.update(task, completed=sum(done.values()))

            report = await rw.rewrap(db, keyring, batch=batch, progress=step, hasher=hasher)
        async with db.transaction() as session:
            _audit(
                session,
                "keyring.rewrapped",
                "data_key",
                keyring.primary,
                rewrapped=report.rewrapped,
                sealed_plain=report.sealed_plain,
            )
        return report

    report = _run(settings, work)
    out.print(
        f"rewrapped {report.rewrapped} values"
        + (
            f", encrypted {report.sealed_plain} values stored in clear before"
            if report.sealed_plain
            else ""
        )
        + (f"; {report.raced} changed meanwhile (already current)" if report.raced else "")
    )


@keys_cli.command("retire")
def retire(kid: str) -> None:
    """Stop loading a data key; refused while any stored value still uses it."""

    async def work(db: Database, keyring: kr.Keyring) -> None:
        using = await rw.count_using(db, kid)
        async with db.transaction() as session:
            await kr.retire(session, kid, utcnow(), using)
            _audit(session, "keyring.key_retired", "data_key", kid)

    _run(settings_or_exit(), work)
    out.print(f"{kid} retired")


@keys_cli.command("rewrap-kek")
def rewrap_kek() -> None:
    """Wrap every data key under the current KEK (after changing it; the old one in
    BANKHUB_PREVIOUS_KEK)."""

    async def work(db: Database, keyring: kr.Keyring) -> int:
        async with db.transaction() as session:
            changed = await kr.rewrap_data_keys(session, keyring)
            _audit(session, "keyring.kek_rewrapped", "kek", keyring.kek.id, data_keys=changed)
            return changed

    out.print(f"{_run(settings_or_exit(), work)} data keys now wrapped by the current KEK")


@keys_cli.command("rotate-signing")
def rotate_signing() -> None:
    """A new ES256 key signs access tokens from now on; older ones stay in the JWKS a while."""
    settings = settings_or_exit()

    async def work(db: Database, keyring: kr.Keyring) -> str:
        hub = Hub.build(settings)
        try:
            await hub.ready()
            async with hub.db.transaction() as session:
                kid = await hub.tokens.rotate_signing_key(session)
                _audit(session, "oauth.signing_key_rotated", "signing_key", kid)
                return kid
        finally:
            await hub.close()

    out.print(f"{_run(settings, work)} signs new access tokens")


# --- partner API keys ---------------------------------------------------------------------------


async def _app(session: AsyncSession, client_id: str) -> App:
    app = (
        await session.execute(select(App).where(App.client_id == client_id))
    ).scalar_one_or_none()
    if app is None:
        raise kr.KeyringError(f"no app with client-id {client_id!r}")
    return app


def _key_row(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    row = {
        "key_id": key.key_id,
        "scope": key.scope,
        "kind": key.kind,
        "name": key.name,
        "live": api_keys.is_live(key, utcnow()),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
    if secret is not None:
        row["secret"] = secret
    return row


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        out.print("  ".join(f"{k}={v}" for k, v in row.items() if v is not None), highlight=False)


@keys_cli.command("create")
def create(
    app: Annotated[str, typer.Option("--app", help="the app's client-id")],
    scope: Annotated[Scope, typer.Option(help="read, write or master")],
    kind: Annotated[
        api_keys.KeyKind, typer.Option(help="service or app")
    ] = api_keys.KeyKind.SERVICE,
    name: Annotated[str, typer.Option()] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key; its secret is printed once."""
    settings = settings_or_exit()

    async def work(db: Database, keyring: kr.Keyring) -> dict[str, Any]:
        async with db.transaction() as session:
            owner = await _app(session, app)
            issued = api_keys.issue(
                session,
                SecretHasher(settings.resolved_secret_key()),
                utcnow(),
                owner.id,
                scope=scope,
                kind=kind,
                name=name,
            )
            await session.flush()
            _audit(
                session,
                "key.created",
                "api_key",
                issued.key.key_id,
                app_id=owner.id,
                scope=scope.value,
                kind=kind.value,
            )
            return _key_row(issued.key, issued.secret)

    _print_rows([_run(settings, work)], as_json)


@keys_cli.command("list")
def list_(
    app: Annotated[str, typer.Option("--app", help="the app's client-id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """An app's API keys (never their secrets)."""

    async def work(db: Database, keyring: kr.Keyring) -> list[dict[str, Any]]:
        async with db.transaction() as session:
            return [
                _key_row(k) for k in await api_keys.list_keys(session, await _app(session, app))
            ]

    _print_rows(_run(settings_or_exit(), work), as_json)


async def _key(session: AsyncSession, key_id: str) -> ApiKey:
    key = (
        await session.execute(select(ApiKey).where(ApiKey.key_id == key_id))
    ).scalar_one_or_none()
    if key is None:
        raise kr.KeyringError(f"no API key {key_id!r}")
    return key


@keys_cli.command("roll")
def roll(
    key_id: str,
    overlap_hours: Annotated[float, typer.Option(help="how long the old key keeps working")] = 24,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replace an API key; the new secret is printed once, the old key ends after the overlap."""
    settings = settings_or_exit()

    async def work(db: Database, keyring: kr.Keyring) -> dict[str, Any]:
        async with db.transaction() as session:
            old = await _key(session, key_id)
            issued = await api_keys.roll(
                session,
                SecretHasher(settings.resolved_secret_key()),
                utcnow(),
                old,
                timedelta(hours=overlap_hours),
            )
            _audit(
                session,
                "key.rolled",
                "api_key",
                old.key_id,
                app_id=old.app_id,
                replacement=issued.key.key_id,
            )
            return _key_row(issued.key, issued.secret)

    _print_rows([_run(settings, work)], as_json)


@keys_cli.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke an API key at once."""

    async def work(db: Database, keyring: kr.Keyring) -> None:
        async with db.transaction() as session:
            key = await _key(session, key_id)
            await api_keys.revoke(session, utcnow(), key)
            _audit(session, "key.revoked", "api_key", key.key_id, app_id=key.app_id)

    _run(settings_or_exit(), work)
    out.print(f"{key_id} revoked")

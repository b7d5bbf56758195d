"""The team: roles and the action matrix on every route, invitations by mail, removal, SMTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import select
from typer.testing import CliRunner

from bankhub.app import create_app
from bankhub.audit.models import AuditEntry
from bankhub.config import Environment
from bankhub.dashboard import cli as team_cli
from bankhub.dashboard import roles, services
from bankhub.dashboard.models import MemberSession, SmtpSettings
from bankhub.dashboard.pages import PRE_COOKIE, cookie_name, guard
from bankhub.dashboard.roles import Action, Role
from bankhub.dashboard.router import dashboard_router
from bankhub.hub import Hub
from tests.conftest import Harness, make_settings
from tests.dashboard.conftest import SmtpServer
from tests.dashboard.support import (
    PASSWORD,
    Person,
    Visitor,
    invitation_page,
    make_member,
    member_row,
    recovery_codes_page,
)
from tests.support.asgi import asgi_transport

Visitors = Callable[..., Visitor]
LINK = re.compile(r"https?://\S+/dashboard/invite/[A-Za-z0-9_-]+")


def _dashboard_handlers(tmp_path: Path) -> list[tuple[str, HTTPRouteHandler]]:
    app = create_app(Hub.build(make_settings(tmp_path, "sqlite+aiosqlite://")))
    found = []
    for route in app.routes:
        if not route.path.startswith("/dashboard"):
            continue
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler):
                handler.resolve_opts()
                found.append((route.path, handler))
    return found


def test_every_dashboard_route_declares_an_action(tmp_path: Path) -> None:
    """Deny by default: the guard refuses a route without an action; none may lack one."""
    handlers = _dashboard_handlers(tmp_path)
    assert len(handlers) > 20
    undeclared = [
        (path, sorted(h.http_methods))
        for path, h in handlers
        if roles.declared(h.opt) is None and set(h.http_methods) - {"HEAD", "OPTIONS"}
    ]
    assert undeclared == []
    # every action a route declares is in the matrix, and every route is behind the guard
    for path, handler in handlers:
        action = roles.declared(handler.opt)
        if action is not None:
            assert action in roles.MATRIX, path
        assert guard in handler.resolve_guards(), path


def test_the_matrix_names_every_action_and_role() -> None:
    assert set(roles.MATRIX) == set(Action)
    assert roles.allows(Role.VIEWER, Action.VIEW)
    assert not roles.allows(Role.VIEWER, Action.KEYS_MANAGE)
    assert roles.allows(Role.DEVELOPER, Action.KEYS_MANAGE)
    assert not roles.allows(Role.DEVELOPER, Action.TEAM_INVITE)
    assert roles.allows(Role.ADMIN, Action.TEAM_INVITE)
    assert not roles.may_manage(Role.ADMIN, Role.OWNER)
    assert roles.may_manage(Role.OWNER, Role.OWNER)
    assert not roles.allows("nobody", Action.VIEW)


async def test_a_route_without_an_action_refuses_everyone(
    harness: Harness, visitors: Visitors
) -> None:
    @get("/dashboard/undeclared", opt={"scope": "dashboard"})
    async def undeclared() -> Response[str]:
        return Response("reached")

    app = create_app(harness.hub)
    app.register(dashboard_router([undeclared]))
    async with httpx.AsyncClient(
        transport=asgi_transport(app),
        base_url="http://testserver.local",
    ) as client:
        answer = await client.get("/dashboard/undeclared")
    assert answer.status_code == 403
    assert "reached" not in answer.text


async def test_forged_posts_are_refused_by_role_on_every_route(
    harness: Harness, visitors: Visitors, tmp_path: Path
) -> None:
    """Each role, each dashboard POST its role may not perform: 403 and nothing changes."""
    people = {role: await make_member(harness, role) for role in Role}
    target = await make_member(harness, Role.VIEWER, "target@example.com")
    target_row = await member_row(harness, target.email)
    assert target_row is not None
    client_id = harness.creds["client_id"]
    owner = visitors()
    await owner.sign_in(people[Role.OWNER])
    page = await owner.get(f"/dashboard/apps/{client_id}")
    key_id = page.text.split('<tr data-key="', 1)[1].split('"', 1)[0]
    values = {
        "client_id": client_id,
        "key_id": key_id,
        "member_id": str(target_row.id),
        "invite_id": "1",
        "endpoint_id": "no-such-endpoint",
        "event_id": "1",
        "login_id": "1",
        "customer_id": "no-such-customer",
        "family_id": "fam_no_such_grant",
        "signature_key_id": "no-such-signature-key",
        "signature_source_id": "no-such-key-source",
    }

    posts = [
        (path, roles.declared(h.opt))
        for path, h in _dashboard_handlers(tmp_path)
        if "POST" in h.http_methods
    ]
    checked = 0
    for role, person in people.items():
        v = owner
        if role is not Role.OWNER:
            v = visitors()
            await v.sign_in(person)
        await v.get("/dashboard")
        for path, action in posts:
            assert action is not None
            if action in roles.SESSIONLESS or action in roles.PARTIAL:
                continue
            if roles.allows(role, action):
                continue
            concrete = re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], path)
            answer = await v.post(concrete, {"name": "x", "scope": "read", "email": "n@x.io"})
            assert answer.status_code == 403, (role, path, answer.status_code)
            checked += 1
    assert checked >= 10
    assert await _live(harness, key_id)
    assert await member_row(harness, target.email) is not None


async def _live(h: Harness, key_id: str) -> bool:
    from bankhub.partners.models import ApiKey

    async with h.hub.db.transaction() as db:
        key = (await db.execute(select(ApiKey).where(ApiKey.key_id == key_id))).scalar_one()
        return key.revoked_at is None and key.expires_at is None


# --- SMTP and invitations -----------------------------------------------------------------------


async def _set_smtp(v: Visitor, server: SmtpServer, **extra: str) -> None:
    await v.get("/dashboard/smtp")
    form = {
        "host": server.host,
        "port": str(server.port),
        "security": "none",
        "username": "",
        "password": "",
        "sender": "bankhub@example.com",
        **extra,
    }
    saved = await v.post("/dashboard/smtp", form)
    assert saved.status_code == 303, saved.text
    await v.get(saved.headers["location"])


async def test_invite_by_mail_accept_set_password_and_enrol(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    owner = await make_member(harness, Role.OWNER)
    v = visitors()
    await v.sign_in(owner)
    await _set_smtp(v, smtp_server)
    tested = await v.post("/dashboard/smtp/test", {"to": "ops@example.com"})
    assert "A test message was sent to ops@example.com" in tested.text
    assert smtp_server.messages[-1]["To"] == "ops@example.com"

    await v.get("/dashboard/team")
    invited = await invitation_page(
        v, await v.post("/dashboard/team/invite", {"email": "Dev@Example.com", "role": "developer"})
    )
    assert "mailed to dev@example.com" in invited.text
    mailed = smtp_server.messages[-1]
    assert mailed["To"] == "dev@example.com"
    body = mailed.get_body(("plain",))
    assert body is not None
    link = LINK.search(body.get_content())
    assert link is not None
    assert link.group(0) in invited.text  # shown once on the page too

    newcomer = visitors()
    path = link.group(0).split("testserver.local", 1)[1]
    join = await newcomer.get(path)
    assert join.status_code == 200
    assert "dev@example.com" in join.text
    weak = await newcomer.post(path, {"password": "password1234", "password2": "password1234"})
    assert "too common" in weak.text
    accepted = await newcomer.post(path, {"password": PASSWORD, "password2": PASSWORD})
    assert accepted.status_code == 303
    assert accepted.headers["location"] == "/dashboard/enrol"
    enrol = await newcomer.get("/dashboard/enrol")
    seed = enrol.text.split('id="manual-key">', 1)[1].split("<", 1)[0]
    person = Person("dev@example.com", PASSWORD, seed, "developer")
    done, _ = await recovery_codes_page(
        newcomer, await newcomer.post("/dashboard/enrol", {"code": person.code(harness)})
    )
    assert "Two-factor sign-in is set up" in done.text
    row = await member_row(harness, "dev@example.com")
    assert row is not None
    assert row.role == "developer"
    assert row.totp_confirmed_at is not None
    # the link worked once
    again = await visitors().get(path)
    assert again.status_code == 404
    async with harness.hub.db.transaction() as db:
        entries = {(e.actor, e.action) for e in (await db.execute(select(AuditEntry))).scalars()}
    assert ("member:owner@example.com", "member.invited") in entries
    assert ("member:owner@example.com", "smtp.changed") in entries
    assert ("member:dev@example.com", "member.joined") in entries


async def test_invite_without_mail_shows_the_link(harness: Harness, visitors: Visitors) -> None:
    admin = await make_member(harness, Role.ADMIN)
    v = visitors()
    await v.sign_in(admin)
    await v.get("/dashboard/team")
    answer = await invitation_page(
        v, await v.post("/dashboard/team/invite", {"email": "x@example.com", "role": "viewer"})
    )
    assert "not set up" in answer.text
    assert LINK.search(answer.text) is not None
    # an admin may not make owners
    owner_invite = await v.post(
        "/dashboard/team/invite", {"email": "y@example.com", "role": "owner"}
    )
    assert owner_invite.status_code == 403


async def test_smtp_password_is_stored_encrypted_and_failures_are_reported(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    owner = await make_member(harness, Role.OWNER)
    v = visitors()
    await v.sign_in(owner)
    await _set_smtp(v, smtp_server, username="mailer", password="smtp-secret-value-42")
    page = await v.get("/dashboard/smtp")
    assert "smtp-secret-value-42" not in page.text
    async with harness.hub.db.transaction() as db:
        row = await db.get(SmtpSettings, 1)
        assert row is not None
        assert row.password_enc is not None
        assert "smtp-secret-value-42" not in row.password_enc
    # a server that is not there: the page says the message was not accepted
    from tests.support.postgres import free_port

    dead = SmtpServer("127.0.0.1", free_port(), smtp_server.sink)
    await _set_smtp(v, dead)
    answer = await v.post("/dashboard/smtp/test", {"to": ""})
    assert "was not accepted" in answer.text
    bad = await v.post(
        "/dashboard/smtp",
        {
            "host": "x",
            "port": "99999",
            "security": "none",
            "username": "",
            "password": "",
            "sender": "a@b.co",
        },
    )
    assert "port" in bad.text


async def test_removing_a_member_ends_their_sessions(harness: Harness, visitors: Visitors) -> None:
    owner, dev = await make_member(harness, Role.OWNER), await make_member(harness, Role.DEVELOPER)
    theirs = visitors()
    await theirs.sign_in(dev)
    assert (await theirs.get("/dashboard")).status_code == 200
    v = visitors()
    await v.sign_in(owner)
    team = await v.get("/dashboard/team")
    row = await member_row(harness, dev.email)
    assert row is not None
    assert f"/dashboard/team/{row.id}/remove" in team.text
    asked = await v.get(f"/dashboard/team/{row.id}/remove")
    assert "every session they have ends" in asked.text
    assert (await v.post(f"/dashboard/team/{row.id}/remove")).status_code == 200  # asks again
    assert await member_row(harness, dev.email) is not None
    removed = await v.post(f"/dashboard/team/{row.id}/remove", {"confirm": "yes"})
    assert removed.status_code == 303
    after = await theirs.get("/dashboard")
    assert after.status_code == 303
    assert after.headers["location"] == "/dashboard/sign-in"
    async with harness.hub.db.transaction() as db:
        left = list((await db.execute(select(MemberSession.member_id))).scalars())
    assert row.id not in left
    assert await member_row(harness, dev.email) is None


async def test_the_last_owner_and_oneself_cannot_be_removed(
    harness: Harness, visitors: Visitors
) -> None:
    owner, admin = await make_member(harness, Role.OWNER), await make_member(harness, Role.ADMIN)
    owner_row = await member_row(harness, owner.email)
    admin_row = await member_row(harness, admin.email)
    assert owner_row is not None
    assert admin_row is not None
    v = visitors()
    await v.sign_in(admin)
    await v.get("/dashboard/team")
    assert (await v.post(f"/dashboard/team/{owner_row.id}/remove")).status_code == 403
    assert (await v.post(f"/dashboard/team/{admin_row.id}/remove")).status_code == 403
    w = visitors()
    await w.sign_in(owner)
    await w.get("/dashboard/team")
    assert (await w.post(f"/dashboard/team/{owner_row.id}/remove")).status_code == 403
    assert await member_row(harness, owner.email) is not None


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY", "BANKHUB_ENV", "BANKHUB_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_PUBLIC_URL", "https://hub.example.com")
    return tmp_path


def _store_smtp(server: SmtpServer) -> None:
    import asyncio

    from bankhub.clock import utcnow
    from bankhub.config import Settings
    from bankhub.dashboard import mail
    from bankhub.db.engine import Database
    from bankhub.security.keyring import open_keyring

    settings = Settings()

    async def work() -> None:
        db = Database(settings.resolved_database_url())
        try:
            async with db.transaction() as session:
                keyring = await open_keyring(settings, session)
                await mail.save(
                    session,
                    keyring,
                    host=server.host,
                    port=str(server.port),
                    security="none",
                    username="",
                    password="",
                    sender="hub@example.com",
                    actor="test",
                    now=utcnow(),
                )
        finally:
            await db.dispose()

    asyncio.run(work())


def test_cli_team_invite_prints_the_link_and_mails_it(
    cli_env: Path, smtp_server: SmtpServer
) -> None:
    from bankhub.cli import cli

    runner = CliRunner()
    first = runner.invoke(cli, ["team", "invite", "boss@example.com", "--role", "owner"])
    assert first.exit_code == 0, first.output
    link = LINK.search(first.stdout)
    assert link is not None
    assert link.group(0).startswith("https://hub.example.com/dashboard/invite/")
    assert "not set up" in first.stdout

    _store_smtp(smtp_server)
    second = runner.invoke(cli, ["team", "invite", "ops@example.com", "--role", "admin"])
    assert second.exit_code == 0, second.output
    assert "Mailed to ops@example.com" in second.stdout
    body = smtp_server.messages[-1].get_body(("plain",))
    assert body is not None
    mailed = LINK.search(body.get_content())
    assert mailed is not None
    assert mailed.group(0) in second.stdout

    bad = runner.invoke(cli, ["team", "invite", "not-an-email", "--role", "admin"])
    assert bad.exit_code == 2
    listed = runner.invoke(cli, ["team", "list"])
    assert listed.exit_code == 0


# --- the first owner outside dev ------------------------------------------------------------------

HTTPS = "https://testserver.local"
#: production settings need a key-encryption key of their own
PRODUCTION = {
    "env": Environment.PRODUCTION,
    "kek": "q" * 43,
    "trusted_proxies": "127.0.0.1",
    "public_url": HTTPS,
}


async def _members(h: Harness) -> int:
    async with h.hub.db.transaction() as db:
        return await services.count_members(db)


@pytest.mark.parametrize("harness", [PRODUCTION], indirect=True)
async def test_production_refuses_sign_up_and_the_bootstrap_link_works_once(
    harness: Harness, visitors: Visitors, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """test_production_refuses_sign_up_and_the_bootstrap_link_works_once — a production server
    with an app and no member refuses an anonymous sign-up (page and post); the first owner comes
    from `bankhub team bootstrap`'s link, which works once, only while it is the newest, within
    its lifetime and while the team is empty; issuing and using it are audited."""
    h = harness
    assert not h.hub.settings.is_dev
    origin = {"origin": HTTPS}
    stranger = visitors(base_url=HTTPS)
    sign_in = await stranger.get("/dashboard/sign-in")
    assert sign_in.status_code == 200
    assert "bankhub team bootstrap" in sign_in.text
    assert "/dashboard/sign-up" not in sign_in.text
    assert (await stranger.get("/dashboard/sign-up")).status_code == 403
    form = {"email": "eve@example.com", "password": "a takeover phrase", "password2": ""}
    form["password2"] = form["password"]
    # a well-formed post (this browser's form token, our origin) is refused for what it asks
    pre = stranger.client.cookies.get(cookie_name(PRE_COOKIE, True))
    assert pre is not None
    csrf = services.csrf_token(h.hub.hasher, pre)
    taken = await stranger.post("/dashboard/sign-up", form, csrf=csrf, headers=origin)
    assert taken.status_code == 403
    assert "bankhub team bootstrap" in taken.text
    assert await _members(h) == 0

    settings = h.hub.settings
    assert settings.secret_key is not None
    assert settings.database_url is not None
    for name, value in {
        "BANKHUB_ENV": "production",
        "BANKHUB_DATA_DIR": str(tmp_path),
        "BANKHUB_DATABASE_URL": settings.database_url,
        "BANKHUB_SECRET_KEY": settings.secret_key,
        "BANKHUB_KEK": "q" * 43,
        "BANKHUB_PUBLIC_URL": HTTPS,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BANKHUB_MIGRATION_DATABASE_URL", raising=False)
    monkeypatch.setattr(team_cli, "utcnow", h.clock)
    from bankhub.cli import cli

    async def bootstrap(*extra: str) -> str:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["team", "bootstrap", "boss@example.com", *extra]
        )
        assert result.exit_code == 0, result.output
        found = LINK.search(result.stdout)
        assert found is not None, result.stdout
        assert found.group(0).startswith(f"{HTTPS}/dashboard/invite/")
        return found.group(0).removeprefix(HTTPS)

    replaced = await bootstrap()
    expired = await bootstrap("--minutes", "30")
    assert (await stranger.get(replaced)).status_code == 404  # only the newest link works
    assert (await stranger.get(expired)).status_code == 200
    h.clock.advance(minutes=30)
    assert (await stranger.get(expired)).status_code == 404
    link = await bootstrap()

    owner = visitors(base_url=HTTPS)
    page = await owner.get(link)
    assert page.status_code == 200
    assert "boss@example.com" in page.text
    accepted = await owner.post(link, {"password": PASSWORD, "password2": PASSWORD}, headers=origin)
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == "/dashboard/enrol"
    row = await member_row(h, "boss@example.com")
    assert row is not None
    assert row.role == "owner"
    again = visitors(base_url=HTTPS)
    await again.get("/dashboard/sign-in")
    reused = await again.post(link, {"password": PASSWORD, "password2": PASSWORD}, headers=origin)
    assert reused.status_code == 404
    assert await _members(h) == 1
    async with h.hub.db.transaction() as db:
        actions = [
            (e.actor, e.action)
            for e in (await db.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()
            if e.action.startswith("member.")
        ]
    assert actions == [
        *[("operator:bootstrap", "member.bootstrap_link")] * 3,
        ("member:boss@example.com", "member.first_owner"),
    ]
    # once the team has a member, no bootstrap link is issued
    refused = await asyncio.to_thread(
        CliRunner().invoke, cli, ["team", "bootstrap", "other@example.com"]
    )
    assert refused.exit_code == 2
    assert "bankhub team invite" in refused.output


async def test_a_bootstrap_link_dies_when_the_team_gets_its_owner_otherwise(
    harness: Harness, visitors: Visitors
) -> None:
    """A bootstrap link left open is void once the team has a member (here through the dev
    sign-up): it creates no second owner."""
    h = harness
    async with h.hub.db.transaction() as db:
        issued = await services.bootstrap(
            db, h.hub.hasher, h.clock(), "late@example.com", h.hub.settings
        )
    await make_member(h, Role.OWNER)
    link = f"/dashboard/invite/{issued.token}"
    v = visitors()
    assert (await v.get(link)).status_code == 404
    await v.get("/dashboard/sign-in")
    late = await v.post(link, {"password": PASSWORD, "password2": PASSWORD})
    assert late.status_code == 404
    assert await member_row(h, "late@example.com") is None

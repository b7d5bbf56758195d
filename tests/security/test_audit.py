"""S42: every access to account data is audited with app, login, request id and UTC time; so are
authentication events. Request ids on every answer. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from litestar import get
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import event, select
from typer.testing import CliRunner

from bankhub.api import request_context
from bankhub.api.principal import AuthDep, HubDep
from bankhub.app import create_app
from bankhub.audit import services as audit
from bankhub.audit.models import AuditEntry
from bankhub.audit.writer import AuditWriter
from bankhub.cli import cli
from bankhub.clock import utcnow
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.lifecycle import retention
from bankhub.partners.models import ApiKey, App
from bankhub.security import scopes
from tests.conftest import BASE_URL, Harness
from tests.security.test_keys_and_scopes import create_app_for_inspection
from tests.statements.corpus import read
from tests.support.asgi import asgi_transport

ING = "csv/ing.csv"
GENERATED = re.compile(r"[0-9a-f]{32}")

#: every route that answers with no account or transaction data, and why; a route that is in
#: neither this list nor marked ``audit: account-data`` fails the route-table test
NO_ACCOUNT_DATA: dict[tuple[str, str], str] = {
    ("GET", "/service.json"): "the public catalogue",
    ("GET", "/v2/service"): "the catalogue",
    ("GET", "/media/services/{name:str}"): "catalogue images",
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness: the names of checks",
    ("GET", "/metrics"): "counts and durations by route, connector and outcome",
    (
        "GET",
        "/v2/connect/brand/{client_id:str}/{name:str}",
    ): "an app's connect-page colours and logo",
    ("GET", "/openapi.json"): "the API description",
    ("POST", "/v2/customer"): "answers the customer's id and identifier the app sent",
    ("DELETE", "/v2/customer"): "erasure, audited as customer.erased (counts only)",
    ("POST", "/v2/token"): "a connect URL",
    ("POST", "/v2/token/reconnect"): "a connect URL",
    ("PUT", "/v2/login/activate"): "the login id and a flag",
    ("PUT", "/v2/login/deactivate"): "the login id and a flag",
    ("DELETE", "/v2/login"): "erasure, audited as login.erased (counts only)",
    ("PUT", "/v2/login/refresh"): "the login's status and refresh times",
    ("GET", "/v2/event"): "event payloads: login and account ids, counts, statuses",
    ("GET", "/v2/event/{event_id:int}"): "one event payload and its webhook deliveries",
    ("POST", "/v2/event/{event_id:int}/replay"): "a count of deliveries",
    ("GET", "/v2/webhook"): "webhook endpoint settings (URLs, types, disabled state)",
    ("GET", "/v2/webhook/{endpoint_id:str}"): "one webhook endpoint's settings",
    ("PUT", "/v2/webhook/{endpoint_id:str}/enable"): "an endpoint's settings and counts of "
    "queued deliveries (audited as webhook.endpoint_enabled)",
    ("GET", "/v2/app"): "the app's own settings",
    ("PUT", "/v2/app/retention"): "settings (audited as changes)",
    ("PUT", "/v2/app/credential-vault"): "settings (audited as changes)",
    ("PUT", "/v2/app/ip-allowlist"): "settings (audited as changes)",
    ("PUT", "/v2/app/frame-origins"): "settings (audited as changes)",
    ("GET", "/v2/app/category-rules"): "the app's own categorization rules",
    ("PUT", "/v2/app/category-rules"): "settings (audited as changes)",
    ("GET", "/v2/payment/settings"): "the app's own payment switch and limits",
    ("PUT", "/v2/payment/settings"): "settings (audited as payments.settings)",
    ("POST", "/v2/payment"): "what the app sent and a connect URL (audited as payment.created)",
    ("POST", "/v2/payment/batch"): "what the app sent and a connect URL (audited as "
    "payment.created)",
    ("DELETE", "/v2/payment/{payment_id:str}"): "the payment the app sent (audited as "
    "payment.cancelled)",
    ("DELETE", "/v2/payment/batch/{batch_id:str}"): "the batch the app sent (audited as "
    "payment.cancelled)",
    ("GET", "/v2/keys"): "API key metadata (never secrets)",
    ("POST", "/v2/keys"): "a new API key (audited as key.created)",
    ("POST", "/v2/keys/{key_id:str}/roll"): "a new API key (audited as key.rolled)",
    ("DELETE", "/v2/keys/{key_id:str}"): "API key metadata (audited as key.revoked)",
    ("GET", "/v2/signature/key"): "public keys of the app",
    ("POST", "/v2/signature/key"): "a public key (audited as signature_key.added)",
    ("DELETE", "/v2/signature/key/{key_id:str}"): "a public key (audited as signature_key.revoked)",
    ("GET", "/v2/signature/source"): "the app's key source URLs and their state",
    ("POST", "/v2/signature/source"): "a key source (audited as signature_source.added)",
    ("DELETE", "/v2/signature/source/{source_id:str}"): "a key source (audited as "
    "signature_source.removed)",
    ("POST", "/oauth/token"): "tokens (audited as oauth.token_granted / oauth.refreshed)",
    ("POST", "/oauth/revoke"): "nothing (audited as oauth.revoked)",
    ("POST", "/oauth/introspect"): "token metadata (counted as oauth.introspected)",
    ("GET", "/.well-known/jwks.json"): "public keys",
    ("GET", "/.well-known/oauth-authorization-server"): "server metadata",
    # the hosted connect page shows the bank's name and the consent, never account data
    ("GET", "/v2/connect/term/{token_id:str}"): "connect page: a redirect",
    ("GET", "/v2/connect/session"): "connect page: consent, credential and progress forms",
    ("POST", "/v2/connect/consent"): "connect page: a redirect",
    ("POST", "/v2/connect/credentials"): "connect page: a redirect",
    ("POST", "/v2/connect/upload"): "connect page: a redirect",
    ("POST", "/v2/connect/answer"): "connect page: a redirect",
    ("GET", "/v2/connect/return"): "connect page: a redirect",
    ("POST", "/v2/connect/cancel"): "connect page: a redirect",
    ("GET", "/v2/connect/static/connect.css"): "a stylesheet",
    ("GET", "/v2/connect/static/return.js"): "a script",
    ("GET", "/v2/connect/static/poll.js"): "a script",
}
#: payment reads, exercised with their entries in tests/api/test_payments.py
PAYMENT_READS = {
    ("GET", "/v2/payment"),
    ("GET", "/v2/payment/{payment_id:str}"),
    ("GET", "/v2/payment/batch/{batch_id:str}"),
}
#: payment files (the debtor account's IBAN and holder), exercised with their entries in
#: tests/api/test_payment_export.py
PAYMENT_FILES = {
    ("POST", "/v2/payment/{payment_id:str}/pain.001"),
    ("POST", "/v2/payment/batch/{batch_id:str}/pain.001"),
}
#: the routes that answer with account data (marked, and each exercised below)
ACCOUNT_DATA = {
    ("GET", "/v2/login"),
    ("GET", "/v2/account"),
    ("GET", "/v2/transaction"),
    ("GET", "/v2/transaction/sync"),
    ("GET", "/v2/customer/export"),
    ("POST", "/v2/statement"),
    *PAYMENT_READS,
    *PAYMENT_FILES,
}


def route_table(tmp_path: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(marked, unmarked) (method, path) pairs of every route of the app."""
    from tests.conftest import make_settings

    app = create_app_for_inspection(make_settings(tmp_path, "sqlite+aiosqlite://"))
    marked: set[tuple[str, str]] = set()
    unmarked: set[tuple[str, str]] = set()
    for route in app.routes:
        if route.path.startswith(("/docs", "/schema", "/sandbox-bank")):
            continue  # the API docs, and the sandbox bank (a stand-in for a bank's own site)
        if route.path.startswith("/dashboard"):
            # the team's pages show apps, keys, customers and logins, never bank accounts or
            # transactions (test_the_dashboard_reads_no_account_data); their changes are
            # audited with the member
            continue
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            handler.resolve_opts()
            for method in sorted(set(handler.http_methods) - {"OPTIONS", "HEAD"}):
                if audit.is_account_data(handler.opt):
                    marked.add((str(method), route.path))
                else:
                    unmarked.add((str(method), route.path))
    return marked, unmarked


def test_every_route_is_marked_or_listed_as_holding_no_account_data(tmp_path: Path) -> None:
    """A new route fails here until it is marked ``audit: account-data`` (and then audited, or
    refused with 500) or listed above with the reason it answers no account data."""
    marked, unmarked = route_table(tmp_path)
    assert marked == ACCOUNT_DATA
    assert unmarked - set(NO_ACCOUNT_DATA) == set()
    assert set(NO_ACCOUNT_DATA) - unmarked == set()  # the list keeps up with the routes


def test_the_dashboard_reads_no_account_data() -> None:
    """The dashboard is left out of the route table above because its code reads no accounts
    or transactions, but for the pages listed here, which record each view as an API read is
    recorded (tests/dashboard/test_login_page.py); a page that starts to must be audited too."""
    package = Path(__file__).resolve().parents[2] / "src" / "bankhub" / "dashboard"
    readers = [
        path.name
        for path in sorted(package.glob("*.py"))
        if re.search(r"\b(Account|Transaction)\b|accounts\.(models|services)", path.read_text())
    ]
    assert readers == ["login_routes.py"], f"dashboard modules that read account data: {readers}"


# --- helpers -------------------------------------------------------------------------------------


async def entries(h: Harness, **where: Any) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    async with h.hub.db.transaction() as session:
        return list((await session.execute(query)).scalars())


async def app_and_key(h: Harness) -> tuple[int, str]:
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        key = (
            await session.execute(
                select(ApiKey.key_id).where(
                    ApiKey.app_id == app.id, ApiKey.name == "service-secret"
                )
            )
        ).scalar_one()
        return app.id, key


def multipart_headers(h: Harness, **extra: str) -> dict[str, str]:
    headers = {**h.headers(), **extra}
    del headers["content-type"]
    return headers


async def import_statement(
    h: Harness, customer: str, login_id: int | None = None, **headers: str
) -> httpx.Response:
    form = {"customer_id": customer}
    if login_id is not None:
        form["login_id"] = str(login_id)
    return await h.client.post(
        "/v2/statement",
        data=form,
        files={"file": ("ing.csv", read(ING), "application/octet-stream")},
        headers=multipart_headers(h, **headers),
    )


class Holdings:
    """A customer with one login holding an account with transactions (from a statement)."""

    def __init__(self, customer: str, login_id: int, secret: str, account_id: int) -> None:
        self.customer = customer
        self.login_id = login_id
        self.secret = secret
        self.account_id = account_id


async def holdings(h: Harness, identifier: str = "audited-person@example.org") -> Holdings:
    created = await h.client.post(
        "/v2/customer", json={"identifier": identifier}, headers=h.headers()
    )
    assert created.status_code == 200, created.text
    customer = created.json()["data"]["customer_id"]
    imported = await import_statement(h, customer)
    assert imported.status_code == 200, imported.text
    data = imported.json()["data"]
    return Holdings(customer, data["login_id"], data["secret"], data["accounts"][0]["id"])


Call = Callable[[Harness, Holdings, dict[str, str]], Awaitable[httpx.Response]]


def _login_get(path: str, **params: Any) -> Call:
    async def call(h: Harness, held: Holdings, extra: dict[str, str]) -> httpx.Response:
        values = {k: (held.account_id if v == "account" else v) for k, v in params.items()}
        return await h.client.get(
            path, params=values, headers={**h.headers(login_secret=held.secret), **extra}
        )

    return call


async def _export(h: Harness, held: Holdings, extra: dict[str, str]) -> httpx.Response:
    return await h.client.get(
        "/v2/customer/export",
        params={"customer_id": held.customer},
        headers={**h.headers(), **extra},
    )


async def _import(h: Harness, held: Holdings, extra: dict[str, str]) -> httpx.Response:
    return await import_statement(h, held.customer, held.login_id, **extra)


CALLS: dict[tuple[str, str], tuple[Call, str, str]] = {
    ("GET", "/v2/login"): (_login_get("/v2/login"), audit.READ, "login"),
    ("GET", "/v2/account"): (_login_get("/v2/account"), audit.READ, "accounts"),
    ("GET", "/v2/transaction"): (
        _login_get("/v2/transaction", per_page=5),
        audit.READ,
        "transactions",
    ),
    ("GET", "/v2/transaction/sync"): (
        _login_get("/v2/transaction/sync", account_id="account"),
        audit.READ,
        "transaction_changes",
    ),
    ("GET", "/v2/customer/export"): (_export, audit.EXPORTED, "customer_export"),
    ("POST", "/v2/statement"): (_import, audit.IMPORTED, "statement_import"),
}


# --- reads of account data -----------------------------------------------------------------------


async def test_each_account_data_route_writes_exactly_one_entry(harness: Harness) -> None:
    h = harness
    # every marked route is exercised (payment reads and files in their own tests)
    assert set(CALLS) | PAYMENT_READS | PAYMENT_FILES == ACCOUNT_DATA
    held = await holdings(h)
    app_id, key_id = await app_and_key(h)
    for n, ((method, path), (call, action, resource)) in enumerate(sorted(CALLS.items())):
        h.clock.advance(seconds=1)
        for given in (f"given-{n}:{method}.{path.count('/')}", None):
            extra = {"X-Request-Id": given} if given else {}
            response = await call(h, held, extra)
            assert response.status_code == 200, (path, response.text)
            request_id = response.headers["x-request-id"]
            if given:
                assert request_id == given
            else:
                assert GENERATED.fullmatch(request_id), request_id
            [entry] = await entries(h, request_id=request_id)
            assert (entry.action, entry.app_id) == (action, app_id), path
            assert entry.actor == f"app:{h.creds['client_id']}"
            assert entry.at == h.clock()
            assert entry.at.utcoffset() == timedelta(0)
            detail = entry.detail
            assert detail["resource"] == resource
            assert detail["route"] == f"{method} {path}"
            assert detail["login_ids"] == [held.login_id]
            assert detail["customer_id"] == held.customer
            assert detail["account_ids"] == ([] if path == "/v2/login" else [held.account_id])
            assert detail["key_id"] == key_id
            if path == "/v2/customer/export":
                assert (entry.target_type, entry.target_id) == ("customer", held.customer)
            else:
                assert (entry.target_type, entry.target_id) == ("login", str(held.login_id))
            text = json.dumps(detail)
            assert h.creds["service_secret"] not in text
            assert held.secret not in text


async def test_a_failed_read_records_no_read(harness: Harness) -> None:
    h = harness
    held = await holdings(h)
    response = await h.client.get(
        "/v2/transaction",
        params={"account_id": held.account_id + 1000},
        headers={**h.headers(login_secret=held.secret), "X-Request-Id": "missing-account"},
    )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "missing-account"
    assert await entries(h, request_id="missing-account") == []


async def test_request_ids_on_every_answer_and_only_sane_ones_kept(harness: Harness) -> None:
    h = harness
    for path, status in (("/healthz", 200), ("/v2/nowhere", 404), ("/v2/account", 400)):
        response = await h.client.get(path, headers=h.headers())
        assert response.status_code == status
        assert GENERATED.fullmatch(response.headers["x-request-id"])
    not_allowed = await h.client.patch("/v2/account", headers=h.headers())
    assert not_allowed.status_code == 405
    assert GENERATED.fullmatch(not_allowed.headers["x-request-id"])
    for given in ("a" * 64, "01J9ZK3W7Q:span.1_x-y", "f" * 8):
        kept = await h.client.get("/healthz", headers={"X-Request-Id": given})
        assert kept.headers["x-request-id"] == given
    bad_ids: list[bytes] = [b"a" * 65, b"two words", b"semi;colon", b"new\\nline", b"\xe9t\xe9"]
    for bad in bad_ids:
        replaced = await h.client.get("/healthz", headers=[(b"X-Request-Id", bad)])
        assert GENERATED.fullmatch(replaced.headers["x-request-id"]), bad
    twice = await h.client.get(
        "/healthz", headers=[("X-Request-Id", "one"), ("X-Request-Id", "two")]
    )
    assert GENERATED.fullmatch(twice.headers["x-request-id"])
    # ids are fresh per request
    ids = {(await h.client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_the_request_id_is_in_the_log_context(harness: Harness) -> None:
    """structlog's context carries the id while the request runs, and only then."""

    @get("/v2/log-context", opt=scopes.public())
    async def log_context() -> dict[str, Any]:
        return dict(structlog.contextvars.get_contextvars())

    app = create_app(harness.hub)
    app.register(log_context)
    transport = asgi_transport(app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        given = await client.get("/v2/log-context", headers={"X-Request-Id": "logged-1"})
        fresh = await client.get("/v2/log-context")
    assert given.json() == {"request_id": "logged-1"}
    assert fresh.json() == {"request_id": fresh.headers["x-request-id"]}
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_other_audit_entries_carry_the_request_id(harness: Harness) -> None:
    h = harness
    response = await h.client.post(
        "/v2/keys",
        json={"scope": "read", "name": "ci"},
        headers={**h.headers(), "X-Request-Id": "key-create-1"},
    )
    assert response.status_code == 200, response.text
    [entry] = await entries(h, request_id="key-create-1")
    _, key_id = await app_and_key(h)
    assert entry.action == "key.created"
    assert entry.detail["by"] == {"key_id": key_id}


async def test_a_marked_route_that_records_nothing_answers_500(harness: Harness) -> None:
    """The guarantee does not rest on each route remembering the helper call."""

    @get("/v2/forgetful", opt=audit.account_data(scopes.read()))
    async def forgetful(hub: HubDep, auth: AuthDep) -> dict[str, str]:
        async with hub.db.transaction() as session:
            await auth.app(session)
        return {"balance": "1234.56"}

    app = create_app(harness.hub)
    app.register(forgetful)
    transport = asgi_transport(app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.get("/v2/forgetful", headers=harness.headers())
    assert response.status_code == 500
    assert response.json()["error"] == "InternalError"
    assert "1234.56" not in response.text


async def test_an_entry_that_cannot_be_stored_answers_500_and_no_data_leaves(
    harness: Harness,
) -> None:
    """Whichever way the entry goes (the audit writer on SQLite, the read's own transaction on
    PostgreSQL), an entry that cannot be stored means no answer."""
    h = harness
    held = await holdings(h)

    def broken(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            raise OSError("disk full")

    # the writer's engine, and the read's own (PostgreSQL: its pool without the pre-ping)
    engines = [e.sync_engine for e in (h.hub.db.engine, h.hub.db.read_engine) if e is not None]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", broken)
    try:
        response = await h.client.get(
            "/v2/transaction",
            headers={**h.headers(login_secret=held.secret), "X-Request-Id": "lost-audit"},
        )
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", broken)
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "InternalError"
    assert "CARD" not in response.text.upper()
    assert "amount" not in response.text
    assert response.headers["x-request-id"] == "lost-audit"
    again = await h.client.get(
        "/v2/transaction",
        headers={**h.headers(login_secret=held.secret), "X-Request-Id": "audited-again"},
    )
    assert again.status_code == 200
    assert len(await entries(h, request_id="audited-again")) == 1
    assert await entries(h, request_id="lost-audit") == []


async def test_concurrent_reads_are_all_audited_in_fewer_commits(harness: Harness) -> None:
    """The audit writer's group commit (``GET /v2/login`` goes through it on both databases;
    ``/v2/account`` and ``/v2/transaction`` do on SQLite)."""
    h = harness
    held = await holdings(h)
    commits: list[int] = []

    def mark(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            conn.info["audit_insert"] = True

    def commit(conn: Any) -> None:
        if conn.info.pop("audit_insert", False):
            commits.append(1)

    engine = h.hub.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", mark)
    event.listen(engine, "commit", commit)
    try:
        responses = await asyncio.gather(
            *(
                h.client.get(
                    "/v2/login",
                    headers={**h.headers(login_secret=held.secret), "X-Request-Id": f"c-{n}"},
                )
                for n in range(50)
            )
        )
    finally:
        event.remove(engine, "before_cursor_execute", mark)
        event.remove(engine, "commit", commit)
    assert [r.status_code for r in responses] == [200] * 50
    ids = [e.request_id or "" for e in await entries(h, action=audit.READ)]
    assert sorted(i for i in ids if i.startswith("c-")) == sorted(f"c-{n}" for n in range(50))
    assert 1 <= len(commits) < 50


async def test_writer_back_pressure_and_flush_on_close(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most ``max_pending`` entries wait; every one is written; close writes what is
    counted."""
    await asyncio.to_thread(migrate.upgrade, database_url)
    db = Database(database_url)
    writer = AuditWriter(db, utcnow, max_pending=3)
    sizes: list[int] = []
    real = writer._insert

    async def measured(batch: Any) -> None:
        sizes.append(len(batch))
        await real(batch)

    monkeypatch.setattr(writer, "_insert", measured)
    now = utcnow()
    rows = [
        audit.entry_row(now=now, actor="test", action="test.write", target_type="t", target_id=n)
        for n in range(20)
    ]
    try:
        await asyncio.gather(*(writer.write(row) for row in rows))
        writer.count(
            ("k",), audit.entry_row(now=now, actor="t", action="test.count", target_type="t")
        )
        writer.count(
            ("k",), audit.entry_row(now=now, actor="t", action="test.count", target_type="t")
        )
        await writer.close()
        async with db.transaction() as session:
            written = list((await session.execute(select(AuditEntry))).scalars())
    finally:
        await db.dispose()
    assert sorted(int(e.target_id or 0) for e in written if e.action == "test.write") == list(
        range(20)
    )
    [counted] = [e for e in written if e.action == "test.count"]
    assert counted.detail["count"] == 2
    assert max(sizes) <= 3
    assert len(sizes) < 20


# --- authentication events -----------------------------------------------------------------------


async def test_failed_authentications_are_recorded_and_coalesced(harness: Harness) -> None:
    h = harness
    held = await holdings(h)
    app_id, _ = await app_and_key(h)
    wrong = "wrong-secret-" + "z" * 30
    for _ in range(5):
        refused = await h.client.get(
            "/v2/service", headers={"client-id": h.creds["client_id"], "service-secret": wrong}
        )
        assert refused.status_code == 400
    for n in range(3):
        unknown = await h.client.get(
            "/v2/service", headers={"client-id": f"no-such-client-{n}", "service-secret": wrong}
        )
        assert unknown.status_code == 404
    guessed = await h.client.get(
        "/v2/account", headers=h.headers(login_secret="00000000-0000-4000-8000-000000000000")
    )
    assert guessed.status_code == 404
    bearer = await h.client.get("/v2/service", headers={"authorization": "Bearer not.a.token"})
    assert bearer.status_code == 401
    revoked = await h.client.post("/v2/keys", json={"scope": "read"}, headers=h.headers())
    key = revoked.json()["data"]
    await h.client.delete(f"/v2/keys/{key['key_id']}", headers=h.headers())
    gone = await h.client.get(
        "/v2/service", headers={"client-id": h.creds["client_id"], "service-secret": key["secret"]}
    )
    assert gone.status_code == 401
    assert await entries(h, action=audit.AUTH_FAILED) == []  # counted, not yet written
    await h.hub.audit.flush()

    failed = {e.detail["reason"]: e for e in await entries(h, action=audit.AUTH_FAILED)}
    assert set(failed) == {
        "CredentialInvalid",
        "ClientNotFound",
        "LoginNotFound",
        "InvalidToken",
        "KeyRevoked",
    }
    assert failed["CredentialInvalid"].detail["count"] == 5
    assert failed["CredentialInvalid"].app_id == app_id
    assert failed["ClientNotFound"].detail["count"] == 3
    assert failed["ClientNotFound"].app_id is None
    assert failed["ClientNotFound"].detail["client_ids"] == [
        f"no-such-client-{n}" for n in range(3)
    ]
    assert failed["LoginNotFound"].app_id == app_id
    assert failed["KeyRevoked"].detail["key_id"] == key["key_id"]
    assert failed["KeyRevoked"].app_id == app_id
    for entry in failed.values():
        assert (entry.target_type, entry.target_id) == ("address", "127.0.0.1")
        assert entry.at == h.clock()
        assert entry.request_id is not None
    async with h.hub.db.transaction() as session:
        everything = json.dumps(
            [
                [e.detail, e.target_id, e.actor, e.request_id]
                for e in (await session.execute(select(AuditEntry))).scalars()
            ]
        )
    assert wrong not in everything
    assert key["secret"] not in everything
    assert held.secret not in everything
    assert "not.a.token" not in everything

    # the next minute is a new entry; the same minute adds to the open one
    h.clock.advance(seconds=61)
    for _ in range(2):
        await h.client.get(
            "/v2/service", headers={"client-id": h.creds["client_id"], "service-secret": wrong}
        )
    await h.hub.audit.flush()
    counts = [
        e.detail["count"]
        for e in await entries(h, action=audit.AUTH_FAILED)
        if e.detail["reason"] == "CredentialInvalid"
    ]
    assert counts == [5, 2]


async def test_counted_failures_are_written_when_their_minute_is_over(harness: Harness) -> None:
    h = harness
    h.hub.audit.tick_seconds = 0.01
    await h.client.get("/v2/service", headers={"client-id": "ghost", "service-secret": "x"})
    await asyncio.sleep(0.05)
    assert await entries(h, action=audit.AUTH_FAILED) == []
    h.clock.advance(seconds=60)
    for _ in range(100):
        if await entries(h, action=audit.AUTH_FAILED):
            break
        await asyncio.sleep(0.02)
    [entry] = await entries(h, action=audit.AUTH_FAILED)
    assert entry.detail["count"] == 1


async def test_oauth_grants_refreshes_revocations_and_introspections(harness: Harness) -> None:
    h = harness
    app_id, key_id = await app_and_key(h)
    client = {"client_id": h.creds["client_id"], "client_secret": h.creds["service_secret"]}
    granted = await h.client.post(
        "/oauth/token",
        data={**client, "grant_type": "client_credentials", "scope": "read"},
        headers={"X-Request-Id": "grant-1"},
    )
    assert granted.status_code == 200, granted.text
    tokens = granted.json()
    [grant] = await entries(h, request_id="grant-1")
    assert (grant.action, grant.app_id) == ("oauth.token_granted", app_id)
    assert grant.detail["key_id"] == key_id
    assert grant.detail["grant_type"] == "client_credentials"
    refreshed = await h.client.post(
        "/oauth/token",
        data={**client, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"X-Request-Id": "refresh-1"},
    )
    assert refreshed.status_code == 200
    [refresh] = await entries(h, request_id="refresh-1")
    assert refresh.action == "oauth.refreshed"
    assert refresh.target_id == grant.target_id  # the same family
    # reading with the token names the token in the read's entry
    held = await holdings(h)
    bearer = {"authorization": f"Bearer {refreshed.json()['access_token']}"}
    read_with_token = await h.client.get(
        "/v2/account",
        headers={**bearer, "login-secret": held.secret, "X-Request-Id": "bearer-read"},
    )
    assert read_with_token.status_code == 200, read_with_token.text
    [read_entry] = await entries(h, request_id="bearer-read")
    assert read_entry.detail["key_id"] == key_id
    assert read_entry.detail["token_id"] == refresh.detail["token_id"]
    for _ in range(3):
        answer = await h.client.post(
            "/oauth/introspect", data={**client, "token": refreshed.json()["access_token"]}
        )
        assert answer.json()["active"] is True
    revoked = await h.client.post(
        "/oauth/revoke",
        data={**client, "token": refreshed.json()["refresh_token"]},
        headers={"X-Request-Id": "revoke-1"},
    )
    assert revoked.status_code == 200
    [revocation] = await entries(h, request_id="revoke-1")
    assert (revocation.action, revocation.target_id) == ("oauth.revoked", grant.target_id)
    assert revocation.detail == {"key_id": key_id, "ended": True}
    bad_client = await h.client.post(
        "/oauth/token",
        data={"client_id": "nobody", "client_secret": "guess", "grant_type": "client_credentials"},
    )
    assert bad_client.status_code == 401
    await h.hub.audit.flush()
    [introspected] = await entries(h, action=audit.INTROSPECTED)
    assert introspected.detail == {
        "key_id": key_id,
        "count": 3,
        "active": 3,
        "last_at": h.clock().isoformat(),
    }
    [failure] = await entries(h, action=audit.AUTH_FAILED)
    assert failure.detail["reason"] == "oauth:invalid_client"
    assert failure.detail["client_ids"] == ["nobody"]
    assert "guess" not in json.dumps(failure.detail)


# --- erasure, retention, the operator's view -----------------------------------------------------


async def test_an_erased_customer_leaves_ids_only_in_the_audit_log(harness: Harness) -> None:
    h = harness
    identifier = "erase-me-person@example.org"
    held = await holdings(h, identifier)
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=held.secret))
    descriptions = {t["description"] for t in listed.json()["data"]}
    names = {
        a["name"]
        for a in (
            await h.client.get("/v2/account", headers=h.headers(login_secret=held.secret))
        ).json()["data"]
    }
    await _export(h, held, {})
    erased = await h.client.request(
        "DELETE", "/v2/customer", params={"customer_id": held.customer}, headers=h.headers()
    )
    assert erased.status_code == 200
    log = await entries(h)
    assert {e.action for e in log} >= {audit.READ, audit.EXPORTED, "customer.erased"}
    text = json.dumps([[e.detail, e.target_id, e.actor] for e in log])
    assert identifier not in text
    assert not [d for d in descriptions | names if d and d in text]


async def test_retention_purges_audit_entries_past_the_configured_days(harness: Harness) -> None:
    h = harness
    now = h.clock()
    async with h.hub.db.transaction() as session:
        for days, name in ((401, "old"), (399, "recent")):
            audit.record(
                session,
                now=now - timedelta(days=days),
                actor="test",
                action=f"test.{name}",
                target_type="t",
            )
    report = await retention.purge(h.hub.db, h.clock, audit_retention_days=400)
    assert report.audit_entries == 1
    actions = [e.action for e in await entries(h)]
    assert "test.old" not in actions
    assert "test.recent" in actions
    [purged] = await entries(h, action=retention.AUDIT_ACTION)
    assert purged.detail["entries"] == 1
    report = await retention.purge(h.hub.db, h.clock, audit_retention_days=1)
    assert report.audit_entries == 1  # test.recent
    assert h.hub.settings.audit_retention_days == 400


def test_bankhub_audit_filters(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("BANKHUB_SECRET_KEY", "test-pepper-" + "x" * 40)
    monkeypatch.setenv("BANKHUB_ENV", "test")
    migrate.upgrade(database_url)
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

    async def seed() -> None:
        db = Database(database_url)
        try:
            async with db.transaction() as session:
                for client_id in ("cid-one", "cid-two"):
                    session.add(App(name=client_id, client_id=client_id, created_at=start))
                await session.flush()
                ids = {a.client_id: a.id for a in (await session.execute(select(App))).scalars()}
                for n in range(6):
                    audit.record(
                        session,
                        now=start + timedelta(hours=n),
                        actor="app:cid-one" if n % 2 else "app:cid-two",
                        action=audit.READ if n < 4 else "key.created",
                        target_type="login",
                        target_id=n,
                        app_id=ids["cid-one"] if n % 2 else ids["cid-two"],
                        detail={"n": n},
                        request_id=f"req-{n}",
                    )
        finally:
            await db.dispose()

    asyncio.run(seed())

    def run(*args: str) -> list[dict[str, Any]]:
        result = CliRunner().invoke(cli, ["audit", *args, "--json"])
        assert result.exit_code == 0, result.output
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows

    assert [r["detail"]["n"] for r in run()] == [5, 4, 3, 2, 1, 0]  # newest first
    assert [r["detail"]["n"] for r in run("--app", "cid-one")] == [5, 3, 1]
    assert [r["detail"]["n"] for r in run("--action", audit.READ)] == [3, 2, 1, 0]
    assert [r["detail"]["n"] for r in run("--action", "key.created", "--app", "cid-two")] == [4]
    assert [r["detail"]["n"] for r in run("--since", "2026-11-20T12:00:00Z")] == [5, 4, 3]
    assert [r["detail"]["n"] for r in run("--since", "2026-11-20T13:00")] == [5, 4]
    assert [r["detail"]["n"] for r in run("--request-id", "req-2")] == [2]
    assert [r["detail"]["n"] for r in run("--limit", "2")] == [5, 4]
    [row] = run("--request-id", "req-1")
    assert row["at"] == "2026-11-20T10:00:00Z"
    assert (row["actor"], row["action"], row["target_id"]) == ("app:cid-one", audit.READ, "1")
    text = CliRunner().invoke(cli, ["audit", "--app", "cid-one", "--limit", "1"])
    assert text.exit_code == 0
    assert "req-5" in text.stdout
    assert "key.created" in text.stdout
    assert CliRunner().invoke(cli, ["audit", "--app", "nobody"]).exit_code == 2
    assert CliRunner().invoke(cli, ["audit", "--since", "yesterday"]).exit_code == 2


def test_request_context_outside_requests_is_empty() -> None:
    assert request_context.current() is None
    assert audit.request_id() is None

"""S13: every endpoint × every foreign id answers exactly like a missing id.

The matrix is generated from the application's own route table: every HTTP route is either
probed here (``PROBES``: how to put an id into a request to it) or listed in ``NO_FOREIGN_ID``
with the reason it cannot name another tenant's object. A new route that is in neither fails
:func:`test_every_route_is_in_the_matrix`, so nobody adds an endpoint the matrix does not see.

Set-up: two apps A and B on one hub, each with a customer, a synced sandbox login (accounts and
transactions), events with webhook deliveries, an extra API key and an OAuth grant; app A has a
second login L2 under another customer. Then each probe is sent with A's credentials (its
service-secret and an OAuth bearer token) twice: once naming B's object, once naming an object
that does not exist. The two answers must be the same: status, error code and whole body, with
the id itself masked. Under L1's login-secret, L2's objects must answer like missing ones too.
Finally B's rows (every table that holds tenant data) must be exactly as before the run.

It runs on SQLite, on PostgreSQL, and on PostgreSQL as deployed with row-level security (S14):
bankhub connected as a runtime role that the policies bind, so the second wall changes no
answer either.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account, Transaction
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.db.models import Base
from bankhub.events.models import Event
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookEndpoint
from tests.api.connect_client import CALLBACK, connect, create_customer
from tests.conftest import Harness, make_settings

#: a statement file every parser agrees on (one booked transaction)
MT940 = (
    b":20:STARTUMSE\r\n:25:12345678/0001234567\r\n:28C:00001/001\r\n:60F:C231101EUR1000,00\r\n"
    b":61:2311021102D12,50NMSCNONREF\r\n:86:Coffee\r\n:62F:C231102EUR987,50\r\n-\r\n"
)

#: routes that cannot name another tenant's object, and why
NO_FOREIGN_ID: dict[tuple[str, str], str] = {
    ("GET", "/service.json"): "the public catalogue",
    ("GET", "/v2/service"): "the catalogue; no tenant data",
    ("GET", "/media/services/{name:str}"): "public catalogue media",
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness; takes no id",
    ("GET", "/metrics"): "the operator's totals across apps, behind its own token; takes no id",
    ("GET", "/openapi.json"): "the API description",
    ("GET", "/.well-known/jwks.json"): "public signing keys",
    ("GET", "/.well-known/oauth-authorization-server"): "public metadata",
    ("GET", "/v2/app"): "the caller's own app; takes no id",
    ("PUT", "/v2/app/retention"): "the caller's own app; takes no id",
    ("PUT", "/v2/app/credential-vault"): "the caller's own app; takes no id",
    ("PUT", "/v2/app/ip-allowlist"): "the caller's own app; takes no id",
    ("PUT", "/v2/app/frame-origins"): "the caller's own app; takes no id",
    ("GET", "/v2/app/category-rules"): "the caller's own app; takes no id",
    ("GET", "/v2/payment/settings"): "the caller's own app; takes no id",
    ("PUT", "/v2/payment/settings"): "the caller's own app; takes no id",
    ("PUT", "/v2/app/category-rules"): "the caller's own app; takes no id",
    ("GET", "/v2/keys"): "lists the caller's keys; checked by the listing probe below",
    ("POST", "/v2/keys"): "creates a key of the caller's app; takes no id",
    ("GET", "/v2/signature/key"): "lists the caller's signature keys; checked by the listing "
    "probe below",
    ("POST", "/v2/signature/key"): "registers a signature key of the caller's app; takes no id",
    ("GET", "/v2/signature/source"): "lists the caller's key sources; checked by the listing "
    "probe below",
    ("POST", "/v2/signature/source"): "names a key source of the caller's app; takes no id",
    ("GET", "/v2/event"): "lists the caller's events (the cursor is a position, not an id); "
    "checked by the listing probe below",
    ("GET", "/v2/webhook"): "lists the caller's webhook endpoints; checked by the listing probe "
    "below",
    # The hosted connect page is authorised by its single-use token and then by the session
    # cookie, never by an app's credential: whoever holds the link is the user it was made for.
    ("GET", "/v2/connect/term/{token_id:str}"): "the token in the path is the credential",
    ("GET", "/v2/connect/session"): "the connect session (cookie) is the credential",
    ("POST", "/v2/connect/consent"): "the connect session (cookie) is the credential",
    ("POST", "/v2/connect/credentials"): "the connect session (cookie) is the credential",
    ("POST", "/v2/connect/upload"): "the connect session (cookie) is the credential",
    ("POST", "/v2/connect/answer"): "the connect session (cookie) is the credential",
    ("GET", "/v2/connect/return"): "the connect session (cookie) is the credential",
    ("POST", "/v2/connect/cancel"): "the connect session (cookie) is the credential",
    ("GET", "/v2/connect/static/connect.css"): "a static file",
    ("GET", "/v2/connect/static/return.js"): "a static file",
    ("GET", "/v2/connect/static/poll.js"): "a static file",
    ("GET", "/v2/connect/brand/{client_id:str}/{name:str}"): "an app's public branding (its "
    "stylesheet and logo, shown to anyone with a connect link), named by the app itself; no "
    "credential, nothing of another tenant to reach",
    ("GET", "/sandbox-bank/authorize"): "the sandbox bank's own page, no bankhub tenant data",
    ("POST", "/sandbox-bank/authorize"): "the sandbox bank's own page, no bankhub tenant data",
    ("GET", "/sandbox-bank/style.css"): "a static file",
}


@dataclass
class Tenant:
    """What one app holds after the set-up, by kind of id."""

    harness: Harness
    app_id: int
    customer_id: str
    identifier: str
    login_id: int
    login_secret: str
    account_id: int
    event_id: int
    key_id: str
    endpoint_id: str
    refresh_token: str
    access_token: str
    statement_login_id: int
    payment_id: str = ""
    batch_id: str = ""
    signature_key_id: str = ""
    signature_source_id: str = ""


@dataclass
class World:
    a: Tenant
    b: Tenant
    #: A's second login (under another customer of A) and its first account
    l2: Tenant
    #: A's OAuth access token, for probing with a bearer credential too
    a_bearer: str


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


#: a request for a credential kind ("service" or "bearer") naming the id given
Builder = Callable[[World, str, str], Request]


@dataclass(frozen=True)
class Probe:
    route: tuple[str, str]
    #: what the id names, for the messages
    what: str
    build: Builder
    #: the foreign ids to try: (label, getter)
    foreign: tuple[tuple[str, Callable[[World], str]], ...]
    missing: Callable[[], str]
    credentials: tuple[str, ...] = ("service", "bearer")
    #: JSON keys whose values differ by nature between two answers (fresh ids)
    volatile: frozenset[str] = field(default_factory=frozenset)


def _app_headers(w: World, credential: str, **extra: str) -> dict[str, str]:
    a = w.a.harness
    if credential == "bearer":
        headers = {"authorization": f"Bearer {w.a_bearer}", "content-type": "application/json"}
    else:
        headers = a.headers()
    headers.update(extra)
    return headers


def _login_headers(w: World, credential: str, secret: str) -> dict[str, str]:
    return _app_headers(w, credential, **{"login-secret": secret})


def _multipart(w: World, credential: str) -> dict[str, str]:
    headers = _app_headers(w, credential)
    del headers["content-type"]
    return headers


#: an optional signature key per tenant: its requests may still go unsigned
SIGNATURE_KEYS = {
    name: ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
    for name in ("a", "b")
}


def _missing_number() -> str:
    return str(900_000_000 + uuid.uuid4().int % 1000)


def _missing_uuid() -> str:
    return str(uuid.uuid4())


def _missing_key() -> str:
    return "key_" + uuid.uuid4().hex[:16]


def _missing_token() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


OTHER_APP_CUSTOMER = (("B's customer", lambda w: w.b.customer_id),)
OTHER_APP_SECRET = (("B's login-secret", lambda w: w.b.login_secret),)
OTHER_ACCOUNTS = (
    ("B's account", lambda w: str(w.b.account_id)),
    ("L2's account (same app, other login)", lambda w: str(w.l2.account_id)),
)


def _login_route(method: str, path: str, json: Any = None) -> Probe:
    return Probe(
        (method, path),
        "login-secret",
        lambda w, c, x: Request(method, path, _login_headers(w, c, x), json=json),
        OTHER_APP_SECRET,
        _missing_uuid,
    )


REFRESH_TOKEN = (("B's refresh token", lambda w: w.b.refresh_token),)
ANY_TOKEN = (*REFRESH_TOKEN, ("B's access token", lambda w: w.b.access_token))


def _oauth(
    path: str,
    form: Callable[[World, str], dict[str, str]],
    what: str,
    foreign: tuple[tuple[str, Callable[[World], str]], ...] = ANY_TOKEN,
) -> Probe:
    return Probe(
        ("POST", path),
        what,
        lambda w, c, x: Request(
            "POST",
            path,
            {"content-type": "application/x-www-form-urlencoded"},
            data=form(w, x),
        ),
        foreign,
        _missing_token,
        credentials=("form",),
    )


def _client_form(w: World, **form: str) -> dict[str, str]:
    creds = w.a.harness.creds
    return {"client_id": creds["client_id"], "client_secret": creds["service_secret"], **form}


PROBES: list[Probe] = [
    Probe(
        ("POST", "/v2/customer"),
        "customer identifier",
        lambda w, c, x: Request("POST", "/v2/customer", _app_headers(w, c), json={"identifier": x}),
        (("B's identifier", lambda w: w.b.identifier),),
        lambda: "never-seen-" + uuid.uuid4().hex[:8],
        # once only: the first call makes the identifier A's own
        credentials=("service",),
        volatile=frozenset({"customer_id"}),
    ),
    Probe(
        ("POST", "/v2/token"),
        "customer",
        lambda w, c, x: Request(
            "POST",
            "/v2/token",
            _app_headers(w, c),
            json={"customer_id": x, "service_id": 1, "callback_url": CALLBACK},
        ),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    Probe(
        ("DELETE", "/v2/customer"),
        "customer (body)",
        lambda w, c, x: Request(
            "DELETE", "/v2/customer", _app_headers(w, c), json={"customer_id": x}
        ),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    Probe(
        ("DELETE", "/v2/customer"),
        "customer (query)",
        lambda w, c, x: Request("DELETE", f"/v2/customer?customer_id={x}", _app_headers(w, c)),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    Probe(
        ("GET", "/v2/customer/export"),
        "customer",
        lambda w, c, x: Request("GET", f"/v2/customer/export?customer_id={x}", _app_headers(w, c)),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    _login_route("POST", "/v2/token/reconnect", {"callback_url": CALLBACK}),
    _login_route("GET", "/v2/login"),
    _login_route("DELETE", "/v2/login"),
    _login_route("PUT", "/v2/login/activate"),
    _login_route("PUT", "/v2/login/deactivate"),
    _login_route("PUT", "/v2/login/refresh"),
    _login_route("GET", "/v2/account"),
    _login_route("GET", "/v2/transaction"),
    Probe(
        ("GET", "/v2/transaction"),
        "account (under L1's login-secret)",
        lambda w, c, x: Request(
            "GET", f"/v2/transaction?account_id={x}", _login_headers(w, c, w.a.login_secret)
        ),
        OTHER_ACCOUNTS,
        _missing_number,
    ),
    Probe(
        ("GET", "/v2/transaction/sync"),
        "account (under L1's login-secret)",
        lambda w, c, x: Request(
            "GET", f"/v2/transaction/sync?account_id={x}", _login_headers(w, c, w.a.login_secret)
        ),
        OTHER_ACCOUNTS,
        _missing_number,
    ),
    Probe(
        ("GET", "/v2/transaction/sync"),
        "login-secret",
        lambda w, c, x: Request(
            "GET", f"/v2/transaction/sync?account_id={w.b.account_id}", _login_headers(w, c, x)
        ),
        OTHER_APP_SECRET,
        _missing_uuid,
    ),
    Probe(
        ("GET", "/v2/event/{event_id:int}"),
        "event",
        lambda w, c, x: Request("GET", f"/v2/event/{x}", _app_headers(w, c)),
        (("B's event", lambda w: str(w.b.event_id)),),
        _missing_number,
    ),
    Probe(
        ("POST", "/v2/event/{event_id:int}/replay"),
        "event",
        lambda w, c, x: Request("POST", f"/v2/event/{x}/replay", _app_headers(w, c)),
        (("B's event", lambda w: str(w.b.event_id)),),
        _missing_number,
    ),
    Probe(
        ("GET", "/v2/webhook/{endpoint_id:str}"),
        "webhook endpoint",
        lambda w, c, x: Request("GET", f"/v2/webhook/{x}", _app_headers(w, c)),
        (("B's endpoint", lambda w: w.b.endpoint_id),),
        _missing_uuid,
    ),
    Probe(
        ("PUT", "/v2/webhook/{endpoint_id:str}/enable"),
        "webhook endpoint",
        lambda w, c, x: Request("PUT", f"/v2/webhook/{x}/enable", _app_headers(w, c)),
        (("B's endpoint", lambda w: w.b.endpoint_id),),
        _missing_uuid,
    ),
    Probe(
        ("POST", "/v2/keys/{key_id:str}/roll"),
        "API key",
        lambda w, c, x: Request(
            "POST", f"/v2/keys/{x}/roll", _app_headers(w, c), json={"overlap_seconds": 60}
        ),
        (("B's key", lambda w: w.b.key_id),),
        _missing_key,
    ),
    Probe(
        ("DELETE", "/v2/keys/{key_id:str}"),
        "API key",
        lambda w, c, x: Request("DELETE", f"/v2/keys/{x}", _app_headers(w, c)),
        (("B's key", lambda w: w.b.key_id),),
        _missing_key,
    ),
    Probe(
        ("DELETE", "/v2/signature/key/{key_id:str}"),
        "signature key",
        lambda w, c, x: Request("DELETE", f"/v2/signature/key/{x}", _app_headers(w, c)),
        (("B's signature key", lambda w: w.b.signature_key_id),),
        lambda: "sk_" + uuid.uuid4().hex[:24],
    ),
    Probe(
        ("DELETE", "/v2/signature/source/{source_id:str}"),
        "signature key source",
        lambda w, c, x: Request("DELETE", f"/v2/signature/source/{x}", _app_headers(w, c)),
        (("B's key source", lambda w: w.b.signature_source_id),),
        lambda: "ks_" + uuid.uuid4().hex[:24],
    ),
    Probe(
        ("POST", "/v2/statement"),
        "customer",
        lambda w, c, x: Request(
            "POST",
            "/v2/statement",
            _multipart(w, c),
            data={"customer_id": x},
            files={"file": ("s.sta", MT940, "application/octet-stream")},
        ),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    Probe(
        ("POST", "/v2/statement"),
        "login (for A's own customer)",
        lambda w, c, x: Request(
            "POST",
            "/v2/statement",
            _multipart(w, c),
            data={"customer_id": w.a.customer_id, "login_id": x},
            files={"file": ("s.sta", MT940, "application/octet-stream")},
        ),
        (
            ("B's statement login", lambda w: str(w.b.statement_login_id)),
            ("B's sandbox login", lambda w: str(w.b.login_id)),
            ("A's statement login of another customer", lambda w: str(w.l2.statement_login_id)),
        ),
        _missing_number,
    ),
    _oauth(
        "/oauth/token",
        lambda w, x: _client_form(w, grant_type="refresh_token", refresh_token=x),
        "refresh token",
        REFRESH_TOKEN,
    ),
    _oauth("/oauth/revoke", lambda w, x: _client_form(w, token=x), "token"),
    _oauth("/oauth/introspect", lambda w, x: _client_form(w, token=x), "token"),
]


def _payment_body(w: World, customer_id: str, account_id: int | None = None) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "service_id": 1,
        "callback_url": CALLBACK,
        "creditor_name": "Creditor",
        "creditor_iban": "DE89370400440532013000",
        "amount": "1.00",
        "currency": "EUR",
        **({"account_id": account_id} if account_id is not None else {}),
    }


def _fresh_key(w: World, c: str) -> dict[str, str]:
    return _app_headers(w, c, **{"idempotency-key": uuid.uuid4().hex})


PROBES += [
    Probe(
        ("GET", "/v2/payment/{payment_id:str}"),
        "payment",
        lambda w, c, x: Request("GET", f"/v2/payment/{x}", _app_headers(w, c)),
        (("B's payment", lambda w: w.b.payment_id),),
        _missing_uuid,
    ),
    Probe(
        ("DELETE", "/v2/payment/{payment_id:str}"),
        "payment",
        lambda w, c, x: Request("DELETE", f"/v2/payment/{x}", _app_headers(w, c)),
        (("B's payment", lambda w: w.b.payment_id),),
        _missing_uuid,
    ),
    Probe(
        ("GET", "/v2/payment/batch/{batch_id:str}"),
        "batch",
        lambda w, c, x: Request("GET", f"/v2/payment/batch/{x}", _app_headers(w, c)),
        (("B's batch", lambda w: w.b.batch_id),),
        _missing_uuid,
    ),
    Probe(
        ("DELETE", "/v2/payment/batch/{batch_id:str}"),
        "batch",
        lambda w, c, x: Request("DELETE", f"/v2/payment/batch/{x}", _app_headers(w, c)),
        (("B's batch", lambda w: w.b.batch_id),),
        _missing_uuid,
    ),
    Probe(
        ("POST", "/v2/payment/{payment_id:str}/pain.001"),
        "payment",
        lambda w, c, x: Request("POST", f"/v2/payment/{x}/pain.001", _app_headers(w, c)),
        (("B's payment", lambda w: w.b.payment_id),),
        _missing_uuid,
    ),
    Probe(
        ("POST", "/v2/payment/batch/{batch_id:str}/pain.001"),
        "batch",
        lambda w, c, x: Request("POST", f"/v2/payment/batch/{x}/pain.001", _app_headers(w, c)),
        (("B's batch", lambda w: w.b.batch_id),),
        _missing_uuid,
    ),
    Probe(
        ("POST", "/v2/payment"),
        "customer",
        lambda w, c, x: Request("POST", "/v2/payment", _fresh_key(w, c), json=_payment_body(w, x)),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    Probe(
        ("POST", "/v2/payment"),
        "debtor account (for A's own customer)",
        lambda w, c, x: Request(
            "POST",
            "/v2/payment",
            _fresh_key(w, c),
            json=_payment_body(w, w.a.customer_id, int(x)),
        ),
        OTHER_ACCOUNTS,
        _missing_number,
    ),
    Probe(
        ("POST", "/v2/payment/batch"),
        "customer",
        lambda w, c, x: Request(
            "POST",
            "/v2/payment/batch",
            _fresh_key(w, c),
            json={
                "customer_id": x,
                "service_id": 1,
                "callback_url": CALLBACK,
                "payments": [
                    {
                        k: v
                        for k, v in _payment_body(w, x).items()
                        if k.startswith(("cred", "am", "cur"))
                    }
                ],
            },
        ),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
    Probe(
        ("GET", "/v2/payment"),
        "customer (a filter of the caller's own payments)",
        lambda w, c, x: Request("GET", f"/v2/payment?customer_id={x}", _app_headers(w, c)),
        OTHER_APP_CUSTOMER,
        _missing_uuid,
    ),
]

#: listings that must show none of B's ids
LISTINGS = (
    "/v2/event",
    "/v2/keys",
    "/v2/webhook",
    "/v2/payment",
    "/v2/signature/key",
    "/v2/signature/source",
)


def app_routes() -> set[tuple[str, str]]:
    """Every (method, path) the application serves, as its route table says."""
    from tests.security.test_keys_and_scopes import create_app_for_inspection

    app = create_app_for_inspection(make_settings_for_inspection())
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if route.path.startswith(("/docs", "/schema")):
            continue
        if route.path.startswith("/dashboard"):
            # The team's pages: no app credential, every app in view (docs/dashboard.md).
            # tests/dashboard/test_cross_app_ids.py proves A's pages never act on B's objects.
            continue
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    found.add((method, route.path))
    return found


def make_settings_for_inspection() -> Any:
    import tempfile
    from pathlib import Path

    return make_settings(Path(tempfile.mkdtemp(prefix="bankhub-routes-")), "sqlite+aiosqlite://")


def test_every_route_is_in_the_matrix() -> None:
    """A route the matrix cannot build a request for fails here, by name."""
    probed = {probe.route for probe in PROBES}
    unknown = sorted(app_routes() - probed - set(NO_FOREIGN_ID))
    assert not unknown, (
        "routes the tenant matrix does not cover; add a Probe that puts each id the route "
        "takes into a request (or, if it can name no other tenant's object, an entry in "
        f"NO_FOREIGN_ID with the reason): {unknown}"
    )
    stale = sorted((probed | set(NO_FOREIGN_ID)) - app_routes())
    assert not stale, f"the matrix names routes the application no longer has: {stale}"


# --- set-up --------------------------------------------------------------------------------


@asynccontextmanager
async def _everything(db: Database) -> AsyncIterator[AsyncSession]:
    """The test's own look at the database: every app's rows (S14's operator scope)."""
    with tenancy.everything():
        async with db.transaction() as session:
            yield session


async def _oauth_grant(h: Harness) -> tuple[str, str]:
    answer = await h.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "master"},
        auth=(h.creds["client_id"], h.creds["service_secret"]),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return str(body["access_token"]), str(body["refresh_token"])


async def _statement_login(h: Harness, customer_id: str) -> int:
    headers = h.headers()
    del headers["content-type"]
    answer = await h.client.post(
        "/v2/statement",
        data={"customer_id": customer_id},
        files={"file": ("s.sta", MT940, "application/octet-stream")},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["data"]["login_id"])


async def _tenant(h: Harness, name: str) -> Tenant:
    hub = h.hub
    async with _everything(hub.db) as session:
        app_id = (
            await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        hook = await webhooks.create_endpoint(
            session,
            hub.keyring,
            hub.clock(),
            app_id,
            f"https://{name}.example/hook",
            allow_http=True,
        )
        endpoint_id = hook.endpoint.id
    identifier = f"{name}-customer"
    customer_id = await create_customer(h, identifier)
    login = await connect(h, "user_good", customer_id=customer_id)
    statement_login_id = await _statement_login(h, customer_id)
    key = await h.client.post("/v2/keys", headers=h.headers(), json={"scope": "read"})
    assert key.status_code == 200, key.text
    access, refresh = await _oauth_grant(h)
    payment_id, batch_id = await _payments(h, customer_id)
    signature_key = await h.client.post(
        "/v2/signature/key",
        headers=h.headers(),
        json={"public_key": SIGNATURE_KEYS[name], "label": f"{name}-signer"},
    )
    assert signature_key.status_code == 200, signature_key.text
    # a source nobody serves (the discard port): stored, its first sync failed
    signature_source = await h.client.post(
        "/v2/signature/source",
        headers=h.headers(),
        json={"url": f"http://127.0.0.1:9/{name}.keys"},
    )
    assert signature_source.status_code == 200, signature_source.text
    async with _everything(hub.db) as session:
        account_id = (
            (
                await session.execute(
                    select(Account.id)
                    .where(Account.login_id == login["login_id"])
                    .order_by(Account.id)
                )
            )
            .scalars()
            .first()
        )
        has_transactions = (
            await session.execute(
                select(Transaction.id).where(Transaction.account_id == account_id).limit(1)
            )
        ).scalar_one_or_none()
        event_id = (
            (
                await session.execute(
                    select(Event.id).where(Event.app_id == app_id).order_by(Event.id)
                )
            )
            .scalars()
            .first()
        )
        # disabled, as a 410 leaves it: enabling it is a change the matrix would see
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        endpoint.disabled_at = hub.clock()
        endpoint.disabled_reason = "the endpoint answered 410 Gone"
    assert account_id is not None
    assert has_transactions is not None
    assert event_id is not None
    return Tenant(
        harness=h,
        app_id=app_id,
        customer_id=customer_id,
        identifier=identifier,
        login_id=int(login["login_id"]),
        login_secret=str(login["secret"]),
        account_id=account_id,
        event_id=event_id,
        key_id=str(key.json()["data"]["key_id"]),
        endpoint_id=endpoint_id,
        refresh_token=refresh,
        access_token=access,
        statement_login_id=statement_login_id,
        payment_id=payment_id,
        batch_id=batch_id,
        signature_key_id=str(signature_key.json()["data"]["id"]),
        signature_source_id=str(signature_source.json()["data"]["id"]),
    )


async def _payments(h: Harness, customer_id: str) -> tuple[str, str]:
    """A payment and a batch of the app, awaiting authorisation."""
    switched = await h.client.put(
        "/v2/payment/settings", headers=h.headers(), json={"enabled": True, "chosen_by": "owner"}
    )
    assert switched.status_code == 200, switched.text
    transfer = {
        "creditor_name": "Creditor",
        "creditor_iban": "DE89370400440532013000",
        "amount": "1.00",
        "currency": "EUR",
    }
    single = await h.client.post(
        "/v2/payment",
        headers={**h.headers(), "idempotency-key": uuid.uuid4().hex},
        json={"customer_id": customer_id, "service_id": 1, "callback_url": CALLBACK, **transfer},
    )
    assert single.status_code == 200, single.text
    batch = await h.client.post(
        "/v2/payment/batch",
        headers={**h.headers(), "idempotency-key": uuid.uuid4().hex},
        json={
            "customer_id": customer_id,
            "service_id": 1,
            "callback_url": CALLBACK,
            "payments": [transfer, transfer],
        },
    )
    assert batch.status_code == 200, batch.text
    return str(single.json()["data"]["id"]), str(batch.json()["data"]["id"])


async def _world(harness: Harness) -> World:
    other = Harness(harness.hub, harness.client, await harness.new_app("Other app"))
    a = await _tenant(harness, "a")
    b = await _tenant(other, "b")
    # L2: another customer of A with its own login, accounts and statement login
    customer2 = await create_customer(harness, "a-customer-2")
    login2 = await connect(harness, "user_good", customer_id=customer2)
    async with _everything(harness.hub.db) as session:
        account2 = (
            (
                await session.execute(
                    select(Account.id)
                    .where(Account.login_id == login2["login_id"])
                    .order_by(Account.id)
                )
            )
            .scalars()
            .first()
        )
    assert account2 is not None
    l2 = Tenant(
        harness=harness,
        app_id=a.app_id,
        customer_id=customer2,
        identifier="a-customer-2",
        login_id=int(login2["login_id"]),
        login_secret=str(login2["secret"]),
        account_id=account2,
        event_id=a.event_id,
        key_id=a.key_id,
        endpoint_id=a.endpoint_id,
        refresh_token=a.refresh_token,
        access_token=a.access_token,
        statement_login_id=await _statement_login(harness, customer2),
    )
    bearer, _ = await _oauth_grant(harness)
    return World(a, b, l2, bearer)


# --- comparing answers ----------------------------------------------------------------------


def _masked(value: Any, ids: Iterable[str], volatile: frozenset[str]) -> Any:
    """The answer with the probed id (wherever it appears) and fresh ids replaced by marks."""
    patterns = [re.compile(rf"(?<![\w-]){re.escape(i)}(?![\w-])") for i in ids if i]
    if isinstance(value, dict):
        return {
            k: "<fresh>" if k in volatile else _masked(v, ids, volatile) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v, ids, volatile) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    text = str(value)
    for pattern in patterns:
        text = pattern.sub("<id>", text)
    return text


def _answer(response: httpx.Response, ids: Iterable[str], volatile: frozenset[str]) -> Any:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "www-authenticate": response.headers.get("www-authenticate"),
        "body": _masked(body, ids, volatile),
    }


async def _send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    return await client.request(
        request.method,
        request.url,
        headers=request.headers,
        json=request.json,
        data=request.data,
        files=request.files,
    )


# --- B's rows, before and after ------------------------------------------------------------


def _owned_tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name != "alembic_version"]


async def _rows_of(harness: Harness, app_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that belongs to the app: by ``app_id``, the app itself, and rows reached from
    them through foreign keys (e.g. refresh tokens through their grant)."""
    owned: dict[str, set[Any]] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with _everything(harness.hub.db) as session:
        for table in _owned_tables():
            pk = next(iter(table.primary_key.columns))
            query = None
            if table.name == "apps":
                query = select(table).where(table.c.id == app_id)
            elif "app_id" in table.c:
                query = select(table).where(table.c.app_id == app_id)
            else:
                for fk in table.foreign_keys:
                    parent = fk.column.table.name
                    if parent in owned:
                        query = select(table).where(fk.parent.in_(sorted(owned[parent])))
                        break
            if query is None:
                continue
            found = (await session.execute(query.order_by(pk))).all()
            rows[table.name] = [tuple(r) for r in found]
            owned[table.name] = {getattr(r, pk.name) for r in found}
    return rows


# --- the matrix ----------------------------------------------------------------------------


async def test_foreign_ids_answer_like_missing_ones(harness: Harness) -> None:
    await _matrix(harness)


async def test_foreign_ids_answer_like_missing_ones_under_row_level_security(
    app_role_harness: Harness,
) -> None:
    """The same on PostgreSQL as deployed: bankhub as a runtime role bound by S14's policies."""
    await _matrix(app_role_harness)


async def _matrix(harness: Harness) -> None:
    world = await _world(harness)
    client = harness.client
    before = await _rows_of(harness, world.b.app_id)
    for table in ("logins", "transactions", "events", "webhook_deliveries", "oauth_refresh_tokens"):
        assert before[table], f"the set-up gave B no {table}"

    differences: list[str] = []
    tried = 0
    for probe in PROBES:
        for credential in probe.credentials:
            for label, foreign_of in probe.foreign:
                foreign = foreign_of(world)
                missing = probe.missing()
                theirs = await _send(client, probe.build(world, credential, foreign))
                nobody = await _send(client, probe.build(world, credential, missing))
                tried += 1
                got = _answer(theirs, [foreign], probe.volatile)
                want = _answer(nobody, [missing], probe.volatile)
                if got != want:
                    differences.append(
                        f"{probe.route[0]} {probe.route[1]} with {label} as the {probe.what} "
                        f"({credential} credential):\n  foreign: {got}\n  missing: {want}"
                    )
                if probe.route == ("POST", "/v2/customer"):
                    # the identifier is free in A: it makes A a customer of its own
                    assert theirs.status_code == 200, theirs.text
                    assert theirs.json()["data"]["customer_id"] != world.b.customer_id
    assert not differences, "another tenant's id answered unlike a missing one:\n" + "\n".join(
        differences
    )
    assert tried >= 40

    b_ids = {
        world.b.customer_id,
        world.b.key_id,
        world.b.endpoint_id,
        world.b.signature_key_id,
        world.b.signature_source_id,
    }
    for path in LISTINGS:
        for credential in ("service", "bearer"):
            listing = await client.get(path, headers=_app_headers(world, credential))
            assert listing.status_code == 200, listing.text
            assert not any(i in listing.text for i in b_ids), (path, listing.text)
            events = [e["id"] for e in listing.json()["data"] if path == "/v2/event"]
            assert world.b.event_id not in events

    after = await _rows_of(harness, world.b.app_id)
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    assert not changed, f"probing with B's ids changed B's rows in {changed}"
    # B still works: its own credentials read its own login
    own = await client.get(
        "/v2/login", headers=world.b.harness.headers(login_secret=world.b.login_secret)
    )
    assert own.status_code == 200, own.text
    assert own.json()["data"]["id"] == world.b.login_id

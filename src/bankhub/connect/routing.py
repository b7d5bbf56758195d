"""Connect sessions across API processes: which process holds a session, and the internal hop
that passes it a request another process received.

A connect session lives in the memory of the process that opened it: the connector may hold the
user's bank credentials while it logs in, and credentials are never written anywhere (S22). So
when a load balancer sends a step of the flow to another process, that process cannot serve it
itself. It finds the owner in ``connect_routes`` (keyed hashes of the session's cookie and of
its bank redirect's ``state``, written when the session opened) and hands the request over:

* **The hop.** The request (method, path, query, headers, client address and scheme, body) is
  packed into one envelope, signed with an HMAC under the server pepper
  (``BANKHUB_SECRET_KEY``, the same in every process), and POSTed to the owner's
  ``BANKHUB_INTERNAL_URL`` at :data:`HOP_PATH`. The owner checks the signature, its age and that
  it is the process the envelope names, restores the request as the user sent it (their
  address: what its address blocks and the bank see), and serves it; the rate limits counted it
  already where it arrived, and do not count it again. Its answer goes back to the browser as
  it is.
* **Why not LISTEN/NOTIFY.** A form step carries the user's credentials, and PostgreSQL's
  notification queue is spooled to disk (``pg_notify/``); the hop keeps them where they already
  are, in transit between bankhub's own processes, like the load balancer's hop before it.
* **When the hop cannot be made**, the user gets a page that says so with the way back to the
  app, never "link expired": the owner stopped (its rows are marked on shutdown) or restarted
  (it answers that it is not the process the envelope names: ``not-here``), or it cannot be
  reached, or has no internal URL (then the page offers to try again, as the next attempt may
  reach it through the load balancer).

Written here rather than taken from a proxy library: the hop is one signed POST over the
``httpx`` client bankhub already uses; what is particular is the envelope and its checks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc
from bankhub.connect.models import ConnectRoute
from bankhub.security.tls import outbound_ssl_context

if TYPE_CHECKING:
    from bankhub.hub import Hub

log = logging.getLogger("bankhub.connect")

#: where a process takes requests for the sessions it holds (not a route: the hop layer's own)
HOP_PATH = "/_bankhub/connect-hop"
#: the envelope's signature, on the hop request
HOP_SIGNATURE = "bankhub-hop-signature"
#: on the hop layer's own answers (never on a page): ``not-here`` or ``refused``
HOP_ANSWER = "bankhub-hop"
NOT_HERE = "not-here"
REFUSED = "refused"
#: a hop older (or newer) than this is refused: a captured envelope cannot be sent again later
HOP_MAX_AGE = timedelta(seconds=30)
#: the owner answers a form within ``BANKHUB_CONNECT_STEP_WAIT_SECONDS`` (a slow bank goes on
#: in the background); an upload is parsed first, which may take a few seconds
HOP_TIMEOUT = httpx.Timeout(30.0, connect=3.0)
SESSION_PURPOSE = "connect-session"
STATE_PURPOSE = "connect-return-state"
HOP_PURPOSE = "connect-hop"
#: expired rows deleted per connect opened
PURGE_BATCH = 100
#: headers of one connection, not of the request or the answer (RFC 9110 7.6.1), and those the
#: hop's own transport sets
_NOT_RELAYED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"content-length",
        b"content-encoding",
    }
)


class Elsewhere(StrEnum):
    """Why a request for a session held by another process could not be passed to it."""

    #: the owner did not answer, or cannot be reached at all (no internal URL)
    UNREACHABLE = "unreachable"
    #: the owner stopped or restarted: the session ended with it
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Relayed:
    """The owner's answer, to be sent to the browser as it is."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class HopRefused(Exception):
    """A hop envelope that is not signed by a bankhub process, too old, or malformed."""


@dataclass(frozen=True, slots=True)
class Hop:
    """A request another process received for a session this one holds."""

    owner: str
    #: when the sending process packed it (seconds since the epoch)
    at: float
    scope: dict[str, Any]
    body: bytes


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def _bytes(value: str) -> bytes:
    return value.encode("latin-1")


def pack(scope: dict[str, Any], body: bytes, *, owner: str, at: datetime) -> bytes:
    """The envelope: a 4-byte length, the request's description as JSON, then its body."""
    meta = {
        "v": 1,
        "owner": owner,
        "at": at.timestamp(),
        # each hop is unique, so that the owner can refuse one it has seen (a replay)
        "nonce": secrets.token_hex(16),
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": _text(scope.get("raw_path") or scope["path"].encode()),
        "root_path": scope.get("root_path", ""),
        "query_string": _text(scope.get("query_string", b"")),
        "headers": [[_text(k), _text(v)] for k, v in scope.get("headers", [])],
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "scheme": scope.get("scheme", "http"),
        "http_version": scope.get("http_version", "1.1"),
    }
    described = json.dumps(meta, separators=(",", ":")).encode()
    return len(described).to_bytes(4, "big") + described + body


def unpack(envelope: bytes) -> Hop:
    """The request an envelope describes, as ASGI scope values (raises :class:`HopRefused`)."""
    try:
        size = int.from_bytes(envelope[:4], "big")
        meta = json.loads(envelope[4 : 4 + size])
        scope: dict[str, Any] = {
            "method": str(meta["method"]),
            "path": str(meta["path"]),
            "raw_path": _bytes(meta["raw_path"]),
            "root_path": str(meta["root_path"]),
            "query_string": _bytes(meta["query_string"]),
            "headers": [(_bytes(k), _bytes(v)) for k, v in meta["headers"]],
            "client": tuple(meta["client"]) if meta["client"] else None,
            "server": tuple(meta["server"]) if meta["server"] else None,
            "scheme": str(meta["scheme"]),
            "http_version": str(meta["http_version"]),
        }
        if meta["v"] != 1 or not scope["path"].startswith("/v2/connect/"):
            raise HopRefused("not a connect request")
        return Hop(str(meta["owner"]), float(meta["at"]), scope, envelope[4 + size :])
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise HopRefused(f"malformed envelope ({type(exc).__name__})") from None


class Routing:
    """This process's part: its id, the rows of the sessions it opens, and the hop both ways."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        #: a new id on every start: a restarted process at the same address is another owner
        self.owner = secrets.token_hex(16)
        url = hub.settings.internal_url
        self.url = url.rstrip("/") if url else None
        self._session_key = hub.hasher.keyed(SESSION_PURPOSE)
        self._state_key = hub.hasher.keyed(STATE_PURPOSE)
        self._client: httpx.AsyncClient | None = None
        #: signatures of the hops taken, until they are too old to be taken anyway (replays)
        self._seen: dict[str, float] = {}
        #: the hop's transport (tests give one that reaches an in-process peer)
        self.transport: httpx.AsyncBaseTransport | None = None

    # --- the rows ---------------------------------------------------------------------------

    async def remember(
        self, db: AsyncSession, *, sid: str, state: str, token_id: str, now: datetime
    ) -> None:
        """Record, in the unit of work that opens the session, that this process holds it; and
        clear away a few rows nobody can use any more."""
        expired = (
            select(ConnectRoute.session_hash)
            .where(ConnectRoute.expires_at < now)
            .limit(PURGE_BATCH)
            # PostgreSQL: rows another process is clearing right now are left to it
            .with_for_update(skip_locked=True)
        )
        await db.execute(
            delete(ConnectRoute)
            .where(ConnectRoute.session_hash.in_(expired.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        db.add(
            ConnectRoute(
                session_hash=self._session_key(sid),
                state_hash=self._state_key(state),
                token_id=token_id,
                owner=self.owner,
                owner_url=self.url,
                created_at=now,
                expires_at=now + self.hub.settings.token_ttl,
            )
        )

    async def find(
        self, *, sid: str | None = None, state: str | None = None
    ) -> ConnectRoute | None:
        """The row of the session the cookie ``sid`` (or the bank redirect's ``state``) names,
        while a request can still name it."""
        if sid:
            wanted = ConnectRoute.session_hash == self._session_key(sid)
        elif state:
            wanted = ConnectRoute.state_hash == self._state_key(state)
        else:
            return None
        async with self.hub.db.transaction() as db:
            route = (await db.execute(select(ConnectRoute).where(wanted))).scalar_one_or_none()
        if route is None or as_utc(route.expires_at) <= self.hub.clock():
            return None
        return route

    async def stop(self) -> None:
        """This process is shutting down and its sessions end with it: say so to the others.

        Best effort: without it (a crash, the database gone first) the others find out when
        the hop to this address fails, and tell the user it could not be reached."""
        try:
            async with self.hub.db.transaction() as db:
                await db.execute(
                    update(ConnectRoute)
                    .where(ConnectRoute.owner == self.owner, ConnectRoute.stopped_at.is_(None))
                    .values(stopped_at=self.hub.clock())
                    .execution_options(synchronize_session=False)
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not mark this process's connect sessions ended: %s", exc)
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    # --- the hop, sending ---------------------------------------------------------------------

    def _sign(self, envelope: bytes) -> str:
        return self.hub.hasher.hash(hashlib.sha256(envelope).hexdigest(), purpose=HOP_PURPOSE)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=HOP_TIMEOUT,
                follow_redirects=False,
                trust_env=False,  # never a proxy from the environment
                verify=outbound_ssl_context(self.hub.settings.ca_bundle),
                transport=self.transport,
            )
        return self._client

    async def relay(
        self, route: ConnectRoute, scope: dict[str, Any], body: bytes
    ) -> Relayed | Elsewhere:
        """Pass the request to the process that holds the session; its answer, or why not."""
        if route.stopped_at is not None:
            return Elsewhere.STOPPED
        if route.owner_url is None:
            log.warning(
                "a connect request for a session of process %s reached process %s, and the "
                "owner has no BANKHUB_INTERNAL_URL to pass it on to",
                route.owner,
                self.owner,
            )
            return Elsewhere.UNREACHABLE
        if route.owner_url == self.url:
            return Elsewhere.STOPPED  # this process listens at the owner's address now
        envelope = pack(scope, body, owner=route.owner, at=self.hub.clock())
        try:
            answer = await self._http().post(
                f"{route.owner_url}{HOP_PATH}",
                content=envelope,
                headers={
                    HOP_SIGNATURE: self._sign(envelope),
                    "content-type": "application/octet-stream",
                },
            )
        except httpx.HTTPError as exc:
            log.warning(
                "could not pass a connect request to %s (%s)", route.owner_url, type(exc).__name__
            )
            return Elsewhere.UNREACHABLE
        said = answer.headers.get(HOP_ANSWER)
        if said == NOT_HERE:
            return Elsewhere.STOPPED
        if said is not None:
            log.error(
                "%s refused a connect hop (%s): every process needs the same BANKHUB_SECRET_KEY "
                "and clock within %d s",
                route.owner_url,
                answer.text[:200],
                HOP_MAX_AGE.total_seconds(),
            )
            return Elsewhere.UNREACHABLE
        headers = [(k, v) for k, v in answer.headers.raw if k.lower() not in _NOT_RELAYED]
        body = answer.content
        headers.append((b"content-length", str(len(body)).encode()))
        return Relayed(answer.status_code, headers, body)

    # --- the hop, receiving -------------------------------------------------------------------

    def open_hop(self, signature: str | None, envelope: bytes) -> Hop:
        """The request a peer passed on, once its signature and age are checked (raises
        :class:`HopRefused`). Whether this process is the owner it names is the caller's
        question."""
        if not signature or not hmac.compare_digest(signature, self._sign(envelope)):
            raise HopRefused("bad signature")
        hop = unpack(envelope)
        now = self.hub.clock().timestamp()
        age = abs(now - hop.at)
        if age > HOP_MAX_AGE.total_seconds():
            raise HopRefused(f"{age:.0f} s old")
        # A hop captured on the way could be sent again while it is young enough: each is taken
        # once. Every hop for a session comes to its owner, so this process's memory suffices.
        if signature in self._seen:
            raise HopRefused("replayed")
        self._seen = {seen: until for seen, until in self._seen.items() if until > now}
        self._seen[signature] = hop.at + HOP_MAX_AGE.total_seconds()
        return hop


def header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The last value of one request header, as text."""
    found = [v for k, v in headers if k.lower() == name]
    return _text(found[-1]) if found else None

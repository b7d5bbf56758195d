"""S40: ``Idempotency-Key`` on every write of the API.

A partner that sends ``Idempotency-Key: <1 to 255 visible ASCII characters>`` with a POST (or a
PUT or DELETE) of the API can send the same request again, after a timeout or a lost answer,
without doing the work twice:

* the first request claims the key for its app, in a short transaction of its own (a unique
  constraint on ``(app_id, key)`` lets exactly one of several concurrent requests in);
* its answer is stored (2xx and 4xx, sealed under the keyring) and replayed, with
  ``Idempotent-Replayed: true``, to any later request with the same key and the same request
  (method, path, query, login-secret and body) for 24 hours;
* the same key with a different request is ``IdempotencyKeyReused`` (422); the same key while
  the first request still runs is ``IdempotencyKeyInProgress`` (409, ``Retry-After``);
* a 5xx, a crash or an answer that describes the moment rather than the request (401, 403,
  408, 409, 425, 429) releases the key, so the partner can retry with it; a claim left behind by a
  process that died is taken over once its lease (``BANKHUB_IDEMPOTENCY_LEASE_SECONDS``) ends.

An answer that carries a newly issued secret (an API key's, a new login's login-secret) is not
kept decryptable for a day: secrets are shown once and stored only as keyed hashes (S1). The
route names where the secret stands (:func:`shows_secret`); such an answer is stored without
it (state ``shown_once``), and the same request again is answered ``IdempotencyKeyReused``
(422, ``reason: secret_shown_once``) with that answer in ``extra.answer``: the partner learns
what was created (to revoke or delete it) and that the secret cannot be had again. Keeping it
for a few minutes instead would still write it to the database file, its log and its backups,
where the key's own row holds only a hash.

Keys belong to the app the credential names: the app is identified with the route's own
authentication (``bankhub.api.auth``) before the key is looked at, so app A's key
never replays app B's answer, and a request whose credential is refused is just answered.

This module keeps the keys and the stored answers; the middleware that honours the header on
every covered route, and the header's description in ``/openapi.json``, are the API's edge
(``bankhub.api.idempotency``).

The routes of the hosted connect page and the sandbox bank (browser forms) and OAuth's
``/oauth/*`` endpoints do not take part; ``docs/api.md`` says why.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.routes import HTTPRoute
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db.engine import Database
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners.models import App
from bankhub.security import scopes
from bankhub.security.crypto import associated_data
from bankhub.security.keyring import Keyring
from bankhub.security.models import IdempotencyRecord

if TYPE_CHECKING:
    from litestar.handlers import BaseRouteHandler
    from litestar.routes import BaseRoute


log = logging.getLogger("bankhub.idempotency")

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: how long an answer is replayed (S40)
TTL = timedelta(hours=24)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: 1 to 255 visible ASCII characters, spaces allowed inside
KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
_KEY = re.compile(rb"[!-~](?:[ -~]{0,253}[!-~])?")
#: answers larger than this are sent but not stored (the key is released)
MAX_STORED_BODY = 1024 * 1024
#: answers about the moment rather than the request: never stored, the key is released
TRANSIENT = frozenset({401, 403, 408, 409, 425, 429})
#: the answer's headers that are stored and replayed; the edge adds the others again
STORED_HEADERS = frozenset(
    {
        "allow",
        "content-type",
        "link",
        "location",
        "retry-after",
        "www-authenticate",
        "x-content-type-options",
    }
)
IN_PROGRESS, DONE, ERASED = "in_progress", "done", "erased"
#: done, and the answer is stored without the newly issued secret it carried
SHOWN_ONCE = "shown_once"
#: a route's ``opt``: the path in its JSON answer of a secret it issues (:func:`shows_secret`)
SECRET_OPT = "idempotency_secret"  # noqa: S105 - an opt key, not a secret  # nosec B105
TABLE, COLUMN = "idempotency_keys", "response"
#: the keyed hash's purpose label for request fingerprints
FINGERPRINT = "idempotency-request"
#: how long a partner should wait before asking again while the first request runs
RETRY_AFTER_SECONDS = 1


# --- which routes, which keys -------------------------------------------------------------------


def covers(handler: BaseRouteHandler | None, method: str) -> bool:
    """Whether a ``method`` request to ``handler`` honours the header: every write of a route
    that an app credential calls (``read``, ``write`` or ``master``); not the public OAuth
    endpoints, the connect page's or the sandbox bank's forms."""
    if method not in WRITE_METHODS or handler is None:
        return False
    declared = scopes.declared(handler.opt)
    return declared is not None and scopes.Scope.parse(declared) is not None


def shows_secret(opt: dict[str, Any], *path: str) -> dict[str, Any]:
    """A route's ``opt`` with the path (``"data", "secret"``) of the newly issued secret its
    JSON answer may carry: such an answer is never stored with the secret in it."""
    return {**opt, SECRET_OPT: path}


def secret_path(handler: BaseRouteHandler | None) -> tuple[str, ...] | None:
    path = None if handler is None else handler.opt.get(SECRET_OPT)
    return tuple(path) if path else None


def without_secret(response: StoredResponse, path: tuple[str, ...]) -> StoredResponse | None:
    """The answer with the secret at ``path`` set to null; None when it carries none there."""
    try:
        body = msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        return None
    parent = body
    for name in path[:-1]:
        parent = parent.get(name) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or not parent.get(path[-1]):
        return None
    parent[path[-1]] = None
    return StoredResponse(response.status, response.headers, msgspec.json.encode(body))


def covered_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    """``(METHOD, path template)`` of every route and method that honours the header."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if covers(handler, method):
                    found.append((method, route.path_format))
    return found


def _invalid_key(problem: str) -> DomainError:
    return DomainError(
        ErrorCode.DATA_INVALID,
        f"{KEY_HEADER} {problem}",
        {"problems": [f"{KEY_HEADER}: {problem}"], "header": KEY_HEADER},
    )


def parse_key(values: list[bytes]) -> str:
    """The one ``Idempotency-Key`` value sent, checked: else ``DataInvalid``."""
    if len(values) != 1:
        raise _invalid_key("must be sent once")
    if not _KEY.fullmatch(values[0]):
        raise _invalid_key("must be 1 to 255 visible ASCII characters (spaces only between them)")
    return values[0].decode("ascii")


# --- the stored answers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def seal(self) -> bytes:
        return msgspec.msgpack.encode([self.status, self.headers, self.body])

    @classmethod
    def unseal(cls, raw: bytes) -> StoredResponse:
        status, headers, body = msgspec.msgpack.decode(
            raw, type=tuple[int, list[tuple[str, str]], bytes]
        )
        return cls(status, headers, body)


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    app_id: int
    key: str
    method: str
    path: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Claim:
    """The key is ours until the lease ends: run the request, then store or release."""

    row_id: int
    token: str


def _aad(app_id: int, row_id: int) -> bytes:
    return associated_data(app_id, TABLE, COLUMN, row_id)


def _mismatch() -> DomainError:
    return DomainError(ErrorCode.IDEMPOTENCY_MISMATCH, extra={"reason": "different_request"})


def _in_progress() -> DomainError:
    return DomainError(
        ErrorCode.IDEMPOTENCY_IN_PROGRESS,
        extra={"retry_after": RETRY_AFTER_SECONDS},
        retry_after=RETRY_AFTER_SECONDS,
    )


def _shown_once(stored: StoredResponse) -> DomainError:
    try:
        answer: Any = msgspec.json.decode(stored.body)
    except msgspec.DecodeError:
        answer = None
    return DomainError(
        ErrorCode.IDEMPOTENCY_MISMATCH,
        "This Idempotency-Key was used; the request was carried out and is not run again. Its "
        "answer held a newly issued secret, which is shown once and never stored: extra.answer "
        "is that answer without it (revoke or delete what it created if the secret was lost)",
        {"reason": "secret_shown_once", "status": stored.status, "answer": answer},
    )


def _erased(status: int | None) -> DomainError:
    return DomainError(
        ErrorCode.IDEMPOTENCY_MISMATCH,
        "This Idempotency-Key was used; the request was carried out and is not run again, but "
        "its stored answer was erased with the data it described",
        {"reason": "erased", "status": status},
    )


async def claim(
    db: Database, keyring: Keyring, request: KeyedRequest, now: datetime, lease: timedelta
) -> Claim | StoredResponse:
    """Claim ``request.key`` for ``request.app_id``, or the answer stored for it.

    Raises ``IdempotencyKeyReused`` for the key used with another request (or whose answer was
    erased), ``IdempotencyKeyInProgress`` while another request holds it.
    """
    for _ in range(5):
        token = secrets.token_hex(16)
        try:
            async with db.transaction() as session:
                row = IdempotencyRecord(
                    app_id=request.app_id,
                    key=request.key,
                    method=request.method,
                    path=request.path[:4000],
                    fingerprint=request.fingerprint,
                    state=IN_PROGRESS,
                    claim=token,
                    lease_until=now + lease,
                    created_at=now,
                    expires_at=now + TTL,
                )
                session.add(row)
                await session.flush()
                return Claim(row.id, token)
        except IntegrityError:
            pass  # the key is taken: see by whom
        async with db.transaction() as session:
            found = (
                await session.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.app_id == request.app_id,
                        IdempotencyRecord.key == request.key,
                    )
                )
            ).scalar_one_or_none()
            if found is None:
                continue  # expired and purged meanwhile
            if found.expires_at <= now:
                await session.execute(
                    delete(IdempotencyRecord).where(
                        IdempotencyRecord.id == found.id, IdempotencyRecord.expires_at <= now
                    )
                )
                continue
            if found.fingerprint != request.fingerprint:
                raise _mismatch()
            if found.state in (DONE, SHOWN_ONCE) and found.response_enc is not None:
                sealed = keyring.decrypt(found.response_enc, _aad(found.app_id, found.id))
                if found.state == SHOWN_ONCE:
                    raise _shown_once(StoredResponse.unseal(sealed))
                return StoredResponse.unseal(sealed)
            if found.state != IN_PROGRESS:
                raise _erased(found.status_code)
            if found.lease_until is not None and found.lease_until > now:
                raise _in_progress()
            # Left behind by a process that died: take it over, unless another request did.
            taken = await session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.id == found.id,
                    IdempotencyRecord.state == IN_PROGRESS,
                    IdempotencyRecord.claim == found.claim,
                )
                .values(claim=token, lease_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                log.warning(
                    "idempotency key of app %s taken over after its lease ended",
                    request.app_id,
                )
                return Claim(found.id, token)
    raise _in_progress()


async def complete(
    db: Database,
    keyring: Keyring,
    app_id: int,
    held: Claim,
    response: StoredResponse,
    *,
    state: str = DONE,
) -> bool:
    """Store the answer under the claim (``state``: DONE, or SHOWN_ONCE for an answer whose
    secret was taken out); False when the claim was lost meanwhile."""
    sealed = keyring.encrypt(response.seal(), _aad(app_id, held.row_id))
    async with db.transaction() as session:
        result = await session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.id == held.row_id,
                IdempotencyRecord.claim == held.token,
                IdempotencyRecord.state == IN_PROGRESS,
            )
            .values(
                state=state,
                claim=None,
                lease_until=None,
                status_code=response.status,
                response_enc=sealed,
            )
            .execution_options(synchronize_session=False)
        )
    return getattr(result, "rowcount", 0) == 1


async def release(db: Database, held: Claim) -> None:
    """Give the key back: the next request with it runs."""
    async with db.transaction() as session:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.id == held.row_id, IdempotencyRecord.claim == held.token
            )
        )


async def erase_stored(
    session: AsyncSession, app_id: int, *, created_before: datetime | None = None
) -> int:
    """Erase the app's stored answers (in the caller's unit of work); how many.

    The keys stay until they expire, so a retry learns that its request was carried out
    (``IdempotencyKeyReused``, ``reason: erased``) instead of running it again.
    """
    query = update(IdempotencyRecord).where(
        IdempotencyRecord.app_id == app_id, IdempotencyRecord.state.in_((DONE, SHOWN_ONCE))
    )
    if created_before is not None:
        query = query.where(IdempotencyRecord.created_at < created_before)
    result = await session.execute(
        query.values(state=ERASED, response_enc=None)
        .returning(IdempotencyRecord.id)
        .execution_options(synchronize_session=False)
    )
    return len(result.all())


@dataclass(slots=True)
class PurgeCount:
    expired: int = 0
    #: answers older than a retention window shorter than 24 hours
    erased: int = 0


async def purge(db: Database, now: datetime, *, batch: int = 5000) -> PurgeCount:
    """Delete expired keys; erase answers older than an app's shorter retention window."""
    count = PurgeCount()
    while True:
        async with db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(IdempotencyRecord.id)
                        .where(IdempotencyRecord.expires_at <= now)
                        .limit(batch)
                    )
                ).scalars()
            )
            if ids:
                gone = await session.execute(
                    delete(IdempotencyRecord)
                    .where(IdempotencyRecord.id.in_(ids), IdempotencyRecord.expires_at <= now)
                    .returning(IdempotencyRecord.id)
                    .execution_options(synchronize_session=False)
                )
                count.expired += len(gone.all())
        if len(ids) < batch:
            break
    hours_in_ttl = int(TTL.total_seconds() // 3600)
    async with db.transaction() as session:
        short = (
            await session.execute(
                select(App.id, App.retention_hours).where(App.retention_hours < hours_in_ttl)
            )
        ).all()
        for app_id, hours in short:
            count.erased += await erase_stored(
                session, app_id, created_before=now - timedelta(hours=hours)
            )
    return count

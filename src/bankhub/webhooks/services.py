"""Webhook endpoints: creation with a signing secret shown once, rotation with an overlap."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.errors import ApiError, ErrorCode
from bankhub.clock import as_utc
from bankhub.events.services import EVENT_TYPES
from bankhub.security.crypto import Cipher, associated_data
from bankhub.webhooks import signing
from bankhub.webhooks.models import WebhookEndpoint
from bankhub.webhooks.ssrf import Resolver, UnsafeUrl, check_url_syntax, resolve_target

TABLE = "webhook_endpoints"
#: how long creating an endpoint waits for its host to resolve
RESOLVE_SECONDS = 5.0


def _aad(endpoint: WebhookEndpoint, column: str) -> bytes:
    return associated_data(endpoint.app_id, TABLE, column, endpoint.id)


@dataclass(frozen=True, slots=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def _refused(url: str, reason: str) -> ApiError:
    return ApiError(
        ErrorCode.DATA_INVALID,
        f"webhook url refused: {reason}",
        {"url": url, "problems": [f"url: {reason}"]},
    )


async def check_endpoint_url(
    url: str,
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver | None = None,
    resolve_seconds: float = RESOLVE_SECONDS,
) -> None:
    """Raise DataInvalid unless ``url`` may receive webhooks (S39).

    Unless ``allow_private`` (dev), the host is resolved now and every address it resolves to
    must be public, as before each delivery (where it is checked again: DNS can change). A
    host that does not resolve, or not within ``resolve_seconds``, is refused too: nothing
    could be checked.
    """
    try:
        if allow_private:
            check_url_syntax(url, allow_http=allow_http)
            return
        async with asyncio.timeout(resolve_seconds):
            await resolve_target(url, allow_private=False, allow_http=allow_http, resolver=resolver)
    except UnsafeUrl as exc:
        raise _refused(url, str(exc)) from None
    except TimeoutError:
        raise _refused(url, f"its host did not resolve within {resolve_seconds:g} s") from None
    except OSError as exc:
        raise _refused(url, f"its host could not be resolved ({exc})") from None


async def create_endpoint(
    session: AsyncSession,
    box: Cipher,
    now: datetime,
    app_id: int,
    url: str,
    events: Sequence[str] | None = None,
    *,
    allow_http: bool,
    allow_private: bool | None = None,
    resolver: Resolver | None = None,
) -> IssuedEndpoint:
    """A new endpoint with its signing secret (to be shown once).

    ``allow_http`` and ``allow_private`` are dev's leniencies (plain http, loopback and
    private receivers); ``allow_private`` follows ``allow_http`` unless given, as both follow
    the environment. Outside dev the URL's host is resolved and checked before anything is
    stored: see :func:`check_endpoint_url`.
    """
    await check_endpoint_url(
        url,
        allow_http=allow_http,
        allow_private=allow_http if allow_private is None else allow_private,
        resolver=resolver,
    )
    unknown = sorted(set(events or ()) - set(EVENT_TYPES))
    if unknown:
        raise ApiError(
            ErrorCode.DATA_INVALID,
            "unknown event types",
            {"unknown": unknown, "known": EVENT_TYPES},
        )
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        app_id=app_id,
        url=url,
        events=list(events) if events else None,
        secret_enc="",  # encrypted below, once the row has its id  # nosec B106
        created_at=now,
        updated_at=now,
    )
    endpoint.secret_enc = box.encrypt_text(secret, _aad(endpoint, "secret"))
    session.add(endpoint)
    await session.flush()
    return IssuedEndpoint(endpoint, secret)


async def rotate_secret(
    session: AsyncSession, box: Cipher, now: datetime, endpoint: WebhookEndpoint, overlap: timedelta
) -> str:
    """A new secret signs from now on; the old one also signs until ``now + overlap``."""
    current = box.decrypt_text(endpoint.secret_enc, _aad(endpoint, "secret"))
    secret = signing.new_secret()
    endpoint.previous_secret_enc = box.encrypt_text(current, _aad(endpoint, "previous_secret"))
    endpoint.previous_expires_at = now + overlap
    endpoint.secret_enc = box.encrypt_text(secret, _aad(endpoint, "secret"))
    endpoint.updated_at = now
    await session.flush()
    return secret


def signing_secrets(box: Cipher, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets to sign with: the current one, and the previous one during its overlap."""
    secrets = [box.decrypt_text(endpoint.secret_enc, _aad(endpoint, "secret"))]
    if (
        endpoint.previous_secret_enc
        and endpoint.previous_expires_at
        and as_utc(endpoint.previous_expires_at) > now
    ):
        secrets.append(
            box.decrypt_text(endpoint.previous_secret_enc, _aad(endpoint, "previous_secret"))
        )
    return secrets


class SecretCache:
    """Decrypted signing secrets kept per process, so a busy endpoint is not decrypted per send.

    Entries are keyed by the endpoint and its ciphertexts: a rotation (or a rewrap under a new
    data key) writes new ciphertexts, so the next read of the row misses the cache and decrypts
    afresh; nothing has to be told. Whether the previous secret still signs is decided at each
    use from the row's ``previous_expires_at``, never cached.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, str | None], tuple[str, str | None]] = (
            OrderedDict()
        )

    def signing_secrets(
        self,
        box: Cipher,
        *,
        endpoint_id: str,
        app_id: int,
        secret_enc: str,
        previous_secret_enc: str | None,
        previous_expires_at: datetime | None,
        now: datetime,
    ) -> list[str]:
        """As :func:`signing_secrets`, from the endpoint's columns."""
        key = (endpoint_id, secret_enc, previous_secret_enc)
        opened = self._entries.get(key)
        if opened is None:
            aad = associated_data(app_id, TABLE, "secret", endpoint_id)
            current = box.decrypt_text(secret_enc, aad)
            previous = None
            if previous_secret_enc:
                aad = associated_data(app_id, TABLE, "previous_secret", endpoint_id)
                previous = box.decrypt_text(previous_secret_enc, aad)
            opened = (current, previous)
            self._entries[key] = opened
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        current, previous = opened
        if previous is not None and previous_expires_at and as_utc(previous_expires_at) > now:
            return [current, previous]
        return [current]


async def endpoint_of(session: AsyncSession, app_id: int, endpoint_id: str) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.app_id == app_id, WebhookEndpoint.id == endpoint_id
    )
    endpoint = (await session.execute(query)).scalar_one_or_none()
    if endpoint is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"No webhook endpoint {endpoint_id[:64]}")
    return endpoint

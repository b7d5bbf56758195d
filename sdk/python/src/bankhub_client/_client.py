"""``BankhubClient`` (blocking) and ``AsyncBankhubClient`` (asyncio): the same methods, each
``/v2`` operation generated into ``_operations.py``, plus ``/oauth/*`` and the paging iterators."""

from __future__ import annotations

import asyncio
import datetime as _dt
import random as _random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx

from bankhub_client._core import (
    Core,
    Files,
    Introspection,
    OAuthToken,
    Signer,
    next_page_query,
)
from bankhub_client._models import (
    EventListEnvelope,
    EventOut,
    SyncEnvelope,
    SyncOut,
    TransactionListEnvelope,
    TransactionOut,
)
from bankhub_client._operations import AsyncOperations, SyncOperations
from bankhub_client._retry import RetryPolicy

__all__ = ["AsyncBankhubClient", "BankhubClient"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0


def _cursor(value: str) -> int:
    return int(value)


class BankhubClient(SyncOperations):
    """A blocking client of bankhub's partner API.

    ``client_id`` with ``service_secret`` (a server's key) or ``app_secret`` (a mobile or web
    app's key) authenticate each call; with ``oauth=True`` the secret is instead exchanged for an
    access token at ``/oauth/token`` (client credentials), cached and renewed before it ends and
    once when bankhub refuses it. Every write carries an ``Idempotency-Key`` (a fresh UUID4 per
    call unless given), so it is retried like a ``GET`` on 429, 503 and connection failures
    (``retry``; ``Retry-After`` honoured). With a ``signer``
    (:class:`bankhub_client.signing.RequestSigner`) every request is signed (RFC 9421). Use it as
    a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        service_secret: str | None = None,
        app_secret: str | None = None,
        oauth: bool = False,
        scope: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        signer: Signer | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._core = Core(
            base_url=base_url,
            client_id=client_id,
            service_secret=service_secret,
            app_secret=app_secret,
            use_oauth=oauth,
            scope=scope,
            retry=retry or RetryPolicy(),
            user_agent=user_agent,
            signer=signer,
            clock=clock,
            random=random,
        )
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._token_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> BankhubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        form: Mapping[str, Any] | None = None,
        files: Files | None = None,
        login_secret: str | None = None,
        idempotency_key: str | None = None,
        oauth: bool = False,
    ) -> httpx.Response:
        core = self._core
        key = None if oauth else core.idempotency_key(method, idempotency_key)
        safe = method in ("GET", "HEAD") or key is not None or oauth
        content = core.read_files(files)
        attempt, renewed = 0, False
        while True:
            token = self._access_token() if core.use_oauth and not oauth else None
            request = core.build(
                self._http,
                method,
                path,
                token=token,
                query=query,
                body=body,
                form=form,
                files=content,
                login_secret=login_secret,
                idempotency_key=key,
                oauth=oauth,
            )
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                delay = core.delay_after_failure(attempt, safe)
                if delay is None:
                    raise core.connection_error(exc) from exc
            else:
                if response.is_success:
                    return response
                error = core.error(response)
                if token is not None and not renewed and core.renews_token(error):
                    core.tokens.drop(token)
                    renewed = True
                    continue
                delay = core.delay_after_answer(attempt, safe, error)
                if delay is None:
                    raise error
            self._sleep(delay)
            attempt += 1

    def _call(
        self,
        method: str,
        path: str,
        *,
        into: type[T],
        query: dict[str, Any] | None = None,
        body: Any = None,
        form: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes | IO[bytes]]] | None = None,
        login_secret: str | None = None,
        idempotency_key: str | None = None,
    ) -> T:
        response = self._send(
            method,
            path,
            query=query,
            body=body,
            form=form,
            files=files,
            login_secret=login_secret,
            idempotency_key=idempotency_key,
        )
        return self._core.decode(response, into)

    # -- OAuth2 -----------------------------------------------------------------------------------

    def _access_token(self) -> str:
        with self._token_lock:
            current = self._core.tokens.current()
            if current is not None:
                return current
            asked_at = self._core.clock()
            issued = self.oauth_token(scope=self._core.scope)
            return self._core.tokens.store(issued, asked_at)

    def oauth_token(self, *, scope: str | None = None) -> OAuthToken:
        """``POST /oauth/token``: a new access token for this client's key (client credentials)."""
        form = {"grant_type": "client_credentials", "scope": scope}
        response = self._send("POST", "/oauth/token", form=form, oauth=True)
        return self._core.decode(response, OAuthToken)

    def oauth_refresh(self, refresh_token: str, *, scope: str | None = None) -> OAuthToken:
        """``POST /oauth/token`` with ``grant_type=refresh_token`` (the refresh token rotates)."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope}
        response = self._send("POST", "/oauth/token", form=form, oauth=True)
        return self._core.decode(response, OAuthToken)

    def oauth_revoke(self, token: str) -> None:
        """``POST /oauth/revoke`` (RFC 7009): end an access or refresh token."""
        self._send("POST", "/oauth/revoke", form={"token": token}, oauth=True)

    def oauth_introspect(self, token: str) -> Introspection:
        """``POST /oauth/introspect`` (RFC 7662): is this token active, and for what?"""
        response = self._send("POST", "/oauth/introspect", form={"token": token}, oauth=True)
        return self._core.decode(response, Introspection)

    def oauth_metadata(self) -> dict[str, Any]:
        """``GET /.well-known/oauth-authorization-server`` (RFC 8414)."""
        response = self._send("GET", "/.well-known/oauth-authorization-server", oauth=True)
        return self._core.decode(response, dict[str, Any])

    def oauth_jwks(self) -> dict[str, Any]:
        """``GET /.well-known/jwks.json``: the keys access tokens are signed with."""
        response = self._send("GET", "/.well-known/jwks.json", oauth=True)
        return self._core.decode(response, dict[str, Any])

    # -- paging -----------------------------------------------------------------------------------

    def iter_transactions(
        self,
        *,
        login_secret: str,
        account_id: int | None = None,
        from_date: _dt.date | str | None = None,
        to_date: _dt.date | str | None = None,
        per_page: int = 1000,
    ) -> Iterator[TransactionOut]:
        """Every transaction of the range, newest first, a page of ``per_page`` at a time."""
        query: dict[str, Any] | None = {
            "account_id": account_id,
            "from_date": from_date,
            "to_date": to_date,
            "page": 1,
            "per_page": per_page,
        }
        while query is not None:
            response = self._send("GET", "/v2/transaction", query=query, login_secret=login_secret)
            yield from self._core.decode(response, TransactionListEnvelope).data
            query = next_page_query(response)

    def iter_events(
        self, *, cursor: int | None = None, limit: int | None = None
    ) -> Iterator[EventOut]:
        """Every event after ``cursor`` (from the first when None), following ``next_cursor``."""
        while True:
            page = self._call(
                "GET", "/v2/event", query={"cursor": cursor, "limit": limit}, into=EventListEnvelope
            )
            yield from page.data
            if not page.has_more or page.next_cursor is None:
                return
            cursor = _cursor(page.next_cursor)

    def iter_transaction_changes(
        self,
        *,
        login_secret: str,
        account_id: int,
        cursor: int | None = None,
        count: int | None = None,
    ) -> Iterator[SyncOut]:
        """Pages of an account's changes since ``cursor`` until ``has_more`` is false; keep the
        last page's ``next_cursor`` for the next time."""
        while True:
            page = self._call(
                "GET",
                "/v2/transaction/sync",
                query={"account_id": account_id, "cursor": cursor, "count": count},
                login_secret=login_secret,
                into=SyncEnvelope,
            ).data
            yield page
            if not page.has_more:
                return
            cursor = _cursor(page.next_cursor)


class AsyncBankhubClient(AsyncOperations):
    """The asyncio twin of :class:`BankhubClient`: the same arguments and methods, awaited.

    Use it as an ``async with`` context manager or call :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        service_secret: str | None = None,
        app_secret: str | None = None,
        oauth: bool = False,
        scope: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        signer: Signer | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._core = Core(
            base_url=base_url,
            client_id=client_id,
            service_secret=service_secret,
            app_secret=app_secret,
            use_oauth=oauth,
            scope=scope,
            retry=retry or RetryPolicy(),
            user_agent=user_agent,
            signer=signer,
            clock=clock,
            random=random,
        )
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep
        self._token_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncBankhubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending ----------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        form: Mapping[str, Any] | None = None,
        files: Files | None = None,
        login_secret: str | None = None,
        idempotency_key: str | None = None,
        oauth: bool = False,
    ) -> httpx.Response:
        core = self._core
        key = None if oauth else core.idempotency_key(method, idempotency_key)
        safe = method in ("GET", "HEAD") or key is not None or oauth
        content = core.read_files(files)
        attempt, renewed = 0, False
        while True:
            token = await self._access_token() if core.use_oauth and not oauth else None
            request = core.build(
                self._http,
                method,
                path,
                token=token,
                query=query,
                body=body,
                form=form,
                files=content,
                login_secret=login_secret,
                idempotency_key=key,
                oauth=oauth,
            )
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = core.delay_after_failure(attempt, safe)
                if delay is None:
                    raise core.connection_error(exc) from exc
            else:
                if response.is_success:
                    return response
                error = core.error(response)
                if token is not None and not renewed and core.renews_token(error):
                    core.tokens.drop(token)
                    renewed = True
                    continue
                delay = core.delay_after_answer(attempt, safe, error)
                if delay is None:
                    raise error
            await self._sleep(delay)
            attempt += 1

    async def _call(
        self,
        method: str,
        path: str,
        *,
        into: type[T],
        query: dict[str, Any] | None = None,
        body: Any = None,
        form: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes | IO[bytes]]] | None = None,
        login_secret: str | None = None,
        idempotency_key: str | None = None,
    ) -> T:
        response = await self._send(
            method,
            path,
            query=query,
            body=body,
            form=form,
            files=files,
            login_secret=login_secret,
            idempotency_key=idempotency_key,
        )
        return self._core.decode(response, into)

    # -- OAuth2 -----------------------------------------------------------------------------------

    async def _access_token(self) -> str:
        async with self._token_lock:
            current = self._core.tokens.current()
            if current is not None:
                return current
            asked_at = self._core.clock()
            issued = await self.oauth_token(scope=self._core.scope)
            return self._core.tokens.store(issued, asked_at)

    async def oauth_token(self, *, scope: str | None = None) -> OAuthToken:
        """``POST /oauth/token``: a new access token for this client's key (client credentials)."""
        form = {"grant_type": "client_credentials", "scope": scope}
        response = await self._send("POST", "/oauth/token", form=form, oauth=True)
        return self._core.decode(response, OAuthToken)

    async def oauth_refresh(self, refresh_token: str, *, scope: str | None = None) -> OAuthToken:
        """``POST /oauth/token`` with ``grant_type=refresh_token`` (the refresh token rotates)."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope}
        response = await self._send("POST", "/oauth/token", form=form, oauth=True)
        return self._core.decode(response, OAuthToken)

    async def oauth_revoke(self, token: str) -> None:
        """``POST /oauth/revoke`` (RFC 7009): end an access or refresh token."""
        await self._send("POST", "/oauth/revoke", form={"token": token}, oauth=True)

    async def oauth_introspect(self, token: str) -> Introspection:
        """``POST /oauth/introspect`` (RFC 7662): is this token active, and for what?"""
        response = await self._send("POST", "/oauth/introspect", form={"token": token}, oauth=True)
        return self._core.decode(response, Introspection)

    async def oauth_metadata(self) -> dict[str, Any]:
        """``GET /.well-known/oauth-authorization-server`` (RFC 8414)."""
        response = await self._send("GET", "/.well-known/oauth-authorization-server", oauth=True)
        return self._core.decode(response, dict[str, Any])

    async def oauth_jwks(self) -> dict[str, Any]:
        """``GET /.well-known/jwks.json``: the keys access tokens are signed with."""
        response = await self._send("GET", "/.well-known/jwks.json", oauth=True)
        return self._core.decode(response, dict[str, Any])

    # -- paging -----------------------------------------------------------------------------------

    async def iter_transactions(
        self,
        *,
        login_secret: str,
        account_id: int | None = None,
        from_date: _dt.date | str | None = None,
        to_date: _dt.date | str | None = None,
        per_page: int = 1000,
    ) -> AsyncIterator[TransactionOut]:
        """Every transaction of the range, newest first, a page of ``per_page`` at a time."""
        query: dict[str, Any] | None = {
            "account_id": account_id,
            "from_date": from_date,
            "to_date": to_date,
            "page": 1,
            "per_page": per_page,
        }
        while query is not None:
            response = await self._send(
                "GET", "/v2/transaction", query=query, login_secret=login_secret
            )
            for item in self._core.decode(response, TransactionListEnvelope).data:
                yield item
            query = next_page_query(response)

    async def iter_events(
        self, *, cursor: int | None = None, limit: int | None = None
    ) -> AsyncIterator[EventOut]:
        """Every event after ``cursor`` (from the first when None), following ``next_cursor``."""
        while True:
            page = await self._call(
                "GET", "/v2/event", query={"cursor": cursor, "limit": limit}, into=EventListEnvelope
            )
            for item in page.data:
                yield item
            if not page.has_more or page.next_cursor is None:
                return
            cursor = _cursor(page.next_cursor)

    async def iter_transaction_changes(
        self,
        *,
        login_secret: str,
        account_id: int,
        cursor: int | None = None,
        count: int | None = None,
    ) -> AsyncIterator[SyncOut]:
        """Pages of an account's changes since ``cursor`` until ``has_more`` is false; keep the
        last page's ``next_cursor`` for the next time."""
        while True:
            envelope = await self._call(
                "GET",
                "/v2/transaction/sync",
                query={"account_id": account_id, "cursor": cursor, "count": count},
                login_secret=login_secret,
                into=SyncEnvelope,
            )
            page = envelope.data
            yield page
            if not page.has_more:
                return
            cursor = _cursor(page.next_cursor)

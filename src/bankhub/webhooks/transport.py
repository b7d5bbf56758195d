"""The webhook sender's HTTP/1.1 transport: kept connections, pooled per checked address and name.

httpx's own pool keys connections by the request URL's origin. The sender puts the checked IP
address in the URL (so DNS is never asked twice) and the real name in ``Host`` and SNI, so an
origin-keyed pool could hand a connection whose TLS session was verified for one name to a
request for another name on the same address. This transport keys its idle connections by
(scheme, address, port, TLS name) instead, so a connection is only ever reused for the very
address it was opened to and, over TLS, the very name its certificate was verified for.

The HTTP/1.1 itself is h11's: it writes the requests and parses the answers (status line,
headers, chunked and length framing, interim answers, keep-alive), and refuses what is not
HTTP (a chunk size of ``-1``, a head or a chunk line longer than 16 KiB). What is ours is the
I/O around it, kept small on purpose:

- a receiver is never trusted with the worker's memory or time: the socket is no longer read
  once ``READ_AHEAD`` bytes wait unread (so at most that and one read's worth wait), h11 holds
  at most one incomplete line or head, at most ``MAX_INTERIM`` interim answers and
  ``MAX_PIECES`` pieces of a body are parsed (each costs the event loop some microseconds), and
  the caller's deadline bounds the whole exchange (connecting, sending, the head and every
  byte of the body), not each read;
- a connection goes back to the pool only when h11 saw both the request and the answer end,
  nothing was left unread and neither side asked to close. An answer that was not read to its
  end, or broke off, or ran out of time, closes its connection. Bytes a receiver sends on an
  idle kept connection (answers nobody asked for) retire that connection too;
- a request on a kept connection that the peer had meanwhile closed is sent once more on a new
  one (before any byte of an answer arrived, as HTTP clients do; a receiver sees the same
  webhook-id).

The connection is an ``asyncio.Protocol`` rather than asyncio's streams because h11 does the
buffering and the pool must see bytes that arrive while a connection sits idle, which a
``StreamReader`` keeps to itself. No proxies (the environment is never read), no redirects
(the caller never follows them), no HTTP/2, no compression.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11
import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}
#: bytes received but not yet read that a connection holds before it stops reading the socket
READ_AHEAD = 64 * 1024
#: h11's bound on an incomplete event: the answer's head, a chunk line, the trailers
MAX_HEAD = 16 * 1024
#: interim (1xx) answers taken before the real one, and pieces (chunks, or what arrived at once)
#: of one body: each costs h11 some microseconds of the event loop, so a receiver sending tiny
#: ones as fast as it can must not hold the loop until the deadline
MAX_INTERIM = 10
MAX_PIECES = 1024

Key = tuple[str, str, int, str | None]


class _Link(asyncio.Protocol):
    """One TCP (or TLS) connection's bytes, with flow control both ways."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._inbox: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._reading_paused = False
        self._writing_paused = False
        self._ended = False
        self._lost: Exception | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # --- asyncio's side -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101  # nosec B101
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._inbox.append(data)
        self._buffered += len(data)
        if self._buffered > READ_AHEAD and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake_reader()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._lost = exc
        self._wake_reader()
        self._writing_paused = False
        self._wake_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # --- ours -----------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return not self._ended and self.transport is not None and not self.transport.is_closing()

    @property
    def idle_and_quiet(self) -> bool:
        """Open, with nothing received that nobody read."""
        return self.open and not self._inbox

    async def send(self, data: bytes) -> None:
        if not self.open or self.transport is None:
            raise ConnectionResetError("the connection is closed")
        self.transport.write(data)
        while self._writing_paused:
            self._writable = self._loop.create_future()
            try:
                await self._writable
            finally:
                self._writable = None
        if self._lost is not None:
            raise self._lost

    async def receive(self) -> bytes:
        """The next bytes received, or ``b""`` once the peer closed."""
        while not self._inbox:
            if self._ended:
                if self._lost is not None:
                    raise self._lost
                return b""
            self._readable = self._loop.create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        data = self._inbox.popleft()
        self._buffered -= len(data)
        if self._reading_paused and not self._inbox and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        """Close after what was written is sent (an exchange that ended well)."""
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop at once, whatever is buffered: a peer that stopped reading cannot hold it."""
        if self.transport is not None:
            self.transport.abort()


@dataclass(eq=False)
class _Connection:
    key: Key
    link: _Link
    http: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT, MAX_HEAD))
    idle_since: float = 0.0

    def reusable(self) -> bool:
        """Both sides of the last exchange ended, nothing more was said, nobody asked to close."""
        http = self.http
        return (
            http.our_state is h11.DONE
            and http.their_state is h11.DONE
            and not http.trailing_data[0]
            and self.link.idle_and_quiet
        )

    def usable(self) -> bool:
        return (
            self.http.our_state is h11.IDLE
            and self.http.their_state is h11.IDLE
            and self.link.idle_and_quiet
        )

    def close(self) -> None:
        self.link.close()

    def abort(self) -> None:
        self.link.abort()


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """What :meth:`KeyedTransport.post` hands back: the status, the headers, the body stream
    (to be closed by the caller)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: AnswerBody

    def header(self, name: bytes) -> bytes | None:
        return _header_value(self.headers, name.lower())


class _Stale(Exception):
    """A kept connection was closed by the peer before it answered."""


def _header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _not_http(exc: h11.RemoteProtocolError, *, in_head: bool) -> httpx.RemoteProtocolError:
    if exc.error_status_hint == 431:
        where = "head" if in_head else "chunk framing"
        return httpx.RemoteProtocolError(
            f"the answer's {where} goes on past {MAX_HEAD // 1024} KiB without ending"
        )
    return httpx.RemoteProtocolError(f"the answer is not HTTP/1.1: {exc}")


def _request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> h11.Request:
    try:
        return h11.Request(method=method, target=target, headers=headers)
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(f"the request is not valid HTTP/1.1: {exc}") from None


async def _within(deadline: float | None, link: _Link) -> bytes:
    if deadline is None:
        return await link.receive()
    # receive() need not wait (bytes may be buffered), so the deadline is also checked here
    if asyncio.get_running_loop().time() >= deadline:
        raise TimeoutError
    async with asyncio.timeout_at(deadline):
        return await link.receive()


class AnswerBody(httpx.AsyncByteStream):
    """A response body parsed by h11 as it arrives; gives the connection back when done."""

    def __init__(self, pool: KeyedTransport, conn: _Connection, deadline: float | None) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._deadline = deadline
        self._ended = False

    @property
    def complete(self) -> bool:
        """Read to its end (at once, for an answer without a body)."""
        return self._ended

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._ended:
            return
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        http = conn.http
        pieces = 0
        try:
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    http.receive_data(await _within(self._deadline, conn.link))
                elif isinstance(event, h11.Data):
                    pieces += 1
                    if pieces > MAX_PIECES:
                        raise httpx.RemoteProtocolError(
                            f"the answer's body comes in more than {MAX_PIECES} pieces"
                        )
                    if pieces % 256 == 0:
                        await asyncio.sleep(0)  # the other deliveries' turn
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._ended = True
                    return
                else:
                    raise httpx.RemoteProtocolError(f"unexpected in the answer's body: {event}")
        except h11.RemoteProtocolError as exc:
            raise _not_http(exc, in_head=False) from None
        except TimeoutError:
            raise httpx.ReadTimeout("the answer did not end in time") from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._ended and conn.reusable():
            self._pool._release(conn)
        elif self._ended:
            conn.close()
        else:
            conn.abort()  # not read to its end: never reused, never waited for


class KeyedTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over kept connections, pooled by (scheme, address, port, TLS name)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        max_idle_per_key: int = 64,
        max_keys: int = 256,
        idle_seconds: float = 30.0,
    ) -> None:
        self._ssl = ssl_context
        self._idle: OrderedDict[Key, list[_Connection]] = OrderedDict()
        self._max_idle = max_idle_per_key
        self._max_keys = max_keys
        self._idle_seconds = idle_seconds
        self._closed = False
        #: connections opened so far (for tests and the benchmark's notes)
        self.opened = 0

    # --- the pool -------------------------------------------------------------------------------

    @property
    def idle(self) -> int:
        """Kept connections that the next request to their key could use now."""
        return sum(conn.usable() for kept in self._idle.values() for conn in kept)

    def _take(self, key: Key) -> _Connection | None:
        kept = self._idle.get(key)
        now = time.monotonic()
        while kept:
            conn = kept.pop()
            if conn.usable() and now - conn.idle_since < self._idle_seconds:
                return conn
            conn.abort()
        return None

    def _release(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        conn.http.start_next_cycle()
        kept = self._idle.setdefault(conn.key, [])
        self._idle.move_to_end(conn.key)
        if len(kept) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        kept.append(conn)
        while len(self._idle) > self._max_keys:
            _, dropped = self._idle.popitem(last=False)
            for old in dropped:
                old.close()

    async def _open(self, key: Key, connect_timeout: float | None) -> _Connection:
        scheme, address, port, name = key
        link = _Link()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                if scheme == "https":
                    await loop.create_connection(
                        lambda: link, address, port, ssl=self._ssl, server_hostname=name or address
                    )
                else:
                    await loop.create_connection(lambda: link, address, port)
        except TimeoutError:
            link.abort()
            raise httpx.ConnectTimeout("connecting timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self.opened += 1
        return _Connection(key, link)

    # --- one exchange ---------------------------------------------------------------------------

    @staticmethod
    def _key(request: httpx.Request) -> Key:
        url = request.url
        scheme = url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"no {scheme!r} here")
        name: str | None = None
        if scheme == "https":
            sni = request.extensions.get("sni_hostname")
            name = sni.decode("ascii") if isinstance(sni, bytes) else (sni or url.host)
        return (scheme, url.host, url.port or DEFAULT_PORTS[scheme], name)

    @staticmethod
    async def _exchange(
        conn: _Connection, request: h11.Request, body: bytes, *, reused: bool
    ) -> h11.Response:
        http = conn.http
        try:
            wire = (
                http.send(request) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage())
            )
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(f"the request is not valid HTTP/1.1: {exc}") from None
        heard = False
        interim = 0
        try:
            await conn.link.send(wire)
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    data = await conn.link.receive()
                    if not data and not heard:
                        if reused:
                            raise _Stale()
                        raise httpx.RemoteProtocolError(
                            "the peer closed the connection without an answer"
                        )
                    heard = True
                    http.receive_data(data)
                elif isinstance(event, h11.Response):
                    return event
                elif isinstance(event, h11.InformationalResponse):
                    interim += 1  # the real answer follows, unless it never does
                    if interim > MAX_INTERIM:
                        raise httpx.RemoteProtocolError(
                            f"more than {MAX_INTERIM} interim (1xx) answers"
                        )
                else:
                    raise httpx.RemoteProtocolError(f"unexpected instead of an answer: {event}")
        except h11.RemoteProtocolError as exc:
            raise _not_http(exc, in_head=True) from None
        except ConnectionError as exc:
            if reused and not heard:
                raise _Stale() from None
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def _send(
        self,
        key: Key,
        request: h11.Request,
        body: bytes,
        *,
        connect_timeout: float | None,
        deadline: float | None,
    ) -> tuple[h11.Response, AnswerBody]:
        """Send ``request`` and read the answer's head, all before ``deadline`` (loop time)."""
        conn = self._take(key)
        reused = conn is not None
        try:
            async with asyncio.timeout_at(deadline):
                if conn is None:
                    conn = await self._open(key, connect_timeout)
                try:
                    head = await self._exchange(conn, request, body, reused=reused)
                except _Stale:
                    conn.abort()
                    conn = await self._open(key, connect_timeout)
                    head = await self._exchange(conn, request, body, reused=False)
        except TimeoutError:
            if conn is not None:
                conn.abort()
            raise httpx.ReadTimeout("no answer in time") from None
        except BaseException:
            if conn is not None:
                conn.abort()
            raise
        stream = AnswerBody(self, conn, deadline)
        if conn.http.their_state is h11.DONE:
            # no body at all (204, 304, Content-Length: 0): the connection is free already
            stream._ended = True
            await stream.aclose()
        return head, stream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """As any httpx transport, except that the read timeout bounds the whole answer, from
        sending the request to the last byte of the body, not each read."""
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        key = self._key(request)
        timeouts = request.extensions.get("timeout", {})
        connect_timeout = timeouts.get("connect") if isinstance(timeouts, dict) else None
        read_timeout = timeouts.get("read") if isinstance(timeouts, dict) else None
        deadline = None
        if read_timeout is not None:
            deadline = asyncio.get_running_loop().time() + read_timeout
        body = await request.aread()
        target = request.url.raw_path or b"/"
        head, stream = await self._send(
            key,
            _request(request.method.encode("ascii"), target, request.headers.raw),
            body,
            connect_timeout=connect_timeout,
            deadline=deadline,
        )
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            stream=stream,
            extensions={"http_version": b"HTTP/" + head.http_version, "reason_phrase": head.reason},
        )

    async def post(
        self,
        key: Key,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        deadline: float | None = None,
    ) -> RawAnswer:
        """One POST without building httpx objects: the webhook sender's hot path.

        ``key`` is (scheme, checked address, port, TLS name); ``headers`` are sent as given
        (``Host`` among them), with ``Content-Length`` added. ``deadline`` (the event loop's
        time) bounds everything: connecting, sending, the answer's head and each read of its
        body. The body is the caller's to read (or not) and to close: a body not read to its
        end closes the connection instead of keeping it. Raises httpx's errors, like
        :meth:`handle_async_request`.
        """
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        sent = [*headers, (b"Content-Length", str(len(body)).encode("ascii"))]
        head, stream = await self._send(
            key,
            _request(b"POST", target, sent),
            body,
            connect_timeout=None,
            deadline=deadline,
        )
        return RawAnswer(head.status_code, head.headers.raw_items(), stream)

    async def aclose(self) -> None:
        self._closed = True
        for kept in self._idle.values():
            for conn in kept:
                conn.close()
        self._idle.clear()

"""The webhook sender's HTTP/1.1 transport: kept connections, pooled per checked address and name.

httpx's own pool keys connections by the request URL's origin. The sender puts the checked IP
address in the URL (so DNS is never asked twice) and the real name in ``Host`` and SNI, so an
origin-keyed pool could hand a connection whose TLS session was verified for one name to a
request for another name on the same address. This transport keys its idle connections by
(scheme, address, port, TLS name) instead, so a connection is only ever reused for the very
address it was opened to and, over TLS, the very name its certificate was verified for.

What it does not do, on purpose: no proxies (it never looks at the environment), no redirects
(the caller never follows them), no HTTP/2, no compression. It is small and fast: a delivery
spends its time in the database and the receiver, not in the client.

A connection goes back to the pool only when its response was read to the end, both sides
spoke HTTP/1.1 without ``Connection: close``, and the body was framed (a length or chunks). A
request on a kept connection that the peer had meanwhile closed is sent once more on a new one
(before any byte of an answer arrived, as HTTP clients do; a receiver sees the same webhook-id).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HEAD = 64 * 1024
#: what is read past the excerpt to keep a connection (a longer body closes it instead)
MAX_DRAIN = 64 * 1024
CHUNK = 16 * 1024

Key = tuple[str, str, int, str | None]


@dataclass(eq=False)
class _Connection:
    key: Key
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """What :meth:`KeyedTransport.post` hands back: the status, the headers, the body stream
    (to be closed by the caller)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: httpx.AsyncByteStream

    def header(self, name: bytes) -> bytes | None:
        return _header_value(self.headers, name.lower())


class _Stale(Exception):
    """A kept connection was closed by the peer before it answered."""


def _header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


class _Body(httpx.AsyncByteStream):
    """A response body read from the connection; gives the connection back when done."""

    def __init__(
        self,
        pool: KeyedTransport,
        conn: _Connection,
        *,
        length: int | None,
        chunked: bool,
        reusable: bool,
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._left = length
        self._chunked = chunked
        self._reusable = reusable and (length is not None or chunked)
        self._done = length == 0
        self.version = b"HTTP/1.1"
        self.reason = b""

    async def _read_chunked(self) -> AsyncIterator[bytes]:
        reader = self._conn_or_raise().reader
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers, then the empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                self._done = True
                return
            while size:
                data = await reader.read(min(size, CHUNK))
                if not data:
                    raise httpx.RemoteProtocolError("the peer closed in the middle of a chunk")
                size -= len(data)
                yield data
            await reader.readexactly(2)

    def _conn_or_raise(self) -> _Connection:
        if self._conn is None:
            raise httpx.StreamClosed()
        return self._conn

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._done:
            return
        conn = self._conn_or_raise()
        try:
            if self._chunked:
                async for data in self._read_chunked():
                    yield data
                return
            while self._left is None or self._left > 0:
                want = CHUNK if self._left is None else min(CHUNK, self._left)
                data = await conn.reader.read(want)
                if not data:
                    if self._left is not None:
                        raise httpx.RemoteProtocolError("the peer closed before the body ended")
                    break
                if self._left is not None:
                    self._left -= len(data)
                yield data
            self._done = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self._reusable = False
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def _drain(self) -> None:
        """Read what is left of a short body, so the connection can be kept."""
        if self._done or not self._reusable:
            return
        if not self._chunked and (self._left is None or self._left > MAX_DRAIN):
            self._reusable = False
            return
        read = 0
        try:
            async with asyncio.timeout(1.0):
                async for data in self:
                    read += len(data)
                    if read > MAX_DRAIN:
                        self._reusable = False
                        return
        except (TimeoutError, httpx.HTTPError):
            self._reusable = False

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await self._drain_with(conn)
        except BaseException:
            conn.close()
            raise
        if self._done and self._reusable:
            self._pool._release(conn)
        else:
            conn.close()

    async def _drain_with(self, conn: _Connection) -> None:
        self._conn = conn
        try:
            await self._drain()
        finally:
            self._conn = None


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

    def _take(self, key: Key) -> _Connection | None:
        kept = self._idle.get(key)
        now = time.monotonic()
        while kept:
            conn = kept.pop()
            if conn.usable() and now - conn.idle_since < self._idle_seconds:
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        if self._closed or not conn.usable():
            conn.close()
            return
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

    async def _open(self, key: Key, limit: float | None) -> _Connection:
        scheme, address, port, name = key
        try:
            async with asyncio.timeout(limit):
                if scheme == "https":
                    reader, writer = await asyncio.open_connection(
                        address, port, ssl=self._ssl, server_hostname=name or address
                    )
                else:
                    reader, writer = await asyncio.open_connection(address, port)
        except TimeoutError:
            raise httpx.ConnectTimeout("connecting timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self.opened += 1
        return _Connection(key, reader, writer)

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
    def _head(request: httpx.Request) -> bytes:
        target = request.url.raw_path or b"/"
        lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in request.headers.raw]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(
        self, conn: _Connection, head: bytes, body: bytes, *, reused: bool
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        try:
            conn.writer.write(head + body)
            await conn.writer.drain()
            while True:
                try:
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if reused and not exc.partial:
                        raise _Stale() from None
                    raise httpx.RemoteProtocolError(
                        "the peer closed the connection without an answer"
                    ) from None
                except asyncio.LimitOverrunError:
                    raise httpx.RemoteProtocolError("the answer's head is too long") from None
                status_line, _, rest = raw[:-4].partition(b"\r\n")
                parts = status_line.split(b" ", 2)
                if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                    raise httpx.RemoteProtocolError("the answer is not HTTP/1.x")
                status = int(parts[1])
                headers: list[tuple[bytes, bytes]] = []
                for line in rest.split(b"\r\n") if rest else ():
                    name, sep, value = line.partition(b":")
                    if not sep:
                        raise httpx.RemoteProtocolError("a malformed header line")
                    headers.append((name.strip(), value.strip()))
                if 100 <= status < 200:
                    continue  # an interim answer: the real one follows
                return status, parts[0], headers, parts[2] if len(parts) > 2 else b""
        except (ConnectionError, BrokenPipeError) as exc:
            if reused:
                raise _Stale() from None
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def _send(
        self,
        key: Key,
        head: bytes,
        body: bytes,
        *,
        method: str,
        asked_close: bool,
        connect_timeout: float | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], _Body]:
        conn = self._take(key)
        reused = conn is not None
        if conn is None:
            conn = await self._open(key, connect_timeout)
        try:
            try:
                answer = await self._exchange(conn, head, body, reused=reused)
            except _Stale:
                conn.close()
                conn = await self._open(key, connect_timeout)
                answer = await self._exchange(conn, head, body, reused=False)
        except BaseException:
            conn.close()
            raise
        status, version, headers, _reason = answer
        connection = (_header_value(headers, b"connection") or b"").lower()
        reusable = version == b"HTTP/1.1" and b"close" not in connection and not asked_close
        encoding = (_header_value(headers, b"transfer-encoding") or b"").lower()
        chunked = encoding.endswith(b"chunked")
        length: int | None = None
        if status in (204, 304) or method == "HEAD":
            length = 0
        elif not chunked:
            declared = _header_value(headers, b"content-length")
            if declared is not None:
                if not declared.isdigit():
                    conn.close()
                    raise httpx.RemoteProtocolError("a malformed Content-Length")
                length = int(declared)
        stream = _Body(self, conn, length=length, chunked=chunked, reusable=reusable)
        stream.version, stream.reason = version, _reason
        if length == 0:
            await stream.aclose()
        return status, headers, stream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        key = self._key(request)
        timeouts = request.extensions.get("timeout", {})
        connect_timeout = timeouts.get("connect") if isinstance(timeouts, dict) else None
        body = await request.aread()
        asked = (_header_value(request.headers.raw, b"connection") or b"").lower()
        status, headers, stream = await self._send(
            key,
            self._head(request),
            body,
            method=request.method,
            asked_close=asked == b"close",
            connect_timeout=connect_timeout,
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": stream.version, "reason_phrase": stream.reason},
        )

    async def post(
        self, key: Key, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> RawAnswer:
        """One POST without building httpx objects: the webhook sender's hot path.

        ``key`` is (scheme, checked address, port, TLS name); ``headers`` are sent as given
        (``Host`` among them), with ``Content-Length`` added. The answer's body is the caller's
        to read (or not) and to close: a body not read to its end closes the connection
        instead of keeping it. Raises httpx's errors, like :meth:`handle_async_request`.
        """
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        lines = [b"POST " + target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in headers]
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        asked = (_header_value(headers, b"connection") or b"").lower()
        status, answer_headers, stream = await self._send(
            key, head, body, method="POST", asked_close=asked == b"close", connect_timeout=None
        )
        return RawAnswer(status, answer_headers, stream)

    async def aclose(self) -> None:
        self._closed = True
        for kept in self._idle.values():
            for conn in kept:
                conn.close()
        self._idle.clear()

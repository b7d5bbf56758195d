"""HTTP peers written on raw sockets, for tests of bankhub's own HTTP clients (webhook senders).

A peer is a real TCP server on a free 127.0.0.1 port, on the test's event loop. It speaks HTTP
by hand rather than through a server library so that it can answer the way a test needs,
including the ways no library would: hold a request, answer in chunks, send bytes nobody asked
for (``tests/webhooks/hostile.py`` builds its hostile receivers on :class:`RawServer` too).

* :class:`Receiver` records every request and answers as told.
* :class:`Gate` holds requests until the test opens it: a delivery in flight for as long as a
  test needs one.

The ``receiver`` and ``gate`` fixtures (``tests/support/peer_plugin.py``) start one of each
and stop it after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from typing import Self


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Received:
    """One request: its head and its body (of ``Content-Length`` bytes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        if line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, target, headers, body)


@dataclass
class RawServer:
    """Serves each connection with :meth:`serve`, in a task of its own; ``stop`` cancels the
    tasks still running, so a test never leaves a connection behind."""

    #: the server's port, once started
    port: int = 0
    #: connections accepted so far
    connections: int = 0
    tls: ssl.SSLContext | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self.serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


@dataclass
class Receiver(RawServer):
    """Answers every request with ``status``/``headers``/``body``, or never when ``hang``.

    With ``keep_alive`` it answers several requests on one connection (without
    ``Connection: close``); ``chunked`` sends the body in chunks of ``chunk_size`` bytes instead
    of with a length, ``until_close`` with neither (the body ends when the connection closes).
    ``interim`` is written before each answer (1xx answers), ``unsolicited`` after it, once the
    answer is out: bytes no request asked for.
    """

    status: int = 200
    reason: str = "OK"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: bool = False
    keep_alive: bool = False
    chunked: bool = False
    chunk_size: int = 7
    until_close: bool = False
    interim: bytes = b""
    unsolicited: bytes = b""
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.origin

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._answer_one(reader, writer)
                if not self.keep_alive:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client hung up early, as it may
        finally:
            await _close(writer)

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(5):
            self.received.append(await read_request(reader))
        if self.hang:
            await asyncio.Event().wait()
        head_out = [f"HTTP/1.1 {self.status} {self.reason}"]
        head_out += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.chunked:
            head_out.append("Transfer-Encoding: chunked")
        elif not self.until_close:
            head_out.append(f"Content-Length: {len(self.body)}")
        if not self.keep_alive:
            head_out.append("Connection: close")
        writer.write(self.interim + "\r\n".join([*head_out, "", ""]).encode("latin-1"))
        if self.chunked:
            for start in range(0, len(self.body), self.chunk_size):
                piece = self.body[start : start + self.chunk_size]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(self.body)
        await writer.drain()
        if self.unsolicited:
            writer.write(self.unsolicited)
            await writer.drain()


@dataclass
class Gate(RawServer):
    """Answers 200 to every request; the first ``held`` wait until ``opened`` is set.

    ``arrived`` is set as soon as a request is read whole; ``count`` counts them.
    """

    held: int = 1
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0

    @property
    def url(self) -> str:
        return f"{self.origin}/hooks"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            self.count += 1
            self.arrived.set()
            if self.count <= self.held:
                await self.opened.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the sender gave up (or was stopped) first
        finally:
            await _close(writer)

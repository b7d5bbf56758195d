"""A tiny raw-HTTP receiver on 127.0.0.1 for sender tests: records requests, answers as told."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
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
    tls: ssl.SSLContext | None = None
    keep_alive: bool = False
    chunked: bool = False
    chunk_size: int = 7
    until_close: bool = False
    interim: bytes = b""
    unsolicited: bytes = b""
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._answer_one(reader, writer)
                if not self.keep_alive:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client hung up early, as it may
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append(Received(method, target, headers, body))
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

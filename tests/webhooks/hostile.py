"""Hostile webhook receivers: a real TCP server on 127.0.0.1 that reads each request in full,
then answers in one of the ways a receiver can use to hold a worker's memory or time.

The behaviour is chosen per request by its path (``/negative-chunk-size`` ...), so one server
serves every endpoint of a test; ``behave`` makes every path answer 204 at once instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.support.raw_http import RawServer, read_request

Answer = Callable[[asyncio.StreamWriter, float], Awaitable[None]]

BLOCK = b"x" * (64 * 1024)
OK_HEAD = b"HTTP/1.1 200 OK\r\n"


async def _forever(writer: asyncio.StreamWriter, head: bytes, block: bytes) -> None:
    """``head``, then ``block`` again and again, as fast as the client reads."""
    batch = block * max(1, len(BLOCK) // len(block))
    writer.write(head)
    while True:
        writer.write(batch)
        await writer.drain()
        # drain() returns at once while the socket takes everything: let the client run
        await asyncio.sleep(0)


async def negative_chunk_size(writer: asyncio.StreamWriter, tick: float) -> None:
    # a reader that takes -1 for "until the connection closes" reads all that follows
    await _forever(writer, OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n", BLOCK)


async def huge_chunk_size(writer: asyncio.StreamWriter, tick: float) -> None:
    await _forever(
        writer, OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", BLOCK
    )


async def endless_chunks(writer: asyncio.StreamWriter, tick: float) -> None:
    chunk = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)
    await _forever(writer, OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", chunk)


async def endless_headers(writer: asyncio.StreamWriter, tick: float) -> None:
    await _forever(writer, OK_HEAD, b"X-Padding: " + b"a" * 1000 + b"\r\n")


async def endless_interim_answers(writer: asyncio.StreamWriter, tick: float) -> None:
    await _forever(writer, b"", b"HTTP/1.1 102 Processing\r\n\r\n")


async def tiny_chunks(writer: asyncio.StreamWriter, tick: float) -> None:
    # each chunk costs the parser as much as a big one: thousands per read
    await _forever(writer, OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\nx\r\n")


async def huge_content_length(writer: asyncio.StreamWriter, tick: float) -> None:
    await _forever(writer, OK_HEAD + b"Content-Length: 99999999999999999999\r\n\r\n", BLOCK)


async def absurd_content_length(writer: asyncio.StreamWriter, tick: float) -> None:
    # more digits than Python turns into an int by default (4300)
    await _forever(writer, OK_HEAD + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", BLOCK)


async def slowloris_body(writer: asyncio.StreamWriter, tick: float) -> None:
    """One byte per tick: every read gets something well within the timeout."""
    writer.write(OK_HEAD + b"Content-Length: 100000\r\n\r\n")
    while True:
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(tick)


async def no_answer(writer: asyncio.StreamWriter, tick: float) -> None:
    await asyncio.Event().wait()


async def never_ending_answer(writer: asyncio.StreamWriter, tick: float) -> None:
    """A head without length or chunks (the body runs until the connection closes), a little
    body, then silence with the connection held open."""
    writer.write(OK_HEAD + b"Content-Type: text/plain\r\n\r\nworking on it")
    await writer.drain()
    await asyncio.Event().wait()


BEHAVIOURS: dict[str, Answer] = {
    answer.__name__.replace("_", "-"): answer
    for answer in (
        negative_chunk_size,
        huge_chunk_size,
        endless_chunks,
        tiny_chunks,
        endless_headers,
        endless_interim_answers,
        huge_content_length,
        absurd_content_length,
        slowloris_body,
        no_answer,
        never_ending_answer,
    )
}


@dataclass
class HostileReceiver(RawServer):
    """Misbehaves per request path (a name of ``BEHAVIOURS``); ``tick`` paces the slow ones."""

    tick: float = 0.02
    behave: bool = False
    #: request paths in the order they arrived
    paths: list[str] = field(default_factory=list)
    webhook_ids: list[str] = field(default_factory=list)
    #: connections the client closed (or reset) while the server still had things to say
    hung_up: int = 0
    _hang_ups: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, behaviour: str) -> str:
        return f"{self.origin}/{behaviour}"

    async def wait_for_hang_ups(self, count: int, limit: float = 2.0) -> None:
        async with asyncio.timeout(limit), self._hang_ups:
            await self._hang_ups.wait_for(lambda: self.hung_up >= count)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                path = request.target.lstrip("/")
                self.paths.append(path)
                self.webhook_ids.append(request.headers.get("webhook-id", ""))
                if self.behave:
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                    await writer.drain()
                    continue
                answer = asyncio.ensure_future(BEHAVIOURS[path](writer, self.tick))
                gone = asyncio.ensure_future(reader.read(1))  # b"" (or an error): hung up
                try:
                    await asyncio.wait([answer, gone], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    answer.cancel()
                    gone.cancel()
                for task in (answer, gone):
                    if task.done() and not task.cancelled():
                        task.exception()  # a reset: the client hung up, which is the point
                await self._note_hang_up()
                return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self._note_hang_up()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _note_hang_up(self) -> None:
        async with self._hang_ups:
            self.hung_up += 1
            self._hang_ups.notify_all()

"""A fast loopback webhook receiver, run as its own process by ``bench/webhooks.py``.

python -m bench._webhooks_receiver PORT

Answers every request with ``204 No Content`` as soon as its body is read (keep-alive when the
client asks for it, as wrk and bankhub's worker do; ``Connection: close`` when asked) and notes the
wall-clock arrival time (``time.time()``), the ``webhook-id``, the ``bankhub-event`` header and
the body. Control requests, never counted:

- ``GET /_stats``: ``{"count", "first", "last"}``
- ``GET /_arrivals``: ``{"count", "first", "last", "arrivals": [[time, id, type, body], ...]}``
- ``POST /_reset``: forget everything
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
NO_CONTENT_CLOSE = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.arrivals: list[tuple[float, str, str, str]] = []

    def reset(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0
        self.arrivals = []

    def stats(self, *, full: bool) -> bytes:
        data: dict[str, Any] = {"count": self.count, "first": self.first, "last": self.last}
        if full:
            data["arrivals"] = self.arrivals
        return json.dumps(data).encode()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                request_line, _, rest = head.partition(b"\r\n")
                headers: dict[bytes, bytes] = {}
                for line in rest.split(b"\r\n"):
                    name, sep, value = line.partition(b":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                body = await reader.readexactly(length) if length else b""
                target = request_line.split(b" ", 2)[1]
                close = headers.get(b"connection", b"").lower() == b"close"
                if target.startswith(b"/_"):
                    writer.write(self.control(target))
                    await writer.drain()
                    return
                now = time.time()
                if not self.count:
                    self.first = now
                self.count += 1
                self.last = now
                webhook_id = headers.get(b"webhook-id")
                if webhook_id is not None:
                    self.arrivals.append(
                        (
                            now,
                            webhook_id.decode("latin-1"),
                            headers.get(b"bankhub-event", b"").decode("latin-1"),
                            body.decode("utf-8", errors="replace"),
                        )
                    )
                writer.write(NO_CONTENT_CLOSE if close else NO_CONTENT)
                if close:
                    await writer.drain()
                    return
        except (OSError, asyncio.LimitOverrunError, ValueError, IndexError):
            return
        finally:
            writer.close()

    def control(self, target: bytes) -> bytes:
        if target == b"/_reset":
            self.reset()
            body = b"{}"
        else:
            body = self.stats(full=target == b"/_arrivals")
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body


async def main(port: int) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

"""Real HTTP servers on a free 127.0.0.1 port, in a thread, that always stop by themselves.

* :func:`serving` serves any ``BaseHTTPRequestHandler`` (the connector peers, static test pages).
* :func:`partner_site` is a partner's web site as browser and end-to-end tests need it: the page
  a connect flow sends the browser back to, and a webhook endpoint, both recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: what every GET of a partner site answers: a page to come back to
PARTNER_PAGE = b"<!doctype html><html lang=en><title>Partner app</title><p>Back in the app."


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout tests) is not an error of the server."""


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], lifetime: float) -> Iterator[str]:
    """Serve ``handler`` until the block ends or ``lifetime`` seconds pass; yields the origin."""
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    watchdog = threading.Timer(lifetime, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Hook:
    """A POST the partner site received: a webhook, as its sender sent it."""

    path: str
    #: header names in lower case
    headers: dict[str, str]
    body: bytes
    #: ``time.monotonic()`` when the body had arrived
    arrived: float

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class PartnerSite:
    """Answers every GET with :data:`PARTNER_PAGE` and every POST with 200, recording both."""

    origin: str = ""
    #: paths of the GETs, in order (the connect page's callbacks a browser followed)
    visits: list[str] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)


@contextmanager
def partner_site(lifetime: float = 600.0) -> Iterator[PartnerSite]:
    site = PartnerSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.visits.append(self.path)
            self._answer(PARTNER_PAGE)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            site.hooks.append(Hook(self.path, headers, body, time.monotonic()))
            self._answer(b"")

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: no request log on stderr."""

    with serving(Handler, lifetime) as origin:
        site.origin = origin
        yield site

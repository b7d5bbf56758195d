"""Fixtures of the dashboard tests: a visitor's browser over the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from tests.conftest import Harness
from tests.dashboard.support import Visitor
from tests.support.postgres import free_port


@pytest.fixture
async def visitors(harness: Harness) -> AsyncIterator[Callable[..., Visitor]]:
    """``visitors()`` opens another browser (own cookies); all are closed at the end."""
    opened: list[Visitor] = []

    def factory(**options: str) -> Visitor:
        visitor = Visitor(harness, **options)
        opened.append(visitor)
        return visitor

    try:
        yield factory
    finally:
        for visitor in opened:
            await visitor.aclose()


class MailSink:
    """aiosmtpd's handler: keeps every message it is given, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: MailSink

    @property
    def messages(self) -> list[EmailMessage]:
        return self.sink.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback (aiosmtpd), plain, no authentication."""
    sink = MailSink()
    port = free_port("127.0.0.1")
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, sink)
    finally:
        controller.stop()

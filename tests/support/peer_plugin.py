"""pytest fixtures for the raw HTTP peers of ``tests/support/raw_http.py``.

``receiver``: a :class:`Receiver` answering 200 to everything, stopped after the test.
``gate``: a :class:`Gate` holding the first request; opened (and stopped) after the test, so no
request is left waiting. A module that needs another set-up defines a fixture of the same name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.raw_http import Gate, Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    peer = await Receiver().start()
    try:
        yield peer
    finally:
        await peer.stop()


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    peer = await Gate().start()
    try:
        yield peer
    finally:
        peer.opened.set()
        await peer.stop()

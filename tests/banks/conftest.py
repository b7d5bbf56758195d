"""Fixtures of the bank tests: a loopback https logo host, and an outbound client that trusts
its throwaway CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.banks.logo_host import LogoHost, logo_host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[LogoHost]:
    with logo_host(tmp_path) as running:
        yield running


@pytest.fixture
async def outbound(host: LogoHost) -> AsyncIterator[httpx.AsyncClient]:
    assert host.pki is not None
    verify = ssl.create_default_context(cafile=str(host.pki.ca))
    async with httpx.AsyncClient(verify=verify, trust_env=False) as client:
        yield client

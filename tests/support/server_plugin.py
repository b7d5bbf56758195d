"""pytest fixture running the real bankhub server in a subprocess.

``live_server`` is a factory::

    def test_health(live_server: LiveServerFactory) -> None:
        server = live_server(env={"BANKHUB_CREATE_DEMO_APP": "true"})
        creds = server.demo_credentials()
        ...

Each call starts one server with its own ``BANKHUB_DATA_DIR`` under the test's ``tmp_path``
(pass ``data_dir=`` to reuse one across a restart) and ``BANKHUB_ENV=test``; all servers are
stopped at test end (SIGTERM, SIGKILL after 5 s). On a failed test the server output is attached
to the report as a section.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.live_server import LiveServer

_SERVERS = pytest.StashKey[list[LiveServer]]()


class LiveServerFactory(Protocol):
    def __call__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        data_dir: Path | None = None,
        command: Sequence[str] | None = None,
        timeout: float = ...,
    ) -> LiveServer: ...


@pytest.fixture
def live_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServerFactory]:
    servers: list[LiveServer] = []
    request.node.stash[_SERVERS] = servers

    def factory(
        env: Mapping[str, str] | None = None,
        *,
        data_dir: Path | None = None,
        command: Sequence[str] | None = None,
        timeout: float = 30.0,
    ) -> LiveServer:
        if data_dir is None:
            data_dir = tmp_path / f"bankhub-data-{len(servers)}"
        server = LiveServer.start(data_dir=data_dir, env=env, command=command, timeout=timeout)
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:
        for server in item.stash.get(_SERVERS, []):
            report.sections.append(
                (f"bankhub server output ({server.url})", server.stdout_text()[-20_000:])
            )
    return report

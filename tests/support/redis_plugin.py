"""pytest fixtures for the throwaway Redis server (the store processes share, S18 and S33).

* ``redis_server`` (session): one ``RedisServer`` for the whole run (per xdist worker).
* ``redis_url`` (function): its ``redis://127.0.0.1:PORT/0`` URL, every key forgotten first, so
  each test starts from an empty store.

Without ``redis-server`` the fixtures skip locally but fail when ``CI=true``
(``scripts/bootstrap --redis`` installs Debian's package). Tests that use these fixtures get
the ``redis`` marker automatically, so ``-m "not redis"`` deselects them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pg_plugin import in_ci
from tests.support.redis import RedisServer, find_server

REDIS_FIXTURES = frozenset({"redis_server", "redis_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REDIS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = find_server()
    if binary is None:
        reason = "redis-server not found on PATH; install Debian's redis-server package"
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(binary).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url

"""S5, S18, S33: the store every process shares (``BANKHUB_RATE_LIMIT_STORAGE``), against a real
``redis-server``: runs of failures counted atomically, blocks seen by every process, and a start-up
that refuses a store it cannot use with one line naming the variable.

Each "process" here is a :class:`SharedStore` of its own, with its own connection pool, as each
bankhub process has; ``tests/scale/test_shared_limits.py`` does the same with real processes.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bankhub.app import create_app_from_env
from bankhub.config import ConfigError, Settings
from bankhub.observability import logs
from bankhub.security import shared
from bankhub.security.network import SharedFailureCounts
from bankhub.security.shared import SharedStore, StoreUnavailable, parse_url
from tests.support.postgres import free_port
from tests.support.redis import RedisServer

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
IDLE = timedelta(seconds=300)


def settings_for(tmp_path: Path, url: str, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, rate_limit_storage=url, rate_limits_enabled=True, **values)


@pytest.fixture
async def two_processes(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[SharedStore]]:
    # These tests are about counting across processes, not about the store's one-second bound
    # (what the store does past it is test_a_store_that_stops_answering_is_left_alone_then_used_
    # again): on a loaded CI machine a burst of 100 operations twice ran past that bound, and the
    # store rightly went on without Redis, so each process counted alone.
    monkeypatch.setattr(shared, "OPERATION_TIMEOUT", 15.0)
    stores = [SharedStore(settings_for(tmp_path, redis_url)) for _ in range(2)]
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def test_a_run_of_failures_is_one_run_across_processes(
    two_processes: list[SharedStore], redis_server: RedisServer
) -> None:
    """test_a_run_of_failures_is_one_run_across_processes — S5, S18: failures counted by two
    processes make one run per address; a success ends it, a pause of the window ends it, other
    addresses have their own; the key lapses with the window, so Redis keeps no dead runs."""
    a, b = (SharedFailureCounts(store) for store in two_processes)
    now = START
    assert [await counts.add("198.51.100.1", now, IDLE) for counts in (a, b, a, b)] == [1, 2, 3, 4]
    assert await b.add("2001:db8::1", now, IDLE) == 1
    await a.clear("198.51.100.1")  # a verified credential from the address, in process a
    assert await b.add("198.51.100.1", now, IDLE) == 1
    assert await a.add("198.51.100.1", now + timedelta(seconds=299), IDLE) == 2
    # a pause of the whole window since the last failure: the next failure starts a new run
    assert await b.add("198.51.100.1", now + timedelta(seconds=599), IDLE) == 1
    # a process whose clock is a little behind another's still continues the run
    assert await a.add("198.51.100.1", now + timedelta(seconds=598), IDLE) == 2
    ttl = int(redis_server.command("PTTL", "bankhub:failures:198.51.100.1").lstrip(":"))
    assert 0 < ttl <= 300_000
    assert await a.fallback.add("198.51.100.1", now, IDLE) == 1  # nothing counted in memory


async def test_failures_counted_at_once_by_two_processes_all_count(
    two_processes: list[SharedStore],
) -> None:
    """test_failures_counted_at_once_by_two_processes_all_count — S18: 100 failures of one
    address counted concurrently by two processes give the run lengths 1 to 100, each once: the
    count is one atomic script in Redis, never read in one process and written back later."""
    counts = [SharedFailureCounts(store) for store in two_processes]
    runs = await asyncio.gather(
        *(counts[n % 2].add("203.0.113.9", START, IDLE) for n in range(100))
    )
    assert sorted(runs) == list(range(1, 101))


async def test_a_block_in_the_store_is_seen_by_every_process_until_it_ends(
    two_processes: list[SharedStore], redis_server: RedisServer
) -> None:
    """test_a_block_in_the_store_is_seen_by_every_process_until_it_ends — S18: a block put in
    the store by one process is read by another at once, ends when it says, lapses from Redis
    with it, and is gone once lifted."""
    a, b = two_processes
    until = START + timedelta(seconds=900)
    assert await b.blocked_until("198.51.100.7") is None
    await a.block("198.51.100.7", until, START)
    assert await b.blocked_until("198.51.100.7") == until
    ttl = int(redis_server.command("PTTL", "bankhub:block:198.51.100.7").lstrip(":"))
    assert 890_000 < ttl <= 900_000
    assert await b.unblock("198.51.100.7") is True
    assert await a.blocked_until("198.51.100.7") is None
    assert await a.unblock("198.51.100.7") is False


def test_store_urls_bankhub_can_share(tmp_path: Path) -> None:
    """test_store_urls_bankhub_can_share — S33: memory:// and the Redis forms of the limits
    library (TCP, TLS, unix socket) are taken; anything else stops start-up naming the
    variable; a password in the URL is never shown."""
    assert not parse_url("memory://").shared
    tcp = parse_url("redis://:s3cret@cache.internal:6379/2")
    assert (tcp.limits_url, tcp.client_url) == (
        "async+redis://:s3cret@cache.internal:6379/2",
        "redis://:s3cret@cache.internal:6379/2",
    )
    assert tcp.shown == "redis://:***@cache.internal:6379/2"
    assert parse_url("rediss://cache.internal:6380/0").client_url.startswith("rediss://")
    for text in ("redis+unix:///run/redis/redis.sock?db=1", "unix:///run/redis/redis.sock?db=1"):
        unix = parse_url(text)
        assert unix.limits_url == "async+redis+unix:///run/redis/redis.sock?db=1"
        assert unix.client_url == "unix:///run/redis/redis.sock?db=1"
    for bad in ("memcached://cache:11211", "redis://", "mongodb://db", "cache.internal:6379"):
        with pytest.raises(ConfigError, match=r"^BANKHUB_RATE_LIMIT_STORAGE: "):
            parse_url(bad)
    with pytest.raises(ConfigError) as refused:
        parse_url("redis+sentinel://:s3cret@sentinel:26379/main")
    assert "s3cret" not in str(refused.value)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def test_start_up_refuses_a_store_it_cannot_use(
    tmp_path: Path,
    redis_url: str,
    redis_server: RedisServer,
    silent_server: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """test_start_up_refuses_a_store_it_cannot_use — S33: the start-up check (serve, worker,
    the granian factory) passes for a Redis that answers PING, over TCP or its socket, and
    stops with one line naming BANKHUB_RATE_LIMIT_STORAGE and what is wrong for a server that
    refuses, one that never answers, a URL it cannot share, and a missing Redis client; the
    embedded default needs no Redis client at all."""
    shared.check(settings_for(tmp_path, redis_url))
    shared.check(settings_for(tmp_path, redis_server.socket_url))

    closed = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError) as refused:
        shared.check(settings_for(tmp_path, closed))
    message = str(refused.value)
    assert message.startswith(f"BANKHUB_RATE_LIMIT_STORAGE: the Redis at {closed} is unreachable")
    assert "\n" not in message

    monkeypatch.setattr(shared, "STARTUP_TIMEOUT", 0.3)
    with pytest.raises(ConfigError, match=r"unreachable \(no answer within"):
        shared.check(settings_for(tmp_path, f"redis://127.0.0.1:{silent_server}/0"))

    with pytest.raises(ConfigError, match="not a store bankhub can share"):
        shared.check(settings_for(tmp_path, "memcached://127.0.0.1:11211"))

    # nothing reads the store while rate limits and blocks are off (dev's default)
    shared.check(Settings(data_dir=tmp_path, rate_limit_storage=closed))

    monkeypatch.setitem(sys.modules, "coredis", None)  # as if bankhub[redis] were not installed
    with pytest.raises(ConfigError) as missing:
        shared.check(settings_for(tmp_path, redis_url))
    assert str(missing.value) == (
        f"BANKHUB_RATE_LIMIT_STORAGE: {redis_url} needs the Redis client coredis, which is not "
        "installed; install bankhub with its redis extra: pip install 'bankhub[redis]'"
    )
    shared.check(settings_for(tmp_path, "memory://"))


def test_the_granian_factory_refuses_an_unreachable_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_the_granian_factory_refuses_an_unreachable_store — S33: a worker started by granian
    itself (not through ``bankhub serve``) stops before it serves, with the same message."""
    for name in ("BANKHUB_DATABASE_URL", "BANKHUB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BANKHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BANKHUB_ENV", "test")
    monkeypatch.setenv("BANKHUB_BLOCK_ENABLED", "true")
    monkeypatch.setenv("BANKHUB_RATE_LIMIT_STORAGE", f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(ConfigError, match=r"^BANKHUB_RATE_LIMIT_STORAGE: the Redis at .* is "):
            create_app_from_env()
    finally:
        logs.reset()  # the factory set up the process's logging, as granian's worker needs


async def test_a_store_that_stops_answering_is_left_alone_then_used_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """test_a_store_that_stops_answering_is_left_alone_then_used_again — S33: while Redis is
    gone, operations fail fast as StoreUnavailable, are counted (a metric), and the outage is
    logged once; after RETRY_SECONDS the store is tried again and, once it answers, the
    recovery is logged."""
    clock = [0.0]
    with RedisServer() as server:
        store = SharedStore(settings_for(tmp_path, server.socket_url), monotonic=lambda: clock[0])
        try:
            await store.block("192.0.2.5", START + timedelta(seconds=60), START)
            server.halt()
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await store.blocked_until("192.0.2.5")
            assert store.unavailable == 3
            warnings = [r for r in caplog.records if "is unavailable" in r.getMessage()]
            assert len(warnings) == 1
            assert "BANKHUB_RATE_LIMIT_STORAGE" in warnings[0].getMessage()
            server.start()
            with pytest.raises(StoreUnavailable):  # still left alone: no wait on every call
                await store.blocked_until("192.0.2.5")
            clock[0] += shared.RETRY_SECONDS
            assert await store.blocked_until("192.0.2.5") is None  # the restart lost the key
            assert any("answers again" in r.getMessage() for r in caplog.records)
        finally:
            await store.close()

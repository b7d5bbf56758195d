"""S18, S33 scaled out: two ``bankhub serve`` processes on one PostgreSQL, as the runtime role
under row-level security, sharing one throwaway ``redis-server`` (``BANKHUB_RATE_LIMIT_STORAGE``).

* a limit of N per minute allows N requests in total across both processes, not 2N, even when
  the requests arrive at once;
* five authentication failures spread over both processes block the address in both at once
  (each process trusts its memory of the ``blocked_addresses`` table for 60 s here, so only the
  shared store can tell it in time), for the configured 900 s;
* the block is in the database with its ``address.blocked`` entry, and a process started after
  Redis lost every key still refuses the address;
* a process started with a Redis it cannot use stops with one line naming the variable;
* a signed request's nonce, accepted by one process, is refused by the other (RFC 9421).

The two servers are started once for the module; each test uses its own client addresses
(``X-Forwarded-For`` from 127.0.0.1, a trusted proxy here) and its own app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.scale.support import SECRET_KEY, bankhub_cli, child_env, database, deployed_database
from tests.scale.test_auth_cache import (
    grant_revoked_in_one_refused_by_the_other,
    revoked_in_one_refused_by_the_other,
)
from tests.signatures.signing import Signer
from tests.support.live_server import LiveServer
from tests.support.postgres import PostgresServer, free_port
from tests.support.redis import RedisServer

BLOCK_SECONDS = 900
PER_CREDENTIAL = 4
PER_ADDRESS = 6


@dataclass
class Cluster:
    servers: list[LiveServer]
    env: dict[str, str]
    superuser_url: str
    redis: RedisServer
    data_dir: Path
    #: one app per test, so that no test uses up another's limits
    apps: list[dict[str, str]]

    def start_server(self, name: str) -> LiveServer:
        return LiveServer.start(data_dir=self.data_dir / name, env=self.env)

    def logs(self) -> str:
        return "\n".join(server.stdout_text() for server in self.servers)


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    redis_server.flush()
    tmp = tmp_path_factory.mktemp("shared-limits")
    env = {
        "BANKHUB_SECRET_KEY": SECRET_KEY,
        "BANKHUB_CREATE_DEMO_APP": "false",
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_RATE_LIMIT_STORAGE": redis_server.url,
        "BANKHUB_RATE_LIMITS_ENABLED": "true",
        "BANKHUB_RATE_LIMIT_PER_CREDENTIAL": f"{PER_CREDENTIAL}/minute",
        "BANKHUB_RATE_LIMIT_PER_APP": "1000/minute",
        "BANKHUB_RATE_LIMIT_PER_IP": f"{PER_ADDRESS}/minute",
        "BANKHUB_BLOCK_ENABLED": "true",
        "BANKHUB_BLOCK_CACHE_SECONDS": "60",
        "BANKHUB_TRUSTED_PROXIES": "127.0.0.1",
    }
    servers: list[LiveServer] = []
    # as the operator: migrate as the tables' owner and grant the runtime role (S14)
    operator = {**env, "BANKHUB_DATA_DIR": str(tmp / "operator")}
    with deployed_database(postgres_server, tmp, operator) as deployed:
        env["BANKHUB_DATABASE_URL"] = deployed.runtime_url
        owner_env = {
            **operator,
            "BANKHUB_DATABASE_URL": deployed.runtime_url,
            "BANKHUB_MIGRATION_DATABASE_URL": deployed.owner_url,
        }
        try:
            with ThreadPoolExecutor(2) as pool:
                apps = list(
                    pool.map(
                        lambda name: json.loads(
                            bankhub_cli(["apps", "create", name, "--json"], owner_env, tmp)
                        ),
                        ("limits", "blocks", "signatures", "cache", "grants"),
                    )
                )
                made = Cluster(servers, env, deployed.superuser_url, redis_server, tmp, apps)
                servers.extend(pool.map(made.start_server, ("server-0", "server-1")))
            yield made
        finally:
            for server in servers:
                server.stop()


def call(
    server: LiveServer, path: str, address: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
        return client.get(path, headers={"x-forwarded-for": address, **(headers or {})})


def keys(app: dict[str, str], secret: str | None = None) -> dict[str, str]:
    return {"client-id": app["client_id"], "service-secret": secret or app["service_secret"]}


def test_a_limit_of_n_allows_n_requests_across_two_processes(cluster: Cluster) -> None:
    """test_a_limit_of_n_allows_n_requests_across_two_processes — S33: the key's limit of 4 a
    minute allows 4 of 8 simultaneous calls spread over both processes, and the address's limit
    of 6 allows 6 of 12 anonymous requests alternating between them; each refusal is 429
    RateLimited with Retry-After, whichever process answers it."""
    app = cluster.apps[0]
    a, b = cluster.servers
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: call((a, b)[n % 2], "/v2/app", "203.0.113.1", keys(app)), range(8))
        )
    assert Counter(r.status_code for r in answers) == {200: PER_CREDENTIAL, 429: PER_CREDENTIAL}
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.json()["error"] == "RateLimited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert '"credential";r=0' in refused.headers["ratelimit"]

    anonymous = [call((a, b)[n % 2], "/service.json", "203.0.113.2") for n in range(12)]
    assert [r.status_code for r in anonymous] == [200] * PER_ADDRESS + [429] * PER_ADDRESS
    assert {r.json()["error"] for r in anonymous[PER_ADDRESS:]} == {"RateLimited"}


def test_failures_spread_over_two_processes_block_the_address_in_both(
    cluster: Cluster,
) -> None:
    """test_failures_spread_over_two_processes_block_the_address_in_both — S5, S14, S18: five
    failures alternating between the processes block the address in both at once, for 900 s;
    the block and its audit entry are stored as the runtime role under row-level security; a
    process started after Redis lost every key refuses the address from the database; nothing
    failed after an answer started."""
    app = cluster.apps[1]
    a, b = cluster.servers
    guesser, partner = "198.51.100.50", "198.51.100.51"
    # both processes read the table now and trust it for 60 s: the block must reach them
    # through the shared store
    assert [call(s, "/v2/app", guesser, keys(app)).status_code for s in (a, b)] == [200, 200]
    for n in range(5):
        wrong = call((a, b)[n % 2], "/v2/app", guesser, keys(app, "not-the-secret"))
        assert wrong.json()["error"] == "CredentialInvalid", wrong.text
    for server in (a, b):
        refused = call(server, "/v2/app", guesser, keys(app))
        assert refused.status_code == 429
        assert refused.json()["error"] == "AddressBlocked"
        assert BLOCK_SECONDS - 10 <= int(refused.headers["retry-after"]) <= BLOCK_SECONDS
    # other addresses are served (the third of the key's 4 calls a minute)
    assert call(b, "/v2/app", partner, keys(app)).status_code == 200

    async def stored(session: AsyncSession) -> tuple[list[object], list[object]]:
        blocks = await session.execute(
            text("select address, blocked_until - created_at from blocked_addresses")
        )
        entries = await session.execute(
            text("select target_id, app_id, detail from audit_log where action = 'address.blocked'")
        )
        return list(blocks.tuples()), list(entries.tuples())

    blocks, entries = database(cluster.superuser_url)(stored)
    assert blocks == [(guesser, timedelta(seconds=BLOCK_SECONDS))]
    [(target, app_id, detail)] = entries
    assert (target, app_id) == (guesser, None)
    assert isinstance(detail, dict)
    assert detail["reason"] == "5 consecutive authentication failures"

    logs = cluster.logs()
    for trouble in ("Traceback", "after response started", "could not store", "unavailable"):
        assert trouble not in logs

    cluster.redis.flush()  # Redis restarted empty: the table still holds the block
    late = cluster.start_server("server-late")
    try:
        refused = call(late, "/v2/app", guesser, keys(app))
        assert refused.json()["error"] == "AddressBlocked"
        assert call(late, "/v2/app", partner, keys(app)).status_code == 200
    finally:
        late.stop()


def test_a_process_with_a_store_it_cannot_use_does_not_start(tmp_path: Path) -> None:
    """test_a_process_with_a_store_it_cannot_use_does_not_start — S33: ``bankhub serve`` and
    ``bankhub worker`` with an unreachable Redis, and ``serve`` without the Redis client, exit
    2 before serving, with one line naming BANKHUB_RATE_LIMIT_STORAGE and what is wrong."""
    closed = f"redis://127.0.0.1:{free_port()}/0"
    env = child_env(
        {
            "BANKHUB_DATA_DIR": str(tmp_path / "data"),
            "BANKHUB_RATE_LIMIT_STORAGE": closed,
            "BANKHUB_RATE_LIMITS_ENABLED": "true",
            "BANKHUB_BLOCK_ENABLED": "true",
        }
    )
    serve = ["-m", "bankhub", "serve", "--port", str(free_port())]
    without_client = [
        "-c",
        "import sys; sys.modules['coredis'] = None; "
        "from bankhub.cli import main; sys.argv[0] = 'bankhub'; main()",
        *serve[2:],
    ]
    for argv, url, expected in (
        (serve, closed, f"the Redis at {closed} is unreachable (ConnectionError: "),
        (["-m", "bankhub", "worker"], closed, f"the Redis at {closed} is unreachable ("),
        (without_client, "redis://127.0.0.1:6379/0", "needs the Redis client coredis"),
    ):
        done = subprocess.run(
            [sys.executable, *argv],
            env={**env, "BANKHUB_RATE_LIMIT_STORAGE": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode == 2, (argv, lines)
        assert len(lines) == 1, lines
        assert lines[0].startswith("configuration error: BANKHUB_RATE_LIMIT_STORAGE: "), lines
        assert expected in lines[0], lines


def test_a_signed_request_replayed_to_the_other_process_is_refused(cluster: Cluster) -> None:
    """test_a_signed_request_replayed_to_the_other_process_is_refused — a request signed by
    http-message-signatures is served by one process; the same request sent to the other is
    SignatureReplayed: the nonce is in the store both share, and nothing is stored twice."""
    app = cluster.apps[2]
    a, b = cluster.servers
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    with httpx.Client(base_url=a.url, timeout=30.0, trust_env=False) as client:
        added = client.post(
            "/v2/signature/key",
            headers={**keys(app), "x-forwarded-for": "203.0.113.70"},
            json={"public_key": public.decode(), "required": True},
        )
    assert added.status_code == 200, added.text
    signer = Signer(key, "ed25519", added.json()["data"]["keyid"])
    # one request, signed once for the address both processes are reached at (a load
    # balancer's; the Host the client sends), then sent to each process in turn
    headers, body = signer.headers(
        "POST",
        "/v2/customer",
        now=datetime.now(UTC),
        body={"identifier": "signed-once"},
        headers={**keys(app), "content-type": "application/json"},
        base_url="http://api.bankhub.test",
    )
    answers = []
    for server in (a, b):
        with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
            answers.append(
                client.post(
                    "/v2/customer",
                    headers={
                        **headers,
                        "host": "api.bankhub.test",
                        "x-forwarded-for": "203.0.113.70",
                    },
                    content=body,
                )
            )
    assert answers[0].status_code == 200, answers[0].text
    assert answers[1].status_code == 401, answers[1].text
    assert answers[1].json()["error"] == "SignatureReplayed"


def test_a_key_revoked_in_one_process_is_refused_by_the_other(cluster: Cluster) -> None:
    """test_a_key_revoked_in_one_process_is_refused_by_the_other — S1: the second process had
    the key in its authentication cache; the revocation through the first reaches it (the
    counter read with the tenant, and the notice its listener hears) before its next request."""
    a, b = cluster.servers
    revoked_in_one_refused_by_the_other(a, b, cluster.apps[3], "198.51.100.90")


def test_a_grant_revoked_in_one_process_is_refused_by_the_other(cluster: Cluster) -> None:
    """test_a_grant_revoked_in_one_process_is_refused_by_the_other — S1, S9: the second
    process had the access token in its authentication cache; the grant's revocation through
    the first reaches it before its next request."""
    a, b = cluster.servers
    grant_revoked_in_one_refused_by_the_other(a, b, cluster.apps[4], "198.51.100.91")

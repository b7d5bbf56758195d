"""The authentication cache across processes (``bankhub.security.authcache``): two ``bankhub
serve`` on one SQLite file; a key (or an OAuth grant) revoked through one is refused by the
other at the very next request, although that process had the key (or the access token) in its
cache. The same on PostgreSQL runs in ``test_shared_limits.py``, whose two servers it shares."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.scale.support import SECRET_KEY, bankhub_cli, sqlite_url
from tests.support.live_server import LiveServer


def revoked_in_one_refused_by_the_other(
    a: LiveServer, b: LiveServer, app: dict[str, str], address: str
) -> None:
    """A new read key used twice on ``b`` (the second answered from its cache), revoked on
    ``a``: the next request to ``b`` is refused with ``KeyRevoked``."""
    master = {"client-id": app["client_id"], "service-secret": app["service_secret"]}
    forwarded = {"x-forwarded-for": address}
    with httpx.Client(timeout=30.0, trust_env=False, headers=forwarded) as client:
        made = client.post(f"{a.url}/v2/keys", json={"scope": "read"}, headers=master)
        assert made.status_code == 200, made.text
        key = made.json()["data"]
        reader = {"client-id": app["client_id"], "service-secret": key["secret"]}
        for _ in range(2):
            assert client.get(f"{b.url}/v2/app", headers=reader).status_code == 200
        revoked = client.delete(f"{a.url}/v2/keys/{key['key_id']}", headers=master)
        assert revoked.status_code == 200, revoked.text
        refused = client.get(f"{b.url}/v2/app", headers=reader)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "KeyRevoked"


def grant_revoked_in_one_refused_by_the_other(
    a: LiveServer, b: LiveServer, app: dict[str, str], address: str
) -> None:
    """An access token of ``b`` used twice there (the second answered from its cache), its
    grant revoked through ``a`` (RFC 7009, by the grant's refresh token: each server issues
    tokens for its own address): the next request to ``b`` with it is refused."""
    client_auth = (app["client_id"], app["service_secret"])
    forwarded = {"x-forwarded-for": address}
    with httpx.Client(timeout=30.0, trust_env=False, headers=forwarded) as client:
        granted = client.post(
            f"{b.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=client_auth
        )
        assert granted.status_code == 200, granted.text
        token = granted.json()["access_token"]
        bearer = {"authorization": f"Bearer {token}"}
        for _ in range(2):
            used = client.get(f"{b.url}/v2/app", headers=bearer)
            assert used.status_code == 200, used.text
        revoked = client.post(
            f"{a.url}/oauth/revoke",
            data={"token": granted.json()["refresh_token"]},
            auth=client_auth,
        )
        assert revoked.status_code == 200, revoked.text
        refused = client.get(f"{b.url}/v2/app", headers=bearer)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "InvalidToken"


def test_a_key_revoked_in_one_process_is_refused_by_the_other_on_sqlite(tmp_path: Path) -> None:
    """test_a_key_revoked_in_one_process_is_refused_by_the_other_on_sqlite — S1: two
    processes on one SQLite file; the revocation through the first bumps the counter the
    second reads before its next request."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        "BANKHUB_DATA_DIR": str(data_dir),
        "BANKHUB_DATABASE_URL": sqlite_url(data_dir),
        "BANKHUB_SECRET_KEY": SECRET_KEY,
        "BANKHUB_CREATE_DEMO_APP": "false",
        "BANKHUB_EMBEDDED_WORKER": "false",
        "BANKHUB_TRUSTED_PROXIES": "127.0.0.1",
    }
    bankhub_cli(["migrate"], env, tmp_path)
    out = bankhub_cli(["apps", "create", "cache", "--json"], env, tmp_path)
    app = json.loads(out.strip().splitlines()[-1])
    servers = [LiveServer.start(data_dir=tmp_path / f"server-{n}", env=env) for n in range(2)]
    try:
        revoked_in_one_refused_by_the_other(servers[0], servers[1], app, "192.0.2.10")
        # test_a_grant_revoked_in_one_process_is_refused_by_the_other (S1, S9): the servers
        # are shared; the key revoked above was a key of its own, the service key still works
        grant_revoked_in_one_refused_by_the_other(servers[0], servers[1], app, "192.0.2.11")
    finally:
        for server in servers:
            server.stop()

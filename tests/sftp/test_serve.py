"""``bankhub serve`` runs the SFTP drop beside the API when ``BANKHUB_SFTP_PORT`` is set, and
``bankhub sftp --fingerprint`` prints the key a client found there (real processes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import httpx

from tests.support.live_server import LiveServer
from tests.support.postgres import free_port


async def test_serve_runs_the_drop_and_the_cli_prints_its_fingerprint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    server = await asyncio.to_thread(
        LiveServer.start, data_dir=data, env={"BANKHUB_SFTP_PORT": str(port)}
    )
    try:
        creds = server.demo_credentials()
        key = asyncssh.generate_private_key("ssh-ed25519")
        async with httpx.AsyncClient(base_url=server.url) as client:
            added = await client.post(
                "/v2/signature/key",
                headers={
                    "client-id": creds["client_id"],
                    "service-secret": creds["service_secret"],
                },
                json={"public_key": key.export_public_key("openssh").decode()},
            )
        assert added.status_code == 200, added.text
        async with (
            asyncssh.connect(
                "127.0.0.1",
                port,
                username=creds["client_id"],
                client_keys=[key],
                known_hosts=None,
                agent_path=None,
                config=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            assert await sftp.listdir("/inbox") == [".", ".."]
            seen = conn.get_server_host_key()
        assert seen is not None
        fingerprint = seen.get_fingerprint("sha256")
        assert f"host key {fingerprint}" in server.stdout_text()  # logged at start
    finally:
        await asyncio.to_thread(server.stop)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env |= {"BANKHUB_DATA_DIR": str(data), "BANKHUB_ENV": "test"}
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bankhub", "sftp", "--fingerprint"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == fingerprint

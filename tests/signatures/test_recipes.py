"""docs/signatures.md's recipes, run as written against a live bankhub server: Python
(http-message-signatures), Node (node:crypto) and curl + openssl sign a GET and a POST with a
body for an app whose Ed25519 key is required."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.support.server_plugin import LiveServerFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "signatures.md"
RECIPE = re.compile(r"<!-- recipe: (\w+) -->\n```\w+\n(.*?)```", re.DOTALL)


def recipes() -> dict[str, str]:
    return dict(RECIPE.findall(DOC.read_text(encoding="utf-8")))


def test_the_doc_has_the_three_recipes() -> None:
    assert set(recipes()) == {"python", "node", "curl"}


def _runner(name: str, script: Path) -> list[str] | None:
    if name == "python":
        return [sys.executable, str(script)]
    if name == "node":
        node = shutil.which("node")
        return [node, str(script)] if node else None
    needed = [shutil.which(tool) for tool in ("sh", "curl", "openssl")]
    return [str(needed[0]), str(script)] if all(needed) else None


def test_the_recipes_sign_requests_bankhub_accepts(
    live_server: LiveServerFactory, tmp_path: Path
) -> None:
    server = live_server({"BANKHUB_CREATE_DEMO_APP": "true"})
    creds = server.demo_credentials()
    private = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "signer.pem"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    app_headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
        added = client.post(
            "/v2/signature/key",
            headers=app_headers,
            json={"public_key": public.decode(), "required": True, "label": "recipes"},
        )
        assert added.status_code == 200, added.text
        unsigned = client.get("/v2/signature/key", headers=app_headers)
        assert unsigned.json()["error"] == "SignatureRequired"
    env = {
        **os.environ,
        "BANKHUB_URL": server.url,
        "CLIENT_ID": creds["client_id"],
        "SERVICE_SECRET": creds["service_secret"],
        "KEY_FILE": str(key_file),
        "KEYID": added.json()["data"]["keyid"],
    }
    ran = []
    for name, text in recipes().items():
        script = tmp_path / {"python": "sign.py", "node": "sign.mjs", "curl": "sign.sh"}[name]
        script.write_text(text, encoding="utf-8")
        command = _runner(name, script)
        if command is None:
            continue
        body = f'{{"identifier": "recipe-{name}"}}'
        body_file = tmp_path / f"{name}.json"
        body_file.write_text(body, encoding="utf-8")
        for args in (["GET", "/v2/signature/key"], ["POST", "/v2/customer", body]):
            if name == "curl" and len(args) == 3:
                args = [args[0], args[1], str(body_file)]
            done = subprocess.run(
                [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, (name, done.stderr)
            output = done.stdout
            if name != "curl":
                status, _, output = output.partition(" ")
                assert status == "200", (name, args, done.stdout)
            assert '"error"' not in output, (name, args, output)
            assert '"version":"v2"' in output.replace(" ", ""), (name, args, output)
        ran.append(name)
    if ran != ["python", "node", "curl"]:
        why = f"only {ran} could run here (node, curl or openssl missing)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}; scripts/bootstrap --recipes installs them")
        pytest.skip(why)

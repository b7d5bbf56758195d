"""Prism (Stoplight's OpenAPI mock server) for spec-conformance tests.

The ``prism_url`` fixture installs ``@stoplight/prism-cli`` into the gitignored ``.cache/prism``
when it is missing (``scripts/bootstrap`` does the same), serves the NextGenPSD2 spec from the
shared corpus on a free 127.0.0.1 port, waits until it answers and stops it afterwards. Prism
answers with the spec's static examples and reports what is wrong with a request in the
``sl-violations`` response header; :func:`request_violations` reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.locks import file_lock

PRISM_VERSION = "5.16.0"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "prism"
PRISM = CACHE / "node_modules" / ".bin" / "prism"
PSD2_SPEC = ROOT / ".." / "shared" / "corpus" / "openapi" / "psd2-api_v1.3.12-2022-07-06.yaml"
#: the longest a Prism process may live; it is killed after this even if a test hangs
LIFETIME_SECONDS = 600.0


def _installed_version() -> str | None:
    manifest = CACHE / "node_modules" / "@stoplight" / "prism-cli" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_prism() -> Path:
    """The Prism executable, installed with npm on first use; skips the test without npm, except
    in CI (``CI=true``), where ``scripts/bootstrap --prism`` must have installed npm."""
    if PRISM.exists() and _installed_version() == PRISM_VERSION:
        return PRISM
    with file_lock(CACHE.with_name(CACHE.name + ".lock")):  # parallel workers install it once
        if PRISM.exists() and _installed_version() == PRISM_VERSION:
            return PRISM
        return _install()


def _install() -> Path:
    npm = shutil.which("npm")
    if npm is None:
        why = "npm is not installed, so the Prism mock server cannot be installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (scripts/bootstrap --prism installs it)")
        pytest.skip(why)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(CACHE),
            "--no-audit",
            "--no-fund",
            "--silent",
            f"@stoplight/prism-cli@{PRISM_VERSION}",
        ],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    return PRISM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def serve(spec: Path, log: Path) -> Iterator[str]:
    """Run ``prism mock`` for ``spec`` until the generator is closed; yields its base URL."""
    if not spec.exists():
        pytest.fail(f"the spec {spec} is missing; the shared corpus must sit next to the repo")
    prism = ensure_prism()
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(prism), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec.resolve())],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    watchdog = threading.Timer(LIFETIME_SECONDS, _stop, args=(process,))
    watchdog.daemon = True
    watchdog.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"Prism exited early:\n{log.read_text(errors='replace')[-2000:]}")
            try:
                httpx.get(f"{url}/__up", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("Prism did not start listening within 90 s")
                time.sleep(0.3)
        yield url
    finally:
        watchdog.cancel()
        _stop(process)


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a Prism mock serving the Berlin Group NextGenPSD2 1.3.12 spec."""
    yield from serve(PSD2_SPEC, tmp_path_factory.mktemp("prism") / "prism.log")


def violations(response: httpx.Response) -> list[dict[str, Any]]:
    """Everything Prism found wrong with the exchange (request and its own example)."""
    raw = response.headers.get("sl-violations")
    if not raw:
        return []
    found = json.loads(raw)
    return [v for v in found if isinstance(v, dict)]


def request_violations(response: httpx.Response) -> list[dict[str, Any]]:
    """Only the violations about the request we sent (not about Prism's static examples)."""
    return [v for v in violations(response) if (v.get("location") or [None])[0] == "request"]

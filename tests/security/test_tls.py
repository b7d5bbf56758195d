"""S26: TLS served directly with HSTS, plain HTTP refused outside dev. S31: outbound TLS is
verified against the system store or the configured CA bundle."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bankhub.catalogue import Catalogue, CatalogueError, Service, load_catalogue
from bankhub.config import Environment
from bankhub.connectors.base import AuthFlow, ConnectorInfo
from bankhub.connectors.registry import ConnectorRegistry
from bankhub.hub import Hub
from bankhub.security.tls import HSTS, InstitutionClients
from tests.conftest import Harness, make_settings
from tests.security.edge import envelope
from tests.security.tlsfiles import Pki, make_pki
from tests.support.banks import ScriptedBank
from tests.support.live_server import LiveServer, LiveServerError
from tests.support.postgres import free_port

#: a fixed key-encryption key: production settings require one
TEST_KEK = "q" * 43


class TlsServer(LiveServer):
    """The live server reached over https, trusting only the test CA."""

    ca: Path

    def wait_healthy(self, *, timeout: float = 30.0, path: str = "/healthz") -> None:
        self.url = self.url.replace("http://", "https://", 1)
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LiveServerError(f"bankhub exited\n{self.stdout_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=2, context=context):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.1)
        raise LiveServerError(f"no https answer within {timeout}s\n{self.stdout_text()}")


def test_serve_with_tls_sends_hsts(tmp_path: Path) -> None:
    """test_serve_with_tls_sends_hsts — S26: `bankhub serve` with BANKHUB_TLS_CERT/KEY serves
    https that verifies against the CA, with HSTS on every response."""
    pki = make_pki(tmp_path / "pki")

    class Server(TlsServer):
        ca = pki.ca

    server = Server.start(
        data_dir=tmp_path / "data",
        env={"BANKHUB_TLS_CERT": str(pki.cert), "BANKHUB_TLS_KEY": str(pki.key)},
    )
    try:
        assert server.url.startswith("https://")
        with httpx.Client(
            base_url=server.url,
            verify=ssl.create_default_context(cafile=str(pki.ca)),
            trust_env=False,
        ) as client:
            creds = server.demo_credentials()
            for path, headers in (
                ("/healthz", {}),
                ("/v2/app", {"client-id": creds["client_id"], "service-secret": "wrong"}),
                ("/v2/service", {"client-id": creds["client_id"], **_secret(creds)}),
            ):
                response = client.get(path, headers=headers)
                assert response.status_code < 500
                assert response.headers["strict-transport-security"] == HSTS, path
        # the certificate is checked: a client that does not trust the test CA is refused
        with (
            pytest.raises(httpx.ConnectError),
            httpx.Client(base_url=server.url, trust_env=False) as untrusting,
        ):
            untrusting.get("/healthz")
    finally:
        server.stop()


def _secret(creds: dict[str, str]) -> dict[str, str]:
    return {"service-secret": creds["service_secret"]}


@pytest.mark.parametrize(
    "harness",
    [{"env": Environment.PRODUCTION, "kek": TEST_KEK, "trusted_proxies": "10.0.0.0/8"}],
    indirect=True,
)
async def test_plain_http_is_refused_in_production(harness: Harness) -> None:
    """test_plain_http_is_refused_in_production — S26: outside dev a plain-HTTP API request is
    refused (403 HttpsRequired, no redirect); a trusted proxy saying https is served with HSTS;
    the same claim from anyone else is not believed."""
    from tests.security.edge import client_from, new_process

    h = harness
    plain = await h.client.get("/v2/service", headers=h.headers())
    assert plain.status_code == 403
    assert envelope(plain)["error"] == "HttpsRequired"
    assert "location" not in plain.headers
    assert "HTTPS" in plain.json()["message"]
    assert "strict-transport-security" not in plain.headers
    assert (await h.client.get("/healthz")).status_code == 200  # the load balancer's check
    claimed = await h.client.get(
        "/v2/service", headers={**h.headers(), "x-forwarded-proto": "https"}
    )
    assert claimed.status_code == 403  # 127.0.0.1 is not a trusted proxy here
    app = new_process(h.hub)
    async with client_from(app, "10.0.0.2") as proxy:
        served = await proxy.get(
            "/v2/service", headers={**h.headers(), "x-forwarded-proto": "https"}
        )
        assert served.status_code == 200, served.text
        assert served.headers["strict-transport-security"] == HSTS
        plain_via_proxy = await proxy.get(
            "/v2/service", headers={**h.headers(), "x-forwarded-proto": "http"}
        )
        assert plain_via_proxy.status_code == 403


EDGE_IN_PRODUCTION = {
    "env": Environment.PRODUCTION,
    "kek": TEST_KEK,
    "rate_limit_per_ip": "3/minute",
    "rate_limit_per_credential": "2/minute",
    "rate_limit_connect": "2/minute",
    "block_cache_seconds": 0,
}


@pytest.mark.parametrize("harness", [EDGE_IN_PRODUCTION], indirect=True)
async def test_hsts_on_every_answer_including_404_and_429(harness: Harness) -> None:
    """test_hsts_on_every_answer_including_404_and_429 — S26: over https every answer carries
    HSTS, also those the router makes itself (404, 405) and the edge's refusals (429 for a
    rate limit or an address block, in the envelope or as a dashboard page)."""
    from tests.security.edge import client_from, new_process

    h = harness
    app = new_process(h.hub)
    https = "https://testserver.local"
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    answers: list[httpx.Response] = []
    async with (
        client_from(app, "203.0.113.1", base_url=https) as partner,
        client_from(app, "203.0.113.2", base_url=https) as anonymous,
    ):
        answers += [await partner.get("/v2/service", headers=h.headers()) for _ in range(3)]
        answers += [
            await anonymous.get("/v2/nothing-here"),
            await anonymous.get("/nothing-here"),
            await anonymous.delete("/service.json"),
        ]
        answers += [await anonymous.get("/service.json") for _ in range(4)]
    async with client_from(app, "203.0.113.4", base_url=https) as browser:
        answers += [await browser.post("/dashboard/sign-in", data={}) for _ in range(3)]
    async with client_from(app, "203.0.113.3", base_url=https) as guesser:
        answers += [await guesser.get("/v2/app", headers=wrong) for _ in range(5)]
        answers.append(await guesser.get("/v2/app", headers=h.headers()))
    statuses = [a.status_code for a in answers]
    assert statuses == [
        *(200, 200, 429),  # a partner past its key's limit
        *(404, 404, 405),  # the router's own answers
        *(200, 200, 200, 429),  # anonymous traffic past its address's limit
        *(403, 403, 429),  # the dashboard's sign-in form past its limit (a page)
        *(400, 400, 400, 429, 429),  # wrong secrets, past the address's limit refused as such
        429,  # blocked after five of them
    ]
    assert answers[2].json()["error"] == "RateLimited"
    assert answers[9].json()["error"] == "RateLimited"
    assert answers[12].headers["content-type"].startswith("text/html")
    assert answers[-1].json()["error"] == "AddressBlocked"
    for answer in answers:
        assert answer.headers.get("strict-transport-security") == HSTS, (
            answer.request.url,
            answer.status_code,
        )


async def test_plain_http_is_served_in_dev(harness: Harness) -> None:
    """test_plain_http_is_served_in_dev — S26: dev and test keep plain http, without HSTS."""
    response = await harness.client.get("/v2/service", headers=harness.headers())
    assert response.status_code == 200
    assert "strict-transport-security" not in response.headers


@asynccontextmanager
async def tls_site(pki: Pki) -> AsyncIterator[str]:
    """A loopback HTTPS server answering every request with 200 "ok"; closed on exit."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()

    port = free_port("127.0.0.1")
    server = await asyncio.start_server(answer, "127.0.0.1", port, ssl=context)
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)


async def test_outbound_tls_uses_the_configured_trust_store(tmp_path: Path) -> None:
    """test_outbound_tls_uses_the_configured_trust_store — S31: the shared client refuses a
    server signed by an unknown CA, and accepts it once BANKHUB_CA_BUNDLE names that CA (the
    webhook sender's client too); an institution's own ca_bundle param does the same for its
    connector's client."""
    pki = make_pki(tmp_path / "pki")
    url_db = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    default = Hub.build(make_settings(tmp_path, url_db))
    bundled = Hub.build(make_settings(tmp_path, url_db, ca_bundle=pki.ca))
    try:
        async with tls_site(pki) as url:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await default.http.get(url)
            assert (await bundled.http.get(url)).text == "ok"
            # the webhook sender's own client (KeyedTransport) checks against the same store
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await default.webhook_http.get(url)
            assert (await bundled.webhook_http.get(url)).text == "ok"

            clients = InstitutionClients(default.http, timeout=5.0)
            try:
                assert clients.client_for({}) is default.http
                per_bank = clients.client_for({"ca_bundle": str(pki.ca)})
                assert (await per_bank.get(url)).text == "ok"
            finally:
                await clients.aclose()
    finally:
        await default.close()
        await bundled.close()


class _Probe(ScriptedBank):
    """A connector that only keeps the context the engine built it with."""

    info = ConnectorInfo("probe", "1", (), (AuthFlow.CREDENTIALS,))


def _service(service_id: int, params: dict[str, str]) -> Service:
    return Service(
        id=service_id,
        slug=f"probe-{service_id}",
        name=f"Probe {service_id}",
        provider="test",
        type="bank",
        country_code="DE",
        has_balance=True,
        color_primary="#000000",
        color_secondary="#ffffff",
        connector="probe",
        params=params,
    )


async def test_connectors_get_their_institutions_trust_store(tmp_path: Path) -> None:
    """test_connectors_get_their_institutions_trust_store — S31: the engine hands a connector
    whose catalogue entry names a ``ca_bundle`` a client trusting that CA, and every other
    connector the shared client, which does not."""
    pki = make_pki(tmp_path / "pki")
    registry = ConnectorRegistry()
    registry.register("probe", _Probe)
    catalogue = Catalogue(
        [_service(1, {}), _service(2, {"ca_bundle": str(pki.ca)})], tmp_path / "media"
    )
    url_db = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    hub = Hub.build(make_settings(tmp_path, url_db), registry=registry, catalogue=catalogue)
    try:
        plain, own = (hub.engine.build(catalogue.services[i]).connector for i in (0, 1))
        assert isinstance(plain, _Probe)
        assert isinstance(own, _Probe)
        assert plain.context.http is hub.http
        async with tls_site(pki) as url:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await plain.context.http.get(url)
            assert (await own.context.http.get(url)).text == "ok"
    finally:
        await hub.close()


def test_a_missing_institution_bundle_stops_the_catalogue(tmp_path: Path) -> None:
    """test_a_missing_institution_bundle_stops_the_catalogue — S31: a catalogue entry whose
    ca_bundle does not exist is refused when the catalogue loads, naming the service."""
    entry = {
        "id": 7,
        "slug": "x",
        "name": "X",
        "type": "bank",
        "country_code": "DE",
        "has_balance": True,
        "color": {"primary": "#000000", "secondary": "#ffffff"},
        "connector": "sandbox",
        "params": {"ca_bundle": str(tmp_path / "gone.pem")},
    }
    path = tmp_path / "services.json"
    path.write_text(json.dumps([entry]), encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"service 7: ca_bundle .*gone\.pem"):
        load_catalogue(path)


def test_missing_bundle_is_a_clear_configuration_error(tmp_path: Path) -> None:
    """test_missing_bundle_is_a_clear_configuration_error — S26/S31: a TLS or CA file that does
    not exist stops start-up with the variable named."""
    from bankhub.config import ConfigError

    url_db = f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite3'}"
    with pytest.raises(ConfigError, match="BANKHUB_CA_BUNDLE"):
        make_settings(tmp_path, url_db, ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="BANKHUB_TLS_KEY"):
        make_settings(tmp_path, url_db, tls_cert=tmp_path / "missing.pem")

"""Engine options (client IP, FinTS product id) and provider notices stored on the login."""

from __future__ import annotations

from sqlalchemy import select

from bankhub.connectors.base import AuthFlow, ConnectorInfo
from bankhub.connectors.statement.connector import StatementConnector
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.security.secrets import new_uuid_shaped_secret
from tests.conftest import Harness
from tests.support.banks import ScriptedBank, service_for


class NoticeBank(ScriptedBank):
    info = ConnectorInfo("noticer", "1", (), (AuthFlow.CREDENTIALS,))

    def notices(self) -> list[str]:
        return ["Maintenance <b>tonight</b>\x07 & tomorrow"]


async def test_build_passes_client_ip_and_fints_product_id(harness: Harness) -> None:
    engine = harness.hub.engine
    engine.settings.fints_product_id = "ABCDEF0123456789"
    run = engine.build(service_for("statement"), psu_ip_address="203.0.113.7")
    assert isinstance(run.connector, StatementConnector)
    assert run.connector.context.options["psu_ip_address"] == "203.0.113.7"
    assert run.connector.context.options["fints_product_id"] == "ABCDEF0123456789"
    unattended = engine.build(service_for("statement"))
    assert isinstance(unattended.connector, StatementConnector)
    assert "psu_ip_address" not in unattended.connector.context.options


async def test_notices_are_stored_and_served_escaped(harness: Harness) -> None:
    h = harness
    h.hub.registry.register("noticer", NoticeBank)
    engine = h.hub.engine
    response = await h.client.post("/v2/customer", json={"identifier": "n"}, headers=h.headers())
    customer_id = response.json()["data"]["customer_id"]
    secret = new_uuid_shaped_secret()
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        app_id = app.id
        now = h.hub.clock()
        login = Login(
            app_id=app_id,
            customer_id=customer_id,
            service_id=1,
            secret_hash=h.hub.hasher.hash(secret, purpose="login-secret"),
            status="active",
            active=True,
            connector_state={},
            created_at=now,
            updated_at=now,
        )
        session.add(login)
        await session.flush()
        run = engine.build(service_for("noticer"))
        result = await engine.fetch(run, None)
        await engine.apply(session, login, result)
    body = (await h.client.get("/v2/login", headers=h.headers(login_secret=secret))).json()
    assert body["data"]["notices"] == ["Maintenance &lt;b&gt;tonight&lt;/b&gt; &amp; tomorrow"]

"""The return step for a bank that answers in the URL fragment (the OpenID hybrid flow of UK
Open Banking): a page that runs one script of bankhub's own, moving the fragment into the query
of the same step; nothing else on the connect pages runs a script."""

from __future__ import annotations

from tests.api.connect_client import ConnectDriver, create_customer, create_token
from tests.conftest import Harness


async def test_a_return_without_a_query_is_the_fragment_relay(harness: Harness) -> None:
    h = harness
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, "relay")))
    await driver.agree()  # the browser holds a connect session: the app's policy applies

    relay = await h.client.get("/v2/connect/return", follow_redirects=False)
    assert relay.status_code == 200
    assert relay.headers["content-type"].startswith("text/html")
    policy = relay.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert '<script src="/v2/connect/static/return.js">' in relay.text
    assert relay.headers["cache-control"] == "no-store"

    script = await h.client.get("/v2/connect/static/return.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "window.location.hash" in script.text
    assert "window.location.replace" in script.text

    # every other connect page keeps running no script at all
    await driver.show()
    page = await h.client.get("/v2/connect/session")
    assert "script-src 'none'" in page.headers["content-security-policy"]

"""One real ``bankhub serve`` for the whole session (see ``sdk_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sdk_support import (
    CALLBACK,
    SANDBOX_SERVICE,
    TOKENS_PER_SECOND,
    Bankhub,
    Linked,
    Receiver,
    Server,
    create_app,
    finish_connect,
)

from bankhub_client import BankhubClient

#: rate limits on, as in production, generous for the API; the token endpoint's low enough for
#: a test to reach a real 429 (test_retries.py); no address blocks (tests send wrong secrets)
LIMITS = {
    "BANKHUB_RATE_LIMITS_ENABLED": "true",
    "BANKHUB_RATE_LIMIT_PER_CREDENTIAL": "6000/minute",
    "BANKHUB_RATE_LIMIT_PER_APP": "12000/minute",
    "BANKHUB_RATE_LIMIT_PER_IP": "6000/minute",
    "BANKHUB_RATE_LIMIT_CONNECT": "6000/minute",
    "BANKHUB_RATE_LIMIT_TOKEN": f"{TOKENS_PER_SECOND}/second",
    "BANKHUB_BLOCK_ENABLED": "false",
}


@pytest.fixture(scope="session")
def bankhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bankhub]:
    data_dir = tmp_path_factory.mktemp("bankhub") / "data"
    data_dir.mkdir()
    receiver = Receiver().start()
    app = create_app(data_dir, receiver.url)
    server = Server.start(data_dir, LIMITS)
    try:
        yield Bankhub(server.url, app, data_dir, receiver, server)
    finally:
        server.stop()
        receiver.stop()


@pytest.fixture
def client(bankhub: Bankhub) -> Iterator[BankhubClient]:
    with bankhub.client() as made:
        yield made


@pytest.fixture(scope="session")
def linked(bankhub: Bankhub) -> Linked:
    """A customer and a sandbox login, made with the SDK's calls."""
    with bankhub.client() as client:
        customer = client.create_customer(identifier="sdk-session-customer")
        token = client.create_token(
            customer_id=customer.customer_id, service_id=SANDBOX_SERVICE, callback_url=CALLBACK
        )
    login_id, secret = finish_connect(bankhub.url, token.connect_url, "user_good")
    return Linked(customer.customer_id, login_id, secret)

"""One real ``bankhub serve`` for the whole session (see ``sdk_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sdk_support import (
    CALLBACK,
    SANDBOX_SERVICE,
    Bankhub,
    Linked,
    Receiver,
    Server,
    create_app,
    finish_connect,
)

from bankhub_client import BankhubClient


@pytest.fixture(scope="session")
def bankhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bankhub]:
    data_dir = tmp_path_factory.mktemp("bankhub") / "data"
    data_dir.mkdir()
    receiver = Receiver().start()
    app = create_app(data_dir, receiver.url)
    server = Server.start(data_dir, {})
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

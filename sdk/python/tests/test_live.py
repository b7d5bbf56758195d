"""The SDK against a real ``bankhub serve``: a login linked, accounts and transactions read with
paging, typed errors, the Idempotency-Key, OAuth2 tokens."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from sdk_support import CORPUS, Bankhub, Linked, LoseFirstAnswer, Recorder

from bankhub_client import (
    AccountOut,
    AuthenticationError,
    BankhubClient,
    ConflictError,
    InvalidRequestError,
    LoginOut,
    NotFoundError,
    TransactionOut,
)


def test_a_linked_login_reads_back_typed(client: BankhubClient, linked: Linked) -> None:
    login = client.read_login(login_secret=linked.login_secret)
    assert isinstance(login, LoginOut)
    assert login.id == linked.login_id
    assert login.customer_id == linked.customer_id
    assert login.created_at.tzinfo is not None
    accounts = client.list_accounts(login_secret=linked.login_secret)
    assert accounts, "the sandbox login has accounts"
    assert all(isinstance(a, AccountOut) and a.login_id == linked.login_id for a in accounts)
    assert all(a.balance is None or isinstance(a.balance, Decimal) for a in accounts)


def test_iter_transactions_follows_every_page(bankhub: Bankhub, linked: Linked) -> None:
    recorder = Recorder()
    with bankhub.client(http_client=recorder.client()) as client:
        whole = client.list_transactions(login_secret=linked.login_secret)
        assert len(whole) > 7, "the sandbox history is long enough to need pages"
        recorder.requests.clear()
        paged = list(client.iter_transactions(login_secret=linked.login_secret, per_page=7))
    assert all(isinstance(t, TransactionOut) for t in paged)
    assert isinstance(paged[0].amount, Decimal)
    assert [t.id for t in paged] == [t.id for t in whole]
    pages = [dict(r.url.params) for r in recorder.requests]
    assert len(pages) == -(-len(whole) // 7)
    assert [p["page"] for p in pages] == [str(n) for n in range(1, len(pages) + 1)]
    assert {p["per_page"] for p in pages} == {"7"}


def test_iter_transaction_changes_pages_through_an_account(
    client: BankhubClient, linked: Linked
) -> None:
    account = client.list_accounts(login_secret=linked.login_secret)[0]
    expected = client.list_transactions(login_secret=linked.login_secret, account_id=account.id)
    pages = list(
        client.iter_transaction_changes(
            login_secret=linked.login_secret, account_id=account.id, count=5
        )
    )
    assert len(pages) > 1
    assert all(p.has_more for p in pages[:-1])
    assert not pages[-1].has_more
    added = [t.id for p in pages for t in p.added]
    assert sorted(added) == sorted(t.id for t in expected)
    # the last cursor reads nothing new
    again = list(
        client.iter_transaction_changes(
            login_secret=linked.login_secret,
            account_id=account.id,
            cursor=int(pages[-1].next_cursor),
        )
    )
    assert [len(p.added) for p in again] == [0]


def test_a_statement_upload_and_iter_events(client: BankhubClient, linked: Linked) -> None:
    """A multipart upload (``POST /v2/statement``) adds a login and an event beside the linked
    login's; the event iterator reads them all, one a page."""
    imported = client.upload_statement(
        customer_id=linked.customer_id,
        file=(CORPUS / "ofx" / "checking.ofx").open("rb"),
        filename="checking.ofx",
    )
    assert imported.login_created
    assert imported.format == "ofx"
    assert imported.secret
    assert client.list_accounts(login_secret=imported.secret)[0].id == imported.accounts[0].id
    everything = client.list_events(limit=500)
    assert len(everything.data) >= 2
    paged = list(client.iter_events(limit=1))
    assert [e.id for e in paged] == [e.id for e in everything.data]


def test_errors_are_typed_with_code_status_and_request_id(
    bankhub: Bankhub, client: BankhubClient
) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.read_login(login_secret="no-such-login-secret")
    assert missing.value.code == "LoginNotFound"
    assert missing.value.status == 404
    assert missing.value.request_id
    assert missing.value.request_id == missing.value.headers["x-request-id"]

    with pytest.raises(InvalidRequestError) as invalid:
        client.create_customer(identifier="")
    assert invalid.value.code == "DataInvalid"
    assert invalid.value.status == 400
    assert invalid.value.extra, "the problems are listed in extra"

    client.create_customer(identifier="twice")
    with pytest.raises(ConflictError) as exists:
        client.create_customer(identifier="twice")
    assert exists.value.code == "CustomerExists"

    wrong = BankhubClient(
        bankhub.url, client_id=bankhub.app.client_id, service_secret="wrong-secret"
    )
    with wrong, pytest.raises(AuthenticationError) as refused:
        wrong.read_app()
    assert refused.value.code == "CredentialInvalid"
    assert refused.value.status == 400


def test_every_write_carries_a_fresh_uuid4_idempotency_key(bankhub: Bankhub) -> None:
    recorder = Recorder()
    with bankhub.client(http_client=recorder.client()) as client:
        client.create_customer(identifier="key-1")
        client.create_customer(identifier="key-2")
        client.read_app()
    keys = [r.headers.get("idempotency-key") for r in recorder.requests]
    assert keys[2] is None, "a GET carries none"
    first, second = (uuid.UUID(k or "") for k in keys[:2])
    assert first.version == second.version == 4
    assert first != second


def test_a_caller_key_makes_a_repeated_call_run_once(client: BankhubClient) -> None:
    key = f"order-{uuid.uuid4()}"
    one = client.create_customer(identifier="chosen-key", idempotency_key=key)
    two = client.create_customer(identifier="chosen-key", idempotency_key=key)
    assert one.customer_id == two.customer_id


def test_a_lost_answer_is_retried_with_the_same_key_and_replayed(bankhub: Bankhub) -> None:
    transport = LoseFirstAnswer()
    slept: list[float] = []
    with bankhub.client(
        http_client=httpx.Client(transport=transport, timeout=30.0), sleep=slept.append
    ) as client:
        made = client.create_customer(identifier="lost-answer")
        # a second create with a fresh key would be refused: the first one ran
        with pytest.raises(ConflictError):
            client.create_customer(identifier="lost-answer")
    first, second = transport.sent[0], transport.sent[1]
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert transport.answers[0].headers.get("idempotent-replayed") == "true"
    assert len(slept) == 1
    assert made.identifier == "lost-answer"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_oauth_token_is_cached_renewed_before_expiry_and_after_a_401(bankhub: Bankhub) -> None:
    recorder = Recorder()
    clock = Clock()
    with bankhub.client(oauth=True, http_client=recorder.client(), clock=clock) as client:
        client.read_app()
        client.read_app()
        paths = [r.url.path for r in recorder.requests]
        assert paths == ["/oauth/token", "/v2/app", "/v2/app"], "one token for both calls"
        first = recorder.requests[1].headers["authorization"]
        assert first.startswith("Bearer ")
        assert "service-secret" not in recorder.requests[1].headers

        clock.now += 3600 - 30  # inside the last minute of the hour the token lives
        client.read_app()
        assert [r.url.path for r in recorder.requests[3:]] == ["/oauth/token", "/v2/app"]
        second = recorder.requests[4].headers["authorization"]
        assert second != first

        # the server ends the token: the next call is refused once, renews, succeeds
        client.oauth_revoke(second.removeprefix("Bearer "))
        recorder.requests.clear()
        recorder.responses.clear()
        assert client.read_app().client_id == bankhub.app.client_id
        assert [r.url.path for r in recorder.requests] == ["/v2/app", "/oauth/token", "/v2/app"]
        assert recorder.responses[0].status_code == 401
        assert recorder.requests[2].headers["authorization"] != second


def test_the_oauth_calls(bankhub: Bankhub, client: BankhubClient) -> None:
    issued = client.oauth_token(scope="read")
    assert issued.token_type.lower() == "bearer"
    assert issued.scope == "read"
    assert issued.refresh_token
    seen = client.oauth_introspect(issued.access_token)
    assert seen.active
    assert seen.scope == "read"
    renewed = client.oauth_refresh(issued.refresh_token)
    assert renewed.access_token != issued.access_token
    client.oauth_revoke(renewed.access_token)
    assert not client.oauth_introspect(renewed.access_token).active
    assert client.oauth_metadata()["token_endpoint"].endswith("/oauth/token")
    assert client.oauth_jwks()["keys"]
    wrong = BankhubClient(bankhub.url, client_id=bankhub.app.client_id, service_secret="nope")
    with wrong, pytest.raises(AuthenticationError) as refused:
        wrong.oauth_token()
    assert refused.value.code == "invalid_client"
    assert refused.value.status == 401


def test_the_public_oauth_documents_are_read_without_credentials(bankhub: Bankhub) -> None:
    recorder = Recorder()
    with bankhub.client(http_client=recorder.client()) as client:
        assert client.oauth_metadata()["issuer"]
        assert client.oauth_jwks()["keys"]
    for request in recorder.requests:
        assert "authorization" not in request.headers
        assert "service-secret" not in request.headers
        assert request.headers["user-agent"].startswith("bankhub-client/")

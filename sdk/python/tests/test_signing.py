"""Signed requests (RFC 9421) made by the SDK, verified by the session's real server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sdk_support import Bankhub, LoseFirstAnswer, Recorder

from bankhub_client import AuthenticationError, BankhubClient
from bankhub_client.signing import PrivateKey, RequestSigner


def _pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def registered(bankhub: Bankhub) -> Iterator[RequestSigner]:
    """An Ed25519 key of the app (not required: the other tests stay unsigned)."""
    key = ed25519.Ed25519PrivateKey.generate()
    with bankhub.client() as client:
        made = client.add_signature_key(public_key=_pem(key), label="sdk-tests")
        try:
            yield RequestSigner(key, key_id=made.keyid)
        finally:
            client.revoke_signature_key(made.id)


def test_signed_calls_are_accepted(bankhub: Bankhub, registered: RequestSigner) -> None:
    recorder = Recorder()
    with bankhub.client(signer=registered, http_client=recorder.client()) as client:
        assert client.read_app().client_id == bankhub.app.client_id
        made = client.create_customer(identifier="signed-customer")
    assert made.identifier == "signed-customer"
    get, post = recorder.requests
    assert "signature" in get.headers
    assert 'keyid="' + registered.key_id + '"' in get.headers["signature-input"]
    assert "content-digest" in post.headers
    assert '"content-digest"' in post.headers["signature-input"]


def test_a_key_bankhub_does_not_know_is_refused(
    bankhub: Bankhub, registered: RequestSigner
) -> None:
    stranger = RequestSigner(ed25519.Ed25519PrivateKey.generate(), key_id=registered.key_id)
    with bankhub.client(signer=stranger) as client, pytest.raises(AuthenticationError) as refused:
        client.read_app()
    assert refused.value.code == "SignatureInvalid"


def test_a_retry_is_signed_again_with_a_fresh_nonce(
    bankhub: Bankhub, registered: RequestSigner
) -> None:
    transport = LoseFirstAnswer()
    with BankhubClient(
        bankhub.url,
        client_id=bankhub.app.client_id,
        service_secret=bankhub.app.service_secret,
        signer=registered,
        http_client=httpx.Client(transport=transport),
        sleep=lambda _: None,
    ) as client:
        made = client.create_customer(identifier="signed-lost-answer")
    first, second = transport.sent
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["signature-input"] != second.headers["signature-input"]
    assert made.identifier == "signed-lost-answer"


def test_keys_bankhub_refuses_are_refused_before_a_request() -> None:
    with pytest.raises(ValueError, match="3072"):
        RequestSigner(rsa.generate_private_key(65537, 2048), key_id="k")
    with pytest.raises(ValueError, match="P-256"):
        RequestSigner(ec.generate_private_key(ec.SECP384R1()), key_id="k")
    with pytest.raises(ValueError, match="300"):
        RequestSigner(ed25519.Ed25519PrivateKey.generate(), key_id="k", lifetime=600)

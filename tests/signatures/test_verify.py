"""bankhub's RFC 9421 verifier against signatures made by http-message-signatures, without a
server: digests, several signatures, parameters and malformed fields."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from bankhub.errors import DomainError
from bankhub.signatures import keys, verify
from bankhub.signatures.models import SignatureKey
from tests.signatures.signing import Signer, new_private_key, pem

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _key(kind: str = "ed25519") -> tuple[Signer, SignatureKey]:
    private = new_private_key(kind)
    parsed = keys.parse(pem(private), kind if kind.startswith("rsa") else None)
    row = SignatureKey(
        keyid=parsed.keyid,
        label=None,
        algorithm=parsed.algorithm,
        public_key_pem=parsed.pem,
        required=False,
    )
    return Signer(private, parsed.algorithm, parsed.keyid), row


class Nonces:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def claim(self, key: str, until: datetime) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _request(
    headers: dict[str, str], body: bytes, path: str = "/v2/customer"
) -> verify.SignedRequest:
    return verify.SignedRequest(
        "POST", f"http://testserver.local{path}", {k: [v] for k, v in headers.items()}, body
    )


async def _check(request: verify.SignedRequest, *rows: SignatureKey) -> SignatureKey | None:
    return await verify.verify(request, rows, app_id=1, now=NOW, claim=Nonces().claim)


async def test_a_sha_512_digest_is_checked_too() -> None:
    signer, row = _key()
    _, body = signer.headers("POST", "/v2/customer", now=NOW, body={"identifier": "x"})
    digest = base64.b64encode(hashlib.sha512(body).digest()).decode()
    headers, body = signer.headers(
        "POST",
        "/v2/customer",
        now=NOW,
        body={"identifier": "x"},
        headers={"content-digest": f"sha-512=:{digest}:"},
        use_existing_digest=True,
    )
    assert "sha-512" in headers["content-digest"]
    assert await _check(_request(headers, body), row) is row
    with pytest.raises(DomainError) as refused:
        await _check(_request(headers, body + b" "), row)
    assert refused.value.code == "SignatureInvalid"


async def test_one_good_signature_of_several_is_enough() -> None:
    stranger, _ = _key()
    signer, row = _key("ecdsa-p256-sha256")
    first, body = stranger.headers("POST", "/v2/customer", now=NOW, body={"a": 1})
    second, _ = signer.headers("POST", "/v2/customer", now=NOW, body={"a": 1})
    both = {
        **second,
        "signature-input": first["signature-input"].replace("sig1=", "other=")
        + ", "
        + second["signature-input"],
        "signature": first["signature"].replace("sig1=", "other=") + ", " + second["signature"],
    }
    assert await _check(_request(both, body), row) is row
    with pytest.raises(DomainError) as refused:
        await _check(_request(first, body), row)
    assert refused.value.code == "SignatureInvalid"
    assert refused.value.extra["keyid"] == stranger.keyid


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signature-input", "sig1=not a list"),
        ("signature", "sig1=:not base64!:"),
        ("signature", "other=:AAAA:"),
        ("content-digest", "sha-256=plain"),
        ("content-digest", "md5=:AAAA:"),
    ],
)
async def test_malformed_fields_are_signature_invalid(field: str, value: str) -> None:
    signer, row = _key()
    headers, body = signer.headers("POST", "/v2/customer", now=NOW, body={"a": 1})
    headers[field] = value
    with pytest.raises(DomainError) as refused:
        await _check(_request(headers, body), row)
    assert refused.value.code == "SignatureInvalid"


async def test_an_alg_other_than_the_keys_is_refused() -> None:
    signer, row = _key("rsa-pss-sha512")
    headers, body = signer.headers("POST", "/v2/customer", now=NOW, body={"a": 1})
    row.algorithm = keys.RSA_V15
    with pytest.raises(DomainError) as refused:
        await _check(_request(headers, body), row)
    assert "rsa-v1_5-sha256" in refused.value.message


async def test_a_nonce_is_spent_only_by_a_signature_that_verifies() -> None:
    signer, row = _key()
    nonces = Nonces()
    headers, body = signer.headers("POST", "/v2/customer", now=NOW, body={"a": 1}, nonce="n-1")
    with pytest.raises(DomainError):
        await verify.verify(
            _request(headers, body, "/v2/other"), [row], app_id=1, now=NOW, claim=nonces.claim
        )
    assert nonces.seen == set()
    assert await verify.verify(
        _request(headers, body), [row], app_id=1, now=NOW, claim=nonces.claim
    )
    with pytest.raises(DomainError) as replayed:
        await verify.verify(_request(headers, body), [row], app_id=1, now=NOW, claim=nonces.claim)
    assert replayed.value.code == "SignatureReplayed"


async def test_the_window_edges() -> None:
    signer, row = _key()
    windows = [
        # exactly 300 s apart and not expired, then within the clock skew: accepted
        (NOW - timedelta(seconds=299), NOW + timedelta(seconds=1), None),
        (NOW + timedelta(seconds=30), NOW + timedelta(minutes=2), None),
        # expiring now: refused
        (NOW - timedelta(minutes=1), NOW, "SignatureExpired"),
    ]
    for created, expires, code in windows:
        headers, body = signer.headers(
            "POST", "/v2/customer", now=NOW, body={"a": 1}, created=created, expires=expires
        )
        if code is None:
            assert await _check(_request(headers, body), row) is row
            continue
        with pytest.raises(DomainError) as refused:
            await _check(_request(headers, body), row)
        assert refused.value.code == code

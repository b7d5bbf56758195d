"""Signed API requests (RFC 9421, docs/signatures.md): keys registered through the API, requests
signed by ``http-message-signatures`` accepted, and every way a signature can fail refused
with its code, nothing done, and counted towards the address block."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select

from bankhub.customers.models import Customer
from bankhub.db import tenancy
from bankhub.signatures.keys import thumbprint
from tests.conftest import Harness
from tests.security.edge import audit_entries, client_from, envelope, new_process
from tests.signatures.signing import Signer, new_private_key, openssh, pem

KEY_TYPES = ["ed25519", "ecdsa-p256-sha256", "rsa-pss-sha512", "rsa-v1_5-sha256"]


def jwk(key: Any) -> str:
    numbers = key.public_key().public_numbers()

    def b64(value: int, size: int) -> str:
        import base64

        return base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()

    return json.dumps(
        {"kty": "EC", "crv": "P-256", "x": b64(numbers.x, 32), "y": b64(numbers.y, 32)}
    )


async def register(
    h: Harness, public_key: str, *, required: bool = False, **fields: Any
) -> dict[str, Any]:
    answer = await h.client.post(
        "/v2/signature/key",
        headers=h.headers(),
        json={"public_key": public_key, "required": required, **fields},
    )
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def new_signer(h: Harness, kind: str = "ed25519", *, required: bool = False) -> Signer:
    key = new_private_key(kind)
    text = {"ed25519": pem, "rsa-pss-sha512": openssh}.get(kind, pem)(key)
    if kind == "ecdsa-p256-sha256":
        text = jwk(key)
    extra = {"algorithm": kind} if kind == "rsa-v1_5-sha256" else {}
    data = await register(h, text, required=required, **extra)
    assert data["algorithm"] == kind
    return Signer(key, kind, data["keyid"])


async def customers(h: Harness) -> int:
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def signed_post(h: Harness, signer: Signer, identifier: str, **options: Any) -> Any:
    headers, body = signer.headers(
        "POST",
        "/v2/customer",
        now=h.clock(),
        body={"identifier": identifier},
        headers=h.headers(),
        **options,
    )
    return await h.client.post("/v2/customer", headers=headers, content=body)


@pytest.mark.parametrize("kind", KEY_TYPES)
async def test_requests_signed_with_each_key_type_are_accepted(harness: Harness, kind: str) -> None:
    """A GET and a POST with a body, signed by http-message-signatures with an Ed25519 key (PEM),
    an ECDSA P-256 key (JWK), an RSA 3072 key (OpenSSH line) for RSA-PSS and for PKCS#1 v1.5,
    are accepted, the key being required; the keyid is the RFC 7638 thumbprint."""
    h = harness
    signer = await new_signer(h, kind, required=True)
    assert signer.keyid == thumbprint(signer.key.public_key())
    headers, _ = signer.headers(
        "GET", "/v2/signature/key?from=1", now=h.clock(), headers=h.headers()
    )
    listed = await h.client.get("/v2/signature/key?from=1", headers=headers)
    assert listed.status_code == 200, listed.text
    created = await signed_post(h, signer, f"signed-{kind}")
    assert created.status_code == 200, created.text
    assert await customers(h) == 1


async def test_a_label_names_the_key_too(harness: Harness) -> None:
    h = harness
    key = new_private_key("ed25519")
    await register(h, openssh(key), label="ci-signer")
    answer = await signed_post(h, Signer(key, "ed25519", "ci-signer"), "labelled")
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("method", "SignatureInvalid"),
        ("path", "SignatureInvalid"),
        ("query", "SignatureInvalid"),
        ("body", "SignatureInvalid"),
        ("no-digest-covered", "SignatureInvalid"),
        ("no-target-uri", "SignatureInvalid"),
        ("no-nonce", "SignatureInvalid"),
        ("expired", "SignatureExpired"),
        ("future", "SignatureExpired"),
        ("window", "SignatureExpired"),
        ("unknown-key", "SignatureInvalid"),
        ("unsigned", "SignatureRequired"),
    ],
)
async def test_a_refused_signature_does_nothing(harness: Harness, tamper: str, code: str) -> None:
    """Each failure answers 401 with its code in the seed's envelope, and the signed POST
    stores nothing."""
    h = harness
    signer = await new_signer(h, required=True)
    now = h.clock()
    options: dict[str, Any] = {}
    path, method = "/v2/customer", "POST"
    body: dict[str, Any] = {"identifier": "never"}
    if tamper == "expired":
        options = {"created": now - timedelta(minutes=3), "expires": now - timedelta(seconds=1)}
    elif tamper == "future":
        options = {"created": now + timedelta(minutes=2), "expires": now + timedelta(minutes=3)}
    elif tamper == "window":
        options = {"created": now, "expires": now + timedelta(minutes=5, seconds=1)}
    elif tamper == "no-target-uri":
        options = {"covered": ("@method", "@path", "@authority")}
    elif tamper == "unknown-key":
        signer = Signer(new_private_key("ed25519"), "ed25519", signer.keyid + "x")
    headers, content = signer.headers(
        "POST", "/v2/customer", now=now, body=body, headers=h.headers(), **options
    )
    if tamper == "method":
        method = "PUT"
    elif tamper == "path":
        path = "/v2/customer/"
    elif tamper == "query":
        path = "/v2/customer?extra=1"
    elif tamper == "body":
        content = json.dumps({"identifier": "other"}).encode()
    elif tamper == "no-digest-covered":
        headers["signature-input"] = headers["signature-input"].replace(' "content-digest"', "")
    elif tamper == "no-nonce":
        headers, content = signer.headers(
            "POST", "/v2/customer", now=now, body=body, headers=h.headers(), with_nonce=False
        )
    elif tamper == "unsigned":
        headers = {k: v for k, v in headers.items() if not k.startswith("signature")}
    answer = await h.client.request(method, path, headers=headers, content=content)
    if tamper == "method":
        # PUT has no route here: what matters is that nothing is stored
        assert answer.status_code in (401, 405), answer.text
    else:
        assert answer.status_code == 401, answer.text
        assert envelope(answer)["error"] == code, answer.text
    assert await customers(h) == 0


async def test_a_replayed_signature_is_refused(harness: Harness) -> None:
    h = harness
    signer = await new_signer(h)
    headers, body = signer.headers(
        "POST", "/v2/customer", now=h.clock(), body={"identifier": "once"}, headers=h.headers()
    )
    first = await h.client.post("/v2/customer", headers=headers, content=body)
    assert first.status_code == 200, first.text
    again = await h.client.post("/v2/customer", headers=headers, content=body)
    assert again.status_code == 401
    assert envelope(again)["error"] == "SignatureReplayed"
    # another process of the same installation (memory store: the embedded mode's one process
    # is the case here; tests/scale covers processes sharing Redis)
    assert await customers(h) == 1


async def test_a_replay_with_the_same_idempotency_key_is_refused(harness: Harness) -> None:
    """The Idempotency-Key middleware authenticates first: the nonce is spent once per request,
    and a replay is refused rather than answered from the stored answer."""
    h = harness
    signer = await new_signer(h)
    headers, body = signer.headers(
        "POST",
        "/v2/customer",
        now=h.clock(),
        body={"identifier": "idem"},
        headers={**h.headers(), "idempotency-key": "k-1"},
    )
    first = await h.client.post("/v2/customer", headers=headers, content=body)
    assert first.status_code == 200, first.text
    again = await h.client.post("/v2/customer", headers=headers, content=body)
    assert envelope(again)["error"] == "SignatureReplayed"


async def test_a_revoked_key_no_longer_signs(harness: Harness) -> None:
    h = harness
    signer = await new_signer(h)
    keys = (await h.client.get("/v2/signature/key", headers=h.headers())).json()["data"]
    revoked = await h.client.delete(f"/v2/signature/key/{keys[0]['id']}", headers=h.headers())
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["data"]["revoked_at"] is not None
    answer = await signed_post(h, signer, "after-revoke")
    assert envelope(answer)["error"] == "SignatureInvalid"
    # no active key left: unsigned requests are served again
    assert (await h.client.get("/v2/signature/key", headers=h.headers())).status_code == 200
    assert await customers(h) == 0
    actions = [e.action for e in await audit_entries(h.hub, "signature_key.revoked")]
    assert actions == ["signature_key.revoked"]


async def test_an_optional_key_lets_unsigned_requests_through(harness: Harness) -> None:
    h = harness
    signer = await new_signer(h, required=False)
    unsigned = await h.client.post("/v2/customer", headers=h.headers(), json={"identifier": "u"})
    assert unsigned.status_code == 200, unsigned.text
    signed = await signed_post(h, signer, "s")
    assert signed.status_code == 200, signed.text


async def test_the_target_uri_behind_a_trusted_proxy(harness: Harness) -> None:
    """Behind a trusted proxy that says X-Forwarded-Proto: https, the signer signed an https
    URI; a client outside the trusted networks cannot claim it."""
    h = harness
    h.hub.settings.trusted_proxies = "10.0.0.0/8"
    signer = await new_signer(h, required=True)
    headers, body = signer.headers(
        "POST",
        "/v2/customer",
        now=h.clock(),
        body={"identifier": "proxied"},
        headers={**h.headers(), "x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"},
        base_url="https://testserver.local",
    )
    app = new_process(h.hub)
    async with client_from(app, "198.51.100.7") as direct:
        refused = await direct.post("/v2/customer", headers=headers, content=body)
    assert envelope(refused)["error"] == "SignatureInvalid"
    async with client_from(app, "10.1.2.3") as proxy:
        accepted = await proxy.post("/v2/customer", headers=headers, content=body)
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize(
    ("make", "field", "words"),
    [
        (
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "public_key",
            "3072",
        ),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "public_key", "P-256"),
    ],
)
async def test_weak_keys_are_refused(harness: Harness, make: Any, field: str, words: str) -> None:
    answer = await harness.client.post(
        "/v2/signature/key", headers=harness.headers(), json={"public_key": pem(make())}
    )
    assert answer.status_code == 400
    body = envelope(answer)
    assert body["error"] == "DataInvalid"
    assert body["extra"]["problems"] == [field]
    assert words in body["message"]


async def test_keys_in_bad_shape_are_refused_by_field(harness: Harness) -> None:
    h = harness
    private = new_private_key("ed25519")
    from cryptography.hazmat.primitives import serialization

    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    private_jwk = json.dumps({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "d": "AAAA"})
    for public_key, field in [
        ("not a key", "public_key"),
        (private_pem, "public_key"),
        (private_jwk, "public_key"),
        ('{"kty": "oct", "k": "c2VjcmV0"}', "public_key"),
    ]:
        answer = await h.client.post(
            "/v2/signature/key", headers=h.headers(), json={"public_key": public_key}
        )
        assert envelope(answer)["extra"]["problems"] == [field], answer.text
    wrong_alg = await h.client.post(
        "/v2/signature/key",
        headers=h.headers(),
        json={"public_key": pem(private), "algorithm": "rsa-pss-sha512"},
    )
    assert envelope(wrong_alg)["extra"]["problems"] == ["algorithm"]
    listed = await h.client.get("/v2/signature/key", headers=h.headers())
    assert listed.json()["data"] == []


async def test_key_changes_are_audited_with_who_did_them(harness: Harness) -> None:
    h = harness
    data = await register(h, pem(new_private_key("ed25519")), label="audited")
    entries = await audit_entries(h.hub, "signature_key.added")
    assert [(e.target_id, e.detail["keyid"]) for e in entries] == [(data["id"], data["keyid"])]
    assert entries[0].actor == f"app:{h.creds['client_id']}"
    assert data["created_by"] == entries[0].actor
    assert data["source"] == "uploaded"


async def test_signature_keys_need_the_master_scope(harness: Harness) -> None:
    h = harness
    made = await h.client.post("/v2/keys", headers=h.headers(), json={"scope": "write"})
    secret = made.json()["data"]["secret"]
    headers = {**h.headers(), "service-secret": secret}
    refused = await h.client.get("/v2/signature/key", headers=headers)
    assert envelope(refused)["error"] == "InsufficientScope"


BLOCKING = {
    "block_enabled": True,
    "block_failures": 3,
    "block_window_seconds": 60,
    "block_seconds": 600,
    "block_cache_seconds": 0,
}


@pytest.mark.parametrize("harness", [BLOCKING], indirect=True)
async def test_refused_signatures_count_towards_the_address_block(harness: Harness) -> None:
    """A refused signature is a failed authentication (S18): three block the address, even
    though the API key itself is right."""
    h = harness
    signer = await new_signer(h, required=True)
    app = new_process(h.hub)
    async with client_from(app, "198.51.100.66") as attacker:
        for _ in range(3):
            headers, body = signer.headers(
                "POST",
                "/v2/customer",
                now=h.clock(),
                body={"identifier": "x"},
                headers=h.headers(),
            )
            tampered = await attacker.post(
                "/v2/customer", headers=headers, content=body.replace(b"x", b"y")
            )
            assert envelope(tampered)["error"] == "SignatureInvalid"
        blocked = await attacker.get("/v2/signature/key", headers=h.headers())
        assert envelope(blocked)["error"] == "AddressBlocked"


async def test_refused_signatures_are_audited_as_failed_authentications(harness: Harness) -> None:
    """A refused signature is written to the audit log like a refused secret: one
    ``auth.failed`` entry per address, reason and app a minute, with its count."""
    h = harness
    signer = await new_signer(h, required=True)
    for _ in range(2):
        assert envelope(await h.client.get("/v2/signature/key", headers=h.headers()))["error"] == (
            "SignatureRequired"
        )
    await h.hub.audit.flush()
    failed = await audit_entries(h.hub, "auth.failed")
    assert [(e.detail["reason"], e.detail["count"]) for e in failed] == [("SignatureRequired", 2)]
    assert failed[0].app_id is not None
    assert signer.keyid not in str(failed[0].detail)


async def test_registering_a_key_honours_idempotency_key(harness: Harness) -> None:
    h = harness
    body = {"public_key": openssh(new_private_key("ed25519")), "label": "once"}
    headers = {**h.headers(), "idempotency-key": "register-once"}
    first = await h.client.post("/v2/signature/key", headers=headers, json=body)
    again = await h.client.post("/v2/signature/key", headers=headers, json=body)
    assert first.status_code == again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    listed = (await h.client.get("/v2/signature/key", headers=h.headers())).json()["data"]
    assert [k["id"] for k in listed] == [first.json()["data"]["id"]]

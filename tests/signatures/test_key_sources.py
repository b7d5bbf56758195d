"""Signature keys synced from a URL the partner keeps (docs/signatures.md "Keys from your GitHub
account"), driven by a real HTTP server on 127.0.0.1 serving an ``authorized_keys`` file as
``https://github.com/USER.keys`` does, and a JWKS: requests signed by ``http-message-signatures``
with a key added there are accepted after one sync and refused after one sync once it is gone
(in every process), ETag/304 honoured, failures keep the last good set without widening it and
fail closed after the grace, refused keys skipped and reported, and the SSRF guard applied to the
source and to its redirects. The mail and dashboard side: tests/dashboard/test_key_sources.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from bankhub.db import tenancy
from bankhub.errors import DomainError
from bankhub.jobs.runner import Runner
from bankhub.signatures import sync
from bankhub.signatures.fetch import KeyFetcher
from bankhub.signatures.keys import thumbprint
from bankhub.signatures.models import SignatureKey, SignatureKeySource
from tests.conftest import Harness
from tests.security.edge import audit_entries, client_from, new_process
from tests.signatures.key_host import KeyHost, key_host
from tests.signatures.signing import PrivateKey, Signer, new_private_key, openssh

PERIOD = timedelta(seconds=300)


@pytest.fixture
def host() -> Iterator[KeyHost]:
    with key_host() as running:
        yield running


def ssh(key: PrivateKey, comment: str = "") -> str:
    return openssh(key) + (f" {comment}" if comment else "")


def _jwk_of(key: PrivateKey) -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(public, as_dict=True))
    if isinstance(public, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(public, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(public, as_dict=True))


async def add_source(h: Harness, url: str, *, required: bool = False) -> dict[str, Any]:
    answer = await h.client.post(
        "/v2/signature/source", headers=h.headers(), json={"url": url, "required": required}
    )
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def sources(h: Harness) -> list[dict[str, Any]]:
    answer = await h.client.get("/v2/signature/source", headers=h.headers())
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def keys(h: Harness) -> list[dict[str, Any]]:
    answer = await h.client.get("/v2/signature/key", headers=h.headers())
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


async def sweep(h: Harness, *, after: timedelta = PERIOD) -> dict[str, int]:
    """One sweep of the runner's key sources, ``after`` the last one."""
    h.clock.advance(seconds=after.total_seconds())
    with tenancy.everything():
        return await Runner(h.hub).key_sources.sweep()


async def signed_get(h: Harness, key: PrivateKey, client: httpx.AsyncClient | None = None) -> Any:
    signer = Signer(key, _algorithm(key), thumbprint(key.public_key()))
    headers, _ = signer.headers("GET", "/v2/signature/key", now=h.clock(), headers=h.headers())
    return await (client or h.client).get("/v2/signature/key", headers=headers)


def _algorithm(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa-p256-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa-pss-sha512"
    return "ed25519"


def active(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k["keyid"]: k for k in listed if k["revoked_at"] is None}


async def test_a_key_added_at_the_source_works_after_one_sync_and_a_removed_one_is_refused(
    harness: Harness, host: KeyHost
) -> None:
    """The API names a ``.keys`` URL; its key signs at once (the first sync runs when the source
    is added), a key added there signs after one sweep, and a key removed there is refused from
    the next request after the sweep, in this process and in another one."""
    h = harness
    first, second = new_private_key("ed25519"), new_private_key("ecdsa-p256-sha256")
    host.keys_file("/user.keys", ssh(first, "laptop"), "")
    url = host.url("/user.keys")
    source = await add_source(h, url)
    assert (source["state"], source["keys"], source["skipped"]) == ("ok", 1, [])
    assert source["id"].startswith("ks_")
    assert (await signed_get(h, first)).status_code == 200
    (kept,) = active(await keys(h)).values()
    assert kept["source"] == f"synced:{url}"
    assert kept["source_id"] == source["id"]
    assert kept["created_by"] == f"sync:{source['id']}"

    host.keys_file("/user.keys", ssh(first, "laptop"), ssh(second, "ci"))
    refused = await signed_get(h, second)
    assert refused.json()["error"] == "SignatureInvalid"  # not synced yet
    assert await sweep(h) == {"ok": 1}
    assert (await signed_get(h, second)).status_code == 200
    now_active = active(await keys(h))
    assert now_active[kept["keyid"]]["id"] == kept["id"]  # unchanged keys keep their id

    other = new_process(h.hub)
    async with client_from(other, "127.0.0.1") as elsewhere:
        assert (await signed_get(h, first, elsewhere)).status_code == 200
        host.keys_file("/user.keys", ssh(second, "ci"))
        assert await sweep(h) == {"ok": 1}
        for client in (h.client, elsewhere):
            gone = await signed_get(h, first, client)
            assert gone.status_code == 401
            assert gone.json()["error"] == "SignatureInvalid"
        assert (await signed_get(h, second, elsewhere)).status_code == 200
    revoked = {k["keyid"]: k for k in await keys(h)}[kept["keyid"]]
    assert revoked["revoked_by"] == f"sync:{source['id']}"
    added = await audit_entries(h.hub, "signature_key.added")
    assert [e.actor for e in added] == [f"sync:{source['id']}"] * 2
    assert added[0].detail["source"] == f"synced:{url}"
    (gone_entry,) = await audit_entries(h.hub, "signature_key.revoked")
    assert gone_entry.detail["by"] == {"source": url, "reason": "gone from the source"}
    (added_entry,) = await audit_entries(h.hub, "signature_source.added")
    assert added_entry.detail["url"] == url


async def test_the_etag_is_sent_back_and_a_304_counts_as_a_good_sync(
    harness: Harness, host: KeyHost
) -> None:
    h = harness
    key = new_private_key("ed25519")
    host.keys_file("/user.keys", ssh(key))
    source = await add_source(h, host.url("/user.keys"))
    before = active(await keys(h))
    assert host.conditional == []
    await sweep(h)
    await sweep(h)
    assert host.conditional == ["/user.keys", "/user.keys"]
    assert host.not_modified == 2
    (state,) = await sources(h)
    assert state["state"] == "ok"
    assert state["last_good_at"] > source["last_good_at"]
    assert active(await keys(h)) == before
    # a changed document is a whole answer again
    host.keys_file("/user.keys", ssh(key), ssh(new_private_key("ed25519")))
    await sweep(h)
    assert host.not_modified == 2
    assert len(active(await keys(h))) == 2


async def test_two_runners_fetch_a_source_once_per_period(harness: Harness, host: KeyHost) -> None:
    h = harness
    host.keys_file("/user.keys", ssh(new_private_key("ed25519")))
    await add_source(h, host.url("/user.keys"))
    asked = len(host.asked)
    h.clock.advance(seconds=PERIOD.total_seconds())
    with tenancy.everything():
        one, two = Runner(h.hub).key_sources, Runner(h.hub).key_sources
        # both find the source due before either claims it: one claim wins
        both = await asyncio.gather(
            sync.claim_due(h.hub.db, h.clock(), PERIOD, 10),
            sync.claim_due(h.hub.db, h.clock(), PERIOD, 10),
        )
        assert sorted(len(taken) for taken in both) == [0, 1]
        h.clock.advance(seconds=PERIOD.total_seconds())
        assert await one.sweep() == {"ok": 1}
        assert await two.sweep() == {}
        h.clock.advance(seconds=PERIOD.total_seconds() - 1)
        assert await one.sweep() == {}
    assert len(host.asked) == asked + 1


async def test_a_jwks_source_with_kid_labels_and_the_required_choice(
    harness: Harness, host: KeyHost
) -> None:
    """A JWKS (by content type): each key's ``kid`` becomes its label (a signature may name it),
    the source's ``required`` is given to its keys, and a private JWK, an encryption key and a
    2048-bit RSA key are skipped with their reasons."""
    h = harness
    signer_key = new_private_key("ecdsa-p256-sha256")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = dict(ec_private_jwk := _private_jwk())
    document = {
        "keys": [
            {**_jwk_of(signer_key), "kid": "partner-2026", "use": "sig"},
            {**_jwk_of(weak), "kid": "old-rsa"},
            {**private, "kid": "oops"},
            {**_jwk_of(new_private_key("ed25519")), "kid": "enc", "use": "enc"},
            "not an object",
        ]
    }
    assert "d" in ec_private_jwk
    host.serve("/jwks.json", "application/jwk-set+json", json.dumps(document).encode())
    source = await add_source(h, host.url("/jwks.json"), required=True)
    assert (source["state"], source["keys"]) == ("ok", 1)
    skipped = " | ".join(source["skipped"])
    assert "key 2 (old-rsa): RSA keys must have at least 3072 bits; this one has 2048" in skipped
    assert "key 3 (oops)" in skipped
    assert "private key" in skipped
    assert "key 4 (enc): its use is enc, not sig" in skipped
    assert "key 5: not a JWK object" in skipped
    unsigned = await h.client.get("/v2/signature/key", headers=h.headers())
    assert unsigned.json()["error"] == "SignatureRequired"
    signer = Signer(signer_key, "ecdsa-p256-sha256", "partner-2026")
    headers, _ = signer.headers("GET", "/v2/signature/key", now=h.clock(), headers=h.headers())
    listed = await h.client.get("/v2/signature/key", headers=headers)
    assert listed.status_code == 200, listed.text
    (key,) = active(listed.json()["data"]).values()
    assert (key["label"], key["required"]) == ("partner-2026", True)


def _private_jwk() -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm

    return dict(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True))


async def test_refused_and_garbage_lines_are_skipped_and_reported(
    harness: Harness, host: KeyHost
) -> None:
    h = harness
    good = new_private_key("rsa-pss-sha512")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    host.keys_file(
        "/user.keys",
        "# the team's keys",
        ssh(weak, "old"),
        openssh(p384),
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP old-dsa",
        "ssh-ed25519 not-base64-at-all",
        "garbage that is no key",
        "",
        ssh(good, "build"),
    )
    source = await add_source(h, host.url("/user.keys"))
    assert (source["state"], source["keys"]) == ("ok", 1)
    assert source["skipped"] == [
        "line 2: RSA keys must have at least 3072 bits; this one has 2048",
        "line 3: key type ecdsa-sha2-nistp384 is not accepted",
        "line 4: key type ssh-dss is not accepted",
        "line 5: public_key must be a PEM public key (SubjectPublicKeyInfo), an OpenSSH "
        "public-key line or a JWK (ValueError)",
        "line 6: key type garbage is not accepted",
    ]
    assert (await signed_get(h, good)).status_code == 200


async def test_an_answer_with_no_usable_key_is_a_failure_but_an_empty_one_revokes(
    harness: Harness, host: KeyHost
) -> None:
    """A 200 whose entries are all refused (a broken page, more likely than a decision) keeps
    the keys; a 200 with no entry at all (GitHub's answer for a user without keys) is the
    partner removing every key: they are revoked."""
    h = harness
    key = new_private_key("ed25519")
    host.keys_file("/user.keys", ssh(key))
    await add_source(h, host.url("/user.keys"))
    host.serve("/user.keys", "text/html", b"<!doctype html><title>Sign in</title>")
    await sweep(h)
    (state,) = await sources(h)
    assert state["state"] == "failing"
    assert state["last_error"].startswith("no key in the answer could be used")
    assert (await signed_get(h, key)).status_code == 200
    host.serve("/user.keys", "text/plain", b"")
    await sweep(h)
    (state,) = await sources(h)
    assert (state["state"], state["keys"]) == ("ok", 0)
    assert (await signed_get(h, key)).json()["error"] == "SignatureInvalid"
    assert [e.action for e in await audit_entries(h.hub, "signature_source.recovered")] == [
        "signature_source.recovered"
    ]


async def test_a_failing_source_keeps_its_keys_within_the_grace_then_they_stop_working(
    harness: Harness, host: KeyHost
) -> None:
    """Server stopped: the last good set is kept (never widened) until the grace after the last
    good sync, then revoked; a good sync later brings the keys back."""
    h = harness
    key = new_private_key("ed25519")
    host.keys_file("/user.keys", ssh(key))
    source = await add_source(h, host.url("/user.keys"))
    grace = h.hub.settings.signature_sync_grace
    host.stop()
    await sweep(h)
    (state,) = await sources(h)
    assert state["state"] == "failing"
    assert "ConnectError" in state["last_error"]
    assert state["grace_until"] is not None
    assert (await signed_get(h, key)).status_code == 200
    # the grace runs from the last good sync; its end is acted on by the first sync after it
    await sweep(h, after=grace - PERIOD - timedelta(seconds=1))
    assert (await signed_get(h, key)).status_code == 200
    await sweep(h)
    (state,) = await sources(h)
    assert (state["state"], state["keys"]) == ("expired", 0)
    refused = await signed_get(h, key)
    assert refused.json()["error"] == "SignatureInvalid"
    (revoked,) = [k for k in await keys(h) if k["revoked_at"]]
    assert revoked["revoked_by"] == f"sync:{source['id']}"
    (expired,) = await audit_entries(h.hub, "signature_source.grace_expired")
    assert expired.detail["revoked"] == 1
    assert len(await audit_entries(h.hub, "signature_source.failed")) == 1

    with key_host() as back:
        back.keys_file("/user.keys", ssh(key))
        with tenancy.everything():
            async with h.hub.db.transaction() as db:
                row = await db.scalar(select(SignatureKeySource))
                assert row is not None
                row.url = back.url("/user.keys")
        await sweep(h)
        assert back.conditional == []  # the etag was dropped with the keys
    (state,) = await sources(h)
    assert (state["state"], state["keys"]) == ("ok", 1)


async def test_a_failure_never_adds_keys(harness: Harness, host: KeyHost) -> None:
    """A body past the cap after a new key was listed: nothing of it is taken."""
    h = harness
    key = new_private_key("ed25519")
    host.keys_file("/user.keys", ssh(key))
    await add_source(h, host.url("/user.keys"))
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            row = await db.scalar(select(SignatureKeySource))
            assert row is not None
            row.url = host.url("/huge.keys")
    await sweep(h)
    (state,) = await sources(h)
    assert state["state"] == "failing"
    assert "64 KiB" in state["last_error"]
    assert len(active(await keys(h))) == 1


async def test_a_key_a_person_revoked_is_not_brought_back(harness: Harness, host: KeyHost) -> None:
    h = harness
    key = new_private_key("ed25519")
    host.keys_file("/user.keys", ssh(key))
    await add_source(h, host.url("/user.keys"))
    (synced,) = active(await keys(h)).values()
    answer = await h.client.delete(f"/v2/signature/key/{synced['id']}", headers=h.headers())
    assert answer.status_code == 200
    host.keys_file("/user.keys", ssh(key), "")  # a whole answer again, not a 304
    await sweep(h)
    (state,) = await sources(h)
    assert state["keys"] == 0
    assert "revoked here by a person" in state["skipped"][0]
    assert (await signed_get(h, key)).json()["error"] == "SignatureInvalid"


async def test_removing_a_source_revokes_its_keys_and_limits_hold(
    harness: Harness, host: KeyHost
) -> None:
    h = harness
    key = new_private_key("ed25519")
    host.keys_file("/user.keys", ssh(key))
    source = await add_source(h, host.url("/user.keys"))
    twice = await h.client.post(
        "/v2/signature/source", headers=h.headers(), json={"url": host.url("/user.keys")}
    )
    assert twice.status_code == 400
    assert twice.json()["error"] == "DataInvalid"
    for n in range(2):
        host.keys_file(f"/more{n}.keys", "")
        await add_source(h, host.url(f"/more{n}.keys"))
    fourth = await h.client.post(
        "/v2/signature/source", headers=h.headers(), json={"url": host.url("/more9.keys")}
    )
    assert "at most 3 key sources" in fourth.json()["message"]
    removed = await h.client.delete(f"/v2/signature/source/{source['id']}", headers=h.headers())
    assert removed.status_code == 200, removed.text
    assert removed.json()["data"]["id"] == source["id"]
    assert (await signed_get(h, key)).json()["error"] == "SignatureInvalid"
    assert len(await sources(h)) == 2
    missing = await h.client.delete(f"/v2/signature/source/{source['id']}", headers=h.headers())
    assert missing.status_code == 404
    (entry,) = await audit_entries(h.hub, "signature_source.removed")
    assert entry.target_id == source["id"]


async def test_the_ssrf_guard_refuses_private_sources_and_redirects_to_them(
    harness: Harness, host: KeyHost
) -> None:
    """Outside development a source naming a loopback or private address is refused when it is
    added; and whatever the setting, a redirect is checked again: one to 0.0.0.0 (which would
    reach this very host) is refused and never followed."""
    h = harness
    strict = KeyFetcher(h.hub.http, allow_private=False, allow_http=True)
    for url in (host.url("/user.keys"), "http://10.1.2.3/keys", "http://[::1]/keys"):
        with tenancy.everything():
            async with h.hub.db.transaction() as db:
                app_id = await _app_id(h, db)
                with pytest.raises(DomainError) as refused:
                    await sync.add_source(
                        db,
                        app_id,
                        url=url,
                        required=False,
                        fetcher=strict,
                        now=h.clock(),
                        actor="test",
                    )
        assert refused.value.extra["problems"] == ["url"]
        assert "This URL cannot be a key source" in refused.value.message
    https_only = KeyFetcher(h.hub.http, allow_private=True, allow_http=False)
    with pytest.raises(DomainError, match="scheme must be https"):
        await sync.check_url(host.url("/user.keys"), https_only)
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            assert await db.scalar(select(SignatureKeySource)) is None

    host.keys_file("/user.keys", ssh(new_private_key("ed25519")))
    source = await add_source(h, host.url("/to-unspecified.keys"))
    assert (source["state"], source["grace_until"]) == ("failing", None)  # nothing to keep
    assert "0.0.0.0" in source["last_error"]  # noqa: S104  # nosec B104 - compared, not bound
    assert "/user.keys" not in host.asked
    moved = await add_source(h, host.url("/moved.keys"))
    assert (moved["state"], moved["keys"]) == ("ok", 1)
    bad = await h.client.post(
        "/v2/signature/source",
        headers=h.headers(),
        json={"url": "http://user:secret@127.0.0.1/keys"},
    )
    assert bad.json()["error"] == "DataInvalid"
    assert "secret" not in bad.text


async def _app_id(h: Harness, db: Any) -> int:
    from bankhub.partners.models import App

    app_id = await db.scalar(select(App.id).where(App.client_id == h.creds["client_id"]))
    assert isinstance(app_id, int)
    return app_id


async def test_synced_keys_never_exceed_the_apps_key_limit(harness: Harness, host: KeyHost) -> None:
    h = harness
    many = [new_private_key("ed25519") for _ in range(22)]
    host.keys_file("/user.keys", *(ssh(k) for k in many))
    source = await add_source(h, host.url("/user.keys"))
    assert source["keys"] == 20
    assert source["skipped"][-1].endswith("at most 20 active signature keys; revoke one first")
    with tenancy.everything():
        async with h.hub.db.transaction() as db:
            count = len(list(await db.scalars(select(SignatureKey))))
    assert count == 20


async def test_the_background_runner_syncs_key_sources(harness: Harness, host: KeyHost) -> None:
    """The runner's loop has the sweep: one pass after the period takes a key added there."""
    h = harness
    host.keys_file("/user.keys", ssh(new_private_key("ed25519")))
    await add_source(h, host.url("/user.keys"))
    host.keys_file("/user.keys", ssh(new_private_key("ed25519")), ssh(new_private_key("ed25519")))
    h.clock.advance(seconds=h.hub.settings.signature_sync_seconds)
    await Runner(h.hub).run_once()
    (state,) = await sources(h)
    assert state["keys"] == 2

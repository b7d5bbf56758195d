"""The dashboard's Signatures page: an app's signature keys listed for every member, added and
revoked by the roles that manage API keys after re-authentication, each change audited; the
API honours what the page did at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from bankhub.audit.models import AuditEntry
from bankhub.dashboard.roles import Role
from bankhub.sftp import hostkey
from bankhub.signatures.models import SignatureKey
from tests.conftest import BASE_URL, Harness
from tests.dashboard.support import Visitor, make_member
from tests.signatures.signing import Signer, new_private_key, openssh

Visitors = Callable[..., Visitor]


def _page(h: Harness) -> str:
    return f"/dashboard/apps/{h.creds['client_id']}/signatures"


async def _keys(h: Harness) -> list[SignatureKey]:
    async with h.hub.db.transaction() as db:
        return list((await db.execute(select(SignatureKey).order_by(SignatureKey.id))).scalars())


async def _audit(h: Harness, action: str) -> list[AuditEntry]:
    async with h.hub.db.transaction() as db:
        return list(
            (await db.execute(select(AuditEntry).where(AuditEntry.action == action))).scalars()
        )


async def test_add_after_reauthentication_then_revoke(harness: Harness, visitors: Visitors) -> None:
    h = harness
    person = await make_member(h, Role.DEVELOPER)
    v = visitors()
    await v.sign_in(person)
    page = _page(h)
    assert "No signature keys yet" in (await v.get(page)).text
    assert 'href="' + page + '"' in (await v.get(f"/dashboard/apps/{h.creds['client_id']}")).text
    key = new_private_key("ed25519")
    form = {"public_key": openssh(key), "label": "from-dashboard", "required": "on"}
    h.clock.advance(minutes=6)  # past the re-authentication window
    gated = await v.post(page, form, headers={"referer": f"{BASE_URL}{page}"})
    assert gated.status_code == 303
    assert gated.headers["location"].startswith("/dashboard/reauth?pending=")
    assert await _keys(h) == []
    await v.get(gated.headers["location"])
    ok = await v.post(
        "/dashboard/reauth", {"password": person.password, "code": person.code(h), "next": page}
    )
    assert ok.status_code == 303
    weak = await v.post(page, {"public_key": "ssh-rsa AAAA"})
    assert "public_key must be" in weak.text
    added = await v.post(page, form)
    assert added.status_code == 303, added.text
    shown = (await v.get(added.headers["location"])).text
    (row,) = await _keys(h)
    assert row.keyid in shown
    assert row.fingerprint in shown
    assert "<td>required</td>" in shown
    assert row.created_by == f"member:{person.email}"
    # the API requires the signature from now on, and accepts one made with the key
    unsigned = await h.client.get("/v2/signature/key", headers=h.headers())
    assert unsigned.json()["error"] == "SignatureRequired"
    signer = Signer(key, "ed25519", "from-dashboard")
    headers, _ = signer.headers("GET", "/v2/signature/key", now=h.clock(), headers=h.headers())
    assert (await h.client.get("/v2/signature/key", headers=headers)).status_code == 200

    revoked = await v.post(f"{page}/{row.public_id}/revoke", {})
    assert revoked.status_code == 303
    assert "revoked" in (await v.get(revoked.headers["location"])).text
    assert (await h.client.get("/v2/signature/key", headers=h.headers())).status_code == 200
    assert [e.target_id for e in await _audit(h, "signature_key.added")] == [row.public_id]
    (entry,) = await _audit(h, "signature_key.revoked")
    assert entry.actor == f"member:{person.email}"


async def test_a_viewer_sees_the_keys_but_no_form_and_a_forged_post_is_refused(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    person = await make_member(h, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    page = (await v.get(_page(h))).text
    assert "Signatures of" in page
    assert 'id="add-signature-key"' not in page
    forged = await v.post(_page(h), {"public_key": openssh(new_private_key("ed25519"))})
    assert forged.status_code == 403
    assert await _keys(h) == []
    refused = await _audit(h, "member.refused")
    assert [e.detail["action"] for e in refused] == ["keys.manage"]


@pytest.mark.parametrize("harness", [{"sftp_port": 2222}], indirect=True)
async def test_the_page_shows_the_sftp_host_key_to_pin(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    person = await make_member(h, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    text = (await v.get(_page(h))).text
    assert "bankhub sftp --fingerprint" in text  # the drop never started on this data dir
    key = hostkey.load_or_create(h.hub.settings.data_dir)
    text = (await v.get(_page(h))).text
    assert f"ED25519 {hostkey.fingerprint(key)}" in text
    assert f"-P 2222 {h.creds['client_id']}@" in text

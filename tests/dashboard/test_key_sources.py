"""Key sources on the dashboard's Signatures page and in the team's mail: added, synced now and
removed after re-authentication; a source that cannot be reached keeps its keys and raises the
alert (a mail caught by a real SMTP server on loopback, and the page's alert), and after the
grace its keys stop working and the team is told again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

from bankhub.dashboard.roles import Role
from bankhub.db import tenancy
from bankhub.jobs.runner import Runner
from bankhub.signatures.keys import thumbprint
from tests.conftest import BASE_URL, Harness
from tests.dashboard.conftest import SmtpServer
from tests.dashboard.support import Visitor, make_member
from tests.dashboard.test_alerts import _smtp, mail_out
from tests.security.edge import audit_entries
from tests.signatures.key_host import key_host
from tests.signatures.signing import Signer, new_private_key, openssh

Visitors = Callable[..., Visitor]


def _page(h: Harness) -> str:
    return f"/dashboard/apps/{h.creds['client_id']}/signatures"


def _body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    text: str = part.get_content()
    return text


async def _sweep(h: Harness, seconds: float) -> None:
    h.clock.advance(seconds=seconds)
    with tenancy.everything():
        await Runner(h.hub).key_sources.sweep()


async def test_sources_added_synced_and_removed_on_the_page_after_reauthentication(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    key = new_private_key("ed25519")
    person = await make_member(h, Role.DEVELOPER)
    v = visitors()
    await v.sign_in(person)
    page = _page(h)
    assert "No key sources" in (await v.get(page)).text
    with key_host() as host:
        host.keys_file("/user.keys", openssh(key) + " laptop", "ssh-dss AAAAB3NzaC1kc3M= old")
        url = host.url("/user.keys")
        h.clock.advance(minutes=6)  # past the re-authentication window
        gated = await v.post(f"{page}/sources", {"url": url}, headers={"referer": BASE_URL + page})
        assert gated.headers["location"].startswith("/dashboard/reauth?pending=")
        assert host.asked == []
        await v.get(gated.headers["location"])
        await v.post(
            "/dashboard/reauth", {"password": person.password, "code": person.code(h), "next": page}
        )
        added = await v.post(f"{page}/sources", {"url": url, "required": "on"})
        assert added.status_code == 303, added.text
        shown = (await v.get(added.headers["location"])).text
        assert "The key source was added and synced" in shown
        assert url in shown
        assert "line 2: key type ssh-dss is not accepted" in shown
        assert thumbprint(key.public_key()) in shown
        signer = Signer(key, "ed25519", thumbprint(key.public_key()))
        headers, _ = signer.headers("GET", "/v2/signature/key", now=h.clock(), headers=h.headers())
        assert (await h.client.get("/v2/signature/key", headers=headers)).status_code == 200
        unsigned = await h.client.get("/v2/signature/key", headers=h.headers())
        assert unsigned.json()["error"] == "SignatureRequired"  # the source's required choice

        headers, _ = signer.headers(
            "GET", "/v2/signature/source", now=h.clock(), headers=h.headers()
        )
        listed = await h.client.get("/v2/signature/source", headers=headers)
        (source,) = listed.json()["data"]
        asked = len(host.asked)
        synced = await v.post(f"{page}/sources/{source['id']}/sync", {})
        assert synced.status_code == 303
        assert "The key source was synced" in (await v.get(synced.headers["location"])).text
        assert len(host.asked) == asked + 1
        assert host.conditional == ["/user.keys"]

        missing = await v.post(f"{page}/sources/ks_missing/sync", {})
        assert missing.status_code == 404
        removed = await v.post(f"{page}/sources/{source['id']}/remove", {})
        assert removed.status_code == 303
        after = (await v.get(removed.headers["location"])).text
        assert "the keys it brought are revoked" in after
        assert "No key sources" in after
    assert (await h.client.get("/v2/signature/key", headers=h.headers())).status_code == 200
    (entry,) = await audit_entries(h.hub, "signature_source.removed")
    assert entry.actor == f"member:{person.email}"


async def test_a_viewer_sees_sources_but_cannot_add_one(
    harness: Harness, visitors: Visitors
) -> None:
    h = harness
    person = await make_member(h, Role.VIEWER)
    v = visitors()
    await v.sign_in(person)
    shown = (await v.get(_page(h))).text
    assert "Key sources" in shown
    assert 'id="add-signature-source"' not in shown
    forged = await v.post(f"{_page(h)}/sources", {"url": "http://127.0.0.1:9/keys"})
    assert forged.status_code == 403
    with tenancy.everything():
        assert await audit_entries(h.hub, "signature_source.added") == []


async def test_an_unreachable_source_alerts_the_team_and_fails_closed_after_the_grace(
    harness: Harness, visitors: Visitors, smtp_server: SmtpServer
) -> None:
    h = harness
    await _smtp(h, smtp_server.host, smtp_server.port)
    developer = await make_member(h, Role.DEVELOPER)
    await make_member(h, Role.VIEWER)  # may not manage keys: not mailed
    key = new_private_key("ed25519")
    signer = Signer(key, "ed25519", thumbprint(key.public_key()))

    async def signed_status() -> int:
        headers, _ = signer.headers("GET", "/v2/app", now=h.clock(), headers=h.headers())
        return (await h.client.get("/v2/app", headers=headers)).status_code

    with key_host() as host:
        host.keys_file("/user.keys", openssh(key))
        url = host.url("/user.keys")
        answer = await h.client.post("/v2/signature/source", headers=h.headers(), json={"url": url})
        assert answer.json()["data"]["state"] == "ok"
        host.stop()
        await _sweep(h, 300)
        assert await signed_status() == 200  # the last good set is kept
        await _sweep(h, 300)  # a second failure: no second mail
        assert await mail_out(h) == 1
        (first,) = smtp_server.messages
        assert first["To"] == developer.email
        assert "cannot be synced" in first["Subject"]
        body = _body(first)
        assert url in body
        assert "ConnectError" in body
        grace = h.hub.settings.signature_sync_grace
        assert f"{h.clock() - timedelta(seconds=600) + grace:%Y-%m-%d %H:%M} UTC" in body

        v = visitors()
        await v.sign_in(developer)
        shown = (await v.get(_page(h))).text
        assert 'class="notice key-source-alert" role="alert"' in shown
        assert "the keys of its last good sync are kept for now" in shown

        await _sweep(h, grace.total_seconds())
        assert await signed_status() == 401
        await mail_out(h)
        (second,) = [m for m in smtp_server.messages if "were revoked" in str(m["Subject"])]
        assert second["To"] == developer.email
        v = visitors()  # a day later: signed in again
        await v.sign_in(developer)
        shown = (await v.get(_page(h))).text
        assert "could not be synced within its grace time" in shown
    (failed,) = await audit_entries(h.hub, "signature_source.failed")
    assert failed.detail["url"] == url
    assert len(await audit_entries(h.hub, "signature_source.grace_expired")) == 1

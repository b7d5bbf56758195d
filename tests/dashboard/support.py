"""A member's browser for the dashboard over the in-process app (httpx), with the test's clock.

``Visitor`` keeps cookies and the CSRF token of the last page, so a test reads like a person
using the dashboard: ``await b.get("/dashboard/team")``, ``await b.post(".../invite", {...})``.
TOTP codes come from pyotp at the injected clock's time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp

from bankhub.dashboard import services, totp
from bankhub.dashboard.models import Member
from bankhub.dashboard.roles import Role
from tests.conftest import BASE_URL, Harness

PASSWORD = "a quiet harbour at dawn"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Person:
    email: str
    password: str
    seed: str
    role: str

    def code(self, h: Harness, *, steps: int = 0) -> str:
        return pyotp.TOTP(self.seed).at(h.clock().timestamp() + steps * totp.STEP_SECONDS)


class Visitor:
    """One visitor's browser: its own cookie jar, over the same app as the harness."""

    def __init__(self, h: Harness, *, base_url: str = BASE_URL) -> None:
        self.h = h
        transport = h.client._transport
        self.client = httpx.AsyncClient(transport=transport, base_url=base_url)
        self.csrf = ""
        self.last: httpx.Response | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def _remember(self, response: httpx.Response) -> httpx.Response:
        self.last = response
        found = _CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._remember(await self.client.get(path, **kwargs))

    async def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A form post with the page's CSRF token (unless given) and our own Origin."""
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        sent = {"origin": BASE_URL, **(headers or {})}
        return self._remember(await self.client.post(path, data=form, headers=sent))

    async def open(self, path: str) -> httpx.Response:
        """GET and follow redirects, as a person clicking a link would."""
        return self._remember(await self.client.get(path, follow_redirects=True))

    async def sign_in(self, person: Person, *, steps: int = 0) -> httpx.Response:
        await self.get("/dashboard/sign-in")
        first = await self.post(
            "/dashboard/sign-in", {"email": person.email, "password": person.password}
        )
        assert first.status_code == 303, first.text
        assert first.headers["location"] == "/dashboard/sign-in/code"
        await self.get("/dashboard/sign-in/code")
        second = await self.post(
            "/dashboard/sign-in/code", {"code": person.code(self.h, steps=steps)}
        )
        assert second.status_code == 303, second.text
        assert second.headers["location"] == "/dashboard"
        return second

    def session_cookie(self) -> str | None:
        return self.client.cookies.get("bankhub_dash")


async def make_member(
    h: Harness, role: Role | str, email: str | None = None, *, password: str = PASSWORD
) -> Person:
    """A member with TOTP already set up (as if enrolled), created through the services."""
    address = email or f"{Role(role).value}@example.com"
    hub = h.hub
    async with hub.db.transaction() as db:
        member = await services.create_member(
            db, hub.keyring, h.clock(), address, password, Role(role)
        )
        seed = services.seed_of(hub.keyring, member)
        member.totp_confirmed_at = h.clock()
    return Person(address, password, totp.seed_text(seed), Role(role).value)


async def member_row(h: Harness, email: str) -> Member | None:
    async with h.hub.db.transaction() as db:
        return await services.member_by_email(db, email)


def csrf_of(text: str) -> str:
    found = _CSRF.search(text)
    assert found, text[:2000]
    return found.group(1)


async def invitation_page(v: Visitor, posted: httpx.Response) -> httpx.Response:
    """Follow an invitation's post (a new one, or one sent again) to the one page that shows
    its outcome; a reload of that page invites nobody again and shows nothing (410)."""
    assert posted.status_code == 303, posted.text
    location = posted.headers["location"]
    assert location.startswith("/dashboard/team/invited/"), location
    shown = await v.get(location)
    assert shown.status_code == 200, shown.text
    again = await v.get(location)
    assert again.status_code == 410
    assert "shown once already" in again.text
    return shown


_RECOVERY_CODE = re.compile(r"<li><code>([a-z2-7]{5}-[a-z2-7]{5})</code></li>")


async def recovery_codes_page(
    v: Visitor, posted: httpx.Response
) -> tuple[httpx.Response, list[str]]:
    """Follow a post that made new recovery codes (an enrolment, a reset, a renewal) to the one
    page that shows them, and its codes; a reload of that page shows none (410) and makes none."""
    assert posted.status_code == 303, posted.text
    location = posted.headers["location"]
    assert location.startswith("/dashboard/account/recovery-codes/"), location
    shown = await v.get(location)
    assert shown.status_code == 200, shown.text
    codes = _RECOVERY_CODE.findall(shown.text)
    assert len(codes) == 10, shown.text
    again = await v.get(location)
    assert again.status_code == 410
    assert "shown once already" in again.text
    assert not _RECOVERY_CODE.findall(again.text)
    return shown, codes

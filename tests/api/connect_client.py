"""Driving the connect page over plain HTTP, as a browser without JavaScript would."""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.conftest import BASE_URL, Harness

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FORM_STEP = re.compile(r'name="step" value="([^"]+)"')
WAY_BACK = re.compile(r'id="return" href="([^"]+)"')
#: the page shown while the bank has not answered a login step yet
WAITING = "is taking a moment to answer"
#: the progress page of an account connect (the first fetch)
FETCHING = "Fetching your accounts"
#: the progress page while a payment (or the cancellation of one) goes to the bank
PAYMENT_PROGRESS = ("Sending your payment to", "to cancel your payment…")
CALLBACK = "http://localhost:2000/v2"


@dataclass
class Callback:
    payload: dict[str, Any]
    location: str


def parse_callback(location: str) -> dict[str, Any]:
    last = urlsplit(location).path.rsplit("/", 1)[-1]
    result: dict[str, Any] = json.loads(unquote(last))
    return result


def way_back(page: str) -> Callback:
    """The "Return to the app" link of a page that ends the flow, and the payload it carries."""
    match = WAY_BACK.search(page)
    assert match, page
    location = html.unescape(match.group(1))
    assert location.startswith(CALLBACK + "/"), location
    return Callback(parse_callback(location), location)


async def create_customer(h: Harness, identifier: str = "sample-identifier-user") -> str:
    response = await h.client.post(
        "/v2/customer", json={"identifier": identifier}, headers=h.headers()
    )
    assert response.status_code == 200, response.text
    customer_id: str = response.json()["data"]["customer_id"]
    return customer_id


async def create_token(h: Harness, customer_id: str, service_id: int = 1) -> str:
    response = await h.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": service_id, "callback_url": CALLBACK},
        headers=h.headers(),
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["data"]["connect_url"]
    return url


class ConnectDriver:
    """One user on the connect page; each method posts a form and follows to the next page."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.page = ""
        self.status = 0

    async def open(self, connect_url: str) -> str:
        path = connect_url.removeprefix(BASE_URL)
        response = await self.h.client.get(path, follow_redirects=False)
        self.status = response.status_code
        if response.status_code == 303:
            return await self.show()
        self.page = response.text
        return self.page

    async def show(self) -> str:
        response = await self.h.client.get("/v2/connect/session", follow_redirects=False)
        self.status = response.status_code
        self.page = response.text if response.status_code != 303 else ""
        self.location = response.headers.get("location", "")
        return self.page

    def csrf(self) -> str:
        match = CSRF.search(self.page)
        assert match, self.page
        return match.group(1)

    def form_step(self) -> dict[str, str]:
        """The bank step the page's form was shown for, as a browser sends it back."""
        match = FORM_STEP.search(self.page)
        return {"step": match.group(1)} if match else {}

    async def post(self, path: str, form: dict[str, str]) -> str:
        form = {"csrf": self.csrf(), **self.form_step(), **form}
        response = await self.h.client.post(path, data=form, follow_redirects=False)
        assert response.status_code == 303, (response.status_code, response.text)
        await self.show()
        return await self.settle()

    #: the progress page may stand before a further bank step (see :class:`PaymentDriver`)
    waits_past_progress = False
    #: what the progress page says
    progress: tuple[str, ...] = (FETCHING,)

    def in_progress(self) -> bool:
        return any(words in self.page for words in self.progress)

    def _waiting(self) -> bool:
        if WAITING in self.page:
            return True
        return self.waits_past_progress and self.in_progress()

    async def settle(self, rounds: int = 400) -> str:
        """Past the waiting page, as its refresh would: the page after the bank's answer."""
        for _ in range(rounds):
            if not self._waiting():
                return self.page
            await asyncio.sleep(0.02)
            await self.show()
        raise AssertionError("the bank never answered the login step")

    async def agree(self) -> str:
        return await self.post("/v2/connect/consent", {"action": "agree"})

    async def login(self, username: str, password: str = "pass_good") -> str:
        return await self.post(
            "/v2/connect/credentials", {"username": username, "password": password}
        )

    async def answer(self, **form: str) -> str:
        return await self.post("/v2/connect/answer", form)

    async def cancel(self) -> Callback:
        await self.post("/v2/connect/cancel", {})
        return Callback(parse_callback(self.location), self.location)

    async def finish(self, rounds: int = 400) -> Callback:
        """Wait on the progress page until the flow redirects to the callback."""
        for _ in range(rounds):
            if self.status == 303 and self.location.startswith(CALLBACK):
                return Callback(parse_callback(self.location), self.location)
            if not self.in_progress() and WAITING not in self.page:
                raise AssertionError(f"not on the progress page: {self.page[:2000]}")
            await asyncio.sleep(0.02)
            await self.show()
        raise AssertionError("the first fetch did not finish")

    async def end(self, rounds: int = 400) -> Callback:
        """Wait until the flow ends: the callback it redirects to, or the page's way back."""
        for _ in range(rounds):
            if self.status == 303 and self.location.startswith(CALLBACK):
                return Callback(parse_callback(self.location), self.location)
            if not self.in_progress() and WAITING not in self.page:
                return way_back(self.page)
            await asyncio.sleep(0.02)
            await self.show()
        raise AssertionError("the flow did not end")


class PaymentDriver(ConnectDriver):
    """A user authorising a payment: after a step the page may show progress while the bank
    prepares the next one (the account choice, the payment's own code), and on a busy machine
    for longer than the step's wait; the page refreshes past it, as a browser would, until the
    next step or the end of the flow."""

    waits_past_progress = True
    progress = PAYMENT_PROGRESS


async def connect(
    h: Harness, username: str = "user_good", service_id: int = 1, customer_id: str | None = None
) -> dict[str, Any]:
    """A whole successful connect with the sandbox; returns the callback payload."""
    customer_id = customer_id or await create_customer(
        h, f"customer-{username}-{secrets.token_hex(4)}"
    )
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer_id, service_id))
    await driver.agree()
    await driver.login(username)
    callback = await driver.finish()
    assert callback.payload["status"] == "success", callback.payload
    return callback.payload


async def reconnect(h: Harness, secret: str, username: str) -> dict[str, Any]:
    """A whole successful reconnect of the login named by ``secret``; the callback payload."""
    response = await h.client.post(
        "/v2/token/reconnect",
        json={"callback_url": CALLBACK},
        headers=h.headers(login_secret=secret),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["connect_url"].endswith(data["id"])
    driver = ConnectDriver(h)
    await driver.open(data["connect_url"])
    await driver.agree()
    await driver.login(username)
    callback = await driver.finish()
    assert callback.payload["status"] == "success", callback.payload
    return callback.payload

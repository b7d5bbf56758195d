"""Shared steps of the statement API tests: a customer, an upload, what is stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bankhub.accounts.models import Account, Transaction
from bankhub.db import tenancy
from bankhub.logins.models import Login
from tests.conftest import Harness


async def new_customer(h: Harness, identifier: str = "stmt-user") -> str:
    response = await h.client.post(
        "/v2/customer", json={"identifier": identifier}, headers=h.headers()
    )
    assert response.status_code == 200, response.text
    customer_id: str = response.json()["data"]["customer_id"]
    return customer_id


def multipart_headers(h: Harness, **kwargs: Any) -> dict[str, str]:
    headers = h.headers(**kwargs)
    del headers["content-type"]
    return headers


async def upload(
    h: Harness,
    customer_id: str,
    name: str,
    data: bytes,
    login_id: int | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    form = {"customer_id": customer_id}
    if login_id is not None:
        form["login_id"] = str(login_id)
    return await h.client.post(
        "/v2/statement",
        data=form,
        files={"file": (name, data, "application/octet-stream")},
        headers=headers or multipart_headers(h),
    )


async def stored(h: Harness) -> tuple[int, int, int]:
    """How many logins, accounts and transactions the database holds, all apps together."""
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            counts = [
                (await session.execute(select(func.count()).select_from(model))).scalar_one()
                for model in (Login, Account, Transaction)
            ]
    return counts[0], counts[1], counts[2]

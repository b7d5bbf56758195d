"""What a member's session holds for one use: secrets to show once, and a form post that waits
for the member's password and code.

* **Secrets** (a new app's, a new or rolled key's, an invitation's link, a member's new recovery
  codes): the post that made them keeps them here and answers with a redirect to a page that
  shows them once (post/redirect/get). A reload, the back button or a second tab finds them used
  and creates nothing; the secret is never in a URL, a log line or a cache (the page is
  ``no-store``).
* **Actions**: a change that needs a recent re-authentication (S7), posted when the last one is
  too old, is kept with its form; once the member gives password and code it is carried out,
  once, instead of being thrown away.

Rows are bound to the session that made them (another session, even the same member's, finds
nothing), live a few minutes, are encrypted under the data keyring bound to their row, and lose
their payload the moment they are used. Ending a session deletes its rows.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import as_utc
from bankhub.dashboard.models import PendingItem
from bankhub.security.crypto import Cipher, associated_data

Kind = Literal["secret", "action", "invite", "recovery"]
#: how long secrets wait for the page that shows them (it is the redirect's target: seconds)
SECRET_LIFETIME = timedelta(minutes=5)
#: how long a change waits for the member's password and code
ACTION_LIFETIME = timedelta(minutes=10)
LIFETIMES: dict[str, timedelta] = {
    "secret": SECRET_LIFETIME,
    "action": ACTION_LIFETIME,
    # an invitation's outcome (and its link when it was not mailed), for the team page
    "invite": SECRET_LIFETIME,
    # a member's new recovery codes (after enrolment, a reset or a renewal), for their one page
    "recovery": SECRET_LIFETIME,
}
#: the largest payload kept (a form of the dashboard is far smaller)
MAX_PAYLOAD = 64_000


class PayloadTooLarge(ValueError):
    """The form is larger than a pending action may hold."""


@dataclass(frozen=True, slots=True)
class Taken:
    """What a handle named: ``fresh`` with its payload (now used), ``used`` (shown or carried
    out already), or ``missing`` (never this session's, or expired)."""

    state: Literal["fresh", "used", "missing"]
    payload: dict[str, Any] | None = None
    used_at: datetime | None = None


def _aad(row: PendingItem) -> bytes:
    return associated_data("-", "member_pending", "payload", f"{row.session_id}:{row.handle}")


async def keep(
    session: AsyncSession,
    box: Cipher,
    now: datetime,
    session_id: int,
    kind: Kind,
    payload: dict[str, Any],
) -> str:
    """Keep ``payload`` for one use by the session ``session_id``; returns its handle."""
    text = json.dumps(payload, separators=(",", ":"))
    if len(text) > MAX_PAYLOAD:
        raise PayloadTooLarge(f"{len(text)} characters")
    # what expired is of no use to anyone: gone whenever something new is kept
    await session.execute(delete(PendingItem).where(PendingItem.expires_at <= now))
    row = PendingItem(
        handle=secrets.token_urlsafe(24),
        session_id=session_id,
        kind=kind,
        created_at=now,
        expires_at=now + LIFETIMES[kind],
    )
    row.payload_enc = box.encrypt_text(text, _aad(row))
    session.add(row)
    await session.flush()
    return row.handle


async def _find(
    session: AsyncSession, session_id: int, handle: str, kind: Kind
) -> PendingItem | None:
    if not handle or len(handle) > 43:
        return None
    query = select(PendingItem).where(
        PendingItem.handle == handle,
        PendingItem.session_id == session_id,
        PendingItem.kind == kind,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def take(
    session: AsyncSession, box: Cipher, now: datetime, session_id: int, handle: str, kind: Kind
) -> Taken:
    """The payload of ``handle`` for this session, used up by this call (the caller's unit of
    work commits that); a second call finds it ``used``."""
    row = await _find(session, session_id, handle, kind)
    if row is None or as_utc(row.expires_at) <= now:
        return Taken("missing")
    if row.payload_enc is None:
        return Taken("used", used_at=row.used_at)
    payload = json.loads(box.decrypt_text(row.payload_enc, _aad(row)))
    row.payload_enc = None
    row.used_at = now
    await session.flush()
    return Taken("fresh", payload if isinstance(payload, dict) else {}, now)


async def peek(
    session: AsyncSession, box: Cipher, now: datetime, session_id: int, handle: str, kind: Kind
) -> dict[str, Any] | None:
    """The payload of a waiting ``handle`` of this session, left waiting (None if none)."""
    row = await _find(session, session_id, handle, kind)
    if row is None or row.payload_enc is None or as_utc(row.expires_at) <= now:
        return None
    payload = json.loads(box.decrypt_text(row.payload_enc, _aad(row)))
    return payload if isinstance(payload, dict) else None

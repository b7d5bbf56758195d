"""Whether a bank session belongs to the same person as the login it would renew.

A reconnect pours what the bank returns into the login's accounts, so it must be the same bank
identity: someone who logs in as another bank user on a reconnect link would otherwise merge a
second person's accounts and history into the first one's. Two kinds of evidence, strongest
first:

1. the connector's identity key (``IdentityCapability``: the bank's user id or login name),
   kept with the login as a keyed hash from its first connect on;
2. the account set: the accounts' numbers or IBANs (the same keyed match keys the sync uses to
   find an account again) and the bank's account ids. Used when either side has no identity
   key (a bank that does not say who approved, a file, a login made before bankhub kept the
   key): the same identity shares at least one account.

A login that has neither (no key and no account stored) has nothing another person's data could
be mixed into, and takes the new identity.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts.models import Account
from bankhub.connectors.base import Connector, IdentityCapability
from bankhub.logins.models import Login
from bankhub.security.pan import mask_optional
from bankhub.sync.engine import FetchResult, SyncEngine

#: the purpose label of the identity key's keyed hash
BANK_IDENTITY = "bank-identity"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Who a bank session says it is: a keyed hash of the identity key, and its accounts."""

    identity: str | None
    match_keys: frozenset[str]
    bank_ids: frozenset[str]


def evidence(
    engine: SyncEngine, connector_id: str, connector: Connector, result: FetchResult
) -> Evidence:
    """What a session that logged in and fetched ``result`` shows of its identity."""
    key = connector.identity() if isinstance(connector, IdentityCapability) else None
    identity = engine.hasher.hash(f"{connector_id}|{key}", purpose=BANK_IDENTITY) if key else None
    records = [fetched.record for fetched in result.accounts]
    match_keys = {engine.record_match_key(record) for record in records}
    return Evidence(
        identity,
        frozenset(k for k in match_keys if k),
        # stored bank ids are masked (a card account's id may be its number): compare masked
        frozenset(b for r in records if (b := mask_optional(r.bank_id))),
    )


async def is_same(session: AsyncSession, engine: SyncEngine, login: Login, shown: Evidence) -> bool:
    """Whether ``shown`` is the bank identity ``login`` belongs to (see the module's rules)."""
    if login.bank_identity and shown.identity:
        return hmac.compare_digest(login.bank_identity, shown.identity)
    accounts = (
        await session.scalars(
            select(Account).where(Account.app_id == login.app_id, Account.login_id == login.id)
        )
    ).all()
    if not accounts:
        return True
    known_keys = {account.match_key for account in accounts if account.match_key}
    known_ids = {b for account in accounts if (b := engine.account_bank_id(account))}
    return bool(known_keys & shown.match_keys or known_ids & shown.bank_ids)


def remember(login: Login, shown: Evidence) -> None:
    """Keep the identity key with the login once it is proved (or first seen)."""
    if shown.identity:
        login.bank_identity = shown.identity

"""Scopes: what a credential may do (S2, S15).

``read`` reads, ``write`` also changes data, ``master`` also manages the app's keys and settings.
Every route declares the scope it needs in its ``opt`` (``opt={"scope": "read"}``); routes that
need no app credential say ``public`` (the catalogue, media, health, OAuth endpoints) or
``connect`` (the hosted pages, authorised by their single-use token), or ``dashboard`` (the
team's pages, authorised by a member's session and the action the route declares, see
``bankhub.dashboard.roles``). A route with no
declaration is refused: deny by default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    MASTER = "master"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, value: str) -> Scope | None:
        try:
            return cls(value)
        except ValueError:
            return None


_RANK = {Scope.READ: 1, Scope.WRITE: 2, Scope.MASTER: 3}

#: route declarations that need no app credential
PUBLIC = "public"
CONNECT = "connect"
DASHBOARD = "dashboard"
DECLARATIONS = frozenset({PUBLIC, CONNECT, DASHBOARD, *(s.value for s in Scope)})


def read() -> dict[str, Any]:
    return {"scope": Scope.READ.value}


def write() -> dict[str, Any]:
    return {"scope": Scope.WRITE.value}


def master() -> dict[str, Any]:
    return {"scope": Scope.MASTER.value}


def public() -> dict[str, Any]:
    return {"scope": PUBLIC}


def connect() -> dict[str, Any]:
    return {"scope": CONNECT}


def declared(opt: dict[str, Any]) -> str | None:
    value = opt.get("scope")
    return value if isinstance(value, str) and value in DECLARATIONS else None

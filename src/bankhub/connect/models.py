"""Which process holds each connect session (docs/operations.md, "Connect sessions across
processes").

A session's state lives in the memory of the API process that opened it (the connector may hold
the user's credentials while it logs in, and those are never written anywhere). What is stored
here is only how to find that process: keyed hashes of the session's cookie and of the
``state`` its bank's redirect carries (never the values), the process's id and internal URL,
and the session's connect token (used already: it names the app for the way back).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class ConnectRoute(Base):
    __tablename__ = "connect_routes"

    #: HMAC-SHA-256 of the session id (the cookie) under the server pepper
    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: HMAC-SHA-256 of the bank redirect's ``state``
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[str] = mapped_column(String(36))
    #: the process that holds the session: a random id per start, and where peers reach it
    owner: Mapped[str] = mapped_column(String(32))
    owner_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: no request can name the session after this (its cookie and link are gone)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: the owner shut down: the session went with it
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

"""One row per partner API call an app made (``bankhub.requestlog``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime

#: a busy app makes billions of calls in a few years: PostgreSQL's bigint, SQLite's rowid
REQUEST_ID = BigInteger().with_variant(Integer(), "sqlite")


class ApiRequest(Base):
    """What the app's caller sent and got, never what it said: no body, no query string, no
    header, no secret. ``route`` is the route's template (``/v2/keys/{key_id}``), not the path.
    """

    __tablename__ = "api_requests"
    __table_args__ = (
        # the page: one app's calls, newest first, paged by id
        Index("ix_api_requests_app_id_id", "app_id", "id"),
        Index("ix_api_requests_app_id_request_id", "app_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(REQUEST_ID, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    #: when the call arrived
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(SmallInteger)
    #: from the call's arrival to its answer's start, in microseconds
    latency_us: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(64))
    #: the envelope's ``error`` of a refused call
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: the API key that made the call (directly, through a bearer token, or as OAuth client)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: ``key``, ``bearer`` (an OAuth access token granted with ``key_id``) or ``oauth-client``
    via: Mapped[str] = mapped_column(String(16))

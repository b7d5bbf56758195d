"""What the database knows, read when ``/metrics`` is scraped.

Gauges of shared state are computed from the database rather than kept by any one process: the
webhook queue and the due syncs are the same whichever API process is scraped, and no worker
has to be alive for them to be right. Two small aggregate queries per scrape, across every app
(the operator's view, S14).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bankhub.clock import as_utc
from bankhub.db import tenancy
from bankhub.hub import Hub
from bankhub.logins.models import Login
from bankhub.sync.refresh import RETRYABLE
from bankhub.webhooks.models import WebhookDelivery


@dataclass(frozen=True, slots=True)
class Shared:
    pending_deliveries: int
    #: how long the oldest pending delivery has been due (0 when none is)
    delivery_lag_seconds: float
    due_syncs: int
    #: how long the login whose scheduled sync is most overdue has waited (0 when none is)
    sync_lag_seconds: float


def _lag(now: datetime, oldest: datetime | None) -> float:
    return max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0


async def read(hub: Hub) -> Shared:
    now = hub.clock()
    with tenancy.everything():
        async with hub.db.transaction() as session:
            pending, oldest_delivery = (
                await session.execute(
                    select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(
                        WebhookDelivery.status == "pending"
                    )
                )
            ).one()
            due, oldest_sync = (
                await session.execute(
                    select(func.count(), func.min(Login.next_sync_at)).where(
                        Login.active.is_(True),
                        Login.status.in_(RETRYABLE),
                        Login.next_sync_at <= now,
                    )
                )
            ).one()
    return Shared(int(pending), _lag(now, oldest_delivery), int(due), _lag(now, oldest_sync))


class SharedCollector(Collector):
    """The values read above, as Prometheus gauges for one scrape."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def collect(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> Iterator[Metric]:
        shared = self.shared
        yield GaugeMetricFamily(
            "bankhub_webhook_queue_depth",
            "Webhook deliveries waiting to be sent (pending), across every app",
            value=shared.pending_deliveries,
        )
        yield GaugeMetricFamily(
            "bankhub_webhook_queue_lag_seconds",
            "How long the longest-due pending webhook delivery has been due",
            value=shared.delivery_lag_seconds,
        )
        yield GaugeMetricFamily(
            "bankhub_syncs_due",
            "Logins whose scheduled sync is due and not yet done",
            value=shared.due_syncs,
        )
        yield GaugeMetricFamily(
            "bankhub_sync_due_lag_seconds",
            "How long the most overdue scheduled sync has been due",
            value=shared.sync_lag_seconds,
        )

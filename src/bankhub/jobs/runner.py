"""bankhub's background work, composed: the generic loop (``jobs.loop``) with the sources and
sweeps of each domain registered. The same runner serves ``bankhub serve`` on SQLite (embedded)
and ``bankhub worker`` processes on PostgreSQL; ``jobs.loop`` says why that matters.

- scheduled syncs (``sync.source``), under their own lease per run;
- webhook deliveries, and disabling an endpoint that answered 410 Gone (``webhooks.source``);
- the outbox: mails to the team queued by a change's own unit of work (``jobs.outbox``), sent
  by the dashboard's handlers (``dashboard.alerts.TeamMail``);
- the consent sweep: notices before consents end, and their end (``logins.consent``), which
  queues the team's consent mail in its unit of work;
- housekeeping: retention, expired Idempotency-Keys, sealing rows stored in clear, finished
  outbox rows (``lifecycle.housekeeping``);
- the daily import of GoCardless' institution lists (``banks.gocardless``);
- imported banks' logos fetched and kept (``banks.logos``);
- the payments sweep: status polls, reconciling payments sent and never answered, expiring
  payments nobody authorised (``payments.sweep``);
- signature keys synced from the URLs apps name (``signatures.sync``).

This module is the composition root of background work: the only one here that knows which
domains there are. The loop knows its sources only as ``jobs.loop.Source`` and ``Sweep``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from bankhub.banks.gocardless import InstitutionRefresh
from bankhub.banks.logos import LogoFetcher, LogoSweep
from bankhub.dashboard.alerts import TeamMail, queue_consent_notices
from bankhub.hub import Hub
from bankhub.jobs import outbox
from bankhub.jobs.identity import Identity
from bankhub.jobs.loop import Loop
from bankhub.lifecycle.housekeeping import Housekeeping
from bankhub.logins.consent import ConsentSweep
from bankhub.payments.sweep import PaymentSweep
from bankhub.requestlog import store as request_log
from bankhub.signatures.sync import KeySourceSweep, fetcher_for
from bankhub.sync import feed
from bankhub.sync.source import SyncSource
from bankhub.webhooks.source import DeliverySource


@dataclass
class Tally:
    syncs: int = 0
    deliveries: int = 0
    messages: int = 0


class Runner:
    """``identity``: the process's (``jobs.identity``); its dead predecessors' leases are
    released when ``run_forever`` starts. ``owner`` names the holder of the leases directly
    (tests); without either the runner is ephemeral."""

    def __init__(
        self, hub: Hub, *, owner: str | None = None, identity: Identity | None = None
    ) -> None:
        settings = hub.settings
        owner = identity.owner if identity else owner or Identity.ephemeral().owner
        self.owner = owner
        self.loop = Loop(
            hub.db,
            owner=owner,
            identity=identity,
            lease=settings.lease,
            poll=settings.worker_poll_seconds,
            ready=hub.ready,
        )
        self.syncs = SyncSource(
            hub.engine,
            hub.db,
            hub.clock,
            owner=owner,
            lease=settings.lease,
            cooldown=settings.refresh_cooldown,
            slots=settings.sync_concurrency,
        )
        self.deliveries = DeliverySource(
            hub.db,
            hub.keyring,
            hub.webhook_transport,
            hub.clock,
            owner=owner,
            lease=settings.lease,
            slots=settings.delivery_concurrency,
            timeout=settings.webhook_timeout_seconds,
            dev=settings.is_dev,
        )
        self.outbox = outbox.OutboxSource(
            hub.db,
            hub.clock,
            TeamMail(hub.db, hub.keyring, settings.ca_bundle).handlers,
            owner=owner,
            lease=settings.lease,
        )
        self.consent = ConsentSweep(hub.db, hub.clock, notify=queue_consent_notices)
        self.housekeeping = Housekeeping(
            hub.db,
            hub.clock,
            hub.keyring,
            hub.hasher,
            every=settings.retention_sweep_seconds,
            usage_days=settings.usage_retention_days,
            audit_retention_days=settings.audit_retention_days,
            also=[
                lambda now: outbox.purge(hub.db, now),
                lambda now: request_log.purge(hub.db, now, days=settings.request_log_days),
                lambda now: feed.purge(hub.db, now, days=settings.sync_run_days),
            ],
        )
        #: imported banks' logos, fetched and kept (dev and test allow loopback logo hosts)
        fetcher = LogoFetcher(hub.http, allow_private=settings.is_dev)
        self.logos = LogoSweep(hub.db, hub.clock, fetcher)
        #: the GoCardless institution lists, imported again once a day, then their logos
        self.institutions = InstitutionRefresh(
            hub.gocardless, reserved_ids=hub.catalogue.base_ids, logos=fetcher
        )
        for source in (self.syncs, self.deliveries, self.outbox):
            self.loop.add(source)
        self.payments = PaymentSweep(
            hub.db,
            hub.clock,
            hub.keyring,
            hub.engine,
            hub.catalogue,
            every=settings.payment_sweep_seconds,
            grace=timedelta(seconds=settings.connector_timeout_seconds + 5),
            unauthorised_after=settings.token_ttl + settings.connect_idle,
        )
        self.key_sources = KeySourceSweep(
            hub.db,
            hub.clock,
            fetcher_for(settings, hub.http),
            every=settings.signature_sync_seconds,
            grace=settings.signature_sync_grace,
        )
        for sweep in (
            self.consent,
            self.housekeeping,
            self.institutions,
            self.logos,
            self.payments,
            self.key_sources,
        ):
            self.loop.every(sweep)

    @property
    def listens(self) -> int:
        return self.loop.listens

    def wake(self, kinds: Collection[str] | None = None) -> None:
        self.loop.wake(kinds)

    async def run_once(self) -> Tally:
        done = await self.loop.run_once()
        return Tally(done[self.syncs.name], done[self.deliveries.name], done[self.outbox.name])

    async def run_forever(self, stop: asyncio.Event) -> None:
        await self.loop.run_forever(stop)

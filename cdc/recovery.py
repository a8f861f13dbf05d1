"""The service's SELECT side: leads the binlog alone could not deliver.

Two cases, both fetched by SELECT (:mod:`cdc.leadfetch`, shared with ``replay``) off the
event loop and routed through the normal router into the outbox:

- **late matches** (:class:`cdc.detect.LateMatch`): an add_lead SUCCESS row whose insert
  the detector had given up on (a MyISAM lock on ``vicidial_api_log`` held past
  ``reader.match_window_s``). :meth:`LeadRecovery.complete` fetches them *before* the
  pipeline step is committed, so the checkpoint that passes their api_log rows commits
  with their deliveries (invariant 1). A few tries, then the service fails loudly (its
  checkpoint is still before them, so the restart fetches them again).
- **waiting leads** (:mod:`cdc.waiting`): leads that need rows of a ``custom_<list_id>``
  table the account cannot read. :meth:`LeadRecovery.complete` stores them durably
  before the checkpoint passes them; :meth:`LeadRecovery.run` tries every
  ``reader.unreadable_retry_s`` to release them (table readable now) or dead-letters
  those past ``reader.unreadable_max_wait_s`` with the GRANT as reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import pymysql

from . import leadfetch, vicidial
from .config import Config
from .detect import LateMatch
from .errors import CdcError, ReaderFault, SourceError
from .pipeline import Pipeline, Step, failed_delivery
from .reader.connection import connect
from .reader.unreadable import grant_statement
from .records import ApiLead, Delivery
from .settings import SettingsCache
from .store import AsyncMetadata, AsyncOutbox
from .waiting import META_KEY, WaitingLead, WaitingLeads

log = logging.getLogger(__name__)

__all__ = ["LeadRecovery"]

#: SELECT attempts for late leads before the service fails (and systemd restarts it).
_FETCH_TRIES = 3
_UNREADABLE = ReaderFault.TABLE_UNREADABLE.value


class LeadRecovery:
    """Late matches and waiting leads of one service (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        pipeline: Pipeline,
        settings: SettingsCache,
        outbox: AsyncOutbox,
        meta: AsyncMetadata,
    ) -> None:
        """``outbox`` stores the leads' deliveries; ``meta`` keeps the waiting leads."""
        self._config = config
        self._pipeline = pipeline
        self._settings = settings
        self._outbox = outbox
        self._meta = meta
        self.waiting = WaitingLeads()

    async def load(self) -> None:
        """The waiting leads stored by an earlier run."""
        self.waiting = WaitingLeads.loads(await self._meta.meta_get(META_KEY))

    async def complete(self, step: Step) -> Step:
        """``step`` with its late leads fetched and routed, and its waiting leads stored.

        Call it before committing the step: what it returns is what to commit.
        """
        deliveries, waiting = step.deliveries, step.waiting
        if step.late:
            fetched = self._pipeline.route_fetched(step.late, *await self._fetch_late(step.late))
            deliveries, waiting = deliveries + fetched.deliveries, waiting + fetched.waiting
        if waiting:  # durable before the checkpoint passes them
            self.waiting.add(waiting, _UNREADABLE, time.time())
            await self._meta.meta_set(META_KEY, self.waiting.dumps())
            for lead in waiting:
                log.warning(
                    "lead.waiting_data lead_id=%d list_id=%d reason=%s table=custom_%d",
                    lead.lead_id,
                    lead.list_id,
                    _UNREADABLE,
                    lead.list_id,
                )
        return dataclasses.replace(step, deliveries=deliveries, late=[], waiting=[])

    async def run(self, stop: asyncio.Event, notify: Callable[[], None]) -> None:
        """Every ``reader.unreadable_retry_s``: release or dead-letter the waiting leads."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._config.reader.unreadable_retry_s)
            if self.waiting and not stop.is_set():
                try:
                    if await self._release_waiting():
                        notify()
                except (CdcError, pymysql.MySQLError, OSError) as exc:
                    log.warning("lead.waiting_release_failed error=%s", type(exc).__name__)

    # -- late matches --------------------------------------------------------------------

    async def _fetch_late(self, late: Sequence[LateMatch]) -> tuple[list[ApiLead], frozenset[int]]:
        """The late leads, and the lists whose custom table showed no columns (they wait)."""
        api_ts = {m.lead_id: m.api_ts for m in late}

        def fetch() -> tuple[list[ApiLead], frozenset[int]]:
            with self._fetcher() as fetcher:
                leads = fetcher.fetch(sorted(api_ts), api_ts)
                return leads, frozenset(fetcher.unreadable_lists)

        for attempt in range(_FETCH_TRIES):
            try:
                return await asyncio.to_thread(fetch)
            except (CdcError, pymysql.MySQLError, OSError) as exc:
                log.warning("lead.late_fetch_failed attempt=%d error=%s", attempt + 1, type(exc).__name__)
                if attempt + 1 == _FETCH_TRIES:
                    raise SourceError(
                        f"could not SELECT {len(late)} late lead(s) from vicidial_list ({exc}); the"
                        " checkpoint was kept before them, so a restart fetches them again: check"
                        " the account's SELECT on vicidial_list and custom_<list_id>"
                    ) from exc
                await asyncio.sleep(2.0**attempt)
        raise AssertionError("unreachable")

    # -- waiting leads -------------------------------------------------------------------

    async def _release_waiting(self) -> bool:
        """Route the waiting leads of readable tables, dead-letter those past the bound;
        True when deliveries were stored."""
        by_list = self.waiting.by_list()

        def fetch() -> tuple[list[ApiLead], set[int]]:
            with self._fetcher() as fetcher:
                readable = {list_id for list_id in by_list if fetcher.columns(vicidial.custom_table(list_id))}
                wanted = {w.lead_id: w.inserted_at for lid in readable for w in by_list[lid]}
                return fetcher.fetch(sorted(wanted), wanted), readable

        leads, readable = await asyncio.to_thread(fetch)
        now = time.time()
        released = {w.lead_id for lid in readable for w in by_list[lid]}
        overdue = self.waiting.expired(now, self._config.reader.unreadable_max_wait_s)
        expired = [w for w in overdue if w.lead_id not in released]
        if not released and not expired:
            return False
        step = self._pipeline.route_released(leads)
        dead = [self._waited_too_long(w) for w in expired]
        step = dataclasses.replace(step, deliveries=step.deliveries + dead)
        await self._outbox.commit_batch(step.deliveries, None, now)
        self._pipeline.committed(step)
        self._pipeline.unreadable_lists -= readable
        self.waiting.remove(released | {w.lead_id for w in expired})
        await self._meta.meta_set(META_KEY, self.waiting.dumps())
        log.warning(
            "lead.waiting_released released=%d missing=%d dead_lettered=%d tables=%s",
            len(leads),
            len(released) - len(leads),
            len(expired),
            ",".join(vicidial.custom_table(lid) for lid in sorted(readable)),
        )
        return any(not d.refused for d in step.deliveries)

    def _waited_too_long(self, w: WaitingLead) -> Delivery:
        """A dead letter for a lead whose custom table stayed unreadable past the bound."""
        mysql = self._config.mysql
        table = vicidial.custom_table(w.list_id)
        grant = grant_statement(mysql.database, table, mysql.user)
        log.error(
            "lead.waiting_expired lead_id=%d list_id=%d reason=%s"
            " fix=%s; then vicidial-cdc replay --lead-id %d",
            w.lead_id,
            w.list_id,
            w.reason,
            grant,
            w.lead_id,
        )
        reason = f"{w.reason}: {table} stayed unreadable; {grant}, then replay --lead-id {w.lead_id}"
        return failed_delivery(mysql.source_name, w, reason)

    @contextlib.contextmanager
    def _fetcher(self) -> Iterator[leadfetch.LeadFetcher]:
        """A LeadFetcher on a new read-only connection (blocking: call it in a thread)."""
        mysql = self._config.mysql
        router, snapshot = self._pipeline.router(), self._settings.snapshot()
        with contextlib.closing(connect(mysql, **leadfetch.connection_options())) as conn:
            yield leadfetch.LeadFetcher(
                conn, mysql.database, lambda list_id: router.needs_custom(snapshot, list_id)
            )

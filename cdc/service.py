"""The service: owns every task and resource of a running streamer.

``Service.run()`` enters its resources (state store, HTTP session, metrics server)
with an ``AsyncExitStack`` and runs the long-lived loops in one ``TaskGroup``:

    reader thread ──batches──► pipeline ──commit(deliveries + checkpoint)──► outbox
                                              │ rows it can start now          │
                                              ▼ (inserted in flight)           │
                                            sender ◄──────claim due (the rest)─┘

A loop that fails cancels its siblings and ``run()`` raises, so the process exits
non-zero and systemd restarts it. SIGTERM sets ``stop``: the reader stops at the next
batch, the pipeline commits what it has, the sender lets requests in flight finish
(bounded by ``delivery.shutdown_grace_s``), and the checkpoint is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

import pymysql

from . import __version__, server, vicidb, vicidial
from .config import Config, parse_start
from .delivery import Sender, client_session
from .detect import Detector
from .errors import CdcError, ReaderFault, ReaderFaultError
from .hooks.tracker import HookTracker
from .metrics import Metrics, StateCollector, StateSample
from .page import view as page_view
from .page.activity import ActivityRecorder, read_totals
from .pipeline import Pipeline, PipelineStatistics, Step
from .reader import Reader, ReaderFactory, ReaderStatistics, faults, reader_for, serverinfo
from .reader.connection import connect
from .reader.position import resolve_start, server_binlogs
from .records import Position, SourceItem
from .recovery import LeadRecovery
from .settings import SETTINGS_TABLES, SettingsCache, UrlOverrides
from .statelock import StateLock
from .store import AsyncMetadata, AsyncOutbox, AsyncStore, DeadSummary, LockWait, SqliteStore
from .vicidial import URL_LOG_TABLE
from .waiting import WaitingLeads

log = logging.getLogger(__name__)

LEAD_TABLES = frozenset({vicidial.LEAD_TABLE, vicidial.API_LOG_TABLE})

#: Dead letters the status page lists (the last ones to go dead).
PAGE_DEAD_LETTERS = 50
#: Steps are committed together (group commit): one with deliveries at most this long
#: after the previous commit, so at a few hundred leads/s a transaction and its thread
#: hop carry several leads instead of one each (it bounds the latency this adds).
COMMIT_EVERY_S = 0.02
#: A step that only moves the checkpoint (dialer noise) waits at most this long; a step
#: with deliveries or the stop commits it sooner. Re-reading that much binlog after a
#: crash is harmless (the enqueue is idempotent); a commit per step of noise is not.
CHECKPOINT_EVERY_S = 0.5


class Finding(Protocol):
    """One thing the start-up check found not right: logged as ``check.<name>``."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def message(self) -> str: ...


#: The start-up check (``reader.check_at_start``): what is not right with the server, the
#: grants and the settings. The CLI passes ``vicidial-cdc check``'s (``cdc.ops.check.start_check``).
StartCheck = Callable[[Config], Sequence[Finding]]


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How close the server's binlog expiry is to the checkpoint."""

    headroom_s: float
    headroom_bytes: float


async def log_start_check(check: StartCheck, config: Config) -> None:
    """``vicidial-cdc check`` at start-up: what is not right is logged, never fatal."""
    try:
        findings = await asyncio.to_thread(check, config)
    except (CdcError, pymysql.MySQLError, OSError) as exc:
        log.warning("check.not_run error=%s", type(exc).__name__)
        return
    for f in findings:
        log.warning("check.%s status=%s %s", f.name, f.status, f.message)


class Service:
    """One streamer for one VICIdial database."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        *,
        replace_checkpoint: bool = False,
        reader_factory: ReaderFactory | None = None,
        start_check: StartCheck | None = None,
    ) -> None:
        """``reader_factory`` builds the binlog reader (default: the one ``reader.decoder``
        names; the benchmark passes its own). ``start_check`` runs at start-up when
        ``reader.check_at_start`` is on (none: no check)."""
        self.config = config
        self._reader_factory = reader_factory or reader_for(config.reader.decoder)
        self._start_check = start_check
        #: Start at ``reader.start`` even when a checkpoint is stored (``run --start``).
        self._replace_checkpoint = replace_checkpoint
        self.metrics = metrics or Metrics()
        self.settings = SettingsCache()
        self.pipeline: Pipeline | None = None
        self.reader: Reader | None = None
        self.sender: Sender | None = None
        self.store: AsyncStore | None = None
        self._sqlite: SqliteStore | None = None
        self.stats = PipelineStatistics()  # shared with the pipeline, which updates it
        self.http_port = 0
        self.ready = asyncio.Event()
        self._counts: dict[str, dict[str, float]] = {}
        self._retention = Retention(float("inf"), float("inf"))
        self._overrides = UrlOverrides.of(config.urls)
        self._mode = config.delivery.mode
        #: The server the state follows (recorded in ``meta``); saved again when it changes.
        self._identity: serverinfo.ServerIdentity | None = None
        self._identity_unsaved = False
        #: Set when the state held no checkpoint: where this start chose to begin.
        self._fresh_start: Position | str | None = None
        #: Late matches and leads waiting for an unreadable table: fetched by SELECT.
        self.recovery: LeadRecovery | None = None
        #: The status page's per-minute activity and last attempts (cdc.page).
        self.activity = ActivityRecorder(keep_urls=config.http.show_lead_data)
        self._dead = DeadSummary()
        self._started_at = time.time()
        #: The steps waiting to be committed (as one), and when the last commit was.
        self._unsaved: Step | None = None
        self._saved_at = 0.0

    @property
    def waiting(self) -> WaitingLeads:
        return self.recovery.waiting if self.recovery is not None else WaitingLeads()

    @property
    def detector(self) -> Detector | None:
        return self.pipeline.detector if self.pipeline is not None else None

    @property
    def url_log(self) -> HookTracker | None:
        """VICIdial's own requests followed through vicidial_url_log (every url_type)."""
        return self.pipeline.hooks.tracker if self.pipeline is not None else None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            # One streamer per state file, for the life of the process (cdc.statelock).
            stack.enter_context(StateLock(cfg.state.path))
            sqlite = SqliteStore(
                cfg.state.path, busy_limit_s=cfg.state.busy_limit_s, on_lock_wait=self._lock_wait
            )
            self._sqlite = sqlite
            store = AsyncStore(sqlite)
            await store.open()
            stack.push_async_callback(store.close)
            self.store = store
            requeued = await store.requeue_in_flight()
            if requeued:
                log.info("outbox.requeued count=%d", requeued)

            if cfg.reader.check_at_start and self._start_check is not None:
                await log_start_check(self._start_check, cfg)
            start = await self._load_source(store, store)
            assert self.pipeline is not None
            self.recovery = LeadRecovery(cfg, self.pipeline, self.settings, store, store)
            await self.recovery.load()
            for table in self._watched_tables():
                self.metrics.decode_errors.labels(table)  # series exist before the first error
            for name, endpoint in cfg.delivery.named_endpoints.items():
                if endpoint.allowed_origins:
                    self.metrics.secret_origin_refused.labels(name)
            for kind in ReaderFault:
                self.metrics.reader_errors.labels(kind.value)
                self.metrics.reader_fault.labels(kind.value).set(0)
            for cause in faults.TransientCause:
                self.metrics.reader_disconnects.labels(cause.value)
            self.reader = self._reader_factory(
                cfg.mysql,
                self._watched_tables(),
                start,
                queue_batches=cfg.reader.queue_batches,
                batch_rows=cfg.reader.batch_rows,
                reconnect_initial_s=cfg.reader.reconnect_initial_s,
                reconnect_max_s=cfg.reader.reconnect_max_s,
                fault_recheck_s=cfg.reader.fault_recheck_s,
                on_event=lambda table, op, n: self.metrics.child(self.metrics.binlog_rows, table, op).inc(n),
                on_decode_error=lambda table, _lead: self.metrics.decode_errors.labels(table).inc(),
                # Its own connection to the state file, opened in the reader thread; it
                # waits out another process's write lock as the service's store does.
                schema_store=SqliteStore(
                    cfg.state.path, busy_limit_s=cfg.state.busy_limit_s, on_lock_wait=self._lock_wait
                ),
                identity=self._identity,
                on_fault=self._on_reader_error,
                on_server=self._on_server_facts,
                unreadable_retry_s=cfg.reader.unreadable_retry_s,
            )

            session = client_session(cfg.delivery.max_in_flight)
            stack.push_async_callback(session.close)
            self.sender = Sender(
                session,
                store,
                cfg.delivery,
                self.metrics,
                on_attempt=lambda item, attempt: self.activity.attempt(time.time(), item, attempt),
            )

            self.metrics.add_collector(StateCollector(self._sample))
            app = server.make_app(
                self.metrics.registry,
                self._readiness,
                self.status,
                page=self,
                admin_token=cfg.http.admin_token.value,
            )
            host, port = cfg.http.host_port()
            runner, self.http_port = await server.start(app, host, port)
            stack.push_async_callback(runner.cleanup)

            self.reader.start()
            stack.push_async_callback(self.reader.stop)
            self.ready.set()
            log.info(
                "service.started http_port=%d source=%s decoder=%s event_loop=%s",
                self.http_port,
                cfg.mysql.source_name,
                cfg.reader.decoder,
                type(asyncio.get_running_loop()).__module__.partition(".")[0],
            )

            sender_stop = asyncio.Event()
            try:
                async with asyncio.TaskGroup() as tg:
                    sending = tg.create_task(self.sender.run(sender_stop), name="sender")
                    tg.create_task(self._counts_task(stop), name="counts")
                    tg.create_task(self._retention_task(stop), name="retention")
                    tg.create_task(self.recovery.run(stop, self.sender.notify), name="waiting")
                    await self._pipeline(stop)
                    # Draining: no new batches; requests in flight may finish, bounded.
                    self.reader.request_stop()
                    sender_stop.set()
                    _, late = await asyncio.wait({sending}, timeout=cfg.delivery.shutdown_grace_s)
                    if late:
                        log.warning("service.drain_timeout in_flight=%d", self.sender.in_flight)
                        sending.cancel()  # their rows stay in_flight and are requeued at start
            finally:
                sender_stop.set()
                self.reader.request_stop()
            log.info("service.stopped checkpoint=%s sent=%d", self.stats.checkpoint, self.sender.sent)

    def _lock_wait(self, wait: LockWait) -> None:
        """Every state-store write's wait for the write lock (called on the store's thread)."""
        if wait.acquired:
            self.metrics.store_lock_wait.observe(wait.waited_s)
        else:
            self.metrics.store_busy.inc()

    async def _counts_task(self, stop: asyncio.Event) -> None:
        """Refresh outbox gauges and prune old rows, off the hot path."""
        assert self.store is not None
        last_prune = last_erase = 0.0
        while not stop.is_set():
            if self._identity_unsaved and self._identity is not None:
                self._identity_unsaved = False
                await self.store.meta_set(serverinfo.META_KEY, self._identity.to_json())
            await self._refresh_outbox()
            now = time.time()
            self.activity.observe(now, read_totals(self.metrics))
            if now - last_prune > 600:
                await self.store.prune_delivered(now - self.config.state.retention_s)
                last_prune, last_erase = now, 0.0  # erase what was pruned now
            if now - last_erase >= self.config.state.erase_interval_s:
                # Blanked delivered rows and pruned rows leave the -wal file as well.
                if await self.store.truncate_wal():
                    last_erase = now
                else:
                    log.debug("outbox.wal_busy: a reader holds an old snapshot; truncating later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

    async def _refresh_outbox(self) -> None:
        """Outbox rows per endpoint and state (gauges, ``/status``) and the page's dead letters."""
        assert self.store is not None
        counts = await self.store.counts(delivered=False)
        self._dead = await self.store.dead_summary(PAGE_DEAD_LETTERS)
        now = time.time()
        self._counts = {
            c.endpoint_id: {
                "pending": c.pending,
                "in_flight": c.in_flight,
                "dead": c.dead,
                "oldest_pending_age_s": (now - c.oldest_pending_created_at)
                if c.oldest_pending_created_at
                else 0.0,
            }
            for c in counts
        }

    async def _retention_task(self, stop: asyncio.Event) -> None:
        """Every 30 s: how much binlog the server keeps before our checkpoint."""
        while not stop.is_set():
            checkpoint = self.stats.checkpoint
            if checkpoint is not None and checkpoint.file:
                try:
                    self._retention = await asyncio.to_thread(self._read_retention, checkpoint)
                except (CdcError, pymysql.MySQLError, OSError) as exc:
                    log.warning("binlog.retention_unknown error=%s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 30.0)

    def _read_retention(self, checkpoint: Position) -> Retention:
        with contextlib.closing(connect(self.config.mysql)) as conn:
            logs = server_binlogs(conn)
            names = ", ".join(f"'{n}'" for n in serverinfo.RETENTION_VARIABLES)
            with conn.cursor() as cur:
                cur.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
                variables = {str(k): str(v or "") for k, v in cur.fetchall()}
        expire_s = serverinfo.binlog_retention_s(variables) or 0.0
        older = sum(size for name, size in logs if name < checkpoint.file)
        headroom_s = float("inf")
        if expire_s > 0 and self.stats.checkpoint_ts:
            headroom_s = expire_s - (time.time() - self.stats.checkpoint_ts)
        return Retention(headroom_s, float(older))

    # -- start-up ----------------------------------------------------------------------

    async def _load_source(self, outbox: AsyncOutbox, meta: AsyncMetadata) -> Position | str:
        """Load settings by SELECT and decide where the binlog starts."""
        cfg = self.config

        def load() -> tuple[vicidb.SettingsRows, bool, str, Position | str, serverinfo.ServerFacts]:
            with contextlib.closing(connect(cfg.mysql)) as conn:
                rows = vicidb.load_settings_rows(conn, cfg.mysql.database)
                has_enum = vicidb.url_type_has_apinewlead(conn, cfg.mysql.database)
                charset = vicidb.connection_charset(conn, cfg.reader.server_charset)
                start = resolve_start(conn, parse_start(cfg.reader.start))
                facts = serverinfo.read_facts(conn)
            return rows, has_enum, charset, start, facts

        rows, has_enum, charset, configured, facts = await asyncio.to_thread(load)
        self.settings.load(rows.url_rows, rows.list_rows, rows.field_rows, rows.system_row)
        self.settings.set_overrides(self._overrides)
        for line in self.settings.snapshot().sources():
            log.info("settings.url_source %s", line)
        self.pipeline = Pipeline(
            cfg,
            self.settings,
            self.metrics,
            self.stats,
            server_charset=charset,
            enum_has_apinewlead=has_enum,
        )
        sender = self.pipeline.vicidial_sender()
        self.metrics.mode.labels(self._mode.value).set(1)
        self.metrics.vicidial_sender.set(1 if sender.sends else 0)
        log.info(
            "service.mode mode=%s vicidial_sends=%s db_schema_version=%d connection_charset=%s",
            self._mode.value,
            sender.sends,
            self.settings.snapshot().system.db_schema_version,
            charset,
        )
        checkpoint = await meta.load_checkpoint()
        recorded_text = await meta.meta_get(serverinfo.META_KEY)
        recorded = serverinfo.ServerIdentity.from_json(recorded_text) if recorded_text else None
        self._identity = facts.identity
        replaced = checkpoint is not None and self._replace_checkpoint
        if replaced:
            log.warning("binlog.checkpoint_replaced old=%s start=%s", checkpoint, cfg.reader.start)
            checkpoint = None
        if checkpoint is not None:
            verdict = serverinfo.continuity(recorded, checkpoint, facts)
            if verdict.verdict is serverinfo.Verdict.CHANGED:
                raise ReaderFaultError(
                    ReaderFault.SERVER_CHANGED,
                    serverinfo.changed_message(verdict.reason, checkpoint, cfg.state.path),
                )
            if verdict.verdict is serverinfo.Verdict.GTID:
                log.warning(
                    "binlog.server_changed_gtid_continue gtid=%s reason=%s", checkpoint.gtid, verdict.reason
                )
            # The reader re-checks against the recorded server at its first connect.
            self._identity = recorded or facts.identity
            if recorded is None:
                await meta.meta_set(serverinfo.META_KEY, facts.identity.to_json())
            log.info("binlog.resume position=%s server=%s", checkpoint, facts.identity)
            self.stats.checkpoint = checkpoint
            self.metrics.state_fresh_start.set(0)
            return checkpoint
        await meta.meta_set(serverinfo.META_KEY, facts.identity.to_json())
        if isinstance(configured, Position):
            # Remember the first position now, so a restart never jumps to "current" again.
            await outbox.commit_batch([], configured, time.time())
            self.stats.checkpoint = configured
        if replaced:
            self.metrics.state_fresh_start.set(0)
            log.info("binlog.start position=%s (run --start)", configured)
            return configured
        self._fresh_start = configured
        self.metrics.state_fresh_start.set(1)
        log.warning(
            "state.fresh_start position=%s reader.start=%s state=%s server=%s: no checkpoint in the state "
            "file, leads are read from this position on. Normal on a first install; otherwise the state "
            "file or its volume was lost and leads written since the last run are not sent: replay them "
            "with 'vicidial-cdc replay --since <time of the last delivered lead>'",
            configured,
            cfg.reader.start,
            cfg.state.path,
            facts.identity,
        )
        return configured

    # -- reader health -------------------------------------------------------------------

    def _on_reader_error(self, kind: ReaderFault, cause: str) -> None:
        """Reader thread: count an error; a fault's gauge stands until it is cleared."""
        m = self.metrics
        if kind is ReaderFault.CONNECTION:
            m.reader_errors.labels(kind.value).inc()
            m.reader_disconnects.labels(cause).inc()
            return
        if cause == "cleared":
            m.reader_fault.labels(kind.value).set(0)
            return
        m.reader_errors.labels(kind.value).inc()
        for other in ReaderFault:
            m.reader_fault.labels(other.value).set(1 if other is kind else 0)

    def _on_server_facts(self, facts: serverinfo.ServerFacts) -> None:
        """Loop, in stream order: the server (re)connected; apply what it may have changed."""
        cfg = self.config
        if self.pipeline is not None:
            charset = vicidb.effective_charset(cfg.reader.server_charset, facts.character_set_server)
            if charset != self.pipeline.server_charset:
                log.warning(
                    "binlog.server_charset_changed old=%s new=%s: URLs are rendered in the new "
                    "connection charset from now on",
                    self.pipeline.server_charset,
                    charset,
                )
                self.pipeline.set_server_charset(charset)
        if facts.identity != self._identity:
            log.warning("binlog.server_identity_changed old=%s new=%s", self._identity, facts.identity)
            self._identity = facts.identity
            self._identity_unsaved = True

    def _watched_tables(self) -> set[str]:
        tables = set(LEAD_TABLES) | set(SETTINGS_TABLES) | {URL_LOG_TABLE}
        custom_lists = self.settings.snapshot().custom_field_lists()
        tables |= {vicidial.custom_table(list_id) for list_id in custom_lists}
        return tables

    # -- the pipeline ------------------------------------------------------------------

    async def _pipeline(self, stop: asyncio.Event) -> None:
        assert self.reader is not None
        reader = self.reader
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                get = asyncio.ensure_future(reader.get_batch())
                done, _ = await asyncio.wait(
                    {get, stop_wait}, timeout=self._commit_wait_s(), return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    # Idle, or a step waits to be committed. Nothing expires: matching
                    # runs on binlog time only (cdc.detect).
                    get.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await get
                    await self._commit_unsaved()
                    continue
                batches = [get.result()]
                # Length first: a batch taken off the queue must never be dropped.
                while len(batches) < 64 and (more := reader.get_batch_nowait()) is not None:
                    batches.append(more)
                await self._process(batches)
            await self._commit_unsaved()  # stopping: what waits is committed
        finally:
            stop_wait.cancel()

    async def _process(self, batches: list[list[SourceItem]]) -> None:
        """One pipeline step, committed with the steps before it that wait (group commit).

        Late matches are fetched and routed first, so the checkpoint that passes their
        api_log rows commits with their deliveries (invariant 1). The step is committed
        now when the last commit is :data:`COMMIT_EVERY_S` old (:data:`CHECKPOINT_EVERY_S`
        when it only moves the checkpoint), otherwise by the pipeline loop at that time.
        """
        assert self.pipeline is not None and self.store is not None and self.sender is not None
        assert self.recovery is not None
        step = self.pipeline.process(batches, seen=time.monotonic())
        if step.is_empty:
            return
        step = await self.recovery.complete(step)  # late leads fetched; waiting ones stored
        if not step.deliveries and step.checkpoint is None:
            return
        self._unsaved = step if self._unsaved is None else self._unsaved.followed_by(step)
        if self._commit_wait_s() <= 0:
            await self._commit_unsaved()

    def _commit_wait_s(self) -> float:
        """How long the step that waits may wait still (1 s, the idle tick, when none does)."""
        unsaved = self._unsaved
        if unsaved is None:
            return 1.0
        every = COMMIT_EVERY_S if unsaved.deliveries else CHECKPOINT_EVERY_S
        return max(0.0, self._saved_at + every - time.monotonic())

    async def _commit_unsaved(self) -> None:
        """Commit the step that waits through the sender: the rows it can start now go in
        flight in the same transaction and straight to it, with no claim (cdc.delivery)."""
        step = self._unsaved
        if step is None:
            return
        assert self.pipeline is not None and self.sender is not None
        await self.sender.commit(step.deliveries, step.checkpoint, time.time())
        self._unsaved = None
        self._saved_at = time.monotonic()
        self.pipeline.committed(step)

    # -- dead letters (the status page's actions) ----------------------------------------

    async def retry_dead(self, *, ids: Collection[int] | None = None, endpoint_id: str | None = None) -> int:
        """Send these dead letters again now, with a fresh retry budget."""
        assert self.store is not None and self.sender is not None
        changed = await self.store.retry_dead(time.time(), ids=ids, endpoint_id=endpoint_id)
        self.sender.notify()
        await self._refresh_outbox()  # the page after the action, and /metrics, show it
        return changed

    async def purge_dead(self, *, ids: Collection[int] | None = None, endpoint_id: str | None = None) -> int:
        """Delete these dead letters."""
        assert self.store is not None
        changed = await self.store.purge_dead(ids=ids, endpoint_id=endpoint_id)
        await self._refresh_outbox()
        return changed

    # -- observation -------------------------------------------------------------------

    def _sample(self) -> StateSample:
        rs = self.reader.statistics() if self.reader else ReaderStatistics()
        ds = self.pipeline.detector.statistics() if self.pipeline else None
        lag = 0.0
        if rs.last_event_ts and rs.last_event_monotonic > rs.last_heartbeat_monotonic:
            lag = max(0.0, rs.last_event_wall - rs.last_event_ts)
        depths = {"reader_batches": self.reader.queued() if self.reader else 0}
        if ds is not None:
            depths["detector_pending"] = ds.pending
            depths["detector_held"] = ds.held
        depths["sender_in_flight"] = self.sender.in_flight if self.sender else 0
        checkpoint = self.stats.checkpoint
        trailing = 0.0
        if checkpoint is not None and rs.last_event_ts and self.stats.checkpoint_ts:
            trailing = max(0.0, rs.last_event_ts - self.stats.checkpoint_ts)
        now = time.time()
        endpoints = self.sender.statistics() if self.sender else []
        return StateSample(
            reader_connected=rs.connected,
            reader_reconnects=rs.reconnects,
            binlog_events=rs.events,
            last_event_ts=float(rs.last_event_ts),
            lag_s=lag,
            checkpoint_age_s=trailing,
            queue_depths=depths,
            pending={k: int(v["pending"]) for k, v in self._counts.items()},
            in_flight={k: int(v["in_flight"]) for k, v in self._counts.items()},
            dead={k: int(v["dead"]) for k, v in self._counts.items()},
            oldest_pending_age_s={k: v["oldest_pending_age_s"] for k, v in self._counts.items()},
            circuit_state={e.endpoint_id: int(e.circuit) for e in endpoints},
            circuit_open_s={e.endpoint_id: (now - e.opened_at) if e.opened_at else 0.0 for e in endpoints},
            checkpoint_file_number=_file_number(checkpoint),
            checkpoint_pos=float(checkpoint.pos) if checkpoint else 0.0,
            retention_headroom_s=self._retention.headroom_s,
            retention_headroom_bytes=self._retention.headroom_bytes,
            waiting_data={"table_unreadable": 0, **self.waiting.counts()},
        )

    def _readiness(self) -> server.Readiness:
        rs = self.reader.statistics() if self.reader else ReaderStatistics()
        checks = {
            "binlog_connected": rs.connected,
            "store_open": self.store is not None,
            "sender_running": self.sender is not None,
            "reader_no_fault": rs.fault is None,
        }
        reasons = []
        if rs.fault is not None:
            reasons.append(f"reader_fault {rs.fault.kind.value}: {rs.fault.message}")
        return server.Readiness(ready=all(checks.values()), checks=checks, reasons=tuple(reasons))

    def status(self) -> dict[str, Any]:
        sample = self._sample()
        return {
            "source": self.config.mysql.source_name,
            "checkpoint": str(self.stats.checkpoint) if self.stats.checkpoint else None,
            "reader_connected": sample.reader_connected,
            "lag_s": sample.lag_s,
            "leads": self.stats.leads,
            "deliveries_enqueued": self.stats.deliveries,
            "skipped": dict(self.stats.skipped),
            "outbox": self._counts,
            "queue_depths": sample.queue_depths,
            "waiting_data": self.waiting.status(time.time()),
            "store": dataclasses.asdict(self._sqlite.statistics()) if self._sqlite else None,
            **self._health_status(),
            **self._page_status(),
        }

    def _page_status(self) -> dict[str, Any]:
        """What the status page shows beyond the above (cdc.page.view); no lead data unless
        ``http.show_lead_data``."""
        now = time.time()
        cfg = self.config
        show = cfg.http.show_lead_data
        report = self.activity.report(now, read_totals(self.metrics))
        stats = self.sender.statistics() if self.sender else []
        sends = self.pipeline.vicidial_sender().sends if self.pipeline else False
        return {
            "version": __version__,
            "uptime_s": now - self._started_at,
            "mode": self._mode.value,
            "database": f"{cfg.mysql.host}:{cfg.mysql.port}/{cfg.mysql.database}",
            "show_lead_data": show,
            "activity": page_view.activity(report),
            "endpoints": [
                dataclasses.asdict(row)
                for row in page_view.endpoint_rows(now, stats, self._counts, report.endpoints)
            ],
            "dead_letters": page_view.dead_letters(
                self._dead, {e: int(c["dead"]) for e, c in self._counts.items()}, now, show_lead_data=show
            ),
            "vicidial_sender": page_view.vicidial_sender(report, sends=sends),
            "recent_deliveries": page_view.recent_deliveries(report, now, show_lead_data=show),
        }

    def _health_status(self) -> dict[str, Any]:
        """Reader faults, reconnect causes, the server followed, and how this start began."""
        rs = self.reader.statistics() if self.reader else ReaderStatistics()
        fault = rs.fault
        facts = rs.server
        return {
            "reader_fault": None
            if fault is None
            else {
                "kind": fault.kind.value,
                "message": fault.message,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(fault.since)),
                "position": fault.position,
            },
            "reader_disconnects": dict(rs.transient),
            "server": None
            if facts is None
            else {
                "server_id": facts.identity.server_id,
                "server_uuid": facts.identity.server_uuid,
                "version": facts.version,
                "character_set_server": facts.character_set_server,
                "binlog_format": facts.binlog_format,
                "binlog_row_image": facts.binlog_row_image,
                "binlog_row_metadata": facts.binlog_row_metadata,
                "first_binlog": facts.first_binlog,
            },
            "connection_charset": self.pipeline.server_charset if self.pipeline else None,
            "started_without_state": self._fresh_start is not None,
            "start_position": str(self._fresh_start) if self._fresh_start is not None else None,
        }


def _file_number(position: Position | None) -> float:
    """``binlog.000042`` → 42 (0 when unknown), for a gauge that shows rotation."""
    if position is None:
        return 0.0
    suffix = position.file.rpartition(".")[2]
    return float(suffix) if suffix.isdigit() else 0.0

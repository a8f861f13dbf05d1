"""The service: owns every task and resource of a running streamer.

``Service.run()`` enters its resources (state store, HTTP session, metrics server)
with an ``AsyncExitStack`` and runs the long-lived loops in one ``TaskGroup``:

    reader thread ──batches──► pipeline ──commit(deliveries + checkpoint)──► outbox
                                                                               │
                                               sender ◄──────claim due─────────┘

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
from typing import Any

import aiohttp
import pymysql

from . import binlog, server, vicidb
from .config import Config
from .delivery import SKIP_AUTO_HEADERS, Sender
from .detect import Detector
from .endpoints import Router
from .errors import CdcError
from .metrics import Metrics, StateCollector, StateSample, status_class
from .modes import Mode, VicidialSender, retries_vicidial_failures, vicidial_sender
from .outbox import AsyncStore, SqliteStore
from .records import (
    ApiLead,
    Delivery,
    GroupEnd,
    Position,
    RowChange,
    SchemaChange,
    Skipped,
    SkipReason,
    UrlSource,
)
from .resolve import check_url, origin_of
from .settings import SETTINGS_TABLES, SettingsCache, UrlOverrides
from .urllog import URL_LOG_TABLE, UrlLogTracker, VicidialAttempt

log = logging.getLogger(__name__)

LEAD_TABLES = frozenset({"vicidial_list", "vicidial_api_log"})
#: Resume point of rows read before the first group end of a GTID start.
_BEFORE_FIRST_GROUP = Position("", 0)


@dataclasses.dataclass(slots=True)
class PipelineStatistics:
    batches: int = 0
    rows: int = 0
    leads: int = 0
    deliveries: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    checkpoint: Position | None = None
    #: Binlog timestamp of the group the checkpoint points after (approximate for holds).
    checkpoint_ts: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How close the server's binlog expiry is to the checkpoint."""

    headroom_s: float
    headroom_bytes: float


class Service:
    """One streamer for one VICIdial database."""

    def __init__(
        self, config: Config, metrics: Metrics | None = None, *, replace_checkpoint: bool = False
    ) -> None:
        self.config = config
        #: Start at ``reader.start`` even when a checkpoint is stored (``run --start``).
        self._replace_checkpoint = replace_checkpoint
        self.metrics = metrics or Metrics()
        self.settings = SettingsCache()
        self.detector: Detector | None = None
        self.reader: binlog.BinlogReader | None = None
        self.sender: Sender | None = None
        self.store: AsyncStore | None = None
        self.stats = PipelineStatistics()
        self.http_port = 0
        self.ready = asyncio.Event()
        self._counts: dict[str, dict[str, float]] = {}
        self._retention = Retention(float("inf"), float("inf"))
        self._overrides = UrlOverrides(system=config.urls.system, lists=dict(config.urls.lists))
        self._mode = Mode(config.delivery.mode)
        self._enum_has_apinewlead = False
        self._server_charset = config.reader.server_charset or "latin1"
        self.url_log = UrlLogTracker(config.delivery.vicidial_attempt_timeout_s, config.reader.max_pending)

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            store = AsyncStore(SqliteStore(cfg.state.path))
            await store.open()
            stack.push_async_callback(store.close)
            self.store = store
            requeued = await store.requeue_in_flight()
            if requeued:
                log.info("outbox.requeued count=%d", requeued)

            if cfg.reader.check_at_start:
                await self._preflight()
            start = await self._load_source(store)
            self.detector = Detector(
                match_window_s=cfg.reader.match_window_s,
                custom_wait_s=cfg.reader.custom_wait_s,
                max_pending=cfg.reader.max_pending,
                needs_custom=lambda list_id: self._router().needs_custom(self.settings.snapshot(), list_id),
            )
            for table in self._watched_tables():
                self.metrics.decode_errors.labels(table)  # series exist before the first error
            self.reader = binlog.BinlogReader(
                cfg.mysql,
                self._watched_tables(),
                start,
                queue_batches=cfg.reader.queue_batches,
                batch_rows=cfg.reader.batch_rows,
                reconnect_initial_s=cfg.reader.reconnect_initial_s,
                reconnect_max_s=cfg.reader.reconnect_max_s,
                on_event=lambda table, op, n: self.metrics.binlog_rows.labels(table, op).inc(n),
                on_decode_error=lambda table, _lead: self.metrics.decode_errors.labels(table).inc(),
            )

            connector = aiohttp.TCPConnector(limit=cfg.delivery.max_in_flight, limit_per_host=0)
            session = aiohttp.ClientSession(
                connector=connector,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                raise_for_status=False,
                auto_decompress=False,
            )
            stack.push_async_callback(session.close)
            self.sender = Sender(session, store, cfg.delivery, self.metrics)

            self.metrics.add_collector(StateCollector(self._sample))
            app = server.make_app(self.metrics.registry, self._readiness, self.status)
            host, port = cfg.http.host_port()
            runner, self.http_port = await server.start(app, host, port)
            stack.push_async_callback(runner.cleanup)

            self.reader.start()
            stack.push_async_callback(self.reader.stop)
            self.ready.set()
            log.info("service.started http_port=%d source=%s", self.http_port, cfg.mysql.source_name)

            sender_stop = asyncio.Event()
            try:
                async with asyncio.TaskGroup() as tg:
                    sending = tg.create_task(self.sender.run(sender_stop), name="sender")
                    tg.create_task(self._counts_task(stop), name="counts")
                    tg.create_task(self._retention_task(stop), name="retention")
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

    async def _counts_task(self, stop: asyncio.Event) -> None:
        """Refresh outbox gauges and prune old rows, off the hot path."""
        assert self.store is not None
        last_prune = 0.0
        while not stop.is_set():
            counts = await self.store.counts()
            now = time.time()
            self._counts = {
                c.endpoint_id: {
                    "pending": c.pending,
                    "in_flight": c.in_flight,
                    "dead": c.dead,
                    "delivered": c.delivered,
                    "oldest_pending_age_s": (now - c.oldest_pending_created_at)
                    if c.oldest_pending_created_at
                    else 0.0,
                }
                for c in counts
            }
            if now - last_prune > 600:
                await self.store.prune_delivered(now - self.config.state.retention_s)
                last_prune = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)

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
        with contextlib.closing(binlog.connect(self.config.mysql)) as conn:
            logs = binlog.server_binlogs(conn)
            with conn.cursor() as cur:
                cur.execute(
                    "SHOW GLOBAL VARIABLES WHERE Variable_name IN"
                    " ('binlog_expire_logs_seconds', 'expire_logs_days')"
                )
                variables = {str(k): float(v or 0) for k, v in cur.fetchall()}
        expire_s = (
            variables.get("binlog_expire_logs_seconds") or variables.get("expire_logs_days", 0.0) * 86400
        )
        older = sum(size for name, size in logs if name < checkpoint.file)
        headroom_s = float("inf")
        if expire_s > 0 and self.stats.checkpoint_ts:
            headroom_s = expire_s - (time.time() - self.stats.checkpoint_ts)
        return Retention(headroom_s, float(older))

    # -- start-up ----------------------------------------------------------------------

    async def _preflight(self) -> None:
        """``vicidial-cdc check`` at start-up: what is not right is logged, never fatal."""
        from . import check

        try:
            results = await asyncio.to_thread(
                check.run_checks, self.config, max_downtime_s=self.config.reader.max_downtime_s
            )
        except (CdcError, pymysql.MySQLError, OSError) as exc:
            log.warning("check.not_run error=%s", type(exc).__name__)
            return
        for r in results:
            if r.status in (check.Status.WARN, check.Status.FAIL):
                log.warning("check.%s status=%s %s", r.name, r.status.value, r.message)

    async def _load_source(self, store: AsyncStore) -> Position | str:
        """Load settings by SELECT and decide where the binlog starts."""
        cfg = self.config

        def load() -> tuple[vicidb.SettingsRows, Position | str]:
            with contextlib.closing(binlog.connect(cfg.mysql)) as conn:
                rows = vicidb.load_settings_rows(conn, cfg.mysql.database)
                self._enum_has_apinewlead = vicidb.url_type_has_apinewlead(conn, cfg.mysql.database)
                self._server_charset = vicidb.connection_charset(conn, cfg.reader.server_charset)
                start = binlog.resolve_start(conn, binlog.parse_start(cfg.reader.start))
            return rows, start

        rows, configured = await asyncio.to_thread(load)
        self.settings.load(rows.url_rows, rows.list_rows, rows.field_rows, rows.system_row)
        self.settings.set_overrides(self._overrides)
        for line in self.settings.snapshot().sources():
            log.info("settings.url_source %s", line)
        sender = self._vicidial_sender()
        self.metrics.mode.labels(self._mode.value).set(1)
        self.metrics.vicidial_sender.set(1 if sender.sends else 0)
        log.info(
            "service.mode mode=%s vicidial_sends=%s db_schema_version=%d connection_charset=%s",
            self._mode.value,
            sender.sends,
            self.settings.snapshot().system.db_schema_version,
            self._server_charset,
        )
        checkpoint = await store.load_checkpoint()
        if checkpoint is not None and self._replace_checkpoint:
            log.warning("binlog.checkpoint_replaced old=%s start=%s", checkpoint, cfg.reader.start)
            checkpoint = None
        if checkpoint is not None:
            log.info("binlog.resume position=%s", checkpoint)
            self.stats.checkpoint = checkpoint
            return checkpoint
        if isinstance(configured, Position):
            # Remember the first position now, so a restart never jumps to "current" again.
            await store.commit_batch([], configured, time.time())
            self.stats.checkpoint = configured
        log.info("binlog.first_start position=%s", configured)
        return configured

    def _watched_tables(self) -> set[str]:
        tables = set(LEAD_TABLES) | set(SETTINGS_TABLES) | {URL_LOG_TABLE}
        tables |= {f"custom_{list_id}" for list_id in self.settings.snapshot().custom_field_lists()}
        return tables

    # -- the pipeline ------------------------------------------------------------------

    async def _pipeline(self, stop: asyncio.Event) -> None:
        assert self.reader is not None and self.store is not None and self.detector is not None
        reader = self.reader
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                get = asyncio.ensure_future(reader.get_batch())
                done, _ = await asyncio.wait(
                    {get, stop_wait}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                if get not in done:
                    get.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await get
                    await self._idle_tick()
                    continue
                batches = [get.result()]
                # Length first: a batch taken off the queue must never be dropped.
                while len(batches) < 64 and (more := reader.get_batch_nowait()) is not None:
                    batches.append(more)
                await self._process(batches)
        finally:
            stop_wait.cancel()

    async def _idle_tick(self) -> None:
        """With the reader caught up, binlog time is wall time: expire what waits."""
        assert self.reader is not None and self.detector is not None
        rs = self.reader.statistics()
        if rs.connected and rs.last_heartbeat_monotonic >= rs.last_event_monotonic:
            await self._process([], now_binlog=time.time())

    async def _process(self, batches: list[list[Any]], now_binlog: float | None = None) -> None:
        assert self.detector is not None and self.store is not None and self.sender is not None
        detector = self.detector
        deliveries: list[Delivery] = []
        last_end: Position | None = None
        newest_ts = 0
        seen = time.monotonic()
        for batch in batches:
            self.stats.batches += 1
            if not self.stats.checkpoint_ts and batch:
                # The stored checkpoint's time is unknown: count its age from the first event.
                self.stats.checkpoint_ts = float(getattr(batch[0], "timestamp", 0) or 0)
            for item in batch:
                if isinstance(item, RowChange):
                    self.stats.rows += 1
                    newest_ts = item.timestamp
                    if item.table in SETTINGS_TABLES:
                        self._apply_settings(item)
                        continue
                    resume = last_end or self.stats.checkpoint or _BEFORE_FIRST_GROUP
                    if item.table == URL_LOG_TABLE:
                        self._vicidial_attempts(self.url_log.feed(item, resume), deliveries)
                        continue
                    released = detector.feed(item, resume, seen)
                    self._resolve_all(released, deliveries)
                elif isinstance(item, GroupEnd):
                    last_end = item.position
                    newest_ts = max(newest_ts, item.timestamp)
                elif isinstance(item, SchemaChange):
                    log.info("binlog.schema_change table=%s", item.table)
        now = now_binlog if now_binlog is not None else float(newest_ts)
        if now:
            released, skipped = detector.expire(now)
            self._resolve_all(released, deliveries)
            for skip in skipped:
                self._count_skip(skip)
            self._vicidial_attempts(self.url_log.expire(now), deliveries)
        checkpoint = last_end
        holds = [h for h in (detector.min_resume_position(), self.url_log.min_resume_position()) if h]
        hold = min(holds) if holds else None
        if hold is not None and (checkpoint is None or hold < checkpoint):
            # A GTID start has no file:pos before its first group end: keep the GTID.
            checkpoint = None if hold == _BEFORE_FIRST_GROUP else hold
        if (
            checkpoint is not None
            and self.stats.checkpoint is not None
            and checkpoint <= self.stats.checkpoint
        ):
            checkpoint = None
        if not deliveries and checkpoint is None:
            return
        await self.store.commit_batch(deliveries, checkpoint, time.time())
        if deliveries:
            self.stats.deliveries += len(deliveries)
            for d in deliveries:
                self.metrics.deliveries_enqueued.labels(d.endpoint_id).inc()
            self.sender.notify()
        if checkpoint is not None:
            if checkpoint == last_end:
                self.stats.checkpoint_ts = float(newest_ts)
            self.stats.checkpoint = checkpoint

    def _apply_settings(self, change: RowChange) -> None:
        if self.settings.apply(change):
            self.metrics.settings_reloads.labels(change.table).inc()
            if change.table == "vicidial_lists_fields" and self.reader is not None:
                for list_id in self.settings.snapshot().custom_field_lists():
                    self.reader.watch_table(f"custom_{list_id}")

    def _resolve_all(self, leads: list[ApiLead], out: list[Delivery]) -> None:
        if not leads:
            return
        snapshot = self.settings.snapshot()
        router = self._router()
        for lead in leads:
            self.stats.leads += 1
            self.metrics.leads_detected.inc()
            deliveries, skips = router.route(lead, snapshot)
            out.extend(deliveries)
            for skip in skips:
                self._count_skip(skip)

    def _router(self) -> Router:
        return Router(
            self.config.delivery, self.config.mysql.source_name, self._server_charset, self._vicidial_sender()
        )

    def _vicidial_sender(self) -> VicidialSender:
        return vicidial_sender(self.settings.snapshot(), self._enum_has_apinewlead)

    def _vicidial_attempts(self, attempts: list[VicidialAttempt], out: list[Delivery]) -> None:
        """VICIdial's own sends: metrics for all, and its failures into our outbox."""
        retry = retries_vicidial_failures(self._mode)
        for a in attempts:
            endpoint = origin_of(a.url)[1]
            m = self.metrics
            m.requests.labels(endpoint, status_class(a.status), "vicidial").inc()
            m.deliveries.labels(endpoint, "delivered" if a.ok else "failed", "vicidial").inc()
            if not a.timed_out:
                m.request_duration.labels(endpoint, "vicidial").observe(a.response_s)
            if a.ok or not retry:
                continue
            problem = check_url(a.url)
            if problem is not None:
                self._count_skip(Skipped(a.lead_id, 0, problem))
                continue
            log.info(
                "vicidial.failed_send lead_id=%d url_log_id=%d endpoint=%s status=%d timed_out=%s",
                a.lead_id,
                a.url_log_id,
                endpoint,
                a.status,
                a.timed_out,
            )
            out.append(
                Delivery(
                    source=self.config.mysql.source_name,
                    lead_id=a.lead_id,
                    list_id=0,
                    endpoint_id=endpoint,
                    method="GET",
                    url=a.url,
                    url_source=UrlSource.VICIDIAL_RETRY,
                    inserted_at=a.started_at,
                )
            )

    def _count_skip(self, skip: Skipped) -> None:
        reason = skip.reason.value
        self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1
        self.metrics.leads_skipped.labels(reason).inc()
        if skip.reason not in (SkipReason.NOT_API, SkipReason.UPDATE_LEAD_INSERT, SkipReason.VICIDIAL_SENDS):
            log.info("lead.skipped lead_id=%d list_id=%d reason=%s", skip.lead_id, skip.list_id, reason)

    # -- observation -------------------------------------------------------------------

    def _sample(self) -> StateSample:
        rs = self.reader.statistics() if self.reader else binlog.ReaderStatistics()
        ds = self.detector.statistics() if self.detector else None
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
        )

    def _readiness(self) -> server.Readiness:
        rs = self.reader.statistics() if self.reader else binlog.ReaderStatistics()
        checks = {
            "binlog_connected": rs.connected,
            "store_open": self.store is not None,
            "sender_running": self.sender is not None,
        }
        return server.Readiness(ready=all(checks.values()), checks=checks)

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
        }


def _file_number(position: Position | None) -> float:
    """``binlog.000042`` → 42 (0 when unknown), for a gauge that shows rotation."""
    if position is None:
        return 0.0
    suffix = position.file.rpartition(".")[2]
    return float(suffix) if suffix.isdigit() else 0.0

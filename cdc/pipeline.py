"""The pipeline step: binlog items in, deliveries and a safe checkpoint out.

Sync and free of I/O (the service commits what a step returns, in one transaction):

    RowChange of a settings table  → settings cache
    RowChange of vicidial_url_log  → VICIdial's own senders (cdc.hooks: metrics; failures re-sent)
    RowChange of vicidial_list/api_log/custom_<id> → detector → router → deliveries
    GroupEnd                       → candidate checkpoint

The checkpoint of a step is the last group end, held back to the resume position of
anything still waiting (an insert without its api_log row, a VICIdial attempt without
its result), so a restart re-reads it; it never moves backwards.

A step may also carry late matches (``Step.late``: add_lead rows whose insert the
detector had given up on): the service fetches those leads by SELECT and routes them
with :meth:`Pipeline.route_fetched` *before* it commits the step, so their deliveries
are in the same transaction as the checkpoint that passes their api_log row.

A lead whose URL needs its ``custom_<list_id>`` row, when the reader could not decode
that table (``UnreadableRows``), is not routed: it is handed out in ``Step.waiting``
and held by the service (:mod:`cdc.waiting`) until the table is readable.

A lead whose routing raises (bad data, a bug) becomes a dead letter (a ``refused``
delivery on endpoint :data:`FAILED_ENDPOINT`, the error class as its reason) and the
step goes on: one lead never stops the others.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Sequence

from .config import Config
from .detect import Detector, LateMatch
from .endpoints import Router
from .hooks.watch import HookPolicy, HookStep, HookWatch
from .metrics import Metrics
from .modes import VicidialSender, retries_vicidial_failures, vicidial_sender
from .records import (
    ApiLead,
    Delivery,
    GroupEnd,
    Position,
    RowChange,
    SchemaChange,
    Skipped,
    SkipReason,
    SourceItem,
    UnreadableRows,
    UrlSource,
)
from .resolve import EndpointIds
from .settings import SETTINGS_TABLES, SettingsCache, SettingsSnapshot
from .vicidial import URL_LOG_TABLE, custom_table_list_id
from .waiting import WaitingLead

log = logging.getLogger(__name__)

#: Resume point of rows read before the first group end of a GTID start.
BEFORE_FIRST_GROUP = Position("", 0)
#: The endpoint id of a dead letter for a lead whose processing raised (no request).
FAILED_ENDPOINT = "-failed-"
#: Skips too common to log one by one (they are counted).
_QUIET_SKIPS = frozenset({SkipReason.NOT_API, SkipReason.UPDATE_LEAD_INSERT, SkipReason.VICIDIAL_SENDS})


def failed_delivery(source: str, lead: ApiLead | WaitingLead, reason: str) -> Delivery:
    """The dead letter of a lead that could not be routed: no URL, endpoint ``-failed-``,
    stored dead with ``reason`` (a ``refused`` delivery is never sent)."""
    return Delivery(
        source=source,
        lead_id=lead.lead_id,
        list_id=lead.list_id,
        endpoint_id=FAILED_ENDPOINT,
        method="GET",
        url="",
        url_source=UrlSource.UNRESOLVED,
        inserted_at=lead.inserted_at,
        refused=reason,
    )


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
class Step:
    """What one step produced: to be committed together."""

    deliveries: list[Delivery]
    #: Store this checkpoint with them; ``None``: leave the stored one.
    checkpoint: Position | None
    #: Binlog time of that checkpoint (0 when unknown).
    checkpoint_ts: float
    #: Leads to fetch by SELECT and route before committing (see the module doc).
    late: list[LateMatch] = dataclasses.field(default_factory=list)
    #: Leads that need custom rows of a table the reader could not read: the service holds them.
    waiting: list[ApiLead] = dataclasses.field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        nothing_else = not self.late and not self.waiting
        return not self.deliveries and self.checkpoint is None and nothing_else

    def followed_by(self, later: Step) -> Step:
        """This step and ``later`` as one commit (group commit): every delivery, the later
        checkpoint, or this one when ``later`` holds its own back (None).

        This checkpoint still stands then: it was safe when it was computed, and what
        ``later`` waits for comes after it in the binlog. Both steps must be completed
        (no late or waiting leads left: :meth:`cdc.recovery.LeadRecovery.complete`).
        """
        if self.late or self.waiting or later.late or later.waiting:
            msg = "only completed steps are committed together"
            raise ValueError(msg)
        if later.checkpoint is None:
            return Step(self.deliveries + later.deliveries, self.checkpoint, self.checkpoint_ts)
        return Step(self.deliveries + later.deliveries, later.checkpoint, later.checkpoint_ts)


class Pipeline:
    """Owns the detector and the hook watch; reads the settings cache it keeps current."""

    def __init__(
        self,
        config: Config,
        settings: SettingsCache,
        metrics: Metrics,
        stats: PipelineStatistics,
        *,
        server_charset: str,
        enum_has_apinewlead: bool,
    ) -> None:
        self._config = config
        self._settings = settings
        self._metrics = metrics
        self.stats = stats
        self._server_charset = server_charset
        self._enum_has_apinewlead = enum_has_apinewlead
        self._mode = config.delivery.mode
        self.detector = Detector(
            match_window_s=config.reader.match_window_s,
            custom_wait_s=config.reader.custom_wait_s,
            max_pending=config.reader.max_pending,
            max_pending_bytes=config.reader.max_pending_bytes,
            needs_custom=lambda list_id: self.router().needs_custom(settings.snapshot(), list_id),
        )
        policy = HookPolicy(
            config.hooks, retries_vicidial_failures(self._mode), config.delivery.vicidial_attempt_timeout_s
        )
        self.hooks = HookWatch(
            policy, metrics, EndpointIds(), config.mysql.source_name, config.reader.max_pending
        )
        self._waiting: list[ApiLead] = []
        #: The router and the settings snapshot it was built for (see :meth:`router`).
        self._router: tuple[SettingsSnapshot, Router] | None = None
        #: Lists whose custom_<list_id> rows the reader handed over as unreadable.
        self.unreadable_lists: set[int] = set()

    @property
    def server_charset(self) -> str:
        return self._server_charset

    def set_server_charset(self, charset: str) -> None:
        """The server restarted with another ``character_set_server``: render with it from now."""
        self._server_charset = charset

    def vicidial_sender(self) -> VicidialSender:
        return vicidial_sender(self._settings.snapshot(), self._enum_has_apinewlead)

    def router(self) -> Router:
        """The router for the current settings and server charset (built again when they change).

        The detector asks it at every match (``needs_custom``): one build per lead otherwise.
        """
        snapshot = self._settings.snapshot()
        cached = self._router
        if cached is not None and cached[0] is snapshot and cached[1].server_charset == self._server_charset:
            return cached[1]
        cfg = self._config
        router = Router(
            cfg.delivery,
            cfg.mysql.source_name,
            self._server_charset,
            vicidial_sender(snapshot, self._enum_has_apinewlead),
        )
        self._router = (snapshot, router)
        return router

    def process(
        self, batches: Sequence[Sequence[SourceItem]], *, seen: float, now_binlog: float | None = None
    ) -> Step:
        """Feed batches in binlog order; ``now_binlog`` advances binlog time (binlog time only)."""
        stats = self.stats
        deliveries: list[Delivery] = []
        last_end: Position | None = None
        newest_ts = 0
        for batch in batches:
            stats.batches += 1
            if not stats.checkpoint_ts and batch:
                # The stored checkpoint's time is unknown: count its age from the first event.
                stats.checkpoint_ts = float(getattr(batch[0], "timestamp", 0) or 0)
            for item in batch:
                if isinstance(item, RowChange):
                    stats.rows += 1
                    newest_ts = item.timestamp
                    if item.table in SETTINGS_TABLES:
                        self._apply_settings(item)
                        continue
                    resume = last_end or stats.checkpoint or BEFORE_FIRST_GROUP
                    if item.table == URL_LOG_TABLE:
                        self._hook_step(self.hooks.feed(item, resume), deliveries)
                        continue
                    if self.unreadable_lists and item.table.startswith("custom_"):
                        self.unreadable_lists.discard(custom_table_list_id(item.table) or 0)
                    self._route(self.detector.feed(item, resume, seen), deliveries)
                elif isinstance(item, GroupEnd):
                    last_end = item.position
                    newest_ts = max(newest_ts, item.timestamp)
                elif isinstance(item, SchemaChange):
                    log.info("binlog.schema_change table=%s", item.table)
                elif isinstance(item, UnreadableRows):
                    # One reader error per rows event the reader could not decode.
                    self._metrics.child(self._metrics.reader_errors, item.reason).inc()
                    list_id = custom_table_list_id(item.table)
                    if list_id is not None:
                        self.unreadable_lists.add(list_id)
        now = now_binlog if now_binlog is not None else float(newest_ts)
        if now:
            released, skipped = self.detector.expire(now)
            self._route(released, deliveries)
            for skip in skipped:
                self._count_skip(skip)
            self._hook_step(self.hooks.expire(now), deliveries)
        checkpoint = self._checkpoint(last_end)
        waiting, self._waiting = self._waiting, []
        late = self.detector.take_late()
        ts = float(newest_ts) if checkpoint == last_end else 0.0
        return Step(deliveries, checkpoint, ts, late, waiting)

    def route_fetched(
        self,
        late: Sequence[LateMatch],
        leads: Sequence[ApiLead],
        unreadable_lists: frozenset[int] = frozenset(),
    ) -> Step:
        """Route the leads fetched for ``late``: their deliveries and dead letters.

        Counts each late match (``fetched``, or ``lead_missing`` when the row is gone)
        and logs it without personal data. Leads of ``unreadable_lists`` (their custom
        table showed no columns to the fetch) wait instead, as live ones do.
        """
        found = {lead.lead_id for lead in leads}
        for match in late:
            outcome = "fetched" if match.lead_id in found else "lead_missing"
            self._metrics.leads_late.labels(outcome).inc()
            log.warning(
                "lead.late_match lead_id=%d list_id=%d outcome=%s"
                " hint=the add_lead api_log row came after reader.match_window_s",
                match.lead_id,
                match.list_id,
                outcome,
            )
        self.unreadable_lists |= unreadable_lists
        deliveries: list[Delivery] = []
        self._route(list(leads), deliveries)
        waiting, self._waiting = self._waiting, []
        return Step(deliveries, None, 0.0, [], waiting)

    def route_released(self, leads: Sequence[ApiLead]) -> Step:
        """Route leads fetched once the data they waited for became readable."""
        deliveries: list[Delivery] = []
        self._route(list(leads), deliveries, hold=False)
        return Step(deliveries, None, 0.0)

    def committed(self, step: Step) -> None:
        """The step is durable: account for it."""
        self.stats.deliveries += len(step.deliveries)
        by_endpoint: dict[str, int] = {}
        for d in step.deliveries:
            by_endpoint[d.endpoint_id] = by_endpoint.get(d.endpoint_id, 0) + 1
        for endpoint_id, count in by_endpoint.items():
            self._metrics.child(self._metrics.deliveries_enqueued, endpoint_id).inc(count)
        if step.checkpoint is not None:
            if step.checkpoint_ts:
                self.stats.checkpoint_ts = step.checkpoint_ts
            self.stats.checkpoint = step.checkpoint

    def _checkpoint(self, last_end: Position | None) -> Position | None:
        checkpoint = last_end
        holds = [h for h in (self.detector.min_resume_position(), self.hooks.min_resume_position()) if h]
        hold = min(holds) if holds else None
        if hold is not None and (checkpoint is None or hold < checkpoint):
            # A GTID start has no file:pos before its first group end: keep the GTID.
            checkpoint = None if hold == BEFORE_FIRST_GROUP else hold
        stored = self.stats.checkpoint
        if checkpoint is not None and stored is not None and checkpoint <= stored:
            return None
        return checkpoint

    def _apply_settings(self, change: RowChange) -> None:
        if self._settings.apply(change):
            self._metrics.settings_reloads.labels(change.table).inc()

    def _route(self, leads: list[ApiLead], out: list[Delivery], *, hold: bool = True) -> None:
        if not leads:
            return
        snapshot = self._settings.snapshot()
        router = self.router()
        detected = 0
        for lead in leads:
            if (
                hold
                and self.unreadable_lists
                and lead.list_id in self.unreadable_lists
                and lead.custom is None
                and router.needs_custom(snapshot, lead.list_id)
            ):
                self._waiting.append(lead)
                continue
            self.stats.leads += 1
            detected += 1
            try:
                deliveries, skips = router.route(lead, snapshot)
            except Exception as exc:  # one bad lead must not stop the stream
                out.append(self._fail(lead, exc))
                continue
            out.extend(deliveries)
            for skip in skips:
                self._count_skip(skip)
            for d in deliveries:
                if d.refused:
                    self._refused(d)
        if detected:
            self._metrics.leads_detected.inc(detected)

    def _refused(self, d: Delivery) -> None:
        """A delivery stored as a dead letter instead of sending the endpoint's secrets elsewhere."""
        self._metrics.child(self._metrics.secret_origin_refused, d.endpoint_id).inc()
        log.warning(
            "delivery.origin_refused endpoint=%s list_id=%d lead_id=%d reason=%s url_source=%s:"
            " the URL for list %d is outside [endpoints.%s] allowed_origins; not sent, a dead"
            " letter. If the origin is yours, add it to allowed_origins and run 'vicidial-cdc dlq"
            " retry --endpoint %s'; if not, fix the list's URL in VICIdial and run 'vicidial-cdc"
            " replay --lead-id %d --force'",
            d.endpoint_id,
            d.list_id,
            d.lead_id,
            d.refused,
            d.url_source.value,
            d.list_id,
            d.endpoint_id,
            d.endpoint_id,
            d.lead_id,
        )

    def _fail(self, lead: ApiLead, exc: Exception) -> Delivery:
        """Dead-letter a lead whose routing raised; log where, never the values."""
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f"{frame.filename.rpartition('/')[2]}:{frame.lineno}:{frame.name}" if frame else "?"
        reason = f"processing_error: {type(exc).__name__} at {where}"
        self._metrics.leads_failed.inc()
        log.error(
            "lead.processing_failed lead_id=%d list_id=%d error=%s where=%s"
            " fix=correct the data or the config, then: vicidial-cdc replay --lead-id %d",
            lead.lead_id,
            lead.list_id,
            type(exc).__name__,
            where,
            lead.lead_id,
        )
        return failed_delivery(self._config.mysql.source_name, lead, reason)

    def _hook_step(self, step: HookStep, out: list[Delivery]) -> None:
        """VICIdial's own sends: the rescues go into our outbox, unsendable ones are counted."""
        out.extend(step.deliveries)
        for skip in step.skipped:
            self._count_skip(skip)

    def _count_skip(self, skip: Skipped) -> None:
        reason = skip.reason.value
        self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1
        self._metrics.leads_skipped.labels(reason).inc()
        if skip.reason not in _QUIET_SKIPS:
            log.info("lead.skipped lead_id=%d list_id=%d reason=%s", skip.lead_id, skip.list_id, reason)

"""The reader thread: one binlog connection at a time, batches to the event loop.

:class:`BinlogReader` is the :class:`cdc.reader.interface.Reader` the service uses. It
is made of a :class:`Channel` (the bounded hand-over to the loop: a stalled pipeline
stalls the reader instead of growing memory) and a :class:`Follower` (the thread's
loop: checks before each connection, reconnect backoff, fault reports, the resume
position), and it reads through a :class:`cdc.reader.source.Source`: raw packets
(:mod:`cdc.reader.raw`) or library events (:mod:`cdc.reader.library`).

Errors are told apart by :mod:`cdc.reader.faults`: a lost connection is retried with
backoff from the last group end handed over; a fault reconnecting cannot heal is
reported and re-checked every ``fault_recheck_s``; a purged checkpoint or a state
store that stays locked fails the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol, Unpack

import pymysql

from ..config import MysqlConfig
from ..errors import BinlogPurgedError, ReaderFault, ReaderFaultError, StoreError
from ..records import Position, SourceItem, Value
from . import faults, serverinfo
from .connection import connect
from .interface import FollowerOptions, ReaderStatistics
from .position import check_position_available, is_purged, purged_message
from .schema import SchemaCache, SchemaHistoryStore, TableSchemas, WatchedTables
from .source import Feed, Source
from .unreadable import UnreadableTables

__all__ = ["BinlogReader", "Channel", "Follower", "Sink"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where the reader thread's output goes: the :class:`Channel`, or a pipe to another process."""

    def send(self, batch: list[SourceItem]) -> bool:
        """Hand a batch over, blocking while the receiver is full (``False``: stopped)."""
        ...

    def send_facts(self, facts: serverinfo.ServerFacts) -> None:
        """What the server said at a connect, in stream order with the batches."""
        ...

    def send_error(self, exc: BaseException) -> None:
        """What the reader thread died of."""
        ...


class Channel:
    """Batches from the reader thread to the event loop: at most ``queue_batches`` wait."""

    def __init__(
        self,
        stop: threading.Event,
        *,
        queue_batches: int = 64,
        on_server: Callable[[serverinfo.ServerFacts], None] | None = None,
    ) -> None:
        """``stop`` ends a ``send`` blocked on a full channel; ``on_server(facts)`` runs on the
        loop, in stream order, before the batches read after that connect."""
        self._stop = stop
        self._slots = threading.Semaphore(queue_batches)
        self._queue: asyncio.Queue[list[SourceItem] | serverinfo.ServerFacts | BaseException] = (
            asyncio.Queue()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_server = on_server
        #: Server facts taken off the queue by ``get_batch_nowait``, applied before the next batch.
        self._held_facts: serverinfo.ServerFacts | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the batches go to (called on it, before the thread starts)."""
        self._loop = loop

    # -- thread side ---------------------------------------------------------------

    def send(self, batch: list[SourceItem]) -> bool:
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                return False
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, batch)
        except RuntimeError:  # loop closed
            return False
        return True

    def send_facts(self, facts: serverinfo.ServerFacts) -> None:
        self._put(facts)

    def send_error(self, exc: BaseException) -> None:
        self._put(exc)

    def _put(self, item: serverinfo.ServerFacts | BaseException) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    # -- loop side -----------------------------------------------------------------

    async def get_batch(self) -> list[SourceItem]:
        """The next batch, in binlog order. Raises what the reader thread died of."""
        while True:
            if self._held_facts is not None:
                self._apply_facts(self._held_facts)
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, serverinfo.ServerFacts):
                self._apply_facts(item)
                continue
            self._slots.release()
            return item

    def get_batch_nowait(self) -> list[SourceItem] | None:
        """The next batch if one is waiting, else ``None`` (also before server facts:
        the batches already taken are processed under the facts they were read with)."""
        if self._held_facts is not None:
            return None
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, serverinfo.ServerFacts):
            self._held_facts = item
            return None
        self._slots.release()
        return item

    def queued(self) -> int:
        return self._queue.qsize()

    def _apply_facts(self, facts: serverinfo.ServerFacts) -> None:
        self._held_facts = None
        if self._on_server is not None:
            self._on_server(facts)


class Follower:
    """The reader thread's loop: connect, read through the source, classify what ends it.

    Owns the resume position (in its :attr:`feed`), the reconnect backoff and the fault
    report in :attr:`stats`. Runs on whatever thread calls :meth:`run`.
    """

    def __init__(
        self,
        mysql: MysqlConfig,
        tables: Iterable[str],
        start: Position | str,
        source: Source,
        sink: Sink,
        *,
        stop: threading.Event | None = None,
        batch_rows: int = 500,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        flush_interval_s: float = 0.2,
        on_event: Callable[[str, str, int], None] | None = None,
        on_decode_error: Callable[[str, Value], None] | None = None,
        schema_store: SchemaHistoryStore | None = None,
        identity: serverinfo.ServerIdentity | None = None,
        on_fault: Callable[[ReaderFault, str], None] | None = None,
        fault_recheck_s: float = faults.FAULT_RECHECK_S,
        unreadable_retry_s: float = 60.0,
    ) -> None:
        """``sink`` gets what is read; ``stop`` ends reading (set by the owner).

        ``batch_rows`` and ``flush_interval_s``: when a source hands a batch over.
        ``schema_store``: where the schema history is kept (unopened; the reader thread
        opens it). Without one the history lives in memory: learned at start and at DDL.
        ``identity``: the server the checkpoint was read from (``None``: not recorded).
        ``on_fault(kind, cause)`` runs in the reader thread for every error (transient
        ones too, kind ``connection`` and cause a :class:`cdc.reader.faults.TransientCause`);
        ``on_event(table, op, rows)`` and ``on_decode_error(table, lead_id)`` too.
        """
        self._mysql = mysql
        self.source = source
        self._sink = sink
        self.stop = stop or threading.Event()
        self.stats = ReaderStatistics()
        #: custom_<list_id> tables whose rows are handed over as UnreadableRows (cdc.reader.unreadable).
        self.unreadable = UnreadableTables(mysql.database, mysql.user, unreadable_retry_s)
        self._schemas = TableSchemas(mysql.database, WatchedTables(tables), SchemaCache(mysql), schema_store)
        self.feed = Feed(
            mysql,
            self._schemas,
            self.unreadable,
            start,
            sink.send,
            stop=self.stop,
            stats=self.stats,
            batch_rows=batch_rows,
            flush_interval_s=flush_interval_s,
            on_event=on_event,
            on_decode_error=on_decode_error,
            on_fault=on_fault,
        )
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._identity = identity
        self._on_fault = on_fault
        self._fault_recheck_s = fault_recheck_s

    def run(self) -> None:
        """Read until stopped; what ends the reader for good goes to the sink's ``send_error``."""
        delay = self._reconnect_initial_s
        try:
            while not self.stop.is_set():
                try:
                    self._connection()
                    delay = self._reconnect_initial_s
                except (BinlogPurgedError, StoreError):
                    # A state file still locked past state.busy_limit_s (schema history) fails
                    # the service as the service's own store does: it is no binlog fault, and a
                    # re-read would find the definition already in memory and never store it.
                    raise
                except Exception as exc:  # classified: transient, fault, or purged
                    resume = self.feed.resume
                    if isinstance(exc, pymysql.MySQLError) and is_purged(exc):
                        assert isinstance(resume, Position)
                        raise BinlogPurgedError(purged_message(resume)) from exc
                    self.stats.connected = False
                    if self.stop.is_set():
                        break
                    kind = faults.classify(exc)
                    if kind is ReaderFault.BINLOG_PURGED:
                        raise
                    if kind is ReaderFault.CONNECTION:
                        self._transient(exc, delay)
                        self.stop.wait(delay)
                        delay = min(delay * 2, self._reconnect_max_s)
                    else:
                        self._fault(kind, exc)
                        self.stop.wait(self._fault_recheck_s)
                        delay = self._reconnect_initial_s
        except BaseException as exc:  # hand the failure to the loop, which owns the task
            self._sink.send_error(exc)
        finally:
            self.stats.connected = False
            self._schemas.close()

    def _connection(self) -> None:
        """One connection: the checks, the schema history, then the source until it ends."""
        try:
            self._prepare()
            resume = self.feed.resume
            self._schemas.learn(resume if isinstance(resume, Position) else None)
            self.source.follow(self.feed)
        finally:
            self.stats.connected = False

    def _transient(self, exc: BaseException, delay: float) -> None:
        """A connection error reconnecting heals: logged with its message, counted by cause."""
        cause = faults.transient_cause(exc)
        stats = self.stats
        stats.reconnects += 1
        stats.transient[cause.value] = stats.transient.get(cause.value, 0) + 1
        log.warning(
            "binlog.disconnected cause=%s error=%s message=%r retry_in_s=%.1f position=%s",
            cause.value,
            type(exc).__name__,
            faults.error_text(exc),
            delay,
            self.feed.resume,
        )
        if self._on_fault is not None:
            self._on_fault(ReaderFault.CONNECTION, cause.value)

    def _fault(self, kind: ReaderFault, exc: BaseException) -> None:
        """A fault reconnecting cannot heal: reported loudly, re-checked slowly."""
        resume = self.feed.resume
        message = faults.explain(
            kind,
            exc,
            user=self._mysql.user,
            database=self._mysql.database,
            position=resume if isinstance(resume, Position) else None,
        )
        previous = self.stats.fault
        since = previous.since if previous is not None and previous.kind is kind else time.time()
        position = str(resume)
        self.stats.fault = faults.FaultReport(kind, message, since, position)
        log.error(
            "binlog.fault kind=%s position=%s recheck_in_s=%.0f %s",
            kind.value,
            position,
            self._fault_recheck_s,
            message,
        )
        if self._on_fault is not None:
            self._on_fault(kind, "")

    def _prepare(self) -> None:
        """Before each connection: the checkpoint's file is there, the server is the same
        one, and what a restart may change (charset, binlog settings) is re-read."""
        with contextlib.closing(connect(self._mysql)) as conn:
            facts = serverinfo.read_facts(conn)
            self._check_server(facts)  # a different server is not a purge: checked first
            resume = self.feed.resume
            if isinstance(resume, Position):
                check_position_available(conn, resume)
        problems = []
        if facts.binlog_format != "ROW":
            problems.append(f"binlog_format={facts.binlog_format or 'unknown'}")
        if facts.binlog_row_image != "FULL":
            problems.append(f"binlog_row_image={facts.binlog_row_image or 'unknown'}")
        if problems:
            raise ReaderFaultError(
                ReaderFault.BINLOG_SETTINGS,
                f"{', '.join(problems)}: lead inserts are not logged as full rows",
            )
        if facts.compression and not self.source.sees_compressed_events:
            raise ReaderFaultError(
                ReaderFault.COMPRESSED_EVENTS,
                "the server compresses binlog events, which mysql-replication skips without a word: "
                'this reader (reader.decoder = "library") would miss leads',
            )
        previous = self.stats.server
        self.stats.server = facts
        if previous is None or _settings_key(previous) != _settings_key(facts):
            log.info("binlog.server %s %s", facts.identity, facts.settings_summary())
            self._sink.send_facts(facts)

    def _check_server(self, facts: serverinfo.ServerFacts) -> None:
        resume = self.feed.resume
        checkpoint = resume if isinstance(resume, Position) else None
        verdict = serverinfo.continuity(self._identity, checkpoint, facts)
        if verdict.verdict is serverinfo.Verdict.CHANGED:
            raise ReaderFaultError(
                ReaderFault.SERVER_CHANGED,
                serverinfo.changed_message(verdict.reason, checkpoint, "the state file"),
            )
        if verdict.verdict is serverinfo.Verdict.GTID:
            assert checkpoint is not None
            log.warning(
                "binlog.server_changed_gtid_continue gtid=%s reason=%s", checkpoint.gtid, verdict.reason
            )
            self.feed.resume = checkpoint.gtid
        self._identity = facts.identity


class BinlogReader:
    """Follows the binlog in a thread and hands batches of :data:`SourceItem` to the loop.

    Built by :func:`cdc.reader.reader_for`'s factories with the source ``reader.decoder`` names.
    """

    def __init__(
        self,
        mysql: MysqlConfig,
        tables: Iterable[str],
        start: Position | str,
        *,
        source: Source,
        queue_batches: int = 64,
        on_server: Callable[[serverinfo.ServerFacts], None] | None = None,
        **options: Unpack[FollowerOptions],
    ) -> None:
        """``queue_batches``: the channel's bound. ``on_server(facts)`` runs on the loop, in
        stream order, after every connect, before the batches read on that connection.
        ``options``: the :class:`Follower`'s (defaults there).
        """
        self._stop = threading.Event()
        self._channel = Channel(self._stop, queue_batches=queue_batches, on_server=on_server)
        self._follower = Follower(mysql, tables, start, source, self._channel, stop=self._stop, **options)
        self._thread: threading.Thread | None = None

    @property
    def source(self) -> Source:
        """The source this reader reads through (raw packets or library events)."""
        return self._follower.source

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("BinlogReader.start() called twice")
        self._channel.bind(asyncio.get_running_loop())
        self._thread = threading.Thread(target=self._follower.run, name="binlog-reader", daemon=True)
        self._thread.start()

    async def get_batch(self) -> list[SourceItem]:
        """The next batch, in binlog order. Raises what the reader thread died of."""
        return await self._channel.get_batch()

    def get_batch_nowait(self) -> list[SourceItem] | None:
        """The next batch if one is waiting, else ``None`` (see :meth:`Channel.get_batch_nowait`)."""
        return self._channel.get_batch_nowait()

    def queued(self) -> int:
        return self._channel.queued()

    def statistics(self) -> ReaderStatistics:
        return self._follower.stats

    def unreadable_tables(self) -> frozenset[str]:
        """The custom tables whose rows are handed over as unreadable now (cdc.reader.unreadable)."""
        return self._follower.unreadable.tables()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        """Stop the thread and wait for it (it notices within one heartbeat)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)


def _settings_key(facts: serverinfo.ServerFacts) -> tuple[object, ...]:
    """What of the server's facts, when it changes, the service must hear about."""
    return (
        facts.identity,
        facts.character_set_server,
        facts.binlog_format,
        facts.binlog_row_image,
        facts.binlog_row_metadata,
        facts.compression,
    )

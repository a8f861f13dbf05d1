"""The contract between the reader thread and a binlog source.

A :class:`Source` reads one connection's worth of binlog (raw packets,
:mod:`cdc.reader.raw`; or library events, :mod:`cdc.reader.library`) and hands what it
decoded to a :class:`Feed`: the reader's tables and schema knowledge, its statistics,
its stop flag, and the way to the channel. The feed also keeps the resume position:
the last group end handed over, where the next connection starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from ..config import MysqlConfig
from ..errors import ReaderFault
from ..records import Position, SourceItem, Value
from .interface import ReaderStatistics
from .schema import TableSchemas, WatchedTables
from .unreadable import UnreadableTables

__all__ = ["Feed", "Source"]

log = logging.getLogger(__name__)


class Source(Protocol):
    """Reads the binlog from ``feed.resume`` until ``feed.stop`` is set, or raises what ended it."""

    @property
    def sees_compressed_events(self) -> bool:
        """Whether it notices a compressed event (else compression on the server is a fault)."""
        ...

    def follow(self, feed: Feed) -> None:
        """Connect, read and hand over batches; return when stopped, raise when the stream ends."""
        ...


class Feed:
    """What a source reads for and hands its batches to (reader thread only)."""

    def __init__(
        self,
        mysql: MysqlConfig,
        schemas: TableSchemas,
        unreadable: UnreadableTables,
        start: Position | str,
        send: Callable[[list[SourceItem]], bool],
        *,
        stop: threading.Event | None = None,
        stats: ReaderStatistics | None = None,
        batch_rows: int = 500,
        flush_interval_s: float = 0.2,
        on_event: Callable[[str, str, int], None] | None = None,
        on_decode_error: Callable[[str, Value], None] | None = None,
        on_fault: Callable[[ReaderFault, str], None] | None = None,
    ) -> None:
        """``send(batch)`` hands a batch over (``False``: stopped, nothing more is read)."""
        self.mysql = mysql
        self.schemas = schemas
        self.unreadable = unreadable
        #: Where the next connection starts: the last group end handed over, or the start.
        self.resume: Position | str = start
        self.stop = stop or threading.Event()
        self.stats = stats or ReaderStatistics()
        #: A batch is handed over at this many records, or after this long.
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self._send = send
        self._on_event = on_event
        #: Rows counted but not yet reported to ``on_event`` (see :meth:`count_rows`).
        self._unreported: dict[tuple[str, str], int] = {}
        self._on_decode_error = on_decode_error
        self._on_fault = on_fault

    @property
    def tables(self) -> WatchedTables:
        return self.schemas.tables

    def hand_over(self, batch: list[SourceItem], end: Position | None) -> bool:
        """Hand a batch over; the resume position moves to its last group end ``end``.

        Moving it here, not when the source reads the group end, means a reconnect
        never skips what was read but not handed over.
        """
        if end is not None:
            self.resume = end
            self.stats.position = end
            if self.stats.fault is not None:
                self.progress(caught_up=False)
        self.report_rows()
        return self._send(batch)

    def report_rows(self) -> None:
        """Hand the row counts read since the last report to ``on_event``."""
        if self._unreported and self._on_event is not None:
            unreported, self._unreported = self._unreported, {}
            for (table, op), rows in unreported.items():
                self._on_event(table, op, rows)

    def connected(self) -> None:
        """The first event of a connection arrived."""
        if not self.stats.connected:
            self.stats.connected = True
            log.info("binlog.connected position=%s", self.resume)

    def count_rows(self, table: str, op: str, rows: int) -> None:
        """Rows of a watched table were read: counted in the statistics now, and reported to
        ``on_event`` (``vicidial_cdc_binlog_rows_total``) summed per table and operation
        with the next batch handed over, not once per rows event."""
        key = (table, op)
        self.stats.rows[key] = self.stats.rows.get(key, 0) + rows
        if self._on_event is not None:
            self._unreported[key] = self._unreported.get(key, 0) + rows

    def decode_error(self, table: str, column: str, lead_id: Value) -> None:
        """Text of ``column`` did not decode in its charset: counted and logged, kept lossless."""
        self.stats.decode_errors += 1
        log.warning("binlog.decode_error table=%s column=%s lead_id=%s", table, column, lead_id)
        if self._on_decode_error is not None:
            self._on_decode_error(table, lead_id)

    def progress(self, *, caught_up: bool) -> None:
        """The stream moved past a standing fault (or reached the server's end): clear it."""
        fault = self.stats.fault
        if fault is None:
            return
        if caught_up or str(self.resume) != fault.position:
            self.stats.fault = None
            log.warning("binlog.fault_cleared kind=%s position=%s", fault.kind.value, self.resume)
            if self._on_fault is not None:
                self._on_fault(fault.kind, "cleared")

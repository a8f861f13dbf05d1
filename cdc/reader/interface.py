"""What the service sees of a binlog reader: a small interface and its statistics.

A reader follows the binlog in a thread of its own and hands batches of
:data:`cdc.records.SourceItem` to the event loop, in binlog order, through a bounded
channel. :class:`cdc.reader.follower.BinlogReader` is the implementation (with either
source, raw packets or library events); the benchmark's process-reader prototype is another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypedDict, Unpack

from ..config import MysqlConfig
from ..errors import ReaderFault
from ..records import Position, SourceItem, Value
from . import serverinfo
from .faults import FaultReport
from .schema import SchemaHistoryStore

__all__ = ["FollowerOptions", "Reader", "ReaderFactory", "ReaderOptions", "ReaderStatistics"]


@dataclass(slots=True)
class ReaderStatistics:
    """Counters and gauges the metrics collector reads at scrape time."""

    connected: bool = False
    reconnects: int = 0
    events: int = 0
    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    decode_errors: int = 0
    last_event_ts: int = 0
    last_event_monotonic: float = 0.0
    #: Our wall clock when the last event was read (lag = this - last_event_ts).
    last_event_wall: float = 0.0
    last_heartbeat_monotonic: float = 0.0
    position: Position | None = None
    binlog_file: str = ""
    #: The standing fault (``None`` while the reader reads or retries a transient error).
    fault: FaultReport | None = None
    #: Transient reconnects by :class:`cdc.reader.faults.TransientCause`.
    transient: dict[str, int] = field(default_factory=dict)
    #: What the server said at the last connect.
    server: serverinfo.ServerFacts | None = None


class Reader(Protocol):
    """The binlog reader as the service uses it: start, take batches, observe, stop."""

    def start(self) -> None:
        """Start reading (on the running event loop); raises ``RuntimeError`` if called twice."""
        ...

    async def get_batch(self) -> list[SourceItem]:
        """The next batch, in binlog order. Raises what the reader died of."""
        ...

    def get_batch_nowait(self) -> list[SourceItem] | None:
        """The next batch if one is waiting, else ``None``."""
        ...

    def queued(self) -> int:
        """Batches waiting in the channel."""
        ...

    def statistics(self) -> ReaderStatistics:
        """Counters, the standing fault and the server followed, read at scrape time."""
        ...

    def request_stop(self) -> None:
        """Ask the reader to stop at its next batch (never blocks)."""
        ...

    async def stop(self) -> None:
        """Stop the reader and wait until it has."""
        ...


class FollowerOptions(TypedDict, total=False):
    """The reader thread's options (``cdc.reader.follower.Follower``; defaults there)."""

    batch_rows: int
    reconnect_initial_s: float
    reconnect_max_s: float
    flush_interval_s: float
    on_event: Callable[[str, str, int], None] | None
    on_decode_error: Callable[[str, Value], None] | None
    schema_store: SchemaHistoryStore | None
    identity: serverinfo.ServerIdentity | None
    on_fault: Callable[[ReaderFault, str], None] | None
    fault_recheck_s: float
    unreadable_retry_s: float


class ReaderOptions(FollowerOptions, total=False):
    """A reader's options: its channel's, then its thread's (:class:`FollowerOptions`)."""

    queue_batches: int
    on_server: Callable[[serverinfo.ServerFacts], None] | None


class ReaderFactory(Protocol):
    """Builds a reader (:func:`cdc.reader.reader_for`'s factories; the benchmark's own)."""

    def __call__(
        self,
        mysql: MysqlConfig,
        tables: Iterable[str],
        start: Position | str,
        **options: Unpack[ReaderOptions],
    ) -> Reader: ...

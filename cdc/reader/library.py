"""The binlog reader: one replication connection in its own thread.

``mysql-replication`` does the protocol (handshake, dump command, framing, row
decoding); this module decides what to decode and turns its events into our records:
``RowChange`` for watched tables, ``GroupEnd`` at every event-group end (the ``COMMIT``
Query event of MyISAM groups, ``Xid`` for InnoDB, a DDL statement), ``SchemaChange``
for DDL on a watched table. Batches cross to the event loop through a bounded
channel, so a stalled pipeline stalls the reader instead of growing memory.

Column names, signedness, ENUM labels and charsets are taken from the binlog when the
server logs ``binlog_row_metadata=FULL`` and from ``information_schema`` otherwise
(re-read when DDL for a watched table passes by). Text is decoded with the column's
charset, losslessly: bytes that do not decode survive as surrogate escapes and are
reported, never dropped.

The library reconnects by itself after a lost connection, at the last *event* it
read, which can fall between a table map and its rows, whose rows it then skips
silently. We refuse that reconnect (see ``_GuardedConnect``) and resume from the last
group end instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from .. import charset
from ..config import MysqlConfig, SslMode
from ..errors import BinlogPurgedError, ReaderFault, ReaderFaultError, SourceError, StoreError
from ..records import (
    GroupEnd,
    Op,
    Position,
    RowChange,
    SchemaChange,
    SourceItem,
    UnreadableRows,
    Value,
    has_undecodable,
)
from ..vicidb import enum_labels
from ..vicidial import custom_table_list_id
from . import faults, replication, serverinfo
from .schemahistory import (
    ColumnInfo,
    SchemaHistory,
    ambiguous_message,
    columns_from_json,
    columns_to_json,
    fits,
)
from .unreadable import UNREADABLE_REASON, UnreadableTables

log = logging.getLogger(__name__)

_ER_MASTER_FATAL_READING_BINLOG = 1236
_DDL_RE = re.compile(
    rb"^\s*(?:/\*.*?\*/\s*)*(?:ALTER|CREATE|DROP|RENAME|TRUNCATE)\s+(?:TEMPORARY\s+)?TABLE\b",
    re.IGNORECASE | re.DOTALL,
)
_NAME_RE = re.compile(rb"[`\"]?(?:\w+[`\"]?\.[`\"]?)?(\w+)[`\"]?")
_TEXT_TYPES = frozenset({FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB})
#: What the library's ``None`` means for a non-NULL value (zero dates, empty SETs).
_NONE_AS_TEXT = {
    "set": "",
    "date": "0000-00-00",
    "datetime": "0000-00-00 00:00:00",
    "timestamp": "0000-00-00 00:00:00",
}


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
    fault: faults.FaultReport | None = None
    #: Transient reconnects by :class:`cdc.reader.faults.TransientCause`.
    transient: dict[str, int] = field(default_factory=dict)
    #: What the server said at the last connect.
    server: serverinfo.ServerFacts | None = None


def connect(mysql: MysqlConfig, **extra: Any) -> pymysql.Connection[Any]:
    """A plain control connection to the VICIdial database server (TLS as configured)."""
    try:
        return pymysql.connect(**connection_settings(mysql), **extra)
    except pymysql.MySQLError as exc:
        raise SourceError(connect_error(mysql, exc)) from exc


#: PyMySQL's code for "TLS required but the server does not offer it".
_CR_SSL_CONNECTION_ERROR = 2026


def connect_error(mysql: MysqlConfig, exc: pymysql.MySQLError) -> str:
    """Why a connection failed and what to change; TLS refusals get their own fix."""
    where = f"MySQL {mysql.host}:{mysql.port}"
    cause = getattr(exc, "original_exception", None)
    code = exc.args[0] if exc.args else 0
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or str(cause)
        if "mismatch" in reason:
            fix = (
                f"the certificate does not name {mysql.host!r}: set [mysql] host to a name or "
                "address the certificate carries (its subjectAltName), or reissue it"
            )
        else:
            fix = "set [mysql] ssl_ca to the PEM file of the CA that signed the server's certificate"
        return f"TLS: {where} presented a certificate that was refused ({reason}): {fix}"
    if isinstance(cause, ssl.SSLError):
        return (
            f"TLS handshake with {where} failed ({cause.reason or cause}): check the server's "
            "ssl_cert/ssl_key and, for accounts REQUIRE X509, [mysql] ssl_cert and ssl_key"
        )
    if code == _CR_SSL_CONNECTION_ERROR:
        return (
            f"TLS: {where} does not offer TLS, and [mysql] ssl_mode = {mysql.tls_mode.value} refuses "
            "plaintext: turn TLS on in the server (my.cnf [mariadb] ssl_cert, ssl_key, ssl_ca; "
            "SHOW VARIABLES LIKE 'have_ssl' must say YES)"
        )
    return (
        f"cannot connect to {where} as {mysql.user}: {exc.args[-1]}; "
        "check [mysql] host/port/user and the password"
    )


def connection_settings(mysql: MysqlConfig) -> dict[str, Any]:
    """PyMySQL's keyword arguments for every connection to the server (both readers')."""
    settings: dict[str, Any] = {
        "host": mysql.host,
        "port": mysql.port,
        "user": mysql.user,
        "password": mysql.password.value,
        "connect_timeout": mysql.connect_timeout_s,
        "read_timeout": mysql.read_timeout_s,
        "write_timeout": mysql.read_timeout_s,
        "charset": "utf8mb4",
    }
    mode = mysql.tls_mode
    if mode is SslMode.DISABLED:
        settings["ssl_disabled"] = True
    elif mode is not SslMode.PREFERRED:  # preferred: PyMySQL's own default
        try:
            # An SSLContext makes PyMySQL refuse a server without TLS (no plaintext fallback).
            settings["ssl"] = mysql.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(
                f"cannot use the TLS files of [mysql] (ssl_ca, ssl_cert, ssl_key): {exc}"
            ) from exc
    return settings


def server_binlogs(conn: pymysql.Connection[Any]) -> list[tuple[str, int]]:
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [(str(r[0]), int(r[1])) for r in cur.fetchall()]


def current_position(conn: pymysql.Connection[Any]) -> Position:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    if row is None:
        raise SourceError(
            "the server has no binary log (log_bin=OFF): enable log_bin, binlog_format=ROW, "
            "binlog_row_image=FULL in my.cnf and restart MariaDB"
        )
    return Position(str(row[0]), int(row[1]))


def resolve_start(conn: pymysql.Connection[Any], start: Position | str) -> Position | str:
    """Turn ``current``/``earliest`` into a position; GTIDs pass through."""
    if start == "current":
        return current_position(conn)
    if start == "earliest":
        logs = server_binlogs(conn)
        if not logs:
            return current_position(conn)
        return Position(logs[0][0], 4)
    return start


def check_position_available(conn: pymysql.Connection[Any], position: Position) -> None:
    """Raise :class:`BinlogPurgedError` when the checkpoint's file is gone."""
    names = [name for name, _ in server_binlogs(conn)]
    if position.file not in names:
        raise BinlogPurgedError(purged_message(position, names))


def purged_message(position: Position, names: Iterable[str] = ()) -> str:
    have = list(names)
    oldest = f" (oldest on the server: {have[0]})" if have else ""
    return (
        f"binlog file {position.file} (checkpoint {position}) is no longer on the server"
        f"{oldest}: leads written since then cannot be read from the binlog. Recover with "
        "'vicidial-cdc replay --since <time of the last delivered lead>' and then "
        "'vicidial-cdc run --start current'; raise binlog retention (expire_logs_days / "
        "binlog_expire_logs_seconds) so it does not happen again"
    )


class SchemaCache:
    """``information_schema`` reads of the reader thread, on its own connection.

    What it reads is how tables look *now*; :class:`cdc.reader.schemahistory.SchemaHistory`
    keeps what they looked like before.
    """

    def __init__(self, mysql: MysqlConfig) -> None:
        self._mysql = mysql
        self._conn: pymysql.Connection[Any] | None = None

    def columns(self, table: str) -> tuple[ColumnInfo, ...]:
        """The table's columns now (empty when it does not exist or cannot be seen)."""
        return self.load([table]).get(table, ())

    def load(self, tables: Iterable[str]) -> dict[str, tuple[ColumnInfo, ...]]:
        """The columns of several tables now, in one query (tables not seen are absent)."""
        names = sorted(set(tables))
        if not names:
            return {}
        rows = self._query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME IN "
            f"({', '.join(['%s'] * len(names))}) ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (self._mysql.database, *names),
        )
        out: dict[str, list[ColumnInfo]] = {}
        for table, name, data_type, column_type, cs in rows:
            kind = str(data_type).lower()
            out.setdefault(str(table), []).append(
                ColumnInfo(
                    name=str(name),
                    data_type=kind,
                    unsigned="unsigned" in str(column_type).lower(),
                    charset=str(cs) if cs else None,
                    enum_labels=enum_labels(str(column_type)) if kind in ("enum", "set") else (),
                )
            )
        return {table: tuple(columns) for table, columns in out.items()}

    def position(self) -> Position:
        """The server's current binlog position."""
        rows = self._query("SHOW MASTER STATUS", ())
        if not rows:
            raise SourceError("the server has no binary log (log_bin=OFF)")
        return Position(str(rows[0][0]), int(rows[0][1]))

    def server_time(self, timestamp: int) -> str:
        """A binlog timestamp as the server's local time (what ``replay --since`` takes)."""
        rows = self._query("SELECT CAST(FROM_UNIXTIME(%s) AS CHAR)", (timestamp,))
        return str(rows[0][0])[:19]

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _query(self, sql: str, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
        if self._conn is None:
            self._conn = connect(self._mysql, autocommit=True)
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, args)
                return tuple(cur.fetchall())
        except pymysql.MySQLError:
            self.close()
            raise


class SchemaHistoryStore(Protocol):
    """Where the reader keeps its schema history: the state store, on the reader's own connection.

    :class:`cdc.store.sqlite.SqliteStore` implements it; the reader opens it in its thread, so
    it never shares the service's connection.
    """

    def open(self) -> None: ...

    def close(self) -> None: ...

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]: ...

    def add_schema_history(
        self, database: str, entries: Sequence[tuple[str, Position, str]], now: float
    ) -> None: ...

    def prune_schema_history(self, database: str, keep_from: Position) -> int: ...


def always_watched(table: str) -> bool:
    """``custom_<list_id>`` tables are read whether or not they are in the watched set.

    VICIdial creates one while running (a list gets its first custom field), and the
    reader is usually batches ahead of the pipeline that learns of the new fields: by
    the time the pipeline could ask for the table, its first rows may be read already.
    """
    return custom_table_list_id(table) is not None


class WatchedTables(set[str]):
    """The reader's table filter: the configured tables plus :func:`always_watched` ones.

    A set, so ``mysql-replication``'s ``only_tables`` check (``in``) applies the same rule.
    """

    def __contains__(self, table: object) -> bool:
        return set.__contains__(self, table) or (isinstance(table, str) and always_watched(table))


class _Reconnect(ConnectionError):
    """The library tried to reconnect by itself; we resume from the last group end."""


class _GuardedConnect:
    """``pymysql_wrapper`` that allows one stream connection per reader instance."""

    def __init__(self) -> None:
        self.stream_connects = 0

    def __call__(self, **settings: Any) -> pymysql.Connection[Any]:
        if "db" in settings:  # the library's control connection names a database
            settings["database"] = settings.pop("db")
        else:
            self.stream_connects += 1
            if self.stream_connects > 1:
                raise _Reconnect
        return pymysql.connect(**settings)


class BinlogReader:
    """Follows the binlog in a thread and hands batches of :data:`SourceItem` to the loop."""

    #: Whether this reader notices a compressed event (else compression on the server is a fault).
    _sees_compressed_events = False

    def __init__(
        self,
        mysql: MysqlConfig,
        tables: Iterable[str],
        start: Position | str,
        *,
        queue_batches: int = 64,
        batch_rows: int = 500,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        flush_interval_s: float = 0.2,
        on_event: Callable[[str, str, int], None] | None = None,
        on_decode_error: Callable[[str, Value], None] | None = None,
        schema_store: SchemaHistoryStore | None = None,
        identity: serverinfo.ServerIdentity | None = None,
        on_fault: Callable[[ReaderFault, str], None] | None = None,
        on_server: Callable[[serverinfo.ServerFacts], None] | None = None,
        fault_recheck_s: float = faults.FAULT_RECHECK_S,
        unreadable_retry_s: float = 60.0,
    ) -> None:
        """``schema_store``: where the schema history is kept (unopened; the reader thread
        opens it). Without one the history lives in memory: learned at start and at DDL.

        ``identity``: the server the checkpoint was read from (``None``: not recorded).
        ``on_fault(kind, cause)`` runs in the reader thread for every error (transient
        ones too, kind ``connection`` and cause a :class:`cdc.reader.faults.TransientCause`);
        ``on_server(facts)`` runs on the loop, in stream order, after every connect,
        before the batches read on that connection.
        """
        self._mysql = mysql
        #: custom_<list_id> tables whose rows are handed over as UnreadableRows (cdc.reader.unreadable).
        self._unreadable = UnreadableTables(mysql.database, mysql.user, unreadable_retry_s)
        self._tables: set[str] = WatchedTables(tables)
        self._start = start
        self._batch_rows = batch_rows
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._flush_interval_s = flush_interval_s
        self._on_event = on_event
        self._on_decode_error = on_decode_error
        self._slots = threading.Semaphore(queue_batches)
        self._queue: asyncio.Queue[list[SourceItem] | serverinfo.ServerFacts | BaseException] = (
            asyncio.Queue()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._schema = SchemaCache(mysql)
        self._history = SchemaHistory()
        self._history_store = schema_store
        self._history_opened = False
        self._history_learned = False
        self._stats = ReaderStatistics()
        self._last_end: Position | None = start if isinstance(start, Position) else None
        self._gtid_start = start if isinstance(start, str) else None
        self._identity = identity
        self._on_fault = on_fault
        self._on_server = on_server
        self._fault_recheck_s = fault_recheck_s
        #: Server facts taken off the queue by ``get_batch_nowait``, applied before the next batch.
        self._held_facts: serverinfo.ServerFacts | None = None

    # -- loop side -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("BinlogReader.start() called twice")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="binlog-reader", daemon=True)
        self._thread.start()

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

    def _apply_facts(self, facts: serverinfo.ServerFacts) -> None:
        self._held_facts = None
        if self._on_server is not None:
            self._on_server(facts)

    def queued(self) -> int:
        return self._queue.qsize()

    def statistics(self) -> ReaderStatistics:
        return self._stats

    def unreadable_tables(self) -> frozenset[str]:
        """The custom tables whose rows are handed over as unreadable now (cdc.reader.unreadable)."""
        return self._unreadable.tables()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        """Stop the thread and wait for it (it notices within one heartbeat)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- reader thread -------------------------------------------------------------

    def _run(self) -> None:
        delay = self._reconnect_initial_s
        try:
            while not self._stop.is_set():
                try:
                    self._stream()
                    delay = self._reconnect_initial_s
                except (BinlogPurgedError, StoreError):
                    # A state file still locked past state.busy_limit_s (schema history) fails
                    # the service as the service's own store does: it is no binlog fault, and a
                    # re-read would find the definition already in memory and never store it.
                    raise
                except Exception as exc:  # classified: transient, fault, or purged
                    if isinstance(exc, pymysql.MySQLError) and _is_purged(exc):
                        assert self._last_end is not None
                        raise BinlogPurgedError(purged_message(self._last_end)) from exc
                    self._stats.connected = False
                    if self._stop.is_set():
                        break
                    kind = faults.classify(exc)
                    if kind is ReaderFault.BINLOG_PURGED:
                        raise
                    if kind is ReaderFault.CONNECTION:
                        self._transient(exc, delay)
                        self._stop.wait(delay)
                        delay = min(delay * 2, self._reconnect_max_s)
                    else:
                        self._fault(kind, exc)
                        self._stop.wait(self._fault_recheck_s)
                        delay = self._reconnect_initial_s
        except BaseException as exc:  # hand the failure to the loop, which owns the task
            self._send_error(exc)
        finally:
            self._stats.connected = False
            self._close_schema()

    def _transient(self, exc: BaseException, delay: float) -> None:
        """A connection error reconnecting heals: logged with its message, counted by cause."""
        cause = faults.transient_cause(exc)
        stats = self._stats
        stats.reconnects += 1
        stats.transient[cause.value] = stats.transient.get(cause.value, 0) + 1
        log.warning(
            "binlog.disconnected cause=%s error=%s message=%r retry_in_s=%.1f position=%s",
            cause.value,
            type(exc).__name__,
            faults.error_text(exc),
            delay,
            self._last_end or self._gtid_start,
        )
        if self._on_fault is not None:
            self._on_fault(ReaderFault.CONNECTION, cause.value)

    def _fault(self, kind: ReaderFault, exc: BaseException) -> None:
        """A fault reconnecting cannot heal: reported loudly, re-checked slowly."""
        message = faults.explain(
            kind, exc, user=self._mysql.user, database=self._mysql.database, position=self._last_end
        )
        previous = self._stats.fault
        since = previous.since if previous is not None and previous.kind is kind else time.time()
        position = str(self._last_end or self._gtid_start or "")
        self._stats.fault = faults.FaultReport(kind, message, since, position)
        log.error(
            "binlog.fault kind=%s position=%s recheck_in_s=%.0f %s",
            kind.value,
            position,
            self._fault_recheck_s,
            message,
        )
        if self._on_fault is not None:
            self._on_fault(kind, "")

    def _progress(self, *, caught_up: bool) -> None:
        """The stream moved past a standing fault (or reached the server's end): clear it."""
        fault = self._stats.fault
        if fault is None:
            return
        if caught_up or str(self._last_end or self._gtid_start or "") != fault.position:
            self._stats.fault = None
            log.warning("binlog.fault_cleared kind=%s position=%s", fault.kind.value, self._last_end)
            if self._on_fault is not None:
                self._on_fault(fault.kind, "cleared")

    def _prepare(self) -> None:
        """Before each connection: the checkpoint's file is there, the server is the same
        one, and what a restart may change (charset, binlog settings) is re-read."""
        with contextlib.closing(connect(self._mysql)) as conn:
            facts = serverinfo.read_facts(conn)
            self._check_server(facts)  # a different server is not a purge: checked first
            if self._last_end is not None:
                check_position_available(conn, self._last_end)
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
        if facts.compression and not self._sees_compressed_events:
            raise ReaderFaultError(
                ReaderFault.COMPRESSED_EVENTS,
                "the server compresses binlog events, which mysql-replication skips without a word: "
                "this reader (reader.decoder = \"library\") would miss leads",
            )
        previous = self._stats.server
        self._stats.server = facts
        if previous is None or _settings_key(previous) != _settings_key(facts):
            log.info("binlog.server %s %s", facts.identity, facts.settings_summary())
            self._send_facts(facts)

    def _check_server(self, facts: serverinfo.ServerFacts) -> None:
        verdict = serverinfo.continuity(self._identity, self._last_end, facts)
        if verdict.verdict is serverinfo.Verdict.CHANGED:
            raise ReaderFaultError(
                ReaderFault.SERVER_CHANGED,
                serverinfo.changed_message(verdict.reason, self._last_end, "the state file"),
            )
        if verdict.verdict is serverinfo.Verdict.GTID:
            assert self._last_end is not None
            log.warning(
                "binlog.server_changed_gtid_continue gtid=%s reason=%s", self._last_end.gtid, verdict.reason
            )
            self._gtid_start = self._last_end.gtid
            self._last_end = None
        self._identity = facts.identity

    def _send_facts(self, facts: serverinfo.ServerFacts) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._queue.put_nowait, facts)

    def _send_error(self, exc: BaseException) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._queue.put_nowait, exc)

    def _send(self, batch: list[SourceItem]) -> bool:
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                return False
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, batch)
        except RuntimeError:  # loop closed
            return False
        return True

    def _make_stream(self) -> BinLogStreamReader:
        self._learn_schema()
        settings = connection_settings(self._mysql)
        common: dict[str, Any] = {
            "connection_settings": settings,
            "server_id": self._mysql.server_id,
            "blocking": True,
            "only_events": [
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
                TableMapEvent,
                QueryEvent,
                XidEvent,
                RotateEvent,
                HeartbeatLogEvent,
                MariadbGtidEvent,
                GtidEvent,
            ],
            "only_schemas": [self._mysql.database],
            "only_tables": self._tables,
            "freeze_schema": True,
            "slave_heartbeat": replication.heartbeat_period_s(self._mysql),
            "pymysql_wrapper": _GuardedConnect(),
        }
        if self._last_end is not None:
            return BinLogStreamReader(
                log_file=self._last_end.file,
                log_pos=self._last_end.pos,
                resume_stream=True,
                **common,
            )
        assert self._gtid_start is not None
        return BinLogStreamReader(is_mariadb=True, auto_position=self._gtid_start, **common)

    def _stream(self) -> None:
        self._prepare()
        stream = self._make_stream()
        batch: list[SourceItem] = []
        group: list[RowChange | UnreadableRows] = []
        group_thread = 0
        group_gtid = ""
        last_flush = time.monotonic()
        stats = self._stats
        try:
            while not self._stop.is_set():
                event = stream.fetchone()
                if event is None:
                    raise _Reconnect
                if not stats.connected:
                    stats.connected = True
                    log.info("binlog.connected position=%s", self._last_end or self._gtid_start)
                now_mono = time.monotonic()
                stats.events += 1
                end: Position | None = None
                if isinstance(event, TableMapEvent):
                    self._enrich(event, stream.log_file)
                    continue
                if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                    if self._unreadable and self._unreadable.retry_due(event.table, now_mono):
                        # The library yields a table map once per table id: try again here.
                        self._enrich(event, stream.log_file)
                    group.extend(self._changes(event, stream.log_file))
                    stats.last_event_ts = event.timestamp
                    stats.last_event_monotonic = now_mono
                    stats.last_event_wall = time.time()
                    continue
                if isinstance(event, HeartbeatLogEvent):
                    stats.last_heartbeat_monotonic = now_mono
                    self._progress(caught_up=True)
                elif isinstance(event, (MariadbGtidEvent, GtidEvent)):
                    group_gtid = str(event.gtid)
                    group = []
                    group_thread = 0
                elif isinstance(event, QueryEvent):
                    query = event.query if isinstance(event.query, bytes) else str(event.query).encode()
                    stats.last_event_ts = event.timestamp
                    stats.last_event_monotonic = now_mono
                    if query == b"BEGIN":
                        group_thread = int(event.slave_proxy_id)
                    else:
                        group_thread = int(event.slave_proxy_id)
                        end = Position(stream.log_file, stream.log_pos, group_gtid)
                        if query != b"COMMIT":
                            batch.extend(self._ddl(event, query, end))
                elif isinstance(event, XidEvent):
                    end = Position(stream.log_file, stream.log_pos, group_gtid)
                    stats.last_event_ts = event.timestamp
                    stats.last_event_monotonic = now_mono
                elif isinstance(event, RotateEvent):
                    stats.binlog_file = str(event.next_binlog)
                    if event.timestamp != 0 and not group:
                        # A real rotation (not the one a connect announces): the new file's
                        # start is a valid place to resume from.
                        end = Position(str(event.next_binlog), int(event.position), group_gtid)
                if end is not None:
                    if group:
                        for change in group:
                            batch.append(_with_thread(change, group_thread))
                        group = []
                    elif batch and isinstance(batch[-1], GroupEnd):
                        batch.pop()  # consecutive group ends: the latest one is enough
                    batch.append(GroupEnd(end, stats.last_event_ts, group_thread))
                    self._last_end = end
                    stats.position = end
                    self._progress(caught_up=False)
                    group_gtid = ""
                    group_thread = 0
                has_rows = any(isinstance(i, RowChange) for i in batch[-3:])
                if batch and (
                    len(batch) >= self._batch_rows
                    or (end is not None and has_rows)
                    or isinstance(event, HeartbeatLogEvent)
                    or now_mono - last_flush >= self._flush_interval_s
                ):
                    if not self._send(batch):
                        return
                    batch = []
                    last_flush = now_mono
        finally:
            stats.connected = False
            with contextlib.suppress(Exception):
                stream.close()

    def _ddl(self, event: QueryEvent, query: bytes, position: Position) -> list[SchemaChange]:
        schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
        return self._schema_changes(schema, query, event.timestamp, position)

    def _schema_changes(
        self, schema: str, query: bytes, timestamp: int, position: Position
    ) -> list[SchemaChange]:
        """The watched tables a statement's DDL touches; their columns from ``position`` on are learned.

        Shared with :class:`cdc.reader.raw.FastBinlogReader`, which has no event objects.
        """
        if not _DDL_RE.match(query):
            return []
        touched = [name.decode() for name in _NAME_RE.findall(query) if name.decode() in self._tables]
        out: list[SchemaChange] = []
        tables = list(dict.fromkeys(touched))
        if tables:
            now = self._schema.load(tables)  # read after the DDL: never older than it
            self._remember([(table, position, now.get(table, ())) for table in tables])
        for table in tables:
            out.append(SchemaChange(schema or self._mysql.database, table, timestamp))
            log.info("binlog.schema_change table=%s", table)
        return out

    # -- schema history (cdc.reader.schemahistory) --------------------------------------------

    def _learn_schema(self) -> None:
        """At the first connect: the stored history, then every watched table as it is now."""
        if self._history_learned:
            return
        store = self._history_store
        database = self._mysql.database
        if store is not None and not self._history_opened:
            store.open()
            self._history_opened = True
            if self._last_end is not None:
                store.prune_schema_history(database, self._last_end)
            for table, position, columns in store.schema_history(database):
                self._history.add(table, position, columns_from_json(columns))
        position = self._schema.position()  # first: what is read next holds from here on
        now = self._schema.load(set(self._tables))
        self._remember([(table, position, columns) for table, columns in now.items()])
        self._history_learned = True
        log.info("binlog.schema_history tables=%d definitions=%d", len(now), len(self._history))

    def _remember(self, learned: Iterable[tuple[str, Position, Sequence[ColumnInfo]]]) -> None:
        """Add definitions to the history; new ones are durable before this returns.

        The reader hands over the group that passes their position only after this, so
        the checkpoint never passes a position whose definition is not stored.
        """
        added = (self._history.add(table, position, columns) for table, position, columns in learned)
        new = [d for d in added if d is not None]
        if not new:
            return
        for d in new:
            log.info(
                "binlog.schema_learned table=%s position=%s columns=%d", d.table, d.position, len(d.columns)
            )
        if self._history_store is not None:
            self._history_store.add_schema_history(
                self._mysql.database,
                [(d.table, d.position, columns_to_json(d.columns)) for d in new],
                time.time(),
            )

    def _columns_at(
        self, table: str, position: Position, types: Sequence[int]
    ) -> tuple[ColumnInfo, ...] | None:
        """The definition the rows of a table map at ``position`` were written with.

        ``None`` when no known definition fits their column ``types`` (see
        :meth:`cdc.reader.schemahistory.SchemaHistory.choose`), even after a fresh look at
        ``information_schema``. Callers that have no column names in the binlog then
        raise :meth:`_ambiguous`.
        """
        if not self._history.has(table):
            self._remember([(table, position, self._schema.columns(table))])
        chosen = self._history.choose(table, position, types)
        if chosen is None:
            fresh = self._schema.columns(table)
            if fits(types, fresh):
                self._remember([(table, position, fresh)])
                chosen = self._history.choose(table, position, types)
        return chosen.columns if chosen is not None else None

    def _ambiguous(
        self, schema: str, table: str, position: Position, types: Sequence[int], timestamp: int
    ) -> SourceError:
        """The error for rows no definition fits (``table_unreadable`` when none is known at all)."""
        known = self._history.definitions(table)
        if not known:
            # A fault by kind, not by wording: the reader stops retrying fast and says so.
            return ReaderFaultError(
                ReaderFault.TABLE_UNREADABLE,
                f"table {schema}.{table} has {len(types)} columns in the binlog but none in "
                "information_schema, and the server does not log column names: grant SELECT on it "
                "or set binlog_row_metadata=FULL",
            )
        try:
            since = self._schema.server_time(timestamp)
            resume: Position | None = self._schema.position()
        except (pymysql.MySQLError, OSError, SourceError):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp)) + " (UTC: use server time)"
            resume = None
        message = ambiguous_message(schema, table, position, types, known, since=since, resume=resume)
        log.error("binlog.schema_ambiguous table=%s position=%s %s", table, position, message)
        return ReaderFaultError(ReaderFault.SCHEMA_AMBIGUOUS, message)

    def _close_schema(self) -> None:
        self._schema.close()
        if self._history_store is not None and self._history_opened:
            self._history_store.close()

    def _enrich(
        self, event: TableMapEvent | WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent, log_file: str
    ) -> None:
        """Fill what the table map lacks (names, signedness, ENUM labels, charsets).

        From the table's definition when the rows were written (the schema history),
        or by name when the binlog carries names (``binlog_row_metadata=FULL``). A
        ``custom_<list_id>`` table with neither is unreadable (:mod:`cdc.reader.unreadable`):
        its columns are looked up again only every ``unreadable_retry_s``.
        """
        columns = event.columns
        full_names = all(c.name for c in columns)
        position = Position(log_file, event.packet.log_pos)
        types = [c.type for c in columns]
        now = time.monotonic()
        found: tuple[ColumnInfo, ...] | None = None
        if event.table not in self._unreadable or self._unreadable.retry_due(event.table, now):
            found = self._columns_at(event.table, position, types)
            readable = found is not None or full_names or self._history.has(event.table)
            self._unreadable.update(event.table, readable, now)
        if found is None and not full_names and event.table not in self._unreadable:
            raise self._ambiguous(event.schema, event.table, position, types, event.timestamp)
        info: Sequence[ColumnInfo | None] = found or ()
        if full_names:
            by_name = {c.name: c for c in (found or self._schema.columns(event.table))}
            info = [by_name.get(c.name) for c in columns]
        for i, col in enumerate(columns):
            ci = info[i] if i < len(info) else None
            if ci is not None and not full_names:
                col.name = ci.name
                col.unsigned = ci.unsigned
            if ci is not None and col.type == FIELD_TYPE.ENUM and not col.enum_values:
                col.enum_values = ["", *ci.enum_labels]
            if col.type in _TEXT_TYPES:
                mysql_cs = (ci.charset if ci is not None else None) or col.character_set_name
                col.character_set_name = charset.lossless_codec(mysql_cs or "binary")
            col.data_type = ci.data_type if ci is not None else ""

    def _changes(
        self, event: WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent, log_file: str
    ) -> list[RowChange] | list[UnreadableRows]:
        table = event.table
        columns = event.columns
        out: list[RowChange] = []
        if isinstance(event, WriteRowsEvent):
            op = Op.INSERT
        elif isinstance(event, UpdateRowsEvent):
            op = Op.UPDATE
        else:
            op = Op.DELETE
        key = (table, op.value)
        rows = event.rows
        self._stats.rows[key] = self._stats.rows.get(key, 0) + len(rows)
        if self._on_event is not None:
            self._on_event(table, op.value, len(rows))
        if table in self._unreadable:  # decoded with placeholder names: counted, not handed over
            return [
                UnreadableRows(
                    event.schema,
                    table,
                    op,
                    len(rows),
                    UNREADABLE_REASON,
                    event.timestamp,
                    log_file=log_file,
                    log_pos=event.packet.log_pos,
                )
            ]
        for row in rows:
            if op is Op.UPDATE:
                before = self._normalize(table, row["before_values"], row["before_none_sources"], columns)
                after: Mapping[str, Value] | None = self._normalize(
                    table, row["after_values"], row["after_none_sources"], columns
                )
            elif op is Op.INSERT:
                before = None
                after = self._normalize(table, row["values"], row["none_sources"], columns)
            else:
                before = self._normalize(table, row["values"], row["none_sources"], columns)
                after = None
            out.append(
                RowChange(
                    schema=event.schema,
                    table=table,
                    op=op,
                    before=before,
                    after=after,
                    timestamp=event.timestamp,
                    log_file=log_file,
                    log_pos=event.packet.log_pos,
                )
            )
        return out

    def _normalize(
        self, table: str, values: dict[str, Any], none_sources: dict[str, str], columns: list[Any]
    ) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for col in columns:
            name = col.name
            value = values.get(name)
            if value is None:
                if none_sources.get(name, "null") != "null":
                    value = _NONE_AS_TEXT.get(getattr(col, "data_type", ""))
            elif isinstance(value, set):
                labels = col.set_values or sorted(value)
                value = ",".join(v for v in labels if v in value)
            elif isinstance(value, str) and has_undecodable(value):
                self._stats.decode_errors += 1
                lead_id = values.get("lead_id")
                log.warning(
                    "binlog.decode_error table=%s column=%s lead_id=%s",
                    table,
                    name,
                    lead_id,
                )
                if self._on_decode_error is not None:
                    self._on_decode_error(table, lead_id)
            out[name] = value
        return out


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


def _with_thread(change: RowChange | UnreadableRows, thread_id: int) -> RowChange | UnreadableRows:
    if thread_id == change.thread_id:
        return change
    if isinstance(change, UnreadableRows):
        return dataclasses.replace(change, thread_id=thread_id)
    return RowChange(
        schema=change.schema,
        table=change.table,
        op=change.op,
        before=change.before,
        after=change.after,
        timestamp=change.timestamp,
        thread_id=thread_id,
        log_file=change.log_file,
        log_pos=change.log_pos,
    )


def _is_purged(exc: pymysql.MySQLError) -> bool:
    code = exc.args[0] if exc.args else None
    text = str(exc.args[-1]) if exc.args else ""
    return code == _ER_MASTER_FATAL_READING_BINLOG and (
        "first log file name" in text or "purged" in text or "not find" in text.lower()
    )

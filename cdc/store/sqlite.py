"""Outbox and checkpoint: the durable state between the resolver and the sender.

This is the only module with SQL. :class:`StateStore` is the narrow interface the rest
of the service uses; :class:`SqliteStore` implements it on one SQLite file (stdlib
``sqlite3``, WAL mode, file mode 0600, schema versioned with ``PRAGMA user_version``).

Every method is synchronous and may block on disk. The service runs each call on one
single-thread executor (``await loop.run_in_executor(store_executor, ...)``), so one
store instance is only ever used from one thread at a time; a call that overlaps
another raises :class:`RuntimeError` instead of corrupting the connection's state.

Durability: :meth:`SqliteStore.commit_batch` writes new deliveries and the binlog
checkpoint in one transaction, so the checkpoint never passes a lead that is not in
the outbox. With ``synchronous="NORMAL"`` (the default) a power cut may lose the last
few commits, but always deliveries and checkpoint together: the reader re-reads that
binlog and the idempotent enqueue stores each delivery once. A lost ``delivered``
mark means one re-send under the same idempotency key.

All timestamps are UTC epoch seconds (``REAL``) passed in by the caller as ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, Protocol, TypeVar

from ..errors import StoreError
from ..records import Attempt, Delivery, Outcome, Position, UrlSource
from ..resolve import origin_of

__all__ = [
    "OPERATOR_BATCH_ROWS",
    "SCHEMA_VERSION",
    "AsyncStore",
    "DeliveryRecord",
    "DeliveryState",
    "EndpointCounts",
    "LockWait",
    "SqliteStore",
    "StateStore",
    "StoreStatistics",
    "StoredDelivery",
    "fair_merge",
]

log = logging.getLogger(__name__)

#: Rows one operator write (``dlq retry``/``purge``, ``replay --force``) changes per
#: transaction. Each batch holds the write lock for milliseconds, and the next batch
#: waits at least as long as the last one held it, so a running streamer's writes get
#: in between however many rows the command changes.
OPERATOR_BATCH_ROWS: Final = 1000


class DeliveryState(enum.StrEnum):
    """Where one stored delivery stands."""

    PENDING = "pending"  # waiting for next_attempt_at
    IN_FLIGHT = "in_flight"  # claimed by the sender, outcome not yet recorded
    DELIVERED = "delivered"  # the endpoint accepted it; pruned after the retention
    DEAD = "dead"  # given up; kept until an operator retries or purges it


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery claimed for sending, with its outbox id."""

    id: int
    delivery: Delivery
    attempts: int  # attempts already recorded before this one
    created_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """Everything the store knows about one delivery (dead-letter tools, ``status``)."""

    id: int
    delivery: Delivery
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_status: int  # HTTP status of the last attempt, 0 when none or no response
    last_error: str  # failure class of the last attempt, "" when none or success
    created_at: float
    updated_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class EndpointCounts:
    """Outbox rows of one endpoint by state, read at scrape time."""

    endpoint_id: str
    pending: int = 0
    in_flight: int = 0
    delivered: int = 0
    dead: int = 0
    #: ``created_at`` of the oldest row not yet delivered or dead (pending or in flight:
    #: a row being re-sent is still waiting), or None when there is none.
    oldest_pending_created_at: float | None = None


@dataclass(frozen=True, slots=True)
class LockWait:
    """One write's wait for the state file's write lock, reported to ``on_lock_wait``."""

    action: str  # what the write does ("claim due deliveries", ...)
    waited_s: float  # since the write first asked for the lock
    #: True once the lock is held (reported for every write); False after each
    #: ``busy_timeout_s`` slice that found it taken by another process.
    acquired: bool


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """What one :class:`SqliteStore` connection's writes cost so far."""

    writes: int = 0
    #: The longest this connection held the write lock (one transaction).
    longest_write_s: float = 0.0
    #: ``busy_timeout_s`` slices that found the write lock taken by another process.
    busy_waits: int = 0
    #: The longest a write waited for the lock.
    longest_lock_wait_s: float = 0.0
    #: How long the write in progress has been waiting past its first busy slice (0: none).
    waiting_s: float = 0.0


class StateStore(Protocol):
    """The state-store interface: outbox, checkpoint and a little metadata.

    Every method is synchronous and may block; :class:`AsyncStore` runs them off the
    event loop. Where the state lives (a file for SQLite, a DSN for a shared database)
    is given to the backend's constructor, so :meth:`open` takes no argument.
    """

    def open(self) -> None:
        """Connect and bring the schema up to date."""
        ...

    def close(self) -> None: ...

    def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        """Store new deliveries and the checkpoint atomically; return the new row ids."""
        ...

    def load_checkpoint(self) -> Position | None: ...

    def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> list[StoredDelivery]:
        """Mark up to ``limit`` due pending rows in flight and return them, oldest first
        (per endpoint at most its cap, endpoints in turns, when caps are given)."""
        ...

    def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        """Apply attempt outcomes to in-flight rows; return how many rows changed."""
        ...

    def requeue_in_flight(self) -> int: ...

    def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None: ...

    def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int: ...

    def counts(self, *, delivered: bool = True) -> list[EndpointCounts]: ...

    def prune_delivered(self, older_than: float) -> int: ...

    def truncate_wal(self) -> bool:
        """Make removed data (blanked delivered rows, pruned rows) leave the write-ahead log."""
        ...

    def get(self, delivery_id: int) -> DeliveryRecord | None: ...

    def list_dead(
        self,
        *,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]: ...

    def retry_dead(
        self,
        now: float,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int: ...

    def purge_dead(
        self,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int: ...

    def requeue(self, deliveries: Sequence[Delivery], now: float) -> int: ...

    def meta_get(self, key: str) -> str | None: ...

    def meta_set(self, key: str, value: str) -> None: ...

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]: ...

    def add_schema_history(
        self, database: str, entries: Sequence[tuple[str, Position, str]], now: float
    ) -> None: ...

    def prune_schema_history(self, database: str, keep_from: Position) -> int: ...


# -- schema ---------------------------------------------------------------------------

#: Ordered migrations; migration ``i`` takes ``user_version`` from ``i`` to ``i + 1``.
#: Append only: never edit a migration that has shipped.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE delivery (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after pruning
            source TEXT NOT NULL,
            lead_id INTEGER NOT NULL,
            endpoint_id TEXT NOT NULL,
            list_id INTEGER NOT NULL,
            method TEXT NOT NULL,
            url TEXT NOT NULL,
            body BLOB NOT NULL,
            content_type TEXT NOT NULL,
            url_source TEXT NOT NULL,
            inserted_at INTEGER NOT NULL,
            idempotency_key TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
            attempts INTEGER NOT NULL,
            next_attempt_at REAL NOT NULL,
            last_status INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            delivered_at REAL,
            UNIQUE (source, lead_id, endpoint_id)
        )""",
        # claim_due without exclusions, next_due_at
        "CREATE INDEX delivery_due ON delivery (state, next_attempt_at)",
        # claim_due per endpoint (its order is next_attempt_at, id), counts, list_dead
        "CREATE INDEX delivery_endpoint ON delivery (state, endpoint_id, next_attempt_at)",
        # prune_delivered
        "CREATE INDEX delivery_delivered ON delivery (delivered_at) WHERE state = 'delivered'",
        """CREATE TABLE checkpoint (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            file TEXT NOT NULL,
            pos INTEGER NOT NULL,
            gtid TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
    # 2: the schema history of watched tables (cdc.reader.schemahistory), written by the reader.
    (
        """CREATE TABLE schema_history (
            db TEXT NOT NULL,
            table_name TEXT NOT NULL,
            file TEXT NOT NULL,  -- the columns hold from this binlog position on
            pos INTEGER NOT NULL,
            columns TEXT NOT NULL,  -- JSON (cdc.reader.schemahistory.columns_to_json)
            learned_at REAL NOT NULL,
            PRIMARY KEY (db, table_name, file, pos)
        ) WITHOUT ROWID""",
    ),
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)

_COLUMNS: Final = (
    "id, source, lead_id, list_id, endpoint_id, method, url, url_source, inserted_at,"
    " body, content_type, state, attempts, next_attempt_at, last_status, last_error,"
    " created_at, updated_at, delivered_at"
)
_INSERT: Final = (
    "INSERT INTO delivery (source, lead_id, endpoint_id, list_id, method, url, body,"
    " content_type, url_source, inserted_at, idempotency_key, state, attempts,"
    " next_attempt_at, last_status, last_error, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?, ?, ?)"
    " ON CONFLICT (source, lead_id, endpoint_id) DO NOTHING"
)
_SAVE_CHECKPOINT: Final = (
    "INSERT INTO checkpoint (id, file, pos, gtid, updated_at) VALUES (1, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET file = excluded.file, pos = excluded.pos,"
    " gtid = excluded.gtid, updated_at = excluded.updated_at"
)
_SELECT_DUE: Final = (
    f"SELECT {_COLUMNS} FROM delivery WHERE state = 'pending' AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at, id LIMIT ?"
)
_SELECT_DUE_FOR_ENDPOINT: Final = (
    f"SELECT {_COLUMNS} FROM delivery INDEXED BY delivery_endpoint"
    " WHERE state = 'pending' AND endpoint_id = ? AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at, id LIMIT ?"
)
# A loose index scan: one index seek per distinct endpoint, however many rows wait.
_PENDING_ENDPOINTS: Final = """
    WITH RECURSIVE ep(endpoint_id) AS (
        SELECT MIN(endpoint_id) FROM delivery WHERE state = 'pending'
        UNION ALL
        SELECT (SELECT MIN(endpoint_id) FROM delivery
                WHERE state = 'pending' AND endpoint_id > ep.endpoint_id)
        FROM ep WHERE ep.endpoint_id IS NOT NULL
    )
    SELECT endpoint_id FROM ep WHERE endpoint_id IS NOT NULL"""
_SET_ATTEMPT: Final = (
    "attempts = attempts + 1, last_status = ?, last_error = ?, updated_at = ?"
    " WHERE id = ? AND state = 'in_flight'"
)
_RECORD_SQL: Final[dict[Outcome, str]] = {
    # A delivered row keeps no lead data: its URL shrinks to scheme://host[:port] and its
    # body goes; ids, endpoint, status and times stay (dedup, status, dlq show).
    Outcome.DELIVERED: (
        "UPDATE delivery SET state = 'delivered', delivered_at = ?, url = cdc_url_origin(url),"
        f" body = X'', {_SET_ATTEMPT}"
    ),
    Outcome.RETRY: f"UPDATE delivery SET state = 'pending', next_attempt_at = ?, {_SET_ATTEMPT}",
    Outcome.DEAD: f"UPDATE delivery SET state = 'dead', {_SET_ATTEMPT}",
}

# Primary SQLite result codes (https://sqlite.org/rescode.html).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_CONSTRAINT, _SQLITE_NOTADB = 19, 26

_MIN_SQLITE: Final = (3, 24, 0)  # INSERT ... ON CONFLICT DO NOTHING

#: Between busy slices (SQLite's busy handler has already waited busy_timeout_s).
_BUSY_BACKOFF_S, _BUSY_BACKOFF_MAX_S = 0.01, 0.5
#: The least an operator batch waits for the previous one (see _operator_batches).
_OPERATOR_PAUSE_MIN_S: Final = 0.01

_Item = TypeVar("_Item")


class _Lifecycle(enum.Enum):
    UNOPENED = enum.auto()  # constructed; open() not called yet
    OPENED = enum.auto()  # connection usable
    CLOSED = enum.auto()  # closed for good; a store is not reopened


class SqliteStore:
    """:class:`StateStore` on one SQLite file.

    Args:
        path: the state file; may instead be given to :meth:`open`.
        synchronous: ``"NORMAL"`` (default; see the module docstring) or ``"FULL"`` to
            fsync every commit.
        busy_timeout_s: how long one try at a statement waits for another process's
            lock (SQLite's busy handler, polling with growing sleeps up to 100 ms).
        busy_limit_s: how long a write keeps trying, one ``busy_timeout_s`` slice after
            another (logged as ``store.busy`` after each), before it fails with
            :class:`StoreError`. 0: fail after the first slice.
        on_lock_wait: called (on the store's thread) with each write's :class:`LockWait`:
            once per busy slice, and once when the lock is held.
    """

    __slots__ = (
        "_busy_limit_s",
        "_busy_timeout_s",
        "_busy_waits",
        "_conn",
        "_last_write_s",
        "_lock",
        "_longest_lock_wait_s",
        "_longest_write_s",
        "_on_lock_wait",
        "_path",
        "_state",
        "_synchronous",
        "_waiting_since",
        "_writes",
    )

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 5.0,
        busy_limit_s: float = 0.0,
        on_lock_wait: Callable[[LockWait], None] | None = None,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            msg = f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}"
            raise ValueError(msg)
        if busy_timeout_s < 0 or busy_limit_s < 0:
            msg = f"busy_timeout_s and busy_limit_s must be >= 0, not {busy_timeout_s!r}, {busy_limit_s!r}"
            raise ValueError(msg)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._busy_limit_s = busy_limit_s
        self._on_lock_wait = on_lock_wait
        self._conn: sqlite3.Connection | None = None
        self._path = None if path is None else Path(path)
        self._state = _Lifecycle.UNOPENED
        self._lock = threading.Lock()
        self._writes = self._busy_waits = 0
        self._last_write_s = self._longest_write_s = self._longest_lock_wait_s = 0.0
        self._waiting_since: float | None = None  # set by _begin between busy slices

    @property
    def path(self) -> Path | None:
        return self._path

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            writes=self._writes,
            longest_write_s=self._longest_write_s,
            busy_waits=self._busy_waits,
            longest_lock_wait_s=self._longest_lock_wait_s,
            waiting_s=0.0 if (since := self._waiting_since) is None else time.monotonic() - since,
        )

    # -- lifecycle --------------------------------------------------------------------

    def open(self, path: str | os.PathLike[str] | None = None) -> None:
        """Open (creating if missing) the state file and bring its schema up to date.

        ``path`` is needed here unless it was given to the constructor. A missing parent
        directory is created with mode 0700; the file and its ``-wal`` and ``-shm``
        companions end up with mode 0600.
        """
        if self._state is not _Lifecycle.UNOPENED:
            msg = f"SqliteStore cannot be opened when {self._state.name.lower()}"
            raise RuntimeError(msg)
        if path is not None:
            if self._path is not None and Path(path) != self._path:
                msg = f"path {path!s} differs from the constructor's {self._path!s}"
                raise ValueError(msg)
            self._path = Path(path)
        if self._path is None:
            msg = "path: SqliteStore needs a state file path (constructor or open())"
            raise ValueError(msg)
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            msg = f"SQLite {sqlite3.sqlite_version} is too old; vicidial-cdc needs >= 3.24"
            raise StoreError(msg)
        db_path = self._path
        try:
            _create_private_file(db_path)
        except OSError as exc:
            msg = (
                f"cannot create the state file {db_path}: {exc.strerror}; check that"
                " state.path is on a writable filesystem owned by the service user"
            )
            raise StoreError(msg) from exc
        try:
            conn = sqlite3.connect(
                db_path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # one thread at a time, guaranteed by the caller
            )
        except sqlite3.Error as exc:
            raise _store_error(exc, "open the state file", db_path) from exc
        try:
            _prepare(conn, db_path, self._synchronous, functools.partial(self._begin, conn, "open"))
            _restrict_mode(db_path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._state = _Lifecycle.OPENED

    def close(self) -> None:
        """Close the connection. Closing twice, or before opening, is harmless."""
        conn, self._conn, self._state = self._conn, None, _Lifecycle.CLOSED
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise _store_error(exc, "close the state file", self._path) from exc

    # -- outbox and checkpoint ----------------------------------------------------------

    def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        """Insert ``deliveries`` (idempotently) and save ``checkpoint`` in one transaction.

        A delivery whose (source, lead_id, endpoint_id) is already stored, in any state,
        is ignored. A ``refused`` delivery is stored dead, its reason as ``last_error``.
        Returns the ids of the rows inserted now, in insertion order (ids increase but
        are not dense: an ignored duplicate uses up an id).
        """
        if not deliveries and checkpoint is None:
            return []
        with self._write("commit deliveries and checkpoint") as conn:
            new_ids: list[int] = []
            if deliveries:
                # One writer inside BEGIN IMMEDIATE, AUTOINCREMENT ids: new rows are
                # exactly those above the current maximum.
                (max_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM delivery").fetchone()
                conn.executemany(_INSERT, [_insert_params(d, now) for d in deliveries])
                cursor = conn.execute("SELECT id FROM delivery WHERE id > ? ORDER BY id", (max_id,))
                new_ids = [row_id for (row_id,) in cursor]
            if checkpoint is not None:
                conn.execute(_SAVE_CHECKPOINT, (checkpoint.file, checkpoint.pos, checkpoint.gtid, now))
        return new_ids

    def load_checkpoint(self) -> Position | None:
        with self._use("load the checkpoint") as conn:
            row = conn.execute("SELECT file, pos, gtid FROM checkpoint WHERE id = 1").fetchone()
        return None if row is None else Position(row[0], row[1], row[2])

    def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> list[StoredDelivery]:
        """Mark up to ``limit`` pending rows due at ``now`` in flight and return them.

        Rows come in the order they became due (``next_attempt_at``, then id). Rows of
        ``exclude_endpoints`` (open breaker, no free slot) are left alone; they are
        skipped by index, so a long backlog on one endpoint does not slow the others.

        Fair claiming: with ``caps`` (endpoint id → rows it may take now; 0 excludes it)
        or ``default_cap`` (for endpoints not in ``caps``; ``None``: no cap), no endpoint
        gets more than its cap, and the endpoints take turns (:func:`fair_merge`), so
        one endpoint's backlog cannot take the slots of another's new rows.
        """
        if limit <= 0:
            return []
        with self._write("claim due deliveries") as conn:
            if exclude_endpoints or caps is not None or default_cap is not None:
                excluded = set(exclude_endpoints)
                capped = caps or {}
                per_endpoint = []
                for (endpoint_id,) in conn.execute(_PENDING_ENDPOINTS).fetchall():
                    cap = min(limit, capped.get(endpoint_id, limit if default_cap is None else default_cap))
                    if endpoint_id in excluded or cap <= 0:
                        continue
                    rows = conn.execute(_SELECT_DUE_FOR_ENDPOINT, (endpoint_id, now, cap)).fetchall()
                    per_endpoint.append([_record(row) for row in rows])
                records = fair_merge(per_endpoint, limit)
            else:
                records = [_record(row) for row in conn.execute(_SELECT_DUE, (now, limit))]
            conn.executemany(
                "UPDATE delivery SET state = 'in_flight', updated_at = ? WHERE id = ?",
                [(now, r.id) for r in records],
            )
        return [StoredDelivery(r.id, r.delivery, r.attempts, r.created_at) for r in records]

    def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        """Apply each attempt's outcome to its in-flight row, in one transaction.

        DELIVERED sets ``delivered_at`` and blanks the lead data (URL down to its origin,
        body emptied); RETRY makes the row pending again at the given
        time (required); DEAD dead-letters it. Every outcome counts one attempt and sets
        ``last_status``/``last_error``. Rows no longer in flight are left unchanged;
        the return value (rows changed) is then smaller than ``len(results)``.
        """
        params: dict[Outcome, list[tuple[Any, ...]]] = {outcome: [] for outcome in Outcome}
        for attempt, retry_at in results:
            common = (attempt.status, attempt.error, now, attempt.delivery_id)
            if attempt.outcome is Outcome.RETRY:
                if retry_at is None:
                    msg = f"results: a RETRY needs a retry time (delivery {attempt.delivery_id})"
                    raise ValueError(msg)
                params[Outcome.RETRY].append((retry_at, *common))
            elif attempt.outcome is Outcome.DELIVERED:
                params[Outcome.DELIVERED].append((now, *common))
            else:
                params[Outcome.DEAD].append(common)
        if not results:
            return 0
        with self._write("record delivery attempts") as conn:
            changed = 0
            for outcome, rows in params.items():
                if rows:
                    changed += conn.executemany(_RECORD_SQL[outcome], rows).rowcount
        return changed

    def requeue_in_flight(self) -> int:
        """Make rows left in flight by a previous run pending again (call at startup).

        Their attempt was never recorded, so it does not count; they may have reached
        the endpoint, and will be sent again under the same idempotency key.
        """
        with self._write("requeue in-flight deliveries") as conn:
            return conn.execute("UPDATE delivery SET state = 'pending' WHERE state = 'in_flight'").rowcount

    def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        """The earliest ``next_attempt_at`` of a pending row (maybe already past), or None.

        Rows of ``exclude_endpoints`` (paused or open breaker) do not count, so a
        sender waiting on them sleeps instead of spinning.
        """
        with self._use("find the next due delivery") as conn:
            if not exclude_endpoints:
                (due_at,) = conn.execute(
                    "SELECT MIN(next_attempt_at) FROM delivery WHERE state = 'pending'"
                ).fetchone()
                return None if due_at is None else float(due_at)
            excluded = set(exclude_endpoints)
            times = [
                conn.execute(
                    "SELECT MIN(next_attempt_at) FROM delivery INDEXED BY delivery_endpoint"
                    " WHERE state = 'pending' AND endpoint_id = ?",
                    (endpoint_id,),
                ).fetchone()[0]
                for (endpoint_id,) in conn.execute(_PENDING_ENDPOINTS)
                if endpoint_id not in excluded
            ]
        found = [float(t) for t in times if t is not None]
        return min(found) if found else None

    def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        """Hand claimed rows back unsent (endpoint paused): pending again, no attempt counted."""
        if not ids:
            return 0
        with self._write("release claimed deliveries") as conn:
            return conn.executemany(
                "UPDATE delivery SET state = 'pending', next_attempt_at = ?, updated_at = ?"
                " WHERE id = ? AND state = 'in_flight'",
                [(next_attempt_at, now, i) for i in ids],
            ).rowcount

    def counts(self, *, delivered: bool = True) -> list[EndpointCounts]:
        """Row counts per endpoint and state, sorted by endpoint id.

        ``delivered=False`` leaves delivered rows uncounted (0): they are most of the
        file (kept ``state.retention_s``), and the service refreshes its gauges every
        few seconds. The oldest waiting row is the lowest id (ids grow with
        ``created_at``), found in the index without reading the rows.
        """
        states = "" if delivered else " WHERE state IN ('pending', 'in_flight', 'dead')"
        with self._use("count deliveries") as conn:
            counted = conn.execute(
                f"SELECT endpoint_id, state, COUNT(*) FROM delivery{states} GROUP BY state, endpoint_id"
            ).fetchall()
            oldest = conn.execute(
                "SELECT d.endpoint_id, d.created_at FROM delivery AS d JOIN ("
                " SELECT MIN(id) AS id FROM delivery"
                " WHERE state IN ('pending', 'in_flight') GROUP BY endpoint_id) AS m ON d.id = m.id"
            ).fetchall()
        by_endpoint: dict[str, dict[str, Any]] = {}
        for endpoint_id, state, count in counted:
            by_endpoint.setdefault(endpoint_id, {})[state] = count
        for endpoint_id, created_at in oldest:
            by_endpoint.setdefault(endpoint_id, {})["oldest_pending_created_at"] = created_at
        return [EndpointCounts(e, **by_endpoint[e]) for e in sorted(by_endpoint)]

    def prune_delivered(self, older_than: float) -> int:
        """Delete delivered rows whose ``delivered_at`` is before ``older_than``."""
        with self._write("prune delivered rows") as conn:
            return conn.execute(
                "DELETE FROM delivery INDEXED BY delivery_delivered"
                " WHERE state = 'delivered' AND delivered_at < ?",
                (older_than,),
            ).rowcount

    def truncate_wal(self) -> bool:
        """Copy the WAL into the database file and truncate it to zero bytes.

        With ``secure_delete`` what an UPDATE or DELETE removes is zeroed in the new page
        versions, but the WAL still holds the old ones until it is checkpointed and reset:
        this is what makes blanking and pruning erase. Waits at most 0.1 s for other
        connections; returns False when one still reads an older snapshot (the next call
        retries).
        """
        with self._use("truncate the WAL") as conn:
            conn.execute("PRAGMA busy_timeout = 100")
            try:
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000):d}")
        return int(busy) == 0

    # -- dead letters and inspection ---------------------------------------------------

    def get(self, delivery_id: int) -> DeliveryRecord | None:
        with self._use("read a delivery") as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM delivery WHERE id = ?", (delivery_id,)).fetchone()
        return None if row is None else _record(row)

    def list_dead(
        self,
        *,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]:
        """Dead rows matching every given filter, oldest id first.

        ``older_than`` compares with ``updated_at``, the time the row went dead.
        """
        where, params = _dead_filter(endpoint_id, lead_id, older_than)
        with self._use("list dead deliveries") as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM delivery WHERE {where} ORDER BY id LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def retry_dead(
        self,
        now: float,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int:
        """Make matching dead rows pending again, due at ``now`` with no attempts.

        ``created_at`` restarts too: the sender's maximum age counts from it, and an
        operator's retry deserves a full retry budget. At least one selector is
        required; to select every dead row, pass ``older_than=now``. Returns the number
        of rows changed. Rows change :data:`OPERATOR_BATCH_ROWS` per transaction, so a
        running streamer keeps writing meanwhile.
        """
        _require_selector(ids, endpoint_id, lead_id, older_than)
        return self._update_dead(
            "UPDATE delivery SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?,"
            " created_at = ?",
            (now, now, now),
            ids,
            _dead_filter(endpoint_id, lead_id, older_than),
            "retry dead deliveries",
        )

    def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Send stored deliveries again (``replay --force``), with the request given.

        Rows of the same (source, lead_id, endpoint_id) that are not in flight become
        pending, due now, with a fresh retry budget. Keys not stored are ignored. One
        transaction per :data:`OPERATOR_BATCH_ROWS` deliveries.
        """
        changed = 0
        for chunk in self._operator_batches(deliveries):
            changed += self._requeue_batch(chunk, now)
        return changed

    def _requeue_batch(self, deliveries: Sequence[Delivery], now: float) -> int:
        with self._write("requeue deliveries") as conn:
            return conn.executemany(
                "UPDATE delivery SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " last_status = 0, last_error = '', delivered_at = NULL, created_at = ?,"
                " updated_at = ?, method = ?, url = ?, body = ?, content_type = ?, url_source = ?,"
                " list_id = ?, inserted_at = ?"
                " WHERE source = ? AND lead_id = ? AND endpoint_id = ? AND state != 'in_flight'",
                [
                    (
                        now,
                        now,
                        now,
                        d.method,
                        d.url,
                        d.body,
                        d.content_type,
                        d.url_source.value,
                        d.list_id,
                        d.inserted_at,
                        d.source,
                        d.lead_id,
                        d.endpoint_id,
                    )
                    for d in deliveries
                ],
            ).rowcount

    def purge_dead(
        self,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete matching dead rows (same selectors and batches as :meth:`retry_dead`)."""
        _require_selector(ids, endpoint_id, lead_id, older_than)
        return self._update_dead(
            "DELETE FROM delivery",
            (),
            ids,
            _dead_filter(endpoint_id, lead_id, older_than),
            "purge dead deliveries",
        )

    # -- metadata -----------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        with self._use("read metadata") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self._write("write metadata") as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- schema history (cdc.reader.schemahistory) -----------------------------------------------

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]:
        """Every stored (table, position, columns JSON) of ``database``, in binlog order."""
        with self._use("read the schema history") as conn:
            rows = conn.execute(
                "SELECT table_name, file, pos, columns FROM schema_history WHERE db = ? ORDER BY file, pos",
                (database,),
            ).fetchall()
        return [(table, Position(file, pos), columns) for table, file, pos, columns in rows]

    def add_schema_history(
        self, database: str, entries: Sequence[tuple[str, Position, str]], now: float
    ) -> None:
        """Store definitions (table, position from which they hold, columns JSON) at once."""
        if not entries:
            return
        with self._write("save the schema history") as conn:
            conn.executemany(
                "INSERT INTO schema_history (db, table_name, file, pos, columns, learned_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (db, table_name, file, pos)"
                " DO UPDATE SET columns = excluded.columns, learned_at = excluded.learned_at",
                [(database, table, p.file, p.pos, columns, now) for table, p, columns in entries],
            )

    def prune_schema_history(self, database: str, keep_from: Position) -> int:
        """Delete definitions no restart from ``keep_from`` (the checkpoint) or later can need.

        Per table, everything before the definition in force at ``keep_from`` goes.
        """
        with self._write("prune the schema history") as conn:
            return conn.execute(
                "DELETE FROM schema_history AS h WHERE db = ? AND (file, pos) < ("
                " SELECT k.file, k.pos FROM schema_history AS k"
                " WHERE k.db = h.db AND k.table_name = h.table_name AND (k.file, k.pos) <= (?, ?)"
                " ORDER BY k.file DESC, k.pos DESC LIMIT 1)",
                (database, keep_from.file, keep_from.pos),
            ).rowcount

    # -- internals ------------------------------------------------------------------------

    def _update_dead(
        self,
        head: str,
        head_params: tuple[Any, ...],
        ids: Collection[int] | None,
        dead_filter: tuple[str, tuple[Any, ...]],
        action: str,
    ) -> int:
        where, params = dead_filter
        if ids is None:
            ids = self._matching_ids(where, params, action)
        changed = 0
        for chunk in self._operator_batches(sorted(set(ids))):
            with self._write(action) as conn:
                changed += conn.executemany(
                    f"{head} WHERE {where} AND id = ?",
                    [(*head_params, *params, delivery_id) for delivery_id in chunk],
                ).rowcount
        return changed

    def _matching_ids(self, where: str, params: tuple[Any, ...], action: str) -> list[int]:
        """Ids of the rows ``where`` selects now, read without the write lock (WAL)."""
        with self._use(action) as conn:
            # By rowid: one pass over the table, never a sort of every dead row.
            return [i for (i,) in conn.execute(f"SELECT id FROM delivery NOT INDEXED WHERE {where}", params)]

    def _operator_batches(self, items: Sequence[_Item]) -> Iterator[Sequence[_Item]]:
        """``items`` in slices of :data:`OPERATOR_BATCH_ROWS`; before each slice but the
        first, wait as long as the last write held the lock (at least 10 ms): the other
        writers' busy handlers poll every 100 ms at most, so they get the lock in a few polls."""
        for start in range(0, len(items), OPERATOR_BATCH_ROWS):
            if start:
                time.sleep(max(_OPERATOR_PAUSE_MIN_S, self._last_write_s))
            yield items[start : start + OPERATOR_BATCH_ROWS]

    @contextlib.contextmanager
    def _use(self, action: str) -> Iterator[sqlite3.Connection]:
        """The open connection, held by one caller, with sqlite3 errors translated."""
        conn = self._conn
        if conn is None:
            msg = f"SqliteStore is {self._state.name.lower()}; cannot {action}"
            raise RuntimeError(msg)
        if not self._lock.acquire(blocking=False):
            msg = "SqliteStore called from two threads at once; use one single-thread executor"
            raise RuntimeError(msg)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise _store_error(exc, action, self._path) from exc
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on the held connection, timed from the lock to the commit."""
        with self._use(action) as conn:
            with _transaction(conn, functools.partial(self._begin, conn, action)):
                held_from = time.monotonic()
                yield conn
            held_s = time.monotonic() - held_from
            self._writes += 1
            self._last_write_s = held_s
            self._longest_write_s = max(self._longest_write_s, held_s)

    def _begin(self, conn: sqlite3.Connection, action: str) -> None:
        """``BEGIN IMMEDIATE``, waiting out another process's write lock up to ``busy_limit_s``.

        Another writer (an operator command, a second streamer, an ``sqlite3`` shell) is
        transient until the bound: each ``busy_timeout_s`` slice that ends busy is
        reported and logged, and the write tries again; past the bound it fails loudly.
        Nothing is written before the lock is held, so trying again is always safe.
        """
        started = time.monotonic()
        slices = 0
        try:
            while (busy := _try_begin(conn)) is not None:
                slices += 1
                self._busy_waits += 1
                self._waiting_since = started
                waited_s = time.monotonic() - started
                self._report(LockWait(action, waited_s, acquired=False))
                if waited_s >= self._busy_limit_s:
                    what = f"{action} after waiting {waited_s:.1f} s for the write lock (state.busy_limit_s)"
                    raise _store_error(busy, what, self._path) from busy
                log.warning(
                    "store.busy action=%s waited_s=%.1f limit_s=%.0f path=%s: another process holds"
                    " the state file's write lock (an operator command, a second streamer, an"
                    " sqlite3 shell?); waiting",
                    action,
                    waited_s,
                    self._busy_limit_s,
                    self._path,
                )
                time.sleep(min(_BUSY_BACKOFF_MAX_S, _BUSY_BACKOFF_S * 2**slices))
        finally:
            self._waiting_since = None
        waited_s = time.monotonic() - started
        self._longest_lock_wait_s = max(self._longest_lock_wait_s, waited_s)
        if slices:
            log.warning("store.busy_over action=%s waited_s=%.1f", action, waited_s)
        self._report(LockWait(action, waited_s, acquired=True))

    def _report(self, wait: LockWait) -> None:
        if self._on_lock_wait is not None:
            self._on_lock_wait(wait)


_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Due(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def next_attempt_at(self) -> float: ...


_R = TypeVar("_R", bound=_Due)


class AsyncStore:
    """The event loop's face of a :class:`StateStore`: every call runs on one thread.

    A private single-thread executor serializes the calls, as :class:`SqliteStore`
    requires. Cancelling an await does not stop its call: the call still commits or
    rolls back on the worker thread, and later calls queue behind it. Operator tools
    (dead letters, ``get``) use the synchronous store directly, through :attr:`store`.
    """

    __slots__ = ("_executor", "_store")

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdc-store")

    @property
    def store(self) -> StateStore:
        return self._store

    async def open(self) -> None:
        await self._call(self._store.open)

    async def close(self) -> None:
        """Close the store after the calls already queued, then stop the worker thread."""
        try:
            await self._call(self._store.close)
        finally:
            self._executor.shutdown(wait=False)

    async def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        return await self._call(self._store.commit_batch, deliveries, checkpoint, now)

    async def load_checkpoint(self) -> Position | None:
        return await self._call(self._store.load_checkpoint)

    async def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> list[StoredDelivery]:
        return await self._call(
            self._store.claim_due, now, limit, exclude_endpoints, caps=caps, default_cap=default_cap
        )

    async def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        return await self._call(self._store.record_attempts, results, now)

    async def requeue_in_flight(self) -> int:
        return await self._call(self._store.requeue_in_flight)

    async def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        return await self._call(self._store.next_due_at, exclude_endpoints)

    async def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        return await self._call(self._store.release, ids, next_attempt_at, now)

    async def counts(self, *, delivered: bool = True) -> list[EndpointCounts]:
        return await self._call(self._store.counts, delivered=delivered)

    async def prune_delivered(self, older_than: float) -> int:
        return await self._call(self._store.prune_delivered, older_than)

    async def truncate_wal(self) -> bool:
        return await self._call(self._store.truncate_wal)

    async def meta_get(self, key: str) -> str | None:
        return await self._call(self._store.meta_get, key)

    async def meta_set(self, key: str, value: str) -> None:
        await self._call(self._store.meta_set, key, value)

    async def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))


# -- helpers --------------------------------------------------------------------------


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: Callable[[], None]) -> Iterator[None]:
    """A write transaction: ``begin`` takes the write lock up front; commits or rolls back."""
    begin()
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            # The original error matters; a failed rollback (SQLite may already have
            # rolled back after an I/O error) must not replace it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _url_origin(url: str) -> str:
    """``scheme://host:port`` of a stored URL: what a delivered row keeps of it."""
    return origin_of(url)[0]


def fair_merge(per_endpoint: Sequence[Sequence[_R]], limit: int) -> list[_R]:
    """At most ``limit`` rows taken in turns, one per endpoint per round.

    Each inner sequence is one endpoint's due rows, oldest first; endpoints take turns
    in the order their oldest row became due (the caller's order breaks ties), so a
    short ``limit`` is shared instead of going to whichever backlog is oldest. Pure.
    """
    queues = sorted((rows for rows in per_endpoint if rows), key=lambda rows: _due_key(rows[0]))
    merged: list[_R] = []
    depth = 0
    while len(merged) < limit and queues:
        queues = [rows for rows in queues if depth < len(rows)]
        for rows in queues:
            if len(merged) == limit:
                break
            merged.append(rows[depth])
        depth += 1
    return merged


def _due_key(row: _Due) -> tuple[float, int]:
    return (row.next_attempt_at, row.id)


def _create_private_file(path: Path) -> None:
    """Create the state file with mode 0600 if it does not exist; never touch one that does.

    POSIX advisory locks belong to the process: closing *any* descriptor of the file
    drops every lock this process holds on it, SQLite's included. Opening and closing an
    existing state file while another connection of this process (the service's second
    store, an in-process ``check``) has it open would let another process's connection
    believe it is the last one, checkpoint and delete the WAL under ours, which then
    reads a stale snapshot for good. Only a file this call creates (``O_EXCL``) is closed.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return  # created meanwhile by someone else: theirs, not ours to close
    os.close(fd)


def _restrict_mode(path: Path) -> None:
    """Make the database and its WAL files 0600 (they hold URLs, which may hold secrets)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if name.stat().st_mode & 0o777 != 0o600:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            msg = f"cannot make {name} private (mode 0600): {exc.strerror}; chmod 600 it"
            raise StoreError(msg) from exc


def _prepare(conn: sqlite3.Connection, path: Path, synchronous: str, begin: Callable[[], None]) -> None:
    """Set the connection's pragmas and migrate the schema to :data:`SCHEMA_VERSION`."""
    try:
        (journal_mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(journal_mode).lower() != "wal":
            msg = (
                f"SQLite refused WAL mode for {path} (got {journal_mode!r});"
                " put state.path on a local filesystem"
            )
            raise StoreError(msg)
        conn.execute(f"PRAGMA synchronous = {synchronous}")  # validated in __init__
        conn.execute("PRAGMA trusted_schema = OFF")
        # What an UPDATE or DELETE removes (a delivered row's URL and body, pruned and
        # purged rows) is overwritten with zeros, not left in free space.
        conn.execute("PRAGMA secure_delete = ON")
        conn.create_function("cdc_url_origin", 1, _url_origin, deterministic=True)
        with _transaction(conn, begin):
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                msg = (
                    f"{path} has schema version {version}, newer than this vicidial-cdc"
                    f" understands ({SCHEMA_VERSION}); upgrade vicidial-cdc"
                )
                raise StoreError(msg)
            if version == 0 and conn.execute("SELECT 1 FROM sqlite_master").fetchone():
                msg = f"{path} is an SQLite database of another application; point state.path at a new file"
                raise StoreError(msg)
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    except sqlite3.Error as exc:
        raise _store_error(exc, "open the state file", path) from exc


def _try_begin(conn: sqlite3.Connection) -> sqlite3.OperationalError | None:
    """``BEGIN IMMEDIATE``; the error when the lock stayed taken for a whole busy timeout."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return exc
        raise
    return None


def _primary_code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of ``exc`` (-1 when it carries none)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return -1 if code is None else int(code) & 0xFF


def _store_error(exc: sqlite3.Error, action: str, path: Path | None) -> StoreError:
    """Translate a sqlite3 error into a :class:`StoreError` that says what to do."""
    primary = _primary_code(exc)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        hint = (
            "the file is locked by another process (a second streamer, a CLI command or an"
            " sqlite3 shell using the same state.path?); `fuser -v` on the file names it: stop"
            " it, or give each streamer its own file"
        )
    elif primary == _SQLITE_FULL:
        hint = "the disk is full; free space on its filesystem (nothing was committed)"
    elif primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        hint = (
            "the file is not a vicidial-cdc state database or is corrupt; stop the"
            " service, move the file aside (keep it: `sqlite3 FILE .recover` may save"
            " pending deliveries) and restart, which resumes from reader.start"
        )
    elif primary in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN):
        hint = (
            "the file or its directory is not writable; check ownership, mode and"
            " that the filesystem is mounted read-write"
        )
    elif primary == _SQLITE_IOERR:
        hint = "the disk reported an I/O error; check it and the kernel log, then restart"
    elif primary == _SQLITE_CONSTRAINT:
        hint = "a record does not fit the schema; this is a bug, please report it"
    else:
        hint = "restart the service; report it if it happens again"
    return StoreError(f"cannot {action} ({path}): {name}: {exc}; {hint}")


def _insert_params(d: Delivery, now: float) -> tuple[Any, ...]:
    return (
        d.source,
        d.lead_id,
        d.endpoint_id,
        d.list_id,
        d.method,
        d.url,
        d.body,
        d.content_type,
        d.url_source.value,
        d.inserted_at,
        d.idempotency_key,
        # A delivery refused at routing (its URL's origin) is a dead letter from the start.
        DeliveryState.DEAD.value if d.refused else DeliveryState.PENDING.value,
        now,
        d.refused,
        now,
        now,
    )


def _record(row: Sequence[Any]) -> DeliveryRecord:
    (
        delivery_id,
        source,
        lead_id,
        list_id,
        endpoint_id,
        method,
        url,
        url_source,
        inserted_at,
        body,
        content_type,
        state,
        attempts,
        next_attempt_at,
        last_status,
        last_error,
        created_at,
        updated_at,
        delivered_at,
    ) = row
    delivery = Delivery(
        source=source,
        lead_id=lead_id,
        list_id=list_id,
        endpoint_id=endpoint_id,
        method=method,
        url=url,
        url_source=UrlSource(url_source),
        inserted_at=inserted_at,
        body=bytes(body),
        content_type=content_type,
    )
    return DeliveryRecord(
        id=delivery_id,
        delivery=delivery,
        state=DeliveryState(state),
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        last_status=last_status,
        last_error=last_error,
        created_at=created_at,
        updated_at=updated_at,
        delivered_at=delivered_at,
    )


def _dead_filter(
    endpoint_id: str | None, lead_id: int | None, older_than: float | None
) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause (placeholders only) selecting dead rows by the given filters."""
    clauses = ["state = 'dead'"]
    params: list[Any] = []
    if endpoint_id is not None:
        clauses.append("endpoint_id = ?")
        params.append(endpoint_id)
    if lead_id is not None:
        clauses.append("lead_id = ?")
        params.append(lead_id)
    if older_than is not None:
        clauses.append("updated_at < ?")
        params.append(older_than)
    return " AND ".join(clauses), tuple(params)


def _require_selector(
    ids: Collection[int] | None,
    endpoint_id: str | None,
    lead_id: int | None,
    older_than: float | None,
) -> None:
    if ids is None and endpoint_id is None and lead_id is None and older_than is None:
        msg = "give ids or at least one filter (older_than=now selects every dead row)"
        raise ValueError(msg)

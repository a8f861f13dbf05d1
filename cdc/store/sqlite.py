"""The SQLite state store: every role of :class:`~cdc.store.interfaces.StateStore` on one file.

This is the only module with the outbox's SQL; :mod:`cdc.store.sqlitefile` owns the
connection (private file, WAL mode, one thread at a time, busy waits, error
translation) and :mod:`cdc.store.migrations` the schema.

Every method is synchronous and may block on disk. The service runs each call on one
single-thread executor (:class:`~cdc.store.asyncstore.AsyncStore`), so one store
instance is only ever used from one thread at a time; a call that overlaps another
raises :class:`RuntimeError` instead of corrupting the connection's state.

Durability: :meth:`SqliteStore.commit_batch` writes new deliveries and the binlog
checkpoint in one transaction, so the checkpoint never passes a lead that is not in
the outbox. With ``synchronous="NORMAL"`` (the default) a power cut may lose the last
few commits, but always deliveries and checkpoint together: the reader re-reads that
binlog and the idempotent enqueue stores each delivery once. A lost ``delivered``
mark means one re-send under the same idempotency key.

All timestamps are UTC epoch seconds (``REAL``) passed in by the caller as ``now``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..records import Attempt, Delivery, Outcome, Position
from . import statements as sql
from .fairness import DueKey, cap_of, choose_hand_off, fair_merge
from .interfaces import require_selector
from .records import (
    Committed,
    DeadGroup,
    DeadSummary,
    DeliveryRecord,
    DeliveryState,
    EndpointCounts,
    HandOff,
    LockWait,
    StoredDelivery,
    StoreStatistics,
)
from .sqlitefile import SqliteFile

__all__ = ["SqliteStore"]


class SqliteStore:
    """:class:`~cdc.store.interfaces.StateStore` on one SQLite file.

    Args:
        path: the state file; may instead be given to :meth:`open`.
        synchronous: ``"NORMAL"`` (default; see the module docstring) or ``"FULL"`` to
            fsync every commit.
        busy_timeout_s: how long one try at a statement waits for another process's
            lock (SQLite's busy handler, polling with growing sleeps up to 100 ms).
        busy_limit_s: how long a write keeps trying, one ``busy_timeout_s`` slice after
            another (logged as ``store.busy`` after each), before it fails with
            :class:`~cdc.errors.StoreError`. 0: fail after the first slice.
        on_lock_wait: called (on the store's thread) with each write's :class:`LockWait`:
            once per busy slice, and once when the lock is held.
    """

    __slots__ = ("_db",)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 5.0,
        busy_limit_s: float = 0.0,
        on_lock_wait: Callable[[LockWait], None] | None = None,
    ) -> None:
        self._db = SqliteFile(
            path,
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
            busy_limit_s=busy_limit_s,
            on_lock_wait=on_lock_wait,
        )

    @property
    def path(self) -> Path | None:
        return self._db.path

    def statistics(self) -> StoreStatistics:
        """What this connection's writes cost so far (``/status``, operator summaries)."""
        return self._db.statistics()

    # -- lifecycle --------------------------------------------------------------------

    def open(self, path: str | os.PathLike[str] | None = None) -> None:
        """Open (creating if missing) the state file and bring its schema up to date.

        ``path`` is needed here unless it was given to the constructor. A missing parent
        directory is created with mode 0700; the file and its ``-wal`` and ``-shm``
        companions end up with mode 0600.
        """
        self._db.open(path)
        with self._db.use("open the state file") as conn:
            conn.create_function("cdc_url_origin", 1, sql.url_origin, deterministic=True)

    def close(self) -> None:
        """Close the connection. Closing twice, or before opening, is harmless."""
        self._db.close()

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
        return self.commit_hand_off(deliveries, checkpoint, now, None).ids

    def commit_hand_off(
        self,
        deliveries: Sequence[Delivery],
        checkpoint: Position | None,
        now: float,
        offer: HandOff | None,
        results: Sequence[tuple[Attempt, float | None]] = (),
    ) -> Committed:
        """:meth:`commit_batch`, and the new rows ``offer`` lets the sender take now
        inserted in flight (the rows a claim right after it would take) and returned;
        ``results`` recorded in the same transaction (as :meth:`record_attempts`).

        An endpoint with rows already due hands off none of its new rows: they stay
        pending behind its older ones, for the claim path.
        """
        params = _result_params(results, now)
        if not deliveries and checkpoint is None and not results:
            return Committed([], [], frozenset())
        with self._db.write("commit deliveries and checkpoint") as conn:
            new_ids: list[int] = []
            handed: list[StoredDelivery] = []
            pending: set[str] = set()
            if deliveries:
                chosen = self._choose_hand_off(conn, deliveries, offer, now) if offer else set()
                # One writer inside BEGIN IMMEDIATE, AUTOINCREMENT ids: new rows are
                # exactly those above the current maximum.
                (max_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM delivery").fetchone()
                conn.executemany(
                    sql.INSERT,
                    [sql.insert_params(d, now, in_flight=i in chosen) for i, d in enumerate(deliveries)],
                )
                cursor = conn.execute(sql.NEW_ROWS, (max_id,))
                by_key: dict[tuple[str, int, str], Delivery] = {}
                for i in chosen:  # the first of a key is the one stored
                    d = deliveries[i]
                    by_key.setdefault((d.source, d.lead_id, d.endpoint_id), d)
                for row_id, state, source, lead_id, endpoint_id in cursor:
                    new_ids.append(row_id)
                    if state == DeliveryState.IN_FLIGHT:
                        d = by_key[(source, lead_id, endpoint_id)]
                        handed.append(StoredDelivery(row_id, d, 0, now))
                    elif state == DeliveryState.PENDING:
                        pending.add(endpoint_id)
            if checkpoint is not None:
                conn.execute(sql.SAVE_CHECKPOINT, (checkpoint.file, checkpoint.pos, checkpoint.gtid, now))
            recorded = _record(conn, params) if results else 0
        return Committed(new_ids, handed, frozenset(pending), recorded)

    @staticmethod
    def _choose_hand_off(
        conn: sqlite3.Connection, deliveries: Sequence[Delivery], offer: HandOff, now: float
    ) -> set[int]:
        """Indexes of the deliveries to insert in flight (:func:`choose_hand_off`)."""
        new = [(i, d.endpoint_id) for i, d in enumerate(deliveries) if not d.refused]
        if not new or offer.limit <= 0:
            return set()
        due: dict[str, list[DueKey]] = {}
        for (endpoint_id,) in conn.execute(sql.PENDING_ENDPOINTS).fetchall():
            cap = cap_of(offer, endpoint_id)
            # A cap of 0 hands off nothing anyway: only endpoints that may take rows count.
            if cap > 0:
                rows = conn.execute(sql.SELECT_DUE_KEYS_FOR_ENDPOINT, (endpoint_id, now, cap)).fetchall()
                if rows:
                    due[endpoint_id] = [DueKey(row_id, due_at) for row_id, due_at in rows]
        return choose_hand_off(new, offer, due, now)

    def load_checkpoint(self) -> Position | None:
        with self._db.use("load the checkpoint") as conn:
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
        with self._db.write("claim due deliveries") as conn:
            if exclude_endpoints or caps is not None or default_cap is not None:
                excluded = set(exclude_endpoints)
                capped = caps or {}
                per_endpoint = []
                for (endpoint_id,) in conn.execute(sql.PENDING_ENDPOINTS).fetchall():
                    cap = min(limit, capped.get(endpoint_id, limit if default_cap is None else default_cap))
                    if endpoint_id in excluded or cap <= 0:
                        continue
                    rows = conn.execute(sql.SELECT_DUE_FOR_ENDPOINT, (endpoint_id, now, cap)).fetchall()
                    per_endpoint.append([sql.record_of(row) for row in rows])
                records = fair_merge(per_endpoint, limit)
            else:
                records = [sql.record_of(row) for row in conn.execute(sql.SELECT_DUE, (now, limit))]
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
        params = _result_params(results, now)
        if not results:
            return 0
        with self._db.write("record delivery attempts") as conn:
            return _record(conn, params)

    def requeue_in_flight(self) -> int:
        """Make rows left in flight by a previous run pending again (call at startup).

        Their attempt was never recorded, so it does not count; they may have reached
        the endpoint, and will be sent again under the same idempotency key.
        """
        with self._db.write("requeue in-flight deliveries") as conn:
            return conn.execute("UPDATE delivery SET state = 'pending' WHERE state = 'in_flight'").rowcount

    def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        """The earliest ``next_attempt_at`` of a pending row (maybe already past), or None.

        Rows of ``exclude_endpoints`` (paused or open breaker) do not count, so a
        sender waiting on them sleeps instead of spinning.
        """
        with self._db.use("find the next due delivery") as conn:
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
                for (endpoint_id,) in conn.execute(sql.PENDING_ENDPOINTS)
                if endpoint_id not in excluded
            ]
        found = [float(t) for t in times if t is not None]
        return min(found) if found else None

    def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        """Hand claimed rows back unsent (endpoint paused): pending again, no attempt counted."""
        if not ids:
            return 0
        with self._db.write("release claimed deliveries") as conn:
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
        with self._db.use("count deliveries") as conn:
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
        with self._db.write("prune delivered rows") as conn:
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
        with self._db.use("truncate the WAL") as conn:
            conn.execute("PRAGMA busy_timeout = 100")
            try:
                (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self._db.busy_timeout_s * 1000):d}")
        return int(busy) == 0

    # -- dead letters and inspection ---------------------------------------------------

    def get(self, delivery_id: int) -> DeliveryRecord | None:
        with self._db.use("read a delivery") as conn:
            row = conn.execute(f"SELECT {sql.COLUMNS} FROM delivery WHERE id = ?", (delivery_id,)).fetchone()
        return None if row is None else sql.record_of(row)

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
        where, params = sql.dead_filter(endpoint_id, lead_id, older_than)
        with self._db.use("list dead deliveries") as conn:
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM delivery WHERE {where} ORDER BY id LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [sql.record_of(row) for row in rows]

    def dead_summary(self, recent: int) -> DeadSummary:
        with self._db.use("summarize dead deliveries") as conn:
            groups = conn.execute(
                "SELECT endpoint_id, last_error, COUNT(*) FROM delivery WHERE state = 'dead'"
                " GROUP BY endpoint_id, last_error ORDER BY endpoint_id, last_error"
            ).fetchall()
            rows = conn.execute(
                f"SELECT {sql.COLUMNS} FROM delivery WHERE state = 'dead'"
                " ORDER BY updated_at DESC, id DESC LIMIT ?",
                (recent,),
            ).fetchall()
        return DeadSummary(
            groups=tuple(DeadGroup(e, reason or "unknown", n) for e, reason, n in groups),
            recent=tuple(sql.record_of(row) for row in rows),
        )

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
        require_selector(ids, endpoint_id, lead_id, older_than)
        return self._update_dead(
            "UPDATE delivery SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?,"
            " created_at = ?",
            (now, now, now),
            ids,
            sql.dead_filter(endpoint_id, lead_id, older_than),
            "retry dead deliveries",
        )

    def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Send stored deliveries again (``replay --force``), with the request given.

        Rows of the same (source, lead_id, endpoint_id) that are not in flight become
        pending, due now, with a fresh retry budget. Keys not stored are ignored. One
        transaction per :data:`OPERATOR_BATCH_ROWS` deliveries.
        """
        changed = 0
        for chunk in self._db.batches(deliveries):
            changed += self._requeue_batch(chunk, now)
        return changed

    def _requeue_batch(self, deliveries: Sequence[Delivery], now: float) -> int:
        with self._db.write("requeue deliveries") as conn:
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
        require_selector(ids, endpoint_id, lead_id, older_than)
        return self._update_dead(
            "DELETE FROM delivery",
            (),
            ids,
            sql.dead_filter(endpoint_id, lead_id, older_than),
            "purge dead deliveries",
        )

    # -- metadata -----------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        with self._db.use("read metadata") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self._db.write("write metadata") as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- schema history (cdc.reader.schemahistory) -----------------------------------------------

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]:
        """Every stored (table, position, columns JSON) of ``database``, in binlog order."""
        with self._db.use("read the schema history") as conn:
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
        with self._db.write("save the schema history") as conn:
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
        with self._db.write("prune the schema history") as conn:
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
        for chunk in self._db.batches(sorted(set(ids))):
            with self._db.write(action) as conn:
                changed += conn.executemany(
                    f"{head} WHERE {where} AND id = ?",
                    [(*head_params, *params, delivery_id) for delivery_id in chunk],
                ).rowcount
        return changed

    def _matching_ids(self, where: str, params: tuple[Any, ...], action: str) -> list[int]:
        """Ids of the rows ``where`` selects now, read without the write lock (WAL)."""
        with self._db.use(action) as conn:
            # By rowid: one pass over the table, never a sort of every dead row.
            return [i for (i,) in conn.execute(f"SELECT id FROM delivery NOT INDEXED WHERE {where}", params)]


def _result_params(
    results: Sequence[tuple[Attempt, float | None]], now: float
) -> dict[Outcome, list[tuple[Any, ...]]]:
    """Each outcome's statement parameters (checked before any transaction begins)."""
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
    return params


def _record(conn: sqlite3.Connection, params: dict[Outcome, list[tuple[Any, ...]]]) -> int:
    """Apply attempt outcomes inside the caller's transaction; the rows changed."""
    changed = 0
    for outcome, rows in params.items():
        if rows:
            changed += conn.executemany(sql.RECORD_SQL[outcome], rows).rowcount
    return changed

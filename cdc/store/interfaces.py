"""The state store's interfaces, one per role, and :class:`StateStore`, all of them.

Each consumer types its store parameter with the role it uses, so a backend (SQLite
today, a shared database later) and a test fake implement what the roles promise:

- :class:`Outbox`: a step's deliveries committed with its checkpoint; the sender's
  claims, results, releases and next due time (the service and the sender).
- :class:`Metadata`: the checkpoint read back, and small named values (the server
  identity, the waiting leads).
- :class:`DeadLetters`: ``dlq list/show/retry/purge`` and ``replay --force``.
- :class:`OutboxStatistics`: rows per endpoint and state (metrics, ``/status``, ``status``).
- :class:`Retention`: pruning delivered rows and erasing what they held.
- :class:`SchemaHistory`: the reader's table definitions by binlog position.

The synchronous roles may block on disk; the event loop uses :class:`AsyncOutbox` and
:class:`AsyncMetadata`, which :class:`~cdc.store.asyncstore.AsyncStore` implements by
running the synchronous calls on one worker thread.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

from ..records import Attempt, Delivery, Position
from .records import Committed, DeadSummary, DeliveryRecord, EndpointCounts, HandOff, StoredDelivery

__all__ = [
    "OPERATOR_BATCH_ROWS",
    "AsyncMetadata",
    "AsyncOutbox",
    "DeadLetters",
    "Metadata",
    "Outbox",
    "OutboxStatistics",
    "Retention",
    "SchemaHistory",
    "StateStore",
    "require_selector",
]

#: Rows one operator write (``dlq retry``/``purge``, ``replay --force``) changes per
#: transaction. Each batch holds the write lock for milliseconds, and the next batch
#: waits at least as long as the last one held it, so a running streamer's writes get
#: in between however many rows the command changes.
OPERATOR_BATCH_ROWS: Final = 1000


class Outbox(Protocol):
    """Deliveries between the resolver and the sender, committed with the binlog checkpoint."""

    def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        """Store new deliveries and the checkpoint atomically; return the new row ids.

        A delivery whose (source, lead_id, endpoint_id) is already stored, in any state,
        is ignored (it still uses up an id: ids increase but are not dense). A
        ``refused`` delivery is stored dead, its reason as ``last_error``.
        """
        ...

    def commit_hand_off(
        self,
        deliveries: Sequence[Delivery],
        checkpoint: Position | None,
        now: float,
        offer: HandOff | None,
        results: Sequence[tuple[Attempt, float | None]] = (),
    ) -> Committed:
        """:meth:`commit_batch`, with the new rows the sender can take now handed to it.

        Of the new rows, those a :meth:`claim_due` with ``offer``'s limits right after
        the commit would take are inserted in flight in the same transaction and
        returned (:func:`~cdc.store.fairness.choose_hand_off` decides, for every
        backend alike), except that an endpoint with rows already due hands off none:
        its new rows stay pending behind its older ones. ``offer=None``: none handed.
        ``results`` are recorded in the same transaction, as :meth:`record_attempts`
        would (the sender's attempts ride on the pipeline's commits).
        """
        ...

    def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> list[StoredDelivery]:
        """Mark up to ``limit`` due pending rows in flight and return them, oldest due first
        (per endpoint at most its cap, endpoints in turns, when caps are given)."""
        ...

    def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        """Apply attempt outcomes to in-flight rows; return how many rows changed."""
        ...

    def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        """Hand claimed rows back unsent: pending again, no attempt counted."""
        ...

    def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        """The earliest due time of a pending row (maybe already past), or None."""
        ...

    def requeue_in_flight(self) -> int:
        """Make rows left in flight by a previous run pending again (at startup)."""
        ...


class Metadata(Protocol):
    """The checkpoint read back at start, and small named values kept beside it."""

    def load_checkpoint(self) -> Position | None: ...

    def meta_get(self, key: str) -> str | None: ...

    def meta_set(self, key: str, value: str) -> None: ...


@runtime_checkable
class DeadLetters(Protocol):
    """What operators do to stored deliveries: inspect, retry, purge, send again.

    Writes that may change many rows do so :data:`OPERATOR_BATCH_ROWS` per transaction.
    """

    def get(self, delivery_id: int) -> DeliveryRecord | None: ...

    def list_dead(
        self,
        *,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]:
        """Dead rows matching every given filter, oldest id first (``older_than``: went dead before)."""
        ...

    def retry_dead(
        self,
        now: float,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int:
        """Make matching dead rows pending, due at ``now``, with a fresh retry budget."""
        ...

    def purge_dead(
        self,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete matching dead rows; return how many."""
        ...

    def dead_summary(self, recent: int) -> DeadSummary:
        """Dead rows counted by endpoint and reason (a reason "" counts as ``unknown``),
        and the ``recent`` that went dead last, newest first (the status page)."""
        ...

    def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Send stored deliveries again (``replay --force``), with the request given.

        For each delivery whose (source, lead_id, endpoint_id) is stored and not in
        flight, replace its request (method, url, body, content_type, url_source,
        list_id, inserted_at) and make it pending, due at ``now``, with ``attempts = 0``,
        ``last_status = 0``, ``last_error = ''``, no ``delivered_at`` and ``created_at =
        updated_at = now`` (the sender's maximum age counts from ``created_at``). Keys not
        stored are ignored. Returns the number of rows changed.
        """
        ...


class OutboxStatistics(Protocol):
    """Outbox rows per endpoint and state, for gauges and status pages."""

    def counts(self, *, delivered: bool = True) -> list[EndpointCounts]:
        """Row counts per endpoint and state, sorted by endpoint id (``delivered=False``:
        delivered rows not counted)."""
        ...


class Retention(Protocol):
    """Delivered rows kept for a while, then removed for good."""

    def prune_delivered(self, older_than: float) -> int:
        """Delete delivered rows whose ``delivered_at`` is before ``older_than``."""
        ...

    def truncate_wal(self) -> bool:
        """Make removed data leave every file; False when it must be tried again later."""
        ...


class SchemaHistory(Protocol):
    """The watched tables' definitions by binlog position (:mod:`cdc.reader.schemahistory`)."""

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]:
        """Every stored (table, position, columns JSON) of ``database``, in binlog order."""
        ...

    def add_schema_history(
        self, database: str, entries: Sequence[tuple[str, Position, str]], now: float
    ) -> None: ...

    def prune_schema_history(self, database: str, keep_from: Position) -> int:
        """Delete, per table, the definitions older than the one in force at ``keep_from``."""
        ...


class StateStore(Outbox, Metadata, DeadLetters, OutboxStatistics, Retention, SchemaHistory, Protocol):
    """Every role on one backend, with its lifecycle.

    Where the state lives (a file for SQLite, a DSN for a shared database) is given to
    the backend's constructor, so :meth:`open` takes no argument.
    """

    def open(self) -> None:
        """Connect and bring the schema up to date."""
        ...

    def close(self) -> None: ...


class AsyncOutbox(Protocol):
    """:class:`Outbox` as the event loop calls it (the sender, the service, lead recovery)."""

    async def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]: ...

    async def commit_hand_off(
        self,
        deliveries: Sequence[Delivery],
        checkpoint: Position | None,
        now: float,
        offer: HandOff | None,
        results: Sequence[tuple[Attempt, float | None]] = (),
    ) -> Committed: ...

    async def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> Sequence[StoredDelivery]: ...

    async def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int: ...

    async def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int: ...

    async def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None: ...

    async def requeue_in_flight(self) -> int: ...


class AsyncMetadata(Protocol):
    """:class:`Metadata` as the event loop calls it."""

    async def load_checkpoint(self) -> Position | None: ...

    async def meta_get(self, key: str) -> str | None: ...

    async def meta_set(self, key: str, value: str) -> None: ...


def require_selector(
    ids: Collection[int] | None,
    endpoint_id: str | None,
    lead_id: int | None,
    older_than: float | None,
) -> None:
    """Refuse a :class:`DeadLetters` retry or purge that names no rows (every backend calls it)."""
    if ids is None and endpoint_id is None and lead_id is None and older_than is None:
        msg = "give ids or at least one filter (older_than=now selects every dead row)"
        raise ValueError(msg)

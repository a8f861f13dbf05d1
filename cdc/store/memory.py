"""A :class:`~cdc.store.interfaces.StateStore` in memory, for unit tests of the sender and the service.

It keeps the semantics the sender and the operator tools rely on, and the store's unit
tests run against it and :class:`~cdc.store.sqlite.SqliteStore` alike: idempotent
enqueue on (source, lead_id, endpoint_id), ids never reused (an ignored duplicate
still uses one up), claims in due order with exclusions and fair caps, attempts
counted only on in-flight rows, delivered rows blanked down to their URL's origin,
dead letters listed, retried, purged and re-sent. Nothing is durable, calls are not
serialized across threads, and :meth:`MemoryStore.truncate_wal` has nothing to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..records import Attempt, Delivery, Outcome, Position
from ..resolve import origin_of
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
    StoredDelivery,
)

__all__ = ["MemoryStore"]

_Key = tuple[str, int, str]  # (source, lead_id, endpoint_id): the idempotency key


@dataclass(slots=True)
class _Row:
    """One stored delivery; mutable here, handed out as a frozen :class:`DeliveryRecord`."""

    id: int
    delivery: Delivery
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_status: int
    last_error: str
    created_at: float
    updated_at: float
    delivered_at: float | None = None

    def record(self) -> DeliveryRecord:
        return DeliveryRecord(
            self.id,
            self.delivery,
            self.state,
            self.attempts,
            self.next_attempt_at,
            self.last_status,
            self.last_error,
            self.created_at,
            self.updated_at,
            self.delivered_at,
        )


def _check_results(results: Sequence[tuple[Attempt, float | None]]) -> None:
    """Refuse a RETRY without a retry time before anything changes (as SQLite does)."""
    for attempt, retry_at in results:
        if attempt.outcome is Outcome.RETRY and retry_at is None:
            msg = f"results: a RETRY needs a retry time (delivery {attempt.delivery_id})"
            raise ValueError(msg)


def _key(d: Delivery) -> _Key:
    return (d.source, d.lead_id, d.endpoint_id)


class MemoryStore:
    """Every store role on dicts (see the module docstring)."""

    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}  # by id, in insertion (= id) order
        self._by_key: dict[_Key, int] = {}
        self._last_id = 0
        self._checkpoint: Position | None = None
        self._meta: dict[str, str] = {}
        self._schema: dict[tuple[str, str, str, int], str] = {}  # (db, table, file, pos) → columns
        self._opened = False

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        self._opened = True

    def close(self) -> None:
        self._opened = False

    # -- outbox ------------------------------------------------------------------------------

    def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        return self.commit_hand_off(deliveries, checkpoint, now, None).ids

    def commit_hand_off(
        self,
        deliveries: Sequence[Delivery],
        checkpoint: Position | None,
        now: float,
        offer: HandOff | None,
        results: Sequence[tuple[Attempt, float | None]] = (),
    ) -> Committed:
        _check_results(results)
        chosen: set[int] = set()
        if offer is not None:
            new = [(i, d.endpoint_id) for i, d in enumerate(deliveries) if not d.refused]
            chosen = choose_hand_off(new, offer, self._due_keys(offer, now), now) if new else set()
        new_ids: list[int] = []
        handed: list[StoredDelivery] = []
        pending: set[str] = set()
        for i, d in enumerate(deliveries):
            self._last_id += 1
            if _key(d) in self._by_key:
                continue
            # A refused delivery is a dead letter from the start, its reason the error.
            if d.refused:
                state = DeliveryState.DEAD
            elif i in chosen:
                state = DeliveryState.IN_FLIGHT
            else:
                state = DeliveryState.PENDING
            stored = dataclasses.replace(d, refused="")  # what a backend gives back
            self._rows[self._last_id] = _Row(self._last_id, stored, state, 0, now, 0, d.refused, now, now)
            self._by_key[_key(d)] = self._last_id
            new_ids.append(self._last_id)
            if state is DeliveryState.IN_FLIGHT:
                handed.append(StoredDelivery(self._last_id, stored, 0, now))
            elif state is DeliveryState.PENDING:
                pending.add(d.endpoint_id)
        if checkpoint is not None:
            self._checkpoint = checkpoint
        return Committed(new_ids, handed, frozenset(pending), self.record_attempts(results, now))

    def _due_keys(self, offer: HandOff, now: float) -> dict[str, list[DueKey]]:
        """Due rows of each endpoint that has some and may take rows, up to its cap."""
        due: dict[str, list[DueKey]] = {}
        for r in sorted(self._pending(), key=lambda r: (r.next_attempt_at, r.id)):
            endpoint_id = r.delivery.endpoint_id
            if r.next_attempt_at <= now and cap_of(offer, endpoint_id) > 0:
                rows = due.setdefault(endpoint_id, [])
                if len(rows) < cap_of(offer, endpoint_id):
                    rows.append(DueKey(r.id, r.next_attempt_at))
        return due

    def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> list[StoredDelivery]:
        if limit <= 0:
            return []
        due = sorted(
            (r for r in self._pending() if r.next_attempt_at <= now),
            key=lambda r: (r.next_attempt_at, r.id),
        )
        if exclude_endpoints or caps is not None or default_cap is not None:
            excluded = set(exclude_endpoints)
            capped = caps or {}
            per_endpoint = []
            for endpoint_id in sorted({r.delivery.endpoint_id for r in self._pending()}):
                cap = min(limit, capped.get(endpoint_id, limit if default_cap is None else default_cap))
                if endpoint_id in excluded or cap <= 0:
                    continue
                per_endpoint.append([r for r in due if r.delivery.endpoint_id == endpoint_id][:cap])
            rows = fair_merge(per_endpoint, limit)
        else:
            rows = due[:limit]
        for r in rows:
            r.state, r.updated_at = DeliveryState.IN_FLIGHT, now
        return [StoredDelivery(r.id, r.delivery, r.attempts, r.created_at) for r in rows]

    def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        _check_results(results)
        changed = 0
        for attempt, retry_at in results:
            r = self._rows.get(attempt.delivery_id)
            if r is None or r.state is not DeliveryState.IN_FLIGHT:
                continue
            if attempt.outcome is Outcome.DELIVERED:
                r.state, r.delivered_at = DeliveryState.DELIVERED, now
                # A delivered row keeps no lead data, as the SQLite store's does not.
                r.delivery = dataclasses.replace(r.delivery, url=origin_of(r.delivery.url)[0], body=b"")
            elif attempt.outcome is Outcome.RETRY:
                assert retry_at is not None
                r.state, r.next_attempt_at = DeliveryState.PENDING, retry_at
            else:
                r.state = DeliveryState.DEAD
            r.attempts += 1
            r.last_status, r.last_error, r.updated_at = attempt.status, attempt.error, now
            changed += 1
        return changed

    def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        changed = 0
        for i in ids:  # one at a time: an id given twice is released once
            r = self._rows.get(i)
            if r is not None and r.state is DeliveryState.IN_FLIGHT:
                r.state, r.next_attempt_at, r.updated_at = DeliveryState.PENDING, next_attempt_at, now
                changed += 1
        return changed

    def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        excluded = set(exclude_endpoints)
        times = [r.next_attempt_at for r in self._pending() if r.delivery.endpoint_id not in excluded]
        return min(times) if times else None

    def requeue_in_flight(self) -> int:
        rows = self._in_state(DeliveryState.IN_FLIGHT)
        for r in rows:
            r.state = DeliveryState.PENDING
        return len(rows)

    # -- checkpoint and metadata -----------------------------------------------------------------

    def load_checkpoint(self) -> Position | None:
        return self._checkpoint

    def meta_get(self, key: str) -> str | None:
        return self._meta.get(key)

    def meta_set(self, key: str, value: str) -> None:
        self._meta[key] = value

    # -- dead letters ----------------------------------------------------------------------------

    def get(self, delivery_id: int) -> DeliveryRecord | None:
        r = self._rows.get(delivery_id)
        return None if r is None else r.record()

    def list_dead(
        self,
        *,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]:
        return [r.record() for r in self._dead(None, endpoint_id, lead_id, older_than)][:limit]

    def dead_summary(self, recent: int) -> DeadSummary:
        dead = self._dead(None, None, None, None)
        groups: dict[tuple[str, str], int] = {}
        for r in dead:
            key = (r.delivery.endpoint_id, r.last_error or "unknown")
            groups[key] = groups.get(key, 0) + 1
        newest = sorted(dead, key=lambda r: (r.updated_at, r.id), reverse=True)[:recent]
        return DeadSummary(
            groups=tuple(DeadGroup(e, reason, n) for (e, reason), n in sorted(groups.items())),
            recent=tuple(r.record() for r in newest),
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
        require_selector(ids, endpoint_id, lead_id, older_than)
        rows = self._dead(ids, endpoint_id, lead_id, older_than)
        for r in rows:
            r.state, r.attempts = DeliveryState.PENDING, 0
            r.next_attempt_at = r.updated_at = r.created_at = now
        return len(rows)

    def purge_dead(
        self,
        *,
        ids: Collection[int] | None = None,
        endpoint_id: str | None = None,
        lead_id: int | None = None,
        older_than: float | None = None,
    ) -> int:
        require_selector(ids, endpoint_id, lead_id, older_than)
        return self._delete(self._dead(ids, endpoint_id, lead_id, older_than))

    def requeue(self, deliveries: Sequence[Delivery], now: float) -> int:
        changed = 0
        for d in deliveries:
            row_id = self._by_key.get(_key(d))
            r = None if row_id is None else self._rows[row_id]
            if r is None or r.state is DeliveryState.IN_FLIGHT:
                continue
            r.delivery = dataclasses.replace(d, refused="")
            r.state, r.attempts, r.last_status, r.last_error = DeliveryState.PENDING, 0, 0, ""
            r.next_attempt_at = r.created_at = r.updated_at = now
            r.delivered_at = None
            changed += 1
        return changed

    # -- statistics and retention ----------------------------------------------------------------

    def counts(self, *, delivered: bool = True) -> list[EndpointCounts]:
        by_endpoint: dict[str, dict[str, int]] = {}
        oldest: dict[str, float] = {}
        for r in self._rows.values():  # id order: the first waiting row seen is the oldest
            endpoint_id = r.delivery.endpoint_id
            if r.state is DeliveryState.DELIVERED and not delivered:
                continue
            states = by_endpoint.setdefault(endpoint_id, {})
            states[r.state.value] = states.get(r.state.value, 0) + 1
            if r.state in (DeliveryState.PENDING, DeliveryState.IN_FLIGHT):
                oldest.setdefault(endpoint_id, r.created_at)
        return [
            EndpointCounts(e, **by_endpoint[e], oldest_pending_created_at=oldest.get(e))
            for e in sorted(by_endpoint)
        ]

    def prune_delivered(self, older_than: float) -> int:
        return self._delete(
            self._matching(
                lambda r: (
                    r.state is DeliveryState.DELIVERED
                    and r.delivered_at is not None
                    and r.delivered_at < older_than
                )
            )
        )

    def truncate_wal(self) -> bool:
        return True  # nothing removed lingers anywhere

    # -- schema history --------------------------------------------------------------------------

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]:
        found = sorted(
            (file, pos, table, columns)
            for (db, table, file, pos), columns in self._schema.items()
            if db == database
        )
        return [(table, Position(file, pos), columns) for file, pos, table, columns in found]

    def add_schema_history(
        self, database: str, entries: Sequence[tuple[str, Position, str]], now: float
    ) -> None:
        for table, p, columns in entries:
            self._schema[(database, table, p.file, p.pos)] = columns

    def prune_schema_history(self, database: str, keep_from: Position) -> int:
        keep = (keep_from.file, keep_from.pos)
        in_force: dict[str, tuple[str, int]] = {}
        for db, table, file, pos in self._schema:
            if db == database and (file, pos) <= keep:
                in_force[table] = max(in_force.get(table, (file, pos)), (file, pos))
        doomed = [
            k for k in self._schema if k[0] == database and k[1] in in_force and (k[2], k[3]) < in_force[k[1]]
        ]
        for k in doomed:
            del self._schema[k]
        return len(doomed)

    # -- internals -------------------------------------------------------------------------------

    def _matching(self, predicate: Callable[[_Row], bool]) -> list[_Row]:
        return [r for r in self._rows.values() if predicate(r)]

    def _in_state(self, state: DeliveryState) -> list[_Row]:
        return self._matching(lambda r: r.state is state)

    def _pending(self) -> list[_Row]:
        return self._in_state(DeliveryState.PENDING)

    def _dead(
        self,
        ids: Collection[int] | None,
        endpoint_id: str | None,
        lead_id: int | None,
        older_than: float | None,
    ) -> list[_Row]:
        """Dead rows matching every given selector, in id order."""
        wanted = None if ids is None else set(ids)
        return self._matching(
            lambda r: (
                r.state is DeliveryState.DEAD
                and (wanted is None or r.id in wanted)
                and (endpoint_id is None or r.delivery.endpoint_id == endpoint_id)
                and (lead_id is None or r.delivery.lead_id == lead_id)
                and (older_than is None or r.updated_at < older_than)
            )
        )

    def _delete(self, rows: Iterable[_Row]) -> int:
        deleted = 0
        for r in rows:
            del self._rows[r.id]
            del self._by_key[_key(r.delivery)]
            deleted += 1
        return deleted

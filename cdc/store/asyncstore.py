"""The async face of a state store: every call on one worker thread, off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ..records import Attempt, Delivery, Position
from .interfaces import StateStore
from .records import Committed, DeadSummary, EndpointCounts, HandOff, StoredDelivery

__all__ = ["AsyncStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class AsyncStore:
    """The event loop's face of a :class:`StateStore`: every call runs on one thread.

    It is the :class:`~cdc.store.interfaces.AsyncOutbox` and
    :class:`~cdc.store.interfaces.AsyncMetadata` the sender, the service and lead
    recovery use. A private single-thread executor serializes the calls, as
    :class:`~cdc.store.sqlite.SqliteStore` requires. Cancelling an await does not stop
    its call: the call still commits or rolls back on the worker thread, and later
    calls queue behind it. Operator tools (dead letters, ``get``) use the synchronous
    store directly, through :attr:`store`.
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

    async def commit_hand_off(
        self,
        deliveries: Sequence[Delivery],
        checkpoint: Position | None,
        now: float,
        offer: HandOff | None,
        results: Sequence[tuple[Attempt, float | None]] = (),
    ) -> Committed:
        return await self._call(self._store.commit_hand_off, deliveries, checkpoint, now, offer, results)

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

    async def dead_summary(self, recent: int) -> DeadSummary:
        return await self._call(self._store.dead_summary, recent)

    async def retry_dead(
        self, now: float, *, ids: Collection[int] | None = None, endpoint_id: str | None = None
    ) -> int:
        return await self._call(self._store.retry_dead, now, ids=ids, endpoint_id=endpoint_id)

    async def purge_dead(self, *, ids: Collection[int] | None = None, endpoint_id: str | None = None) -> int:
        return await self._call(self._store.purge_dead, ids=ids, endpoint_id=endpoint_id)

    async def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

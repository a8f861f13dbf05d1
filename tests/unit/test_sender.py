"""cdc.delivery.Sender against a real receiver on 127.0.0.1 and the in-memory outbox.

The outbox is :class:`cdc.store.memory.MemoryStore` (its semantics are proven against
the SQLite store in ``test_store.py``), called on the event loop itself, so a test reads
the rows between awaits. The receiver is the real aiohttp one from :mod:`cdc.testing`.
Retry schedules are shrunk to milliseconds; waits are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from support.host import free_port

from cdc.breaker import BreakerState
from cdc.config import DeliveryConfig, EndpointLimits, RetryPolicy
from cdc.delivery import SKIP_AUTO_HEADERS, Sender
from cdc.metrics import Metrics
from cdc.records import Attempt, Delivery, Position, UrlSource
from cdc.store import AsyncOutbox, Committed, DeliveryRecord, DeliveryState, HandOff, StoredDelivery
from cdc.store.memory import MemoryStore
from cdc.testing.receiver import Receiver

WAIT_S = 10.0


class InlineOutbox:
    """:class:`AsyncOutbox` on a :class:`MemoryStore`, run on the loop: no worker thread to race."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        return self.store.commit_batch(deliveries, checkpoint, now)

    async def commit_hand_off(
        self,
        deliveries: Sequence[Delivery],
        checkpoint: Position | None,
        now: float,
        offer: HandOff | None,
        results: Sequence[tuple[Attempt, float | None]] = (),
    ) -> Committed:
        return self.store.commit_hand_off(deliveries, checkpoint, now, offer, results)

    async def claim_due(
        self,
        now: float,
        limit: int,
        exclude_endpoints: Collection[str] = (),
        *,
        caps: Mapping[str, int] | None = None,
        default_cap: int | None = None,
    ) -> Sequence[StoredDelivery]:
        return self.store.claim_due(now, limit, exclude_endpoints, caps=caps, default_cap=default_cap)

    async def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        return self.store.record_attempts(results, now)

    async def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        return self.store.release(ids, next_attempt_at, now)

    async def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        return self.store.next_due_at(exclude_endpoints)

    async def requeue_in_flight(self) -> int:
        return self.store.requeue_in_flight()


#: The sender's retries in tests: milliseconds apart.
FAST_RETRY = RetryPolicy(base_s=0.02, factor=1.0, cap_s=0.05, max_attempts=5)


def delivery_config(limits: EndpointLimits | None = None, **settings: Any) -> DeliveryConfig:
    """The sender's config: :data:`FAST_RETRY` unless ``settings`` says otherwise (RetryPolicy's
    keys change ``retry``, the others ``[delivery]``)."""
    retry_keys = {f.name for f in dataclasses.fields(RetryPolicy)}
    retry = dataclasses.replace(FAST_RETRY, **{k: v for k, v in settings.items() if k in retry_keys})
    rest = {k: v for k, v in settings.items() if k not in retry_keys}
    return DeliveryConfig(mode="send", defaults=limits or EndpointLimits(), retry=retry, **rest)


@dataclass
class Harness:
    """One sender on one in-memory outbox, sending to one receiver."""

    store: MemoryStore
    receiver: Receiver
    sender: Sender
    metrics: Metrics

    def enqueue(self, *lead_ids: int, url: str | None = None) -> list[int]:
        deliveries = [
            Delivery(
                source="vici1",
                lead_id=lead_id,
                list_id=101,
                endpoint_id="crm",
                method="GET",
                url=url or f"{self.receiver.url}/hook?lead_id={lead_id}&name=Jos%C3%A9",
                url_source=UrlSource.CONFIG_SYSTEM,
                inserted_at=int(time.time()),
            )
            for lead_id in lead_ids
        ]
        ids = self.store.commit_batch(deliveries, None, time.time())
        self.sender.notify()
        return ids

    async def commit(self, *lead_ids: int) -> Committed:
        """Store new rows as the service's pipeline does: through the sender, which may take them."""
        deliveries = [
            Delivery(
                source="vici1",
                lead_id=lead_id,
                list_id=101,
                endpoint_id="crm",
                method="GET",
                url=f"{self.receiver.url}/hook?lead_id={lead_id}",
                url_source=UrlSource.CONFIG_SYSTEM,
                inserted_at=int(time.time()),
            )
            for lead_id in lead_ids
        ]
        return await self.sender.commit(deliveries, None, time.time())

    def started(self, path: str) -> float:
        """Rows started by ``path`` (handoff or claim), as /metrics shows them."""
        value = self.metrics.registry.get_sample_value(
            "vicidial_cdc_deliveries_started_total", {"path": path}
        )
        return value or 0.0

    def row(self, delivery_id: int) -> DeliveryRecord:
        record = self.store.get(delivery_id)
        assert record is not None
        return record

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.01)

    async def wait_state(self, delivery_id: int, state: DeliveryState) -> DeliveryRecord:
        await self.wait_until(lambda: self.row(delivery_id).state is state)
        return self.row(delivery_id)


@contextlib.asynccontextmanager
async def running(
    config: DeliveryConfig, flush_interval_s: float = 0.005
) -> AsyncIterator[tuple[Harness, asyncio.Event, asyncio.Task[None]]]:
    """A started receiver and a running sender; stopped (bounded) and closed on exit."""
    receiver = Receiver()
    await receiver.start()
    store = MemoryStore()
    metrics = Metrics()
    stop = asyncio.Event()
    async with aiohttp.ClientSession(skip_auto_headers=SKIP_AUTO_HEADERS, raise_for_status=False) as session:
        outbox: AsyncOutbox = InlineOutbox(store)
        sender = Sender(session, outbox, config, metrics, flush_interval_s=flush_interval_s)
        task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(0)  # let it start: hand-offs go to a running sender only
        try:
            yield Harness(store, receiver, sender, metrics), stop, task
        finally:
            stop.set()
            try:
                async with asyncio.timeout(WAIT_S):
                    await task
            finally:
                await receiver.stop()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with running(delivery_config()) as (h, _, _):
        yield h


class TestSending:
    """A due row is sent once, byte for byte, and recorded delivered."""

    async def test_delivered(self, harness: Harness) -> None:
        """200: delivered after one attempt, the URL's bytes as stored, the idempotency key sent."""
        (row_id,) = harness.enqueue(7)
        record = await harness.wait_state(row_id, DeliveryState.DELIVERED)
        assert (record.attempts, record.last_status, record.last_error) == (1, 200, "")
        (request,) = harness.receiver.requests
        assert request.target == "/hook?lead_id=7&name=Jos%C3%A9"
        assert request.header("Idempotency-Key") == "vici1:7:crm"
        assert request.header("User-Agent") is None
        assert harness.sender.sent == 1


class TestRetries:
    """Each failure is classified: retried with backoff, or dead at once."""

    async def test_5xx_is_retried_then_delivered(self, harness: Harness) -> None:
        """503 without Retry-After, then 200: delivered on the second attempt."""
        harness.receiver.respond_with([503])
        (row_id,) = harness.enqueue(1)
        record = await harness.wait_state(row_id, DeliveryState.DELIVERED)
        assert record.attempts == 2
        assert len(harness.receiver.requests) == 2

    async def test_recorded_retry_wakes_the_claim_loop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A retry recorded while the claim loop sleeps is claimed at its due time, not at the next poll."""
        monkeypatch.setattr("cdc.delivery.IDLE_POLL_S", 3600.0)  # no poll would come within WAIT_S
        async with running(delivery_config()) as (h, _, _):
            h.receiver.respond_with([503])
            (row_id,) = h.enqueue(1)
            record = await h.wait_state(row_id, DeliveryState.DELIVERED)
            assert record.attempts == 2

    async def test_4xx_is_dead_at_once(self, harness: Harness) -> None:
        """404 rejects the lead: dead after one attempt, its status and class kept."""
        harness.receiver.respond_with([404])
        (row_id,) = harness.enqueue(1)
        record = await harness.wait_state(row_id, DeliveryState.DEAD)
        assert (record.attempts, record.last_status, record.last_error) == (1, 404, "http_404")

    async def test_redirect_is_not_followed(self, harness: Harness) -> None:
        """A 3xx is dead, unfollowed, with a reason that names no query string."""
        harness.receiver.respond_with([302])
        (row_id,) = harness.enqueue(1)
        record = await harness.wait_state(row_id, DeliveryState.DEAD)
        assert (record.last_status, record.last_error) == (302, "redirect (no Location)")
        assert len(harness.receiver.requests) == 1

    async def test_timeout_is_retried(self) -> None:
        """No answer within timeout_s: the attempt is a timeout, and the row is retried."""
        limits = EndpointLimits(timeout_s=0.1)
        async with running(delivery_config(limits, base_s=60.0, cap_s=60.0)) as (h, _, _):
            h.receiver.latency_s = 1.0
            (row_id,) = h.enqueue(1)
            await h.wait_until(lambda: h.row(row_id).attempts == 1)
            record = h.row(row_id)
            assert (record.state, record.last_status, record.last_error) == (
                DeliveryState.PENDING,
                0,
                "timeout",
            )
            assert record.next_attempt_at > time.time()

    async def test_connection_refused_is_retried(self) -> None:
        """Nobody listening: a connect error, retried until the attempts run out."""
        async with running(delivery_config(max_attempts=2)) as (h, _, _):
            (row_id,) = h.enqueue(1, url=f"http://127.0.0.1:{free_port()}/hook?lead_id=1")
            record = await h.wait_state(row_id, DeliveryState.DEAD)
            assert (record.attempts, record.last_status, record.last_error) == (2, 0, "connect")

    async def test_dead_after_max_attempts(self) -> None:
        """Always 500: exactly max_attempts requests, then a dead letter."""
        async with running(delivery_config(max_attempts=3, breaker_failures=100)) as (h, _, _):
            h.receiver.respond_with([500] * 10)
            (row_id,) = h.enqueue(1)
            record = await h.wait_state(row_id, DeliveryState.DEAD)
            assert (record.attempts, record.last_status, record.last_error) == (3, 500, "http_500")
            await asyncio.sleep(0.2)  # nothing more is sent
            assert len(h.receiver.requests) == 3


class TestEndpointProtection:
    """A failing or throttling endpoint is held back: breaker, Retry-After, rate limit."""

    async def test_breaker_opens_after_consecutive_failures(self) -> None:
        """breaker_failures failures in a row open the circuit: no more requests during the cool-down."""
        config = delivery_config(
            EndpointLimits(concurrency=1), max_attempts=100, breaker_failures=2, breaker_cooldown_s=30.0
        )
        async with running(config) as (h, _, _):
            h.receiver.respond_with([500] * 100)
            ids = h.enqueue(1, 2, 3, 4)
            await h.wait_until(lambda: any(s.circuit is BreakerState.OPEN for s in h.sender.statistics()))
            await asyncio.sleep(0.3)  # rows due again meanwhile are not sent
            assert len(h.receiver.requests) == 2
            (stats,) = h.sender.statistics()
            assert stats.opened_at is not None
            assert all(h.row(i).state is DeliveryState.PENDING for i in ids)

    async def test_retry_after_pauses_the_endpoint(self) -> None:
        """429 with Retry-After: 1: the endpoint pauses, the next request waits that long, then goes."""
        async with running(delivery_config(cap_s=5.0)) as (h, _, _):
            h.receiver.respond_with([429], retry_after="1")
            (row_id,) = h.enqueue(1)
            await h.wait_until(lambda: h.row(row_id).attempts == 1)
            (stats,) = h.sender.statistics()
            assert stats.paused_until > time.time()
            assert h.row(row_id).next_attempt_at >= stats.paused_until - 0.01
            record = await h.wait_state(row_id, DeliveryState.DELIVERED)
            first, second = h.receiver.requests
            assert second.received_at - first.received_at >= 0.9
            assert (record.attempts, record.last_status) == (2, 200)

    async def test_rate_limit_is_honoured(self) -> None:
        """rate 10/s, burst 1: five requests are spread over at least 0.4 s."""
        async with running(delivery_config(EndpointLimits(rate_per_s=10.0, burst=1))) as (h, _, _):
            ids = h.enqueue(1, 2, 3, 4, 5)
            for row_id in ids:
                await h.wait_state(row_id, DeliveryState.DELIVERED)
            times = sorted(r.received_at for r in h.receiver.requests)
            assert len(times) == 5
            assert times[-1] - times[0] >= 0.35
            waits = h.metrics.registry.get_sample_value(
                "vicidial_cdc_rate_limited_waits_total", {"endpoint": "crm"}
            )
            assert waits is not None and waits > 0


class TestShutdown:
    """Stopping takes no new rows and lets the requests in flight finish and be recorded."""

    async def test_stop_drains_in_flight(self) -> None:
        """A request in flight when stop is set completes, and its outcome is recorded."""
        async with running(delivery_config(EndpointLimits(concurrency=1))) as (h, stop, task):
            h.receiver.latency_s = 0.3
            first, *rest = h.enqueue(1, 2, 3)
            await h.receiver.wait_for(1, WAIT_S)
            stop.set()
            async with asyncio.timeout(WAIT_S):
                await task
            assert h.row(first).state is DeliveryState.DELIVERED
            assert [h.row(i).state for i in rest] == [DeliveryState.PENDING, DeliveryState.PENDING]
            assert len(h.receiver.requests) == 1
            assert h.sender.in_flight == 0


class TestHandOff:
    """Rows committed through the sender start at once, under every limit a claim honours."""

    async def test_low_rate_needs_no_claim(self, harness: Harness) -> None:
        """Leads committed one by one are delivered with zero claim transactions."""
        for lead_id in (1, 2, 3):
            committed = await harness.commit(lead_id)
            assert len(committed.handed) == 1
            await harness.wait_state(committed.ids[0], DeliveryState.DELIVERED)
        assert harness.sender.claims == 0
        assert (harness.started("handoff"), harness.started("claim")) == (3.0, 0.0)
        assert harness.sender.sent == 3

    async def test_hand_off_does_not_wake_the_claim_loop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Ten hand-offs cost the claim loop no read of the outbox (only its first look at start)."""
        monkeypatch.setattr("cdc.delivery.IDLE_POLL_S", 3600.0)
        reads = 0
        next_due_at = InlineOutbox.next_due_at

        async def counting(outbox: InlineOutbox, exclude_endpoints: Collection[str] = ()) -> float | None:
            nonlocal reads
            reads += 1
            return await next_due_at(outbox, exclude_endpoints)

        monkeypatch.setattr(InlineOutbox, "next_due_at", counting)
        async with running(delivery_config()) as (h, _, _):
            for lead_id in range(1, 11):
                (row_id,) = (await h.commit(lead_id)).ids
                await h.wait_state(row_id, DeliveryState.DELIVERED)
            assert (reads, h.sender.claims) == (1, 0)

    async def test_results_ride_the_next_commit(self) -> None:
        """An attempt finished before the next commit is recorded by that commit, not on its own."""
        async with running(delivery_config(), flush_interval_s=3600.0) as (h, _, _):
            (first,) = (await h.commit(1)).ids
            await h.wait_until(lambda: h.sender.sent == 1)
            assert h.row(first).state is DeliveryState.IN_FLIGHT  # the flusher waits an hour
            committed = await h.commit(2)
            assert committed.recorded == 1
            assert h.row(first).state is DeliveryState.DELIVERED

    async def test_concurrency_cap_holds(self) -> None:
        """concurrency 2: a commit hands off two rows; the rest wait and never exceed two at once."""
        async with running(delivery_config(EndpointLimits(concurrency=2))) as (h, _, _):
            h.receiver.latency_s = 0.2
            committed = await h.commit(1, 2, 3, 4, 5)
            assert len(committed.handed) == 2 and committed.pending_endpoints == {"crm"}
            assert (await h.commit(6)).handed == []  # both slots are taken
            for row_id in [*committed.ids, 6]:
                await h.wait_state(row_id, DeliveryState.DELIVERED)
            times = sorted(r.received_at for r in h.receiver.requests)
            assert len(times) == 6
            assert all(later - earlier >= 0.18 for earlier, later in zip(times, times[2:], strict=False))

    async def test_max_in_flight_holds(self) -> None:
        """max_in_flight 3: a commit of five hands off three; the other two wait for the claim path."""
        async with running(delivery_config(max_in_flight=3)) as (h, _, _):
            h.receiver.latency_s = 0.2
            committed = await h.commit(1, 2, 3, 4, 5)
            assert len(committed.handed) == 3 and h.sender.in_flight == 3
            for row_id in committed.ids:
                await h.wait_state(row_id, DeliveryState.DELIVERED)
            assert h.started("handoff") == 3.0 and h.started("claim") == 2.0

    async def test_rate_limit_holds(self) -> None:
        """rate 10/s, burst 1: five rows handed off in five commits are spread over at least 0.4 s."""
        async with running(delivery_config(EndpointLimits(rate_per_s=10.0, burst=1))) as (h, _, _):
            ids = [(await h.commit(lead_id)).ids[0] for lead_id in range(1, 6)]
            for row_id in ids:
                await h.wait_state(row_id, DeliveryState.DELIVERED)
            times = sorted(r.received_at for r in h.receiver.requests)
            assert len(times) == 5 and times[-1] - times[0] >= 0.35
            assert h.started("handoff") == 5.0

    async def test_paused_endpoint_keeps_new_rows_pending(self) -> None:
        """After a 429 with Retry-After, a new row stays pending until the pause ends."""
        async with running(delivery_config(cap_s=5.0)) as (h, _, _):
            h.receiver.respond_with([429], retry_after="1")
            (first,) = (await h.commit(1)).ids
            await h.wait_until(lambda: h.row(first).attempts == 1)
            committed = await h.commit(2)
            assert committed.handed == [] and committed.pending_endpoints == {"crm"}
            assert h.row(committed.ids[0]).state is DeliveryState.PENDING
            await h.wait_state(committed.ids[0], DeliveryState.DELIVERED)
            paused_at = h.receiver.requests[0].received_at
            assert all(r.received_at - paused_at >= 0.9 for r in h.receiver.requests[1:])

    async def test_open_breaker_keeps_new_rows_pending(self) -> None:
        """With the breaker open, a new row is stored pending and not sent during the cool-down."""
        config = delivery_config(max_attempts=100, breaker_failures=1, breaker_cooldown_s=30.0)
        async with running(config) as (h, _, _):
            h.receiver.respond_with([500] * 10)
            await h.commit(1)
            await h.wait_until(lambda: any(s.circuit is BreakerState.OPEN for s in h.sender.statistics()))
            committed = await h.commit(2)
            assert committed.handed == []
            await asyncio.sleep(0.2)
            assert h.row(committed.ids[0]).state is DeliveryState.PENDING
            assert len(h.receiver.requests) == 1

"""One endpoint's trouble stays its own: breaker verdicts, fair claiming, hostile answers.

The sender tests run the real :class:`cdc.delivery.Sender` on a real SQLite outbox with
real HTTP servers on loopback (no MariaDB: the sender only sees the outbox). The
pipeline tests run the whole service on the private MariaDB, as VICIdial writes leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from support.harness import StartPipeline, fast_config
from support.waiting import wait_until_async

from cdc.breaker import BreakerState
from cdc.config import DeliveryConfig, EndpointLimits, RetryPolicy
from cdc.delivery import SKIP_AUTO_HEADERS, Sender
from cdc.metrics import Metrics
from cdc.records import Delivery, UrlSource
from cdc.server import bound_port
from cdc.store import AsyncStore, DeliveryState, SqliteStore
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial

WAIT_S = 30.0


def _delivery(lead_id: int, endpoint_id: str, base_url: str) -> Delivery:
    return Delivery(
        source="test",
        lead_id=lead_id,
        list_id=101,
        endpoint_id=endpoint_id,
        method="GET",
        url=f"{base_url}/{endpoint_id}?lead_id={lead_id}",
        url_source=UrlSource.CONFIG_SYSTEM,
        inserted_at=int(time.time()),
    )


@dataclasses.dataclass
class RunningSender:
    store: AsyncStore
    sender: Sender
    metrics: Metrics

    async def enqueue(self, *deliveries: Delivery) -> None:
        await self.store.commit_batch(list(deliveries), None, time.time())
        self.sender.notify()

    path: Path

    async def rows(self) -> dict[int, Row]:
        """Every row by lead id, read by a second connection (the operator's view)."""

        def read() -> dict[int, Row]:
            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                return {
                    lead_id: Row(DeliveryState(state), status, error)
                    for lead_id, state, status, error in conn.execute(
                        "SELECT lead_id, state, last_status, last_error FROM delivery"
                    )
                }

        return await asyncio.to_thread(read)


@dataclasses.dataclass(frozen=True)
class Row:
    state: DeliveryState
    last_status: int
    last_error: str


@contextlib.asynccontextmanager
async def running_sender(path: Path, config: DeliveryConfig) -> AsyncIterator[RunningSender]:
    """A sender on a real outbox file, with the service's session settings."""
    store = AsyncStore(SqliteStore(path))
    await store.open()
    session = aiohttp.ClientSession(
        skip_auto_headers=SKIP_AUTO_HEADERS,
        raise_for_status=False,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    metrics = Metrics()
    sender = Sender(session, store, config, metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield RunningSender(store, sender, metrics, path)
    finally:
        stop.set()
        _, late = await asyncio.wait({task}, timeout=5.0)
        for t in late:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if not late:
            task.result()
        await session.close()
        await store.close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A loopback HTTP server answering with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{bound_port(runner, 0)}"
    finally:
        await runner.cleanup()


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class TestBlockedDoesNotPoll:
    """Every endpoint blocked: the claim loop sleeps instead of opening claim transactions."""

    async def test_claims_while_blocked(self, tmp_path: Path) -> None:
        """A 401 probe re-opens the breaker (the old code left it half-open and polled every 5 ms)."""
        auth = Receiver()
        await auth.start()
        auth.respond_with([503, *([401] * 1000)])  # down, then the token has expired
        refused = Receiver()
        await refused.start()
        refused_url = refused.url
        await refused.stop()
        config = DeliveryConfig(
            mode="send",
            breaker_failures=1,
            breaker_cooldown_s=0.3,
            breaker_max_cooldown_s=60.0,
            retry=RetryPolicy(base_s=0.05, cap_s=0.1, max_attempts=1000),
            defaults=EndpointLimits(timeout_s=1.0, connect_timeout_s=0.5),
        )
        try:
            async with running_sender(tmp_path / "blocked.db", config) as run:
                await run.enqueue(*(_delivery(i, "auth", auth.url) for i in range(1, 41)))
                await run.enqueue(*(_delivery(i, "down", refused_url) for i in range(41, 81)))
                await auth.wait_for(2, WAIT_S)  # the 503, then the first probe: 401

                def auth_reopened() -> bool:
                    states = {e.endpoint_id: e.circuit for e in run.sender.statistics()}
                    return states.get("auth") is BreakerState.OPEN

                await wait_until_async(auth_reopened, WAIT_S, message="the 401 probe re-opens the breaker")
                before = run.sender.claims
                await asyncio.sleep(2.0)  # a window to count in, not a timing assertion
                claims = run.sender.claims - before
                # Probes at the re-open times (0.6 s, 1.2 s, ... doubling) claim one row each;
                # a loop polling every 5 ms would have claimed hundreds of times.
                assert claims <= 12, claims
                rows = await run.rows()
                assert sum(r.state is DeliveryState.PENDING for r in rows.values()) >= 60
        finally:
            await auth.stop()


class TestFairClaiming:
    """A throttled endpoint's backlog does not hold the slots of another endpoint's new leads."""

    async def test_healthy_leads_pass_a_throttled_backlog(self, tmp_path: Path) -> None:
        """2,000 pending at 5/s on one endpoint; 40 new leads for another all arrive meanwhile."""
        slow, healthy = Receiver(), Receiver()
        await slow.start()
        await healthy.start()
        config = DeliveryConfig(mode="send", endpoints={"slow": EndpointLimits(rate_per_s=5.0, burst=5)})
        try:
            async with running_sender(tmp_path / "fair.db", config) as run:
                await run.enqueue(*(_delivery(i, "slow", slow.url) for i in range(1, 2001)))
                await slow.wait_for(1, WAIT_S)
                most_claimed = 0
                for lead_id in range(10_001, 10_041):
                    await run.enqueue(_delivery(lead_id, "healthy", healthy.url))
                    for e in run.sender.statistics():
                        if e.endpoint_id == "slow":
                            most_claimed = max(most_claimed, e.claimed)
                await healthy.wait_for(40, WAIT_S)
                slow_sent = len(slow.requests)
                rows = await run.rows()
        finally:
            await slow.stop()
            await healthy.stop()
        arrived = sorted(int(r.target.rpartition("=")[2]) for r in healthy.requests)
        assert arrived == list(range(10_001, 10_041))
        assert slow_sent < 200  # the backlog is still mostly pending
        waiting = [r for lead, r in rows.items() if lead <= 2000 and r.state is not DeliveryState.DELIVERED]
        assert len(waiting) >= 1800
        # The throttled endpoint held no more rows than its bucket releases within the horizon.
        assert most_claimed <= 5 + 5


class TestHostileAnswers:
    """Redirects are not success; a malformed Retry-After cannot turn a 200 into a dead letter."""

    async def test_redirect_is_dead_with_its_reason(self, tmp_path: Path) -> None:
        """A 302 is not followed and not delivered: dead, reason without query, counted as 3xx."""
        seen: list[str] = []

        async def moved(request: web.Request) -> web.StreamResponse:
            seen.append(request.raw_path)
            raise web.HTTPFound("https://crm.example/api/new?token=s3cret&phone=3125550100")

        config = DeliveryConfig(mode="send")
        async with serving(moved) as url, running_sender(tmp_path / "redirect.db", config) as run:
            await run.enqueue(_delivery(1, "crm", url))
            rows = await wait_until_async(
                lambda: _dead(run), WAIT_S, message="the redirected delivery goes dead"
            )
            assert len(seen) == 1  # not followed, not retried (dead_on_4xx)
            assert rows[1].last_status == 302
            assert rows[1].last_error == "redirect to https://crm.example/api/new"
            assert _sample(run.metrics, "vicidial_cdc_requests_total", endpoint="crm", status_class="3xx",
                           sender="cdc") == 1.0  # fmt: skip
            assert _sample(run.metrics, "vicidial_cdc_deliveries_total", endpoint="crm", outcome="dead",
                           sender="cdc") == 1.0  # fmt: skip

    async def test_malformed_retry_after(self, tmp_path: Path) -> None:
        """200 with Retry-After '²' is delivered; 429 with it is retried without a pause."""
        answers = {"ok": 200, "busy": 429}
        busy_calls: list[float] = []

        async def hostile(request: web.Request) -> web.StreamResponse:
            name = request.path.strip("/")
            if name == "busy":
                busy_calls.append(time.time())
                if len(busy_calls) > 1:
                    return web.Response(text="OK")
            return web.Response(status=answers[name], headers={"Retry-After": "\u00b2"}, text="x")

        config = DeliveryConfig(mode="send", retry=RetryPolicy(base_s=0.05, cap_s=0.1))
        async with serving(hostile) as url, running_sender(tmp_path / "ra.db", config) as run:
            await run.enqueue(_delivery(1, "ok", url), _delivery(2, "busy", url))

            async def both_delivered() -> bool:
                rows = await run.rows()
                return all(rows[i].state is DeliveryState.DELIVERED for i in (1, 2))

            await wait_until_async(both_delivered, WAIT_S, message="both delivered")
            assert len(busy_calls) == 2


async def _dead(run: RunningSender) -> dict[int, Row] | None:
    rows = await run.rows()
    return rows if rows and all(r.state is DeliveryState.DEAD for r in rows.values()) else None


@pytest.mark.mariadb
class TestPipeline:
    """The whole service: a token that expires during an outage; cookies never go back."""

    async def test_expired_token_then_dlq_retry(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """Outage, then 401 to the probe, then the operator fixes the token and retries: all sent."""
        crm = Receiver()
        await crm.start()
        port = crm.port
        await crm.stop()  # the outage
        vicidial.add_list(401, "crm", "C", "")
        vicidial.set_list_url(401, f"http://127.0.0.1:{port}/crm?id=--A--lead_id--B--")
        state = tmp_path / "token.db"
        run = await start_pipeline(mariadb, vicidial_db, config=fast_config(mariadb, vicidial_db, state))
        assert run.service.sender is not None and run.service.store is not None
        sender, store = run.service.sender, run.service.store
        leads = [
            await asyncio.to_thread(vicidial.add_lead, phone_number=f"31255501{i:02d}", list_id=401)
            for i in range(6)
        ]
        endpoint = f"127.0.0.1:{port}"

        def circuit() -> BreakerState | None:
            return {e.endpoint_id: e.circuit for e in sender.statistics()}.get(endpoint)

        await wait_until_async(lambda: circuit() is BreakerState.OPEN, WAIT_S, message="breaker opens")
        crm = Receiver(port=port)
        crm.respond_with([401] * 1000)  # back, but the token expired meanwhile
        await crm.start()
        try:

            async def some_dead() -> bool:
                return any(c.dead for c in await store.counts())

            await wait_until_async(some_dead, WAIT_S, message="the 401 probe is a dead letter")
            crm.statuses.clear()  # the operator fixes the token
            # The 401 re-opened the breaker (the old code left it half-open for good).
            await wait_until_async(
                lambda: circuit() is not BreakerState.HALF_OPEN, WAIT_S, message="the probe's verdict"
            )
            fixed_at = time.time()
            operator = SqliteStore(state)  # `vicidial-cdc dlq retry --all`, another connection
            operator.open()
            try:
                assert operator.retry_dead(time.time(), older_than=time.time() + 1) >= 1
            finally:
                operator.close()

            async def all_delivered() -> bool:
                return sum(c.delivered for c in await store.counts()) == len(leads)

            await wait_until_async(all_delivered, WAIT_S, message="every lead delivered after the fix")
            after_fix = {r.target for r in crm.requests if r.received_at >= fixed_at}
            assert {f"/crm?id={lead}" for lead in leads} <= after_fix
        finally:
            await crm.stop()

    async def test_set_cookie_is_never_sent_back(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """A receiver's Set-Cookie does not come back on the next request (no cookie jar)."""
        cookies: list[str | None] = []

        async def sets_cookie(request: web.Request) -> web.StreamResponse:
            cookies.append(request.headers.get("Cookie"))
            response = web.Response(text="OK")
            response.set_cookie("session", "abc123", path="/")
            return response

        async with serving(sets_cookie) as url:
            # A host name: aiohttp's default jar refuses cookies for IP addresses.
            named = url.replace("127.0.0.1", "localhost")
            vicidial.add_list(501, "cookie", "C", "")
            vicidial.set_list_url(501, f"{named}/c?id=--A--lead_id--B--")
            cfg = fast_config(mariadb, vicidial_db, tmp_path / "cookie.db")
            await start_pipeline(mariadb, vicidial_db, config=cfg)
            for i in range(3):
                await asyncio.to_thread(vicidial.add_lead, phone_number=f"31255502{i:02d}", list_id=501)
                await wait_until_async(lambda n=i: len(cookies) > n, WAIT_S, message="request arrives")
        assert cookies == [None, None, None]

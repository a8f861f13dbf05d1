"""The sender: takes due deliveries from the outbox and sends them.

One ``aiohttp.ClientSession`` per process (the service owns it). Each endpoint, keyed
by origin (scheme://host:port), has its own concurrency cap (a semaphore) and token
bucket, so a slow CRM only slows its own requests. URLs go out as
``yarl.URL(url, encoded=True)``: the bytes we rendered are the bytes sent. What happens
after an attempt is decided by the pure functions in :mod:`cdc.retry`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import yarl

from .config import DeliveryConfig, EndpointLimits
from .metrics import Metrics, status_class
from .outbox import StoredDelivery
from .records import Attempt, Outcome
from .retry import RetryPolicy, classify, next_delay, parse_retry_after

log = logging.getLogger(__name__)

#: Headers aiohttp would add that VICIdial's PHP request does not carry.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding")


class Outbox(Protocol):
    """The async face of the state store that the sender uses."""

    async def claim_due(self, now: float, limit: int) -> Sequence[StoredDelivery]: ...
    async def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int: ...
    async def next_due_at(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    origin: str
    label: str
    in_flight: int
    waiting: int
    tokens: float


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("_burst", "_clock", "_rate", "_tokens", "_updated")

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def delay_for_one(self) -> float:
        """Take a token; return how long to wait before using it (0 when one was there)."""
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens


class _Endpoint:
    __slots__ = ("bucket", "label", "limits", "origin", "semaphore", "timeout", "waiting")

    def __init__(self, origin: str, label: str, limits: EndpointLimits) -> None:
        self.origin = origin
        self.label = label
        self.limits = limits
        self.semaphore = asyncio.Semaphore(limits.concurrency)
        self.bucket = TokenBucket(limits.rate_per_s, limits.burst)
        self.timeout = aiohttp.ClientTimeout(total=limits.timeout_s, sock_connect=limits.connect_timeout_s)
        self.waiting = 0


def origin_of(url: str) -> tuple[str, str]:
    """(``scheme://host:port``, ``host:port``) of a URL; the label never holds a path."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    host_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{host_port}", host_port


class Sender:
    """Sends due deliveries concurrently and records each attempt in the outbox."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        outbox: Outbox,
        config: DeliveryConfig,
        metrics: Metrics,
        policy: RetryPolicy | None = None,
        *,
        rng: random.Random | None = None,
        flush_interval_s: float = 0.02,
    ) -> None:
        self._session = session
        self._outbox = outbox
        self._config = config
        self._metrics = metrics
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._flush_interval_s = flush_interval_s
        self._endpoints: dict[str, _Endpoint] = {}
        self._wake = asyncio.Event()
        self._results: list[tuple[Attempt, float | None]] = []
        self._results_ready = asyncio.Event()
        self._in_flight = 0
        self._sent = 0

    def notify(self) -> None:
        """New deliveries are due: look at the outbox now instead of at the next tick."""
        self._wake.set()

    def statistics(self) -> list[EndpointStatistics]:
        return [
            EndpointStatistics(
                e.origin, e.label, e.limits.concurrency - e.semaphore._value, e.waiting, e.bucket.tokens
            )
            for e in self._endpoints.values()
        ]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def sent(self) -> int:
        return self._sent

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop`` is set, then let requests in flight finish."""
        flusher_stop = asyncio.Event()
        async with asyncio.TaskGroup() as flush_group:
            flush_group.create_task(self._flush_results(flusher_stop))
            try:
                async with asyncio.TaskGroup() as tg:
                    await self._claim_loop(tg, stop)
            finally:
                flusher_stop.set()
                self._results_ready.set()

    async def _claim_loop(self, tg: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            capacity = self._config.concurrency - self._in_flight
            claimed: Sequence[StoredDelivery] = ()
            if capacity > 0:
                claimed = await self._outbox.claim_due(time.time(), capacity)
                for item in claimed:
                    self._in_flight += 1
                    tg.create_task(self._deliver(item))
            if claimed and len(claimed) == capacity:
                await self._wait(stop, 1.0)  # full: a finishing request wakes us
                continue
            if claimed:
                continue
            due = await self._outbox.next_due_at()
            wait_s = 1.0 if due is None else min(1.0, max(0.0, due - time.time()))
            if wait_s > 0:
                await self._wait(stop, wait_s)

    async def _wait(self, stop: asyncio.Event, timeout_s: float) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _endpoint(self, url: str) -> _Endpoint:
        origin, host_port = origin_of(url)
        ep = self._endpoints.get(origin)
        if ep is None:
            limits = self._config.limits_for(origin, host_port)
            ep = self._endpoints[origin] = _Endpoint(origin, host_port, limits)
        return ep

    async def _deliver(self, item: StoredDelivery) -> None:
        try:
            ep = self._endpoint(item.delivery.url)
            ep.waiting += 1
            try:
                await ep.semaphore.acquire()
            finally:
                ep.waiting -= 1
            try:
                delay = ep.bucket.delay_for_one()
                if delay > 0:
                    self._metrics.rate_limited.labels(ep.label).inc()
                    await asyncio.sleep(delay)
                attempt, retry_after = await self._send_once(item, ep)
            finally:
                ep.semaphore.release()
            self._record(item, ep, attempt, retry_after)
        finally:
            self._in_flight -= 1
            self._wake.set()

    async def _send_once(self, item: StoredDelivery, ep: _Endpoint) -> tuple[Attempt, float | None]:
        d = item.delivery
        headers = {"Content-Type": d.content_type} if d.content_type else {}
        started = time.monotonic()
        status: int | None = None
        error: BaseException | None = None
        retry_after: float | None = None
        try:
            async with self._session.request(
                d.method,
                yarl.URL(d.url, encoded=True),
                data=d.body or None,
                headers=headers,
                timeout=ep.timeout,
                allow_redirects=False,
                ssl=self._config.verify_tls,
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                await response.content.read(self._config.max_response_bytes)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = exc
        duration = time.monotonic() - started
        outcome = classify(status, error, self._policy)
        if isinstance(error, aiohttp.InvalidURL) or type(error) is ValueError:
            outcome = Outcome.DEAD  # the URL itself is broken: no retry will fix it
        attempt = Attempt(
            delivery_id=item.id,
            outcome=outcome,
            status=status or 0,
            error=_error_class(error),
            duration_s=duration,
        )
        return attempt, retry_after

    def _record(
        self, item: StoredDelivery, ep: _Endpoint, attempt: Attempt, retry_after: float | None
    ) -> None:
        now = time.time()
        next_at: float | None = None
        outcome = attempt.outcome
        if outcome is Outcome.RETRY:
            delay = next_delay(
                item.attempts + 1, retry_after, self._policy, self._rng, age_s=now - item.created_at
            )
            if delay is None:
                outcome = Outcome.DEAD
                attempt = Attempt(
                    attempt.delivery_id, Outcome.DEAD, attempt.status, attempt.error, attempt.duration_s
                )
            else:
                next_at = now + delay
        m = self._metrics
        m.requests.labels(ep.label, status_class(attempt.status)).inc()
        m.deliveries.labels(ep.label, outcome.value).inc()
        if attempt.status:
            m.request_duration.labels(ep.label).observe(attempt.duration_s)
        if outcome is Outcome.DELIVERED:
            self._sent += 1
            m.end_to_end.labels(ep.label).observe(max(0.0, now - item.delivery.inserted_at))
            log.debug(
                "delivery.sent delivery_id=%d lead_id=%d endpoint=%s status=%d duration_s=%.3f",
                item.id,
                item.delivery.lead_id,
                ep.label,
                attempt.status,
                attempt.duration_s,
            )
        else:
            log.info(
                "delivery.failed delivery_id=%d lead_id=%d endpoint=%s attempt=%d"
                " status=%d error=%s outcome=%s",
                item.id,
                item.delivery.lead_id,
                ep.label,
                item.attempts + 1,
                attempt.status,
                attempt.error,
                outcome.value,
            )
        self._results.append((attempt, next_at))
        self._results_ready.set()

    async def _flush_results(self, stop: asyncio.Event) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if not stop.is_set():
                await asyncio.sleep(self._flush_interval_s)  # gather a batch
            results, self._results = self._results, []
            if results:
                await self._outbox.record_attempts(results, time.time())
            if stop.is_set() and not self._results:
                return


def _error_class(error: BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "tls"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "disconnected"
    if isinstance(error, aiohttp.InvalidURL):
        return "invalid_url"
    if isinstance(error, aiohttp.ClientError):
        return "http"
    return type(error).__name__.lower()

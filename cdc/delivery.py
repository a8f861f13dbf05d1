"""The sender: takes due deliveries from the outbox and sends them.

One ``aiohttp.ClientSession`` per process (the service owns it). Each endpoint (the
outbox's ``endpoint_id``: a configured name, or ``host:port`` for VICIdial's URLs) has
its own concurrency cap, token bucket, circuit breaker and ``Retry-After`` pause, so a
slow or dead CRM only holds back its own deliveries, which wait in the outbox. URLs go
out as ``yarl.URL(url, encoded=True)``: the bytes we rendered are the bytes sent. What
happens after an attempt is decided by the pure functions in :mod:`cdc.retry`.

Fair claiming: the claim loop asks the outbox for at most what each endpoint can send
soon (:func:`cdc.ratelimit.claim_allowance`: its free concurrency, the tokens its bucket releases
within :data:`cdc.ratelimit.CLAIM_HORIZON_S`, one probe when half-open, none when open or paused), so
a throttled endpoint's backlog stays in the outbox instead of holding the slots another
endpoint's new leads need. When nothing can be claimed the loop sleeps until the
earliest moment something can be due (a row's due time, a cool-down or ``Retry-After``
end, a token) or until it is notified (new rows, a finished request, a probe's verdict).

Direct hand-off (the steady path): the service commits each pipeline step through
:meth:`Sender.commit`, which inserts the new rows this sender can start now already in
flight (:meth:`~cdc.store.interfaces.Outbox.commit_hand_off`: the same caps and turns as
a claim, and never ahead of an endpoint's older due rows) and starts them. A lead that
arrives while its endpoint has room therefore costs no claim transaction, and the
attempts waiting to be recorded ride in the same commit. While a commit is out the claim
loop does not claim, so no cap is spent twice; rows it leaves pending go through the
claim loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import yarl

from .breaker import BreakerState, CircuitBreaker
from .config import DeliveryConfig, EndpointLimits
from .metrics import Metrics, status_class
from .ratelimit import Gate, TokenBucket, claim_allowance, fresh_allowance
from .records import Attempt, Delivery, Outcome, Position
from .resolve import origin_of, origin_refusal
from .retry import classify, next_delay, parse_retry_after, redirect_reason, verdict
from .signing import webhook_headers
from .store import AsyncOutbox, Committed, HandOff, StoredDelivery, cap_of

log = logging.getLogger(__name__)

#: The ``sender`` label of our own requests (VICIdial's own are ``vicidial``).
SENDER = "cdc"
#: Headers aiohttp would add that VICIdial's PHP request does not carry.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding")
#: Longest sleep of the claim loop without a notification: rows another process makes
#: due (``dlq retry``, ``replay``) are seen within this long.
IDLE_POLL_S = 1.0


def client_session(max_in_flight: int) -> aiohttp.ClientSession:
    """The one HTTP client session of a process, set up as the sender needs it.

    No auto headers VICIdial's request lacks, no decompression, statuses left to
    :mod:`cdc.retry`, and no cookie jar: a receiver's Set-Cookie is never sent back (to
    it or to another endpoint) and cannot grow the process without bound.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_in_flight, limit_per_host=0),
        skip_auto_headers=SKIP_AUTO_HEADERS,
        raise_for_status=False,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    endpoint_id: str
    in_flight: int
    waiting: int
    tokens: float
    circuit: BreakerState
    paused_until: float
    opened_at: float | None
    #: Rows claimed and not finished (waiting for a slot or a token, or in flight).
    claimed: int = 0
    #: When it may take requests again (breaker open or Retry-After), None when it may now.
    blocked_until: float | None = None


class _Endpoint:
    __slots__ = (
        "breaker",
        "bucket",
        "claimed",
        "endpoint_id",
        "in_flight",
        "limits",
        "paused_until",
        "semaphore",
        "timeout",
        "waiting",
        "wake_at_claimed",
    )

    def __init__(self, endpoint_id: str, limits: EndpointLimits, breaker: CircuitBreaker) -> None:
        self.endpoint_id = endpoint_id
        self.limits = limits
        self.semaphore = asyncio.Semaphore(limits.concurrency)
        self.bucket = TokenBucket(limits.rate_per_s, limits.burst)
        self.timeout = aiohttp.ClientTimeout(total=limits.timeout_s, sock_connect=limits.connect_timeout_s)
        self.breaker = breaker
        self.paused_until = 0.0  # wall clock; Retry-After
        self.waiting = 0
        self.in_flight = 0
        self.claimed = 0
        #: A full endpoint wakes the claim loop when its claimed rows fall to this: a
        #: quarter of its slots per claim, not one claim transaction per finished request.
        self.wake_at_claimed = limits.concurrency - max(1, limits.concurrency // 4)

    def gate(self, now: float) -> Gate:
        return Gate(
            concurrency=self.limits.concurrency,
            claimed=self.claimed,
            tokens=self.bucket.tokens,
            rate_per_s=self.limits.rate_per_s,
            paused_until=self.paused_until,
            circuit=self.breaker.state(now),
            probing=self.breaker.is_probing(),
            reopen_at=self.breaker.unblocks_at(),
        )

    def blocked_until(self, now: float) -> float | None:
        """When this endpoint may take new requests again, or None when it may now."""
        until = self.paused_until if self.paused_until > now else 0.0
        if self.breaker.is_blocked(now):
            until = max(until, self.breaker.unblocks_at() or now)
        return until or None


class Sender:
    """Sends due deliveries concurrently and records each attempt in the outbox."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        outbox: AsyncOutbox,
        config: DeliveryConfig,
        metrics: Metrics,
        *,
        rng: random.Random | None = None,
        flush_interval_s: float = 0.1,
        clock: Callable[[], float] = time.time,
        on_attempt: Callable[[StoredDelivery, Attempt], None] | None = None,
    ) -> None:
        """``on_attempt`` sees every recorded attempt with its final outcome (the status page).

        ``flush_interval_s``: how long a finished attempt may wait for the pipeline's next
        commit to record it before the sender records it in a transaction of its own.
        """
        self._session = session
        self._on_attempt = on_attempt
        self._outbox = outbox
        self._config = config
        self._metrics = metrics
        self._policy = config.retry
        self._rng = rng or random.Random()
        self._flush_interval_s = flush_interval_s
        self._clock = clock
        self._endpoints: dict[str, _Endpoint] = {}
        self._wake = asyncio.Event()
        self._rows_added = False
        self._claims = 0
        self._results: list[tuple[Attempt, float | None]] = []
        self._results_ready = asyncio.Event()
        #: The sender's own TaskGroup while it runs: handed rows start in it.
        self._tasks: asyncio.TaskGroup | None = None
        #: The claim loop is between planning its caps and starting what it claimed.
        self._claiming = False
        #: The hand-off a commit holds (between offer and take): the claim loop waits.
        self._offer: HandOff | None = None
        #: The claim loop waits for a commit's hand-off to end: _take wakes it.
        self._waiting_for_offer = False
        #: The claim loop waits for room (sender full): finishing requests wake it.
        self._waiting_for_room = False
        self._in_flight = 0
        #: A full sender claims again once this few are in flight: a quarter of the
        #: slots per claim instead of one claim (a SQLite transaction) per finished request.
        self._refill_at = config.max_in_flight - max(1, config.max_in_flight // 4)
        self._sent = 0
        #: Caps of endpoints not seen yet (no row claimed): what a fresh endpoint with
        #: its configured limits may claim; "scheme://host:port" overrides by "host:port".
        self._fresh_caps = {
            key.partition("://")[2] or key: fresh_allowance(limits)
            for key, limits in config.endpoints.items()
        }
        self._default_cap = fresh_allowance(config.defaults)
        self._started_handoff = metrics.deliveries_started.labels("handoff")
        self._started_claim = metrics.deliveries_started.labels("claim")

    def notify(self) -> None:
        """New deliveries are due: look at the outbox now instead of at the next tick."""
        self._rows_added = True
        self._wake.set()

    def statistics(self) -> list[EndpointStatistics]:
        now = self._clock()
        return [
            EndpointStatistics(
                endpoint_id=e.endpoint_id,
                in_flight=e.in_flight,
                waiting=e.waiting,
                tokens=e.bucket.tokens,
                circuit=e.breaker.state(now),
                paused_until=e.paused_until,
                opened_at=e.breaker.statistics(now).opened_at,
                claimed=e.claimed,
                blocked_until=e.blocked_until(now),
            )
            for e in self._endpoints.values()
        ]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def sent(self) -> int:
        return self._sent

    async def commit(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> Committed:
        """Commit a pipeline step through the outbox and start the rows it hands over.

        One store call: the deliveries and the checkpoint, the new rows this sender can
        start now inserted in flight (:meth:`~cdc.store.interfaces.Outbox.commit_hand_off`),
        and the attempts not recorded yet. Rows it leaves pending wake the claim loop
        when it may take them now.
        """
        offer = self._offer_now() if deliveries else None
        results = self._take_results()
        committed = None
        try:
            committed = await self._outbox.commit_hand_off(deliveries, checkpoint, now, offer, results)
        finally:
            self._take(offer, committed, results)
        return committed

    def _offer_now(self) -> HandOff | None:
        """What the commit may hand straight to this sender, or None (nothing now).

        Until :meth:`_take` the claim loop does not claim, so no cap is spent twice.
        """
        if self._tasks is None or self._claiming or self._offer is not None:
            return None
        capacity = self._config.max_in_flight - self._in_flight
        if capacity <= 0:
            return None
        caps, _ = self._plan(self._clock())
        self._offer = HandOff(capacity, caps, self._default_cap)
        return self._offer

    def _take_results(self) -> list[tuple[Attempt, float | None]]:
        """The attempts not recorded yet, for a commit to record."""
        results, self._results = self._results, []
        return results

    def _take(
        self,
        offer: HandOff | None,
        committed: Committed | None,
        results: list[tuple[Attempt, float | None]],
    ) -> None:
        """Start the rows a commit handed over; let the claim loop take those it left.

        ``committed`` is None when the commit failed: nothing was handed, and ``results``
        go back to be recorded by the flusher.
        """
        if offer is not None and offer is self._offer:
            self._offer = None
            if self._waiting_for_offer:
                self._wake.set()
        if committed is None:
            if results:
                self._results[:0] = results
                self._results_ready.set()
            return
        if any(next_at is not None for _, next_at in results):
            self._wake.set()  # a retry is due soon: the claim loop may be asleep for IDLE_POLL_S
        if committed.handed:
            tasks = self._tasks
            if tasks is None:
                # Stopping: the rows stay in flight and are sent again after the restart.
                log.warning("delivery.handoff_unstarted count=%d", len(committed.handed))
            else:
                self._started_handoff.inc(len(committed.handed))
                for item in committed.handed:
                    self._dispatch(tasks, item)
        pending = committed.pending_endpoints
        if pending and (offer is None or any(cap_of(offer, e) > 0 for e in pending)):
            self.notify()  # rows it may claim now
        elif pending:
            self._wake.set()  # none it may claim now: it plans when to look again (no claim)

    @property
    def claims(self) -> int:
        """Claim transactions (``claim_due`` calls, each one ``BEGIN IMMEDIATE``) since start."""
        return self._claims

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop`` is set, then let requests in flight finish."""
        flusher_stop = asyncio.Event()
        async with asyncio.TaskGroup() as flush_group:
            flush_group.create_task(self._flush_results(flusher_stop))
            try:
                async with asyncio.TaskGroup() as tg:
                    self._tasks = tg
                    try:
                        await self._claim_loop(tg, stop)
                    finally:
                        self._tasks = None  # no hand-off once stopping
            finally:
                flusher_stop.set()
                self._results_ready.set()

    async def _claim_loop(self, tg: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        # Read before claiming unless rows were just added or the last claim was full:
        # a claim is a write transaction, the read is not.
        check_first = True
        while not stop.is_set():
            self._wake.clear()
            if self._offer is not None:
                # A commit is handing rows over: _take wakes us when it is done.
                self._waiting_for_offer = True
                try:
                    await self._wait(stop, IDLE_POLL_S)
                finally:
                    self._waiting_for_offer = False
                continue
            capacity = self._config.max_in_flight - self._in_flight
            if capacity <= 0:
                await self._wait_for_room(stop)
                check_first = False
                continue
            rows_added, self._rows_added = self._rows_added, False
            now = self._clock()
            caps, recheck_at = self._plan(now)
            if check_first and not rows_added:
                excluded = [endpoint_id for endpoint_id, cap in caps.items() if cap <= 0]
                due_at = await self._outbox.next_due_at(excluded)
                if due_at is None or due_at > now:
                    await self._sleep_until(stop, _earliest(due_at, recheck_at))
                    continue
                if self._offer is not None:
                    continue  # a commit is taking rows meanwhile: plan again once it is done
                # Rows a commit handed over during the read hold slots now: plan again.
                now = self._clock()
                caps, recheck_at = self._plan(now)
                capacity = self._config.max_in_flight - self._in_flight
                if capacity <= 0:
                    continue
            # From the plan to the dispatch no commit hands rows over (see _offer_now).
            self._claiming = True
            try:
                self._claims += 1
                self._metrics.outbox_claims.inc()
                claimed = await self._outbox.claim_due(
                    now, capacity, caps=caps, default_cap=self._default_cap
                )
                self._started_claim.inc(len(claimed))
                for item in claimed:
                    self._dispatch(tg, item)
            finally:
                self._claiming = False
            check_first = len(claimed) < capacity
            if not check_first:
                await self._wait_for_room(stop)

    def _plan(self, now: float) -> tuple[dict[str, int], float | None]:
        """Each known endpoint's claim cap now, and the earliest time a zero cap can grow."""
        caps = dict(self._fresh_caps)
        recheck_at: float | None = None
        for ep in self._endpoints.values():
            allowance = claim_allowance(ep.gate(now), now)
            caps[ep.endpoint_id] = allowance.count
            if allowance.count == 0 and allowance.recheck_at is not None:
                recheck_at = _earliest(recheck_at, allowance.recheck_at)
        return caps, recheck_at

    def _dispatch(self, tg: asyncio.TaskGroup, item: StoredDelivery) -> None:
        """Start one claimed row: it holds a slot of its endpoint and books its token now."""
        ep = self._endpoint(item)
        ep.claimed += 1
        self._in_flight += 1
        ready_at = time.monotonic() + ep.bucket.delay_for_one()
        tg.create_task(self._deliver(item, ep, ready_at))

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        """Full: wait until finishing requests bring the sender down to ``_refill_at``."""
        self._waiting_for_room = True
        try:
            await self._wait(stop, IDLE_POLL_S)
        finally:
            self._waiting_for_room = False

    async def _sleep_until(self, stop: asyncio.Event, wake_at: float | None) -> None:
        """Sleep until ``wake_at`` (at most :data:`IDLE_POLL_S`) or a notification."""
        wait_s = IDLE_POLL_S if wake_at is None else min(IDLE_POLL_S, wake_at - self._clock())
        await self._wait(stop, max(wait_s, 0.005))

    async def _wait(self, stop: asyncio.Event, timeout_s: float) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _endpoint(self, item: StoredDelivery) -> _Endpoint:
        endpoint_id = item.delivery.endpoint_id
        ep = self._endpoints.get(endpoint_id)
        if ep is None:
            origin, _ = origin_of(item.delivery.url)
            cfg = self._config
            ep = _Endpoint(
                endpoint_id,
                cfg.limits_for(endpoint_id, origin),
                CircuitBreaker(cfg.breaker_failures, cfg.breaker_cooldown_s, cfg.breaker_max_cooldown_s),
            )
            self._endpoints[endpoint_id] = ep
            # Series exist from the start, so rate() and the alerts see the first failure.
            m = self._metrics
            for outcome in Outcome:
                m.deliveries.labels(endpoint_id, outcome.value, SENDER)
            for klass in ("2xx", "3xx", "4xx", "5xx", "error"):
                m.requests.labels(endpoint_id, klass, SENDER)
            m.rate_limited.labels(endpoint_id)
        return ep

    async def _deliver(self, item: StoredDelivery, ep: _Endpoint, ready_at: float) -> None:
        try:
            ep.waiting += 1
            try:
                await ep.semaphore.acquire()
            finally:
                ep.waiting -= 1
            try:
                delay = ready_at - time.monotonic()
                if delay > 0:
                    self._metrics.rate_limited.labels(ep.endpoint_id).inc()
                    await asyncio.sleep(delay)
                now = self._clock()
                until = ep.blocked_until(now)
                if until is not None or not ep.breaker.allow(now):
                    # Paused or breaker open since this row was claimed: hand it back unsent.
                    ep.bucket.give_back()
                    await self._outbox.release([item.id], until or now + 1.0, now)
                    return
                ep.in_flight += 1
                try:
                    attempt, retry_after, broken = await self._send_once(item, ep)
                finally:
                    ep.in_flight -= 1
            finally:
                ep.semaphore.release()
            self._record(item, ep, attempt, retry_after, broken)
        finally:
            self._in_flight -= 1
            ep.claimed -= 1
            # Only when it can claim more now: not once per finished request.
            if (
                (self._waiting_for_room and self._in_flight <= self._refill_at)
                or ep.claimed == ep.wake_at_claimed
                or ep.breaker.state(self._clock()) is not BreakerState.CLOSED
            ):
                self._wake.set()

    def _headers(self, item: StoredDelivery) -> dict[str, str]:
        """The request's headers, built per attempt just before it is sent."""
        d = item.delivery
        extra = self._config.endpoint_headers.get(d.endpoint_id)
        headers: dict[str, str] = {}
        if extra is not None:  # [endpoints.NAME] headers; reserved names are refused by config
            headers.update((name, value.value) for name, value in extra.headers)
        if d.content_type:
            headers["Content-Type"] = d.content_type
        if self._config.idempotency_headers:
            headers["Idempotency-Key"] = d.idempotency_key
            headers["webhook-id"] = d.idempotency_key
        if extra is not None and extra.signing_secrets:
            # Standard Webhooks: a fresh timestamp each attempt over the stored body bytes.
            secrets = [secret.value for secret in extra.signing_secrets]
            headers.update(webhook_headers(secrets, d.idempotency_key, int(self._clock()), d.body))
        return headers

    def _refused(self, item: StoredDelivery) -> Attempt | None:
        """A dead attempt, unsent, when the URL is outside the endpoint's allowed origins.

        Routing already stores such deliveries dead; this is the check again right before
        the secrets are attached (rows stored before allowed_origins narrowed, ``dlq retry``).
        """
        d = item.delivery
        extra = self._config.endpoint_headers.get(d.endpoint_id)
        reason = origin_refusal(d.url, extra.allowed_origins) if extra is not None else None
        if reason is None:
            return None
        self._metrics.child(self._metrics.secret_origin_refused, d.endpoint_id).inc()
        log.warning(
            "delivery.origin_refused delivery_id=%d endpoint=%s list_id=%d lead_id=%d reason=%s:"
            " not sent; add the origin to [endpoints.%s] allowed_origins if it is yours",
            item.id,
            d.endpoint_id,
            d.list_id,
            d.lead_id,
            reason,
            d.endpoint_id,
        )
        return Attempt(delivery_id=item.id, outcome=Outcome.DEAD, status=0, error=reason, duration_s=0.0)

    async def _send_once(self, item: StoredDelivery, ep: _Endpoint) -> tuple[Attempt, float | None, bool]:
        """One request: its attempt, its ``Retry-After`` (seconds) and whether the request
        itself was broken (an invalid URL, an origin refused: no endpoint was asked)."""
        refused = self._refused(item)
        if refused is not None:
            return refused, None, True
        d = item.delivery
        started = time.monotonic()
        status: int | None = None
        error: BaseException | None = None
        retry_after: float | None = None
        location: str | None = None
        try:
            async with self._session.request(
                d.method,
                yarl.URL(d.url, encoded=True),
                data=d.body or None,
                headers=self._headers(item),
                timeout=ep.timeout,
                allow_redirects=False,
                ssl=self._config.verify_tls,
            ) as response:
                status = response.status
                if status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                elif 300 <= status < 400:
                    location = response.headers.get("Location")
                await response.content.read(self._config.max_response_bytes)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = exc
        duration = time.monotonic() - started
        outcome = classify(status, error, self._policy)
        broken = isinstance(error, aiohttp.InvalidURL) or type(error) is ValueError
        if broken:
            outcome = Outcome.DEAD  # the URL itself is broken: no retry will fix it
        reason = _error_class(error, status)
        if error is None and status is not None and 300 <= status < 400:
            reason = redirect_reason(location, d.url)
        attempt = Attempt(
            delivery_id=item.id,
            outcome=outcome,
            status=status or 0,
            error=reason,
            duration_s=duration,
        )
        return attempt, retry_after, broken

    def _record(
        self,
        item: StoredDelivery,
        ep: _Endpoint,
        attempt: Attempt,
        retry_after: float | None,
        broken: bool = False,
    ) -> None:
        now = self._clock()
        next_at: float | None = None
        outcome = attempt.outcome
        paused = attempt.status in (429, 503) and retry_after is not None
        if paused and retry_after is not None:
            # It answered and asked us to wait: pause it, but it is not broken.
            ep.paused_until = max(ep.paused_until, now + min(retry_after, self._policy.cap_s))
        # Every outcome reaches the breaker (delivered, retried or dead), probes included.
        before = ep.breaker.state(now)
        ep.breaker.record(verdict(attempt.status or None, paused=paused, request_broken=broken), now)
        if ep.breaker.state(now) is not before:
            self._wake.set()  # closed (its backlog may go) or re-opened (recheck at its cool-down)
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
        label = ep.endpoint_id
        m.child(m.requests, label, status_class(attempt.status), SENDER).inc()
        m.child(m.deliveries, label, outcome.value, SENDER).inc()
        m.child(m.request_duration, label, SENDER).observe(attempt.duration_s)
        if outcome is Outcome.DELIVERED:
            self._sent += 1
            m.child(m.end_to_end, label).observe(max(0.0, now - item.delivery.inserted_at))
            log.debug(
                "delivery.sent delivery_id=%d lead_id=%d endpoint=%s status=%d duration_s=%.3f",
                item.id,
                item.delivery.lead_id,
                label,
                attempt.status,
                attempt.duration_s,
            )
        else:
            log.info(
                "delivery.failed delivery_id=%d lead_id=%d endpoint=%s attempt=%d status=%d"
                " error=%s outcome=%s",
                item.id,
                item.delivery.lead_id,
                label,
                item.attempts + 1,
                attempt.status,
                attempt.error,
                outcome.value,
            )
        self._results.append((attempt, next_at))
        self._results_ready.set()
        if self._on_attempt is not None:
            self._on_attempt(item, attempt)

    async def _flush_results(self, stop: asyncio.Event) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if not stop.is_set():
                # Gather a batch; the pipeline's next commit usually takes it first.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._flush_interval_s)
            results, self._results = self._results, []
            if results:
                await self._outbox.record_attempts(results, self._clock())
                if any(next_at is not None for _, next_at in results):
                    self._wake.set()  # a retry is due soon: the claim loop may be asleep for IDLE_POLL_S
            if stop.is_set() and not self._results:
                return


def _earliest(*times: float | None) -> float | None:
    """The earliest of the given times, ``None`` when none is given."""
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _error_class(error: BaseException | None, status: int | None) -> str:
    """A short, bounded failure class: never a message that could carry lead data."""
    if error is None:
        return "" if status is not None and status < 400 else f"http_{status}"
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

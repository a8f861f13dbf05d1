"""A circuit breaker per endpoint: stop hammering a receiver that keeps failing.

Closed: requests flow; ``failure_threshold`` consecutive failures open it. Open:
nothing is sent for ``cooldown_s`` (doubling on every re-open, up to
``max_cooldown_s``); the endpoint's deliveries wait in the outbox. Half-open: exactly
one probe is let through; its success closes the breaker, its failure opens it again.
Every attempt reports a :class:`Verdict` (:meth:`CircuitBreaker.record`), whatever its
outcome (delivered, retried or dead), so a probe never leaves the breaker half-open for
good: a NEUTRAL probe (the request could not even be made) hands the probe to the next
request. Pure and clock-injected, so it is unit-tested without time passing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class BreakerState(enum.IntEnum):
    """Numeric so the metric can carry it: 0 closed, 1 half-open, 2 open."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Verdict(enum.StrEnum):
    """What one attempt says about its endpoint (decided by :func:`cdc.retry.verdict`)."""

    HEALTHY = "healthy"  # it answered as a working endpoint: closes, resets the count
    FAILING = "failing"  # no answer, 5xx, 401, a redirect...: counts, re-opens a probe
    NEUTRAL = "neutral"  # says nothing about the endpoint (invalid URL): frees the probe


@dataclass(frozen=True, slots=True)
class BreakerStatistics:
    state: BreakerState
    consecutive_failures: int
    opened_at: float | None
    reopen_at: float | None
    opens: int


class CircuitBreaker:
    __slots__ = (
        "_cooldown_s",
        "_failure_threshold",
        "_failures",
        "_max_cooldown_s",
        "_opened_at",
        "_opens",
        "_probing",
        "_reopen_at",
        "_streak",
    )

    def __init__(
        self, failure_threshold: int = 5, cooldown_s: float = 30.0, max_cooldown_s: float = 600.0
    ) -> None:
        if failure_threshold < 1 or cooldown_s <= 0 or max_cooldown_s < cooldown_s:
            raise ValueError("breaker: failure_threshold >= 1 and 0 < cooldown_s <= max_cooldown_s")
        self._failure_threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._failures = 0
        self._opened_at: float | None = None
        self._reopen_at: float | None = None
        self._probing = False
        self._streak = 0  # consecutive opens without a success in between
        self._opens = 0

    def state(self, now: float) -> BreakerState:
        if self._reopen_at is None:
            return BreakerState.CLOSED
        if now < self._reopen_at:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def is_blocked(self, now: float) -> bool:
        """True when no request may start now (open, or half-open with its probe out)."""
        state = self.state(now)
        return state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._probing)

    def unblocks_at(self) -> float | None:
        return self._reopen_at

    def allow(self, now: float) -> bool:
        """May a request start now? In half-open, only the first caller gets True."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probing:
            return False
        self._probing = True
        return True

    def is_probing(self) -> bool:
        """True while the half-open probe is out (its verdict will unblock the endpoint)."""
        return self._probing

    def record(self, verdict: Verdict, now: float) -> None:
        """Apply one attempt's verdict; every attempt reports one, probes included."""
        if verdict is Verdict.HEALTHY:
            self.record_success()
        elif verdict is Verdict.FAILING:
            self.record_failure(now)
        else:
            self._probing = False  # half-open still: the next request probes

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._reopen_at = None
        self._probing = False
        self._streak = 0

    def record_failure(self, now: float) -> None:
        """A failed request. While open (or half-open with the probe out, when it is not the
        probe), it is the late answer of a request sent before the breaker opened: ignored,
        so a burst of failures does not multiply the cool-down."""
        state = self.state(now)
        if state is not BreakerState.CLOSED:
            if self._probing:
                self._open(now)
            return
        self._failures += 1
        if self._failures >= self._failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        cooldown = min(self._max_cooldown_s, self._cooldown_s * 2**self._streak)
        self._streak += 1
        self._opens += 1
        self._opened_at = self._opened_at if self._opened_at is not None else now
        self._reopen_at = now + cooldown
        self._probing = False
        self._failures = 0

    def statistics(self, now: float) -> BreakerStatistics:
        return BreakerStatistics(
            self.state(now), self._failures, self._opened_at, self._reopen_at, self._opens
        )

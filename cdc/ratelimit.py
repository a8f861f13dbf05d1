"""Per-endpoint rate limits: the token bucket and what an endpoint may claim now. Pure.

The sender (:mod:`cdc.delivery`) keeps one :class:`TokenBucket` per endpoint and asks
:func:`claim_allowance` how many rows each endpoint may take from the outbox: never
more than it can start within :data:`CLAIM_HORIZON_S`, so a throttled endpoint's
backlog stays in the outbox instead of holding the slots another endpoint needs.
Time is passed in (``now``) or injected (``clock``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .breaker import BreakerState
from .config import EndpointLimits

__all__ = [
    "CLAIM_HORIZON_S",
    "Allowance",
    "Gate",
    "TokenBucket",
    "claim_allowance",
    "fresh_allowance",
]

#: How far ahead an endpoint's token bucket is booked when claiming: rows that would not
#: get a token within this long stay pending in the outbox, where they hold no slot.
CLAIM_HORIZON_S = 1.0


@dataclass(frozen=True, slots=True)
class Gate:
    """One endpoint's limits and state as the claim loop sees them (input of :func:`claim_allowance`)."""

    concurrency: int
    claimed: int  # rows claimed and not finished
    tokens: float  # in the bucket now; negative while tokens are booked ahead
    rate_per_s: float
    paused_until: float  # Retry-After (wall clock)
    circuit: BreakerState
    probing: bool  # the half-open probe is out
    reopen_at: float | None


@dataclass(frozen=True, slots=True)
class Allowance:
    """How many rows an endpoint may claim now, and when to look again if none."""

    count: int
    #: When ``count`` can grow with no event (pause or cool-down over, a token refilled);
    #: ``None``: only an event can (a finished request, a probe's verdict).
    recheck_at: float | None


def claim_allowance(gate: Gate, now: float, horizon_s: float = CLAIM_HORIZON_S) -> Allowance:
    """Rows an endpoint may claim now: never more than it can start within ``horizon_s``.

    Paused or open: none, until the pause or cool-down ends. Half-open: one probe, none
    while it (or a row claimed before) is out. Closed: its free concurrency, and no more
    than the tokens its bucket holds or refills within ``horizon_s``. Pure.
    """
    if gate.paused_until > now:
        return Allowance(0, gate.paused_until)
    if gate.circuit is BreakerState.OPEN:
        return Allowance(0, gate.reopen_at)
    if gate.circuit is BreakerState.HALF_OPEN:
        room = 0 if gate.probing or gate.claimed else 1
    else:
        room = gate.concurrency - gate.claimed
    if room <= 0:
        return Allowance(0, None)
    soon = gate.tokens + gate.rate_per_s * horizon_s
    if soon < 1.0:
        return Allowance(0, now + (1.0 - soon) / gate.rate_per_s)
    return Allowance(min(room, int(soon)), None)


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
        """Take a token (booking ahead when there is none); return how long to wait for it."""
        return self._take()

    def give_back(self) -> None:
        """Return a token taken for a request that was not sent (its endpoint got blocked)."""
        self._refill()
        self._tokens = min(self._burst, self._tokens + 1.0)

    def _take(self) -> float:
        self._refill()
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens


def fresh_allowance(limits: EndpointLimits) -> int:
    """What an endpoint not seen yet may claim: its concurrency, and its burst's worth."""
    fresh = Gate(
        concurrency=limits.concurrency,
        claimed=0,
        tokens=float(limits.burst),
        rate_per_s=limits.rate_per_s,
        paused_until=0.0,
        circuit=BreakerState.CLOSED,
        probing=False,
        reopen_at=None,
    )
    return claim_allowance(fresh, 0.0).count

"""cdc.ratelimit: how many rows an endpoint may claim now (fair claiming), and the token bucket. Pure."""

from __future__ import annotations

import dataclasses

import pytest

from cdc.breaker import BreakerState
from cdc.ratelimit import Allowance, Gate, TokenBucket, claim_allowance

NOW = 1_700_000_000.0
CLOSED = Gate(
    concurrency=16,
    claimed=0,
    tokens=50.0,
    rate_per_s=50.0,
    paused_until=0.0,
    circuit=BreakerState.CLOSED,
    probing=False,
    reopen_at=None,
)


class TestClaimAllowance:
    """An endpoint never claims more than it can start within the horizon."""

    def test_free_concurrency(self) -> None:
        """Closed with tokens: its free slots."""
        assert claim_allowance(CLOSED, NOW) == Allowance(16, None)
        assert claim_allowance(dataclasses.replace(CLOSED, claimed=12), NOW) == Allowance(4, None)

    def test_full_waits_for_an_event(self) -> None:
        """At its concurrency: none, until one of its requests finishes."""
        assert claim_allowance(dataclasses.replace(CLOSED, claimed=16), NOW) == Allowance(0, None)

    def test_throttled_books_at_most_a_horizon_of_tokens(self) -> None:
        """rate 5/s with tokens booked ahead: only what the bucket releases within 1 s."""
        throttled = dataclasses.replace(CLOSED, rate_per_s=5.0, tokens=-2.0, claimed=2)
        assert claim_allowance(throttled, NOW) == Allowance(3, None)
        booked = dataclasses.replace(throttled, tokens=-4.5, claimed=5)
        assert claim_allowance(booked, NOW) == Allowance(0, pytest.approx(NOW + 0.1))

    @pytest.mark.parametrize(
        ("gate", "expected"),
        [
            (dataclasses.replace(CLOSED, paused_until=NOW + 30), Allowance(0, NOW + 30)),
            (
                dataclasses.replace(CLOSED, circuit=BreakerState.OPEN, reopen_at=NOW + 9),
                Allowance(0, NOW + 9),
            ),
            (dataclasses.replace(CLOSED, circuit=BreakerState.HALF_OPEN), Allowance(1, None)),
            (dataclasses.replace(CLOSED, circuit=BreakerState.HALF_OPEN, probing=True), Allowance(0, None)),
            (dataclasses.replace(CLOSED, circuit=BreakerState.HALF_OPEN, claimed=1), Allowance(0, None)),
        ],
    )
    def test_blocked_states(self, gate: Gate, expected: Allowance) -> None:
        """Paused/open: none until they end; half-open: one probe, none while it is out."""
        assert claim_allowance(gate, NOW) == expected


class TestTokenBucket:
    """Tokens are booked ahead at claim time and given back when a request is not sent."""

    def test_book_ahead_and_give_back(self) -> None:
        """Past the burst a token is booked (a wait); giving it back cancels the booking."""
        now = [0.0]
        bucket = TokenBucket(rate_per_s=5.0, burst=1, clock=lambda: now[0])
        assert bucket.delay_for_one() == 0.0
        assert bucket.delay_for_one() == pytest.approx(0.2)
        bucket.give_back()
        assert bucket.delay_for_one() == pytest.approx(0.2)
        now[0] = 10.0
        assert bucket.tokens == 1.0  # never more than the burst

    def test_starts_full_and_spends_the_burst_without_waiting(self) -> None:
        """A new bucket holds its burst: that many requests go at once, the next one waits."""
        now = [0.0]
        bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=lambda: now[0])
        assert bucket.tokens == 3.0
        assert [bucket.delay_for_one() for _ in range(3)] == [0.0, 0.0, 0.0]
        assert bucket.delay_for_one() == pytest.approx(0.5)

    def test_refills_at_the_rate(self) -> None:
        """Tokens come back at rate_per_s, so spaced requests never wait."""
        now = [0.0]
        bucket = TokenBucket(rate_per_s=4.0, burst=1, clock=lambda: now[0])
        for step in range(1, 6):
            assert bucket.delay_for_one() == 0.0
            now[0] = step * 0.25
        assert bucket.tokens == pytest.approx(1.0)

    def test_booking_ahead_queues_requests_a_token_apart(self) -> None:
        """Requests past the burst are booked one token apart: the waits grow by 1/rate each."""
        now = [0.0]
        bucket = TokenBucket(rate_per_s=10.0, burst=1, clock=lambda: now[0])
        waits = [bucket.delay_for_one() for _ in range(4)]
        assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])
        assert bucket.tokens == pytest.approx(-3.0)
        now[0] = 0.3
        assert bucket.tokens == pytest.approx(0.0)  # the bookings are paid off by then

    def test_give_back_never_exceeds_the_burst(self) -> None:
        """A token given back to a full bucket is not kept."""
        now = [0.0]
        bucket = TokenBucket(rate_per_s=1.0, burst=2, clock=lambda: now[0])
        bucket.give_back()
        assert bucket.tokens == 2.0

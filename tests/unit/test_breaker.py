"""The circuit breaker's state machine, with an injected clock."""

from __future__ import annotations

import pytest

from cdc.breaker import BreakerState, CircuitBreaker, Verdict


class TestCircuitBreaker:
    """Closed → open after N failures → half-open with one probe → closed or open again."""

    def test_opens_after_threshold(self) -> None:
        """Fewer failures than the threshold keep it closed; the threshold opens it."""
        b = CircuitBreaker(failure_threshold=3, cooldown_s=10, max_cooldown_s=40)
        b.record_failure(0.0)
        b.record_failure(1.0)
        assert b.state(1.0) is BreakerState.CLOSED and b.allow(1.0)
        b.record_failure(2.0)
        assert b.state(2.0) is BreakerState.OPEN
        assert not b.allow(5.0) and b.is_blocked(5.0)
        assert b.unblocks_at() == 12.0

    def test_success_resets_count(self) -> None:
        """A success in between restarts the count of consecutive failures."""
        b = CircuitBreaker(failure_threshold=2, cooldown_s=10, max_cooldown_s=10)
        b.record_failure(0.0)
        b.record_success()
        b.record_failure(1.0)
        assert b.state(1.0) is BreakerState.CLOSED

    def test_half_open_single_probe_then_close(self) -> None:
        """After the cool-down exactly one request is let through; its success closes."""
        b = CircuitBreaker(failure_threshold=1, cooldown_s=10, max_cooldown_s=80)
        b.record_failure(0.0)
        assert b.state(10.0) is BreakerState.HALF_OPEN
        assert b.allow(10.0)
        assert not b.allow(10.1) and b.is_blocked(10.1)
        b.record_success()
        assert b.state(10.2) is BreakerState.CLOSED and b.allow(10.2)

    def test_failed_probe_reopens_longer(self) -> None:
        """A failed probe opens again with a doubled cool-down, capped."""
        b = CircuitBreaker(failure_threshold=1, cooldown_s=10, max_cooldown_s=25)
        b.record_failure(0.0)
        assert b.allow(10.0)
        b.record_failure(10.0)
        assert b.unblocks_at() == 30.0
        assert b.allow(30.0)
        b.record_failure(30.0)
        assert b.unblocks_at() == 55.0  # 40 capped to 25
        assert b.statistics(31.0).opens == 3
        assert b.statistics(31.0).opened_at == 0.0

    def test_late_failures_while_open_are_ignored(self) -> None:
        """Answers of requests sent before it opened neither reopen nor lengthen the cool-down."""
        b = CircuitBreaker(failure_threshold=2, cooldown_s=10, max_cooldown_s=80)
        b.record_failure(0.0)
        b.record_failure(0.1)
        for t in (0.2, 0.3, 0.4):
            b.record_failure(t)
        assert b.unblocks_at() == 10.1
        assert b.statistics(1.0).opens == 1

    @pytest.mark.parametrize(("threshold", "cooldown", "cap"), [(0, 1, 1), (1, 0, 1), (1, 10, 5)])
    def test_invalid(self, threshold: int, cooldown: float, cap: float) -> None:
        """Nonsense limits are refused."""
        with pytest.raises(ValueError):
            CircuitBreaker(threshold, cooldown, cap)


class TestVerdicts:
    """Every attempt reports a verdict, so a probe never leaves the breaker half-open for good."""

    def _half_open(self) -> CircuitBreaker:
        b = CircuitBreaker(failure_threshold=1, cooldown_s=10, max_cooldown_s=80)
        b.record(Verdict.FAILING, 0.0)
        assert b.allow(10.0) and b.is_blocked(10.0)  # the probe is out
        return b

    def test_failing_probe_reopens(self) -> None:
        """A probe answered 401 (FAILING) opens the breaker again, with a longer cool-down."""
        b = self._half_open()
        b.record(Verdict.FAILING, 10.5)
        assert b.state(11.0) is BreakerState.OPEN and b.unblocks_at() == 30.5

    def test_healthy_probe_closes(self) -> None:
        """A HEALTHY probe closes it."""
        b = self._half_open()
        b.record(Verdict.HEALTHY, 10.5)
        assert b.state(10.5) is BreakerState.CLOSED and not b.is_blocked(10.5)

    def test_neutral_probe_frees_the_probe(self) -> None:
        """A NEUTRAL probe (invalid URL) neither closes nor opens: the next request probes."""
        b = self._half_open()
        b.record(Verdict.NEUTRAL, 10.5)
        assert b.state(10.5) is BreakerState.HALF_OPEN and not b.is_blocked(10.5)
        assert b.allow(10.6) and not b.allow(10.7)

    @pytest.mark.parametrize("verdict", list(Verdict))
    def test_no_verdict_wedges(self, verdict: Verdict) -> None:
        """Whatever the probe's verdict, the endpoint is not blocked forever."""
        b = self._half_open()
        b.record(verdict, 10.5)
        assert not b.is_blocked(10_000.0)

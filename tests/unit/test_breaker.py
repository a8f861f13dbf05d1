"""The circuit breaker's state machine, with an injected clock."""

from __future__ import annotations

import pytest

from cdc.breaker import BreakerState, CircuitBreaker


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

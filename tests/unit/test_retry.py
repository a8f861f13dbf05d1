"""classify / next_delay / parse_retry_after: what happens after one attempt."""

from __future__ import annotations

import random

import pytest

from cdc.records import Outcome
from cdc.retry import RetryPolicy, classify, next_delay, parse_retry_after

POLICY = RetryPolicy(base_s=5, factor=6, cap_s=7200, max_attempts=20, max_age_s=86400)


class TestClassify:
    """Statuses and network errors map to delivered, retry or dead."""

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.DELIVERED),
            (204, Outcome.DELIVERED),
            (302, Outcome.DELIVERED),
            (408, Outcome.RETRY),
            (429, Outcome.RETRY),
            (500, Outcome.RETRY),
            (503, Outcome.RETRY),
            (400, Outcome.DEAD),
            (404, Outcome.DEAD),
            (410, Outcome.DEAD),
        ],
    )
    def test_status(self, status: int, outcome: Outcome) -> None:
        """Each status class takes its documented path."""
        assert classify(status, None, POLICY) is outcome

    def test_network_error_retries(self) -> None:
        """No response at all (refused, timeout) is retried."""
        assert classify(None, TimeoutError(), POLICY) is Outcome.RETRY

    def test_4xx_retry_when_configured(self) -> None:
        """dead_on_4xx=False retries other 4xx too."""
        assert classify(404, None, RetryPolicy(dead_on_4xx=False)) is Outcome.RETRY


class TestNextDelay:
    """Exponential backoff with full jitter, capped; Retry-After honoured; limits end it."""

    def test_full_jitter_bounds(self) -> None:
        """Attempt n waits uniformly in [0, min(cap, base*factor**(n-1))]."""
        rng = random.Random(1)
        for attempts, ceiling in [(1, 5), (2, 30), (3, 180), (4, 1080), (5, 6480), (6, 7200), (12, 7200)]:
            delays = [next_delay(attempts, None, POLICY, rng) for _ in range(300)]
            assert all(d is not None and 0 <= d <= ceiling for d in delays)
            assert max(d for d in delays if d is not None) > ceiling * 0.8

    def test_retry_after_is_a_floor(self) -> None:
        """A Retry-After longer than the jittered delay wins (capped)."""
        rng = random.Random(2)
        assert next_delay(1, 120.0, POLICY, rng) == 120.0
        assert next_delay(1, 10**6, POLICY, rng) == 7200

    def test_limits(self) -> None:
        """Max attempts and max age end the retries."""
        rng = random.Random(3)
        assert next_delay(20, None, POLICY, rng) is None
        assert next_delay(3, None, POLICY, rng, age_s=86400) is None


class TestRetryAfter:
    """Retry-After as delta-seconds or HTTP date."""

    def test_forms(self) -> None:
        """Seconds, a date, garbage."""
        now = 1_700_000_000.0
        assert parse_retry_after("30", now) == 30.0
        assert parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now) == pytest.approx(60.0)
        assert parse_retry_after("soon", now) is None
        assert parse_retry_after(None, now) is None

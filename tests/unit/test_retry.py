"""classify / next_delay / parse_retry_after: what happens after one attempt."""

from __future__ import annotations

import datetime as dt
import email.utils
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc import config
from cdc.breaker import Verdict
from cdc.config import RetryPolicy
from cdc.records import Outcome
from cdc.retry import (
    MAX_RETRY_AFTER_S,
    classify,
    next_delay,
    parse_retry_after,
    redirect_reason,
    verdict,
)

POLICY = RetryPolicy(base_s=5, factor=6, cap_s=7200, max_attempts=20, max_age_s=86400)


class TestDefaults:
    """One set of retry defaults: the config's documented ones."""

    def test_policy_defaults_are_the_config_defaults(self) -> None:
        """A bare RetryPolicy is the schedule an empty config file gives (factor 6, 20 attempts)."""
        assert config.load(None, env={}).delivery.retry == RetryPolicy() == POLICY

    def test_config_keys_make_the_policy(self) -> None:
        """The ``[delivery.retry]`` keys (here from their env variables) make the policy."""
        env = {"VICIDIAL_CDC_DELIVERY_RETRY_FACTOR": "3", "VICIDIAL_CDC_DELIVERY_RETRY_MAX_ATTEMPTS": "7"}
        cfg = config.load(None, env=env)
        assert (cfg.delivery.retry.factor, cfg.delivery.retry.max_attempts) == (3.0, 7)


class TestClassify:
    """Statuses and network errors map to delivered, retry or dead."""

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.DELIVERED),
            (204, Outcome.DELIVERED),
            (301, Outcome.DEAD),
            (302, Outcome.DEAD),
            (307, Outcome.DEAD),
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

    def test_redirect_is_not_delivered(self) -> None:
        """A 3xx is never success: dead with dead_on_4xx, retried without it."""
        for status in (300, 301, 302, 303, 307, 308):
            assert classify(status, None, POLICY) is Outcome.DEAD
            assert classify(status, None, RetryPolicy(dead_on_4xx=False)) is Outcome.RETRY


class TestVerdict:
    """What an attempt says about its endpoint: every outcome has a verdict."""

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (200, Verdict.HEALTHY),
            (204, Verdict.HEALTHY),
            (400, Verdict.HEALTHY),  # rejects this lead; the endpoint works
            (422, Verdict.HEALTHY),
            (401, Verdict.FAILING),  # the token expired: every lead would fail
            (403, Verdict.FAILING),
            (404, Verdict.FAILING),
            (410, Verdict.FAILING),
            (301, Verdict.FAILING),
            (302, Verdict.FAILING),
            (408, Verdict.FAILING),
            (429, Verdict.FAILING),
            (500, Verdict.FAILING),
            (503, Verdict.FAILING),
            (None, Verdict.FAILING),  # no answer
        ],
    )
    def test_status(self, status: int | None, expected: Verdict) -> None:
        """Each answer class has its verdict."""
        assert verdict(status) is expected

    def test_pause_and_broken_request(self) -> None:
        """Retry-After is an answer (healthy); a request we could not make says nothing."""
        assert verdict(429, paused=True) is Verdict.HEALTHY
        assert verdict(None, request_broken=True) is Verdict.NEUTRAL


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

    @pytest.mark.parametrize(
        "value",
        [
            *("\u00b2", "\u0663", "\uff11\uff12", "-5", "1.5", "1e3", "", "  ", "\x00"),
            "Tue, 99 Nov 2023 99:99:99 GMT",
        ],
    )
    def test_hostile_values_are_none(self, value: str) -> None:
        """Non-ASCII digits (\u00b2 made the old parser raise), signs, fractions: no pause."""
        assert parse_retry_after(value, 1_700_000_000.0) is None

    def test_caps_and_past(self) -> None:
        """Huge seconds and far dates are capped; a past date is 0; a date without zone is UTC."""
        now = 1_700_000_000.0
        assert parse_retry_after("9" * 5000, now) == MAX_RETRY_AFTER_S
        assert parse_retry_after("86400", now) == MAX_RETRY_AFTER_S
        assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == MAX_RETRY_AFTER_S
        assert parse_retry_after("Mon, 01 Jan 1990 00:00:00 GMT", now) == 0.0
        assert parse_retry_after("Tue, 14 Nov 2023 22:14:20 -0000", now) == pytest.approx(60.0)

    @given(st.text(max_size=200), st.floats(min_value=0, max_value=4e9))
    def test_never_raises(self, value: str, now: float) -> None:
        """Whatever the header holds, the answer is None or a delay in [0, cap]."""
        result = parse_retry_after(value, now)
        assert result is None or 0.0 <= result <= MAX_RETRY_AFTER_S

    @given(st.datetimes(timezones=st.just(dt.UTC)))
    def test_any_http_date(self, when: dt.datetime) -> None:
        """Every HTTP date parses to a bounded delay."""
        result = parse_retry_after(email.utils.format_datetime(when, usegmt=True), 1_700_000_000.0)
        assert result is not None and 0.0 <= result <= MAX_RETRY_AFTER_S


class TestRedirectReason:
    """The reason of a 3xx names where it points: scheme, host and path, never the query."""

    def test_absolute_and_relative(self) -> None:
        """Absolute and relative Locations; query, fragment and user info dropped."""
        base = "http://crm.example/new?lead=1&phone=3125550100"
        assert redirect_reason("https://crm.example/new?lead=1&phone=3125550100", base) == (
            "redirect to https://crm.example/new"
        )
        assert redirect_reason("/login?next=%2Fnew#x", base) == "redirect to http://crm.example/login"
        assert redirect_reason("https://u:pw@crm.example:8443/a", base) == "redirect to https://crm.example:8443/a"
        assert redirect_reason(None, base) == "redirect (no Location)"

    @given(st.text(max_size=300))
    def test_never_raises(self, location: str) -> None:
        """A hostile Location gives a bounded, printable reason without a query."""
        reason = redirect_reason(location, "http://crm.example/new?phone=3125550100")
        assert reason.startswith("redirect")
        assert reason.isprintable() and reason.isascii() and len(reason) <= 200
        assert "3125550100" not in reason or "3125550100" in location.partition("?")[0]

"""What happens after one attempt: pure functions, unit-tested without a network.

``classify`` turns a response status (or the exception that stopped the request) into
an :class:`Outcome`; ``next_delay`` picks when to try again: exponential backoff with
full jitter, capped, honouring ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass

from .records import Outcome

#: Statuses worth another try: the receiver may recover.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff schedule; defaults spread about 15 attempts over a day (like Svix)."""

    base_s: float = 5.0
    factor: float = 4.0
    cap_s: float = 7200.0
    max_attempts: int = 15
    max_age_s: float = 86400.0
    #: Treat 4xx other than 408/425/429 as permanent (dead at once).
    dead_on_4xx: bool = True


def classify(status: int | None, error: BaseException | None, policy: RetryPolicy) -> Outcome:
    """DELIVERED for 2xx/3xx, RETRY for network errors and retryable statuses, else DEAD."""
    if status is None:
        return Outcome.RETRY if error is not None else Outcome.DEAD
    if 200 <= status < 400:
        return Outcome.DELIVERED
    if status in RETRYABLE_STATUSES or status >= 500:
        return Outcome.RETRY
    return Outcome.DEAD if policy.dead_on_4xx else Outcome.RETRY


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def next_delay(
    attempts: int,
    retry_after_s: float | None,
    policy: RetryPolicy,
    rng: random.Random,
    *,
    age_s: float = 0.0,
) -> float | None:
    """Delay before attempt ``attempts + 1``, or ``None`` when the delivery is dead.

    ``attempts`` counts the attempts made so far (>= 1).
    """
    if attempts >= policy.max_attempts or age_s >= policy.max_age_s:
        return None
    ceiling = min(policy.cap_s, policy.base_s * policy.factor ** (attempts - 1))
    delay = rng.uniform(0.0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.cap_s))
    return delay

"""What happens after one attempt: pure functions, unit-tested without a network.

``classify`` turns a response status (or the exception that stopped the request) into
an :class:`Outcome`; ``verdict`` says what the attempt means for the endpoint's circuit
breaker; ``next_delay`` picks when to try again: exponential backoff with full jitter,
capped, honouring ``Retry-After``, on the schedule of a :class:`~cdc.config.RetryPolicy`
(``[delivery.retry]``, whose defaults are the only ones). ``parse_retry_after`` and
``redirect_reason`` read headers a hostile receiver controls, so they never raise.

Redirects are not followed (VICIdial's PHP does not follow them either) and are not
success: a 3xx is answered like a 4xx (dead at once with ``dead_on_4xx``, else
retried) with the reason ``redirect to scheme://host/path`` (never the query).
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import random
import re

import yarl

from .breaker import Verdict
from .config import RetryPolicy
from .records import Outcome

#: Statuses worth another try: the receiver may recover.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: 4xx that say the endpoint (its URL, its credentials) is wrong, not this one lead: they
#: count against the breaker, so a probe answered 401 opens it again instead of closing it
#: and letting the whole backlog go dead. Other 4xx (400, 409, 422, ...) reject one lead.
ENDPOINT_4XX = frozenset({401, 403, 404, 405, 407, 410})
#: Longest ``Retry-After`` honoured (1 hour): a larger value (or a date further away) is
#: cut to this, so a receiver cannot park its endpoint for days with one header.
MAX_RETRY_AFTER_S = 3600.0
#: Longest ``redirect to ...`` reason kept (logs and ``last_error``).
_MAX_REASON = 160
_DIGITS = re.compile(r"[0-9]+")
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


def classify(status: int | None, error: BaseException | None, policy: RetryPolicy) -> Outcome:
    """DELIVERED for 2xx, RETRY for network errors and retryable statuses, else DEAD.

    A 3xx (redirect, not followed) and other 4xx are DEAD with ``dead_on_4xx``, else RETRY.
    """
    if status is None:
        return Outcome.RETRY if error is not None else Outcome.DEAD
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in RETRYABLE_STATUSES or status >= 500:
        return Outcome.RETRY
    return Outcome.DEAD if policy.dead_on_4xx else Outcome.RETRY


def verdict(status: int | None, *, paused: bool = False, request_broken: bool = False) -> Verdict:
    """What one attempt says about its endpoint, for the circuit breaker.

    ``request_broken``: the request could not even be made (invalid URL): not the
    endpoint's fault, NEUTRAL (a half-open probe gives its turn to the next request).
    ``paused``: a 429/503 with ``Retry-After``: it answered and asked us to wait, which
    the pause handles: HEALTHY. 2xx and the 4xx that reject one lead (400, 422, ...) are
    HEALTHY; no answer, 5xx, 408, 429, a redirect and :data:`ENDPOINT_4XX` are FAILING.
    """
    if request_broken:
        return Verdict.NEUTRAL
    if paused or (status is not None and 200 <= status < 300):
        return Verdict.HEALTHY
    if status is None or status < 400 or status >= 500:
        return Verdict.FAILING
    if status in RETRYABLE_STATUSES or status in ENDPOINT_4XX:
        return Verdict.FAILING
    return Verdict.HEALTHY


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` when there is no usable one.

    Delta-seconds (ASCII digits only) or an HTTP date (a date without a zone is UTC; a
    past date is 0). Anything else (negative, fractional, non-ASCII digits, garbage) is
    ``None``; a value above :data:`MAX_RETRY_AFTER_S` is cut to it. Never raises.
    """
    if not value:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        # Length first: int() refuses strings of more than 4300 digits.
        return MAX_RETRY_AFTER_S if len(value) > 9 else min(float(int(value)), MAX_RETRY_AFTER_S)
    if not value.isascii():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.UTC)
        delay = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER_S)


def redirect_reason(location: str | None, request_url: str) -> str:
    """``redirect to scheme://host/path`` for a 3xx, without query, fragment or user info.

    ``location`` (the receiver's header, maybe relative, maybe garbage) is resolved
    against ``request_url``; what cannot be read is ``redirect (no usable Location)``.
    The result is printable ASCII and at most a few dozen bytes longer than the path
    cap. Never raises.
    """
    if not location:
        return "redirect (no Location)"
    try:
        target = yarl.URL(request_url, encoded=True).join(yarl.URL(location.strip()))
        scheme, host = target.scheme, target.raw_host
        if not scheme or not host:
            return "redirect (no usable Location)"
        port = "" if target.explicit_port is None else f":{target.explicit_port}"
        where = f"{scheme}://{host}{port}{target.raw_path}"
    except (TypeError, ValueError, UnicodeError):
        return "redirect (no usable Location)"
    where = _UNPRINTABLE.sub("", where)
    if len(where) > _MAX_REASON:
        where = where[: _MAX_REASON - 3] + "..."
    return f"redirect to {where}"


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

"""What the streamer did, minute by minute, kept in memory for the status page.

Counts come from the metrics themselves (:func:`read_totals`), so the page and
``/metrics`` never disagree: the recorder keeps the per-minute differences of those
totals for a day. Attempts (recent deliveries, latencies, last error) come from the
sender's ``on_attempt`` hook. Pure: time is an argument, nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics import MetricWrapperBase

from ..delivery import SENDER
from ..metrics import Metrics
from ..records import Attempt, Outcome, UrlSource
from ..store import StoredDelivery

#: Minutes kept: the last day.
DAY_MINUTES = 1440
HOUR_MINUTES = 60
#: Attempts kept for "recent deliveries".
RECENT_ATTEMPTS = 25
#: Attempts per endpoint kept for its p50/p95 latency.
LATENCY_SAMPLES = 200
#: Minutes averaged (at most) for an endpoint's "sent per minute".
RATE_MINUTES = 5


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts since the process started, as ``/metrics`` has them."""

    detected: int = 0
    sent: int = 0  # our deliveries the endpoint accepted
    dead: int = 0  # our deliveries given up on (dead letters)
    skipped: Mapping[str, int] = field(default_factory=dict)  # by reason
    sent_by_endpoint: Mapping[str, int] = field(default_factory=dict)
    vicidial_attempts: int = 0  # VICIdial's own sender (watch/auto), from vicidial_url_log
    vicidial_failures: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True, slots=True)
class Window:
    """Counts over the last hour or day, with one value per minute for the charts."""

    detected: int
    sent: int
    skipped: int
    dead: int
    skipped_by_reason: Mapping[str, int]
    #: One list per series (detected, sent, skipped, dead), oldest minute first.
    per_minute: Mapping[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class RecentAttempt:
    """One attempt of our sender; ``url`` only when ``http.show_lead_data`` is on."""

    at: float
    delivery_id: int
    lead_id: int
    list_id: int
    endpoint_id: str
    outcome: str
    status: int
    error: str
    latency_s: float
    url: str | None


@dataclass(frozen=True, slots=True)
class EndpointActivity:
    """What the attempts say about one endpoint."""

    sent_per_min: float
    p50_s: float | None
    p95_s: float | None
    last_error: str  # failure class of the last failed attempt, "" when none


@dataclass(frozen=True, slots=True)
class ActivityReport:
    totals: Totals
    hour: Window
    day: Window
    recent: tuple[RecentAttempt, ...]
    endpoints: Mapping[str, EndpointActivity]
    #: VICIdial's failed sends that we delivered again (watch/auto).
    resent: int


@dataclass(slots=True)
class _Minute:
    minute: int  # epoch minute
    detected: int = 0
    sent: int = 0
    dead: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sent_by_endpoint: dict[str, int] = field(default_factory=dict)


class ActivityRecorder:
    """Per-minute activity for a day, and the last attempts, in bounded memory."""

    __slots__ = ("_errors", "_keep_urls", "_last", "_latencies", "_minutes", "_recent", "_resent")

    def __init__(self, *, keep_urls: bool = False) -> None:
        """``keep_urls``: keep each attempt's URL (lead data) for the page; off by default."""
        self._keep_urls = keep_urls
        self._minutes: deque[_Minute] = deque(maxlen=DAY_MINUTES)
        self._last = Totals()
        self._recent: deque[RecentAttempt] = deque(maxlen=RECENT_ATTEMPTS)
        self._latencies: dict[str, deque[float]] = {}
        self._errors: dict[str, str] = {}
        self._resent = 0

    def observe(self, now: float, totals: Totals) -> None:
        """Add what changed since the last observation to the current minute."""
        bucket = self._bucket(int(now // 60))
        _add(bucket, self._last, totals)
        self._last = totals

    def attempt(self, now: float, item: StoredDelivery, attempt: Attempt) -> None:
        """One attempt of our sender, with its final outcome."""
        d = item.delivery
        self._recent.append(
            RecentAttempt(
                at=now,
                delivery_id=item.id,
                lead_id=d.lead_id,
                list_id=d.list_id,
                endpoint_id=d.endpoint_id,
                outcome=attempt.outcome.value,
                status=attempt.status,
                error=attempt.error,
                latency_s=attempt.duration_s,
                url=d.url if self._keep_urls else None,
            )
        )
        latencies = self._latencies.get(d.endpoint_id)
        if latencies is None:
            latencies = self._latencies[d.endpoint_id] = deque(maxlen=LATENCY_SAMPLES)
        latencies.append(attempt.duration_s)
        if attempt.outcome is Outcome.DELIVERED:
            if d.url_source is UrlSource.VICIDIAL_RETRY:
                self._resent += 1
        elif attempt.error:
            self._errors[d.endpoint_id] = attempt.error

    def report(self, now: float, totals: Totals) -> ActivityReport:
        """The activity up to ``now``; ``totals`` (read now) completes the current minute."""
        current = int(now // 60)
        pending = _Minute(current)
        _add(pending, self._last, totals)
        minutes = {m.minute: m for m in self._minutes}
        latest = minutes.get(current)
        if latest is not None:
            pending = _merged(latest, pending)
        minutes[current] = pending
        endpoint_ids = set(self._latencies) | set(totals.sent_by_endpoint)
        rate_window = [minutes.get(current - i) for i in range(RATE_MINUTES)]
        # Averaged over the minutes recorded so far (a streamer up for one minute: that minute).
        first = self._minutes[0].minute if self._minutes else current
        covered = max(1, min(RATE_MINUTES, current - first + 1))
        endpoints = {
            e: EndpointActivity(
                sent_per_min=sum(m.sent_by_endpoint.get(e, 0) for m in rate_window if m) / covered,
                p50_s=_quantile(self._latencies.get(e, ()), 0.50),
                p95_s=_quantile(self._latencies.get(e, ()), 0.95),
                last_error=self._errors.get(e, ""),
            )
            for e in sorted(endpoint_ids)
        }
        return ActivityReport(
            totals=totals,
            hour=_window(minutes, current, HOUR_MINUTES),
            day=_window(minutes, current, DAY_MINUTES),
            recent=tuple(reversed(self._recent)),
            endpoints=endpoints,
            resent=self._resent,
        )

    def _bucket(self, minute: int) -> _Minute:
        if self._minutes and self._minutes[-1].minute >= minute:
            return self._minutes[-1]  # the clock stepped back: keep counting in the latest minute
        bucket = _Minute(minute)
        self._minutes.append(bucket)
        return bucket


def read_totals(metrics: Metrics) -> Totals:
    """The page's counts, read from the same counters ``/metrics`` serves."""
    skipped = {labels["reason"]: n for labels, n in _samples(metrics.leads_skipped)}
    sent_by_endpoint: dict[str, int] = {}
    dead = vicidial_attempts = vicidial_failures = 0
    for labels, n in _samples(metrics.deliveries):
        if labels["sender"] == SENDER:
            if labels["outcome"] == Outcome.DELIVERED.value:
                sent_by_endpoint[labels["endpoint"]] = sent_by_endpoint.get(labels["endpoint"], 0) + n
            elif labels["outcome"] == Outcome.DEAD.value:
                dead += n
        else:
            vicidial_attempts += n
            if labels["outcome"] != Outcome.DELIVERED.value:
                vicidial_failures += n
    detected = sum(n for _, n in _samples(metrics.leads_detected))
    return Totals(
        detected=detected,
        sent=sum(sent_by_endpoint.values()),
        dead=dead,
        skipped=skipped,
        sent_by_endpoint=sent_by_endpoint,
        vicidial_attempts=vicidial_attempts,
        vicidial_failures=vicidial_failures,
    )


def _samples(metric: MetricWrapperBase) -> Iterable[tuple[dict[str, str], int]]:
    """A counter's ``_total`` samples: (labels, value)."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                yield sample.labels, int(sample.value)


def _add(bucket: _Minute, before: Totals, after: Totals) -> None:
    bucket.detected += max(0, after.detected - before.detected)
    bucket.sent += max(0, after.sent - before.sent)
    bucket.dead += max(0, after.dead - before.dead)
    for reason, n in after.skipped.items():
        delta = n - before.skipped.get(reason, 0)
        if delta > 0:
            bucket.skipped[reason] = bucket.skipped.get(reason, 0) + delta
    for endpoint_id, n in after.sent_by_endpoint.items():
        delta = n - before.sent_by_endpoint.get(endpoint_id, 0)
        if delta > 0:
            bucket.sent_by_endpoint[endpoint_id] = bucket.sent_by_endpoint.get(endpoint_id, 0) + delta


def _merged(a: _Minute, b: _Minute) -> _Minute:
    out = _Minute(a.minute, a.detected, a.sent, a.dead, dict(a.skipped), dict(a.sent_by_endpoint))
    after = Totals(
        detected=b.detected, sent=b.sent, dead=b.dead, skipped=b.skipped, sent_by_endpoint=b.sent_by_endpoint
    )
    _add(out, Totals(), after)
    return out


def _window(minutes: Mapping[int, _Minute], current: int, length: int) -> Window:
    span = [minutes.get(m) for m in range(current - length + 1, current + 1)]
    skipped_by_reason: dict[str, int] = {}
    for m in span:
        if m is not None:
            for reason, n in m.skipped.items():
                skipped_by_reason[reason] = skipped_by_reason.get(reason, 0) + n
    series = {
        "detected": tuple(m.detected if m else 0 for m in span),
        "sent": tuple(m.sent if m else 0 for m in span),
        "skipped": tuple(sum(m.skipped.values()) if m else 0 for m in span),
        "dead": tuple(m.dead if m else 0 for m in span),
    }
    return Window(
        detected=sum(series["detected"]),
        sent=sum(series["sent"]),
        skipped=sum(series["skipped"]),
        dead=sum(series["dead"]),
        skipped_by_reason=dict(sorted(skipped_by_reason.items())),
        per_minute=series,
    )


def _quantile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank quantile, None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least 1
    return ordered[int(rank) - 1]

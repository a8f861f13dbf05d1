"""VICIdial's URL hooks, watched and rescued: ``vicidial_url_log`` rows in, deliveries out.

Every row is counted per ``url_type`` and endpoint (attempts, outcomes, VICIdial's own
``response_sec``). A request VICIdial failed or never completed is re-sent, exactly as
logged, through the outbox (so with its retries, dead letters, rate limits, breaker and
replay) when its type's rescue is on: ``[hooks] rescue`` for most types,
``delivery.mode`` watch/auto for ``apinewlead``. What VICIdial completed is never
re-sent; an UPDATE that arrives after we re-sent is counted as a duplicate it made.

The outbox key of a rescued hook is ``(<source>/url_log, url_log_id, host:port)``: one
re-send per logged request, however often the binlog is re-read. ``apinewlead`` keeps
the lead's key ``(<source>, lead_id, host:port)``, as before.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from ..metrics import Metrics, status_class
from ..records import Delivery, Position, RowChange, Skipped, UrlSource
from ..records import as_int as _int
from ..resolve import EndpointIds, check_url, origin_of
from .config import HooksConfig
from .tracker import Event, HookAttempt, HookTracker
from .types import APINEWLEAD, hook_type, label_of

log = logging.getLogger(__name__)

#: Suffix of the outbox ``source`` of rescued hooks (their ``lead_id`` is the url_log_id).
URL_LOG_SOURCE_SUFFIX = "/url_log"
#: Endpoint label of a logged URL without a host (an API call VICIdial received).
NO_ENDPOINT = "none"
#: Types whose sender may have POSTed: the method of one that never completed is unknown.
_POST_CAPABLE = frozenset({"sc_callurl"})
_FORM = "application/x-www-form-urlencoded"  # what wget --post-data sends
_OUTCOMES = ("ok", "error", "never_completed", "late")


@dataclass(frozen=True, slots=True)
class HookPolicy:
    """Per ``url_type``: its never-completed timeout and whether it is rescued."""

    hooks: HooksConfig
    #: ``delivery.mode`` watch/auto re-send API New Lead URLs VICIdial failed.
    apinewlead_rescue: bool
    apinewlead_timeout_s: float

    def timeout_s(self, url_type: str) -> float:
        if url_type == APINEWLEAD:
            return self.apinewlead_timeout_s
        default = hook_type(url_type).timeout_s
        return self.hooks.timeouts_s.get(label_of(url_type), default) if default > 0 else 0.0

    def rescues(self, url_type: str) -> bool:
        if url_type == APINEWLEAD:
            return self.apinewlead_rescue
        return url_type in self.hooks.rescue


@dataclass(frozen=True, slots=True)
class Resend:
    """The request that repeats a logged one."""

    method: str
    url: str
    body: bytes = b""
    content_type: str = ""


def resend_of(attempt: HookAttempt) -> Resend | str:
    """The request that repeats ``attempt`` as VICIdial logged it, or why there is none."""
    verdict = attempt.verdict
    if verdict is not None and verdict.post:
        if verdict.post_headers:
            return "post_headers"  # a settings container's headers: their values are not logged
        url, _, query = attempt.url.partition("?")
        problem = check_url(url)
        if problem is not None:
            return problem.value
        return Resend("POST", url, query.encode("utf-8", "surrogateescape"), _FORM)
    if verdict is None and attempt.url_type in _POST_CAPABLE:
        return "method_unknown"
    problem = check_url(attempt.url)
    return problem.value if problem is not None else Resend("GET", attempt.url)


@dataclass(slots=True)
class HookStep:
    deliveries: list[Delivery] = field(default_factory=list)
    #: API New Lead URLs that could not be re-sent (counted as lead skips, as before).
    skipped: list[Skipped] = field(default_factory=list)


class HookWatch:
    """Owns the tracker; turns its attempts into metrics and rescue deliveries."""

    def __init__(
        self,
        policy: HookPolicy,
        metrics: Metrics,
        endpoints: EndpointIds,
        source: str,
        max_pending: int = 100_000,
    ) -> None:
        self._policy = policy
        self._metrics = metrics
        self._endpoints = endpoints
        self._source = source
        self.tracker = HookTracker(policy.timeout_s, policy.rescues, max_pending)
        #: url_log_ids re-sent (bounded): their late UPDATE is a duplicate VICIdial made.
        self._rescued: OrderedDict[int, None] = OrderedDict()
        self._max_rescued = max_pending
        self._pending_labels: set[str] = set()
        #: (label, endpoint) pairs whose outcome series exist (bounded: labels x EndpointIds).
        self._series: set[tuple[str, str]] = set()

    def feed(self, change: RowChange, resume: Position) -> HookStep:
        step = HookStep()
        for attempt in self.tracker.feed(change, resume):
            self._account(attempt, step)
        return step

    def expire(self, now_binlog: float) -> HookStep:
        step = HookStep()
        for attempt in self.tracker.expire(now_binlog):
            self._account(attempt, step)
        self._publish_pending()
        return step

    def min_resume_position(self) -> Position | None:
        return self.tracker.min_resume_position()

    def _endpoint(self, url: str) -> str:
        return NO_ENDPOINT if origin_of(url)[1].startswith(":") else self._endpoints.of(url)

    def _account(self, a: HookAttempt, step: HookStep) -> None:
        m = self._metrics
        endpoint = self._endpoint(a.url)
        if a.event is Event.STARTED:
            m.child(m.hook_attempts, a.label, endpoint).inc()
            if (a.label, endpoint) not in self._series:
                # Every outcome exists at 0 from the first request: rate() sees the first error.
                self._series.add((a.label, endpoint))
                for outcome in _OUTCOMES:
                    m.child(m.hook_outcomes, a.label, endpoint, outcome)
            return
        verdict = a.verdict
        if verdict is not None:
            m.child(m.hook_response, a.label, endpoint).observe(a.response_s)
        if a.event is Event.LATE:
            m.child(m.hook_outcomes, a.label, endpoint, "late").inc()
            if a.url_log_id in self._rescued:
                m.child(m.hook_duplicates, a.label, endpoint).inc()
                log.info(
                    "hook.duplicate url_type=%s url_log_id=%d endpoint=%s: VICIdial completed a"
                    " request the streamer had re-sent",
                    a.label,
                    a.url_log_id,
                    endpoint,
                )
        else:
            outcome = "never_completed" if verdict is None else ("ok" if verdict.ok else "error")
            m.child(m.hook_outcomes, a.label, endpoint, outcome).inc()
        if a.url_type == APINEWLEAD:
            self._apinewlead_metrics(a, endpoint)
        if a.event is Event.LATE or a.ok or not self._policy.rescues(a.url_type):
            return
        self._rescue(a, endpoint, step)

    def _apinewlead_metrics(self, a: HookAttempt, endpoint: str) -> None:
        """The sender="vicidial" series API New Lead URLs have always had."""
        m = self._metrics
        verdict = a.verdict
        status = 0 if verdict is None else (verdict.status or (200 if verdict.ok else 0))
        m.requests.labels(endpoint, status_class(status), "vicidial").inc()
        m.deliveries.labels(endpoint, "delivered" if a.ok else "failed", "vicidial").inc()
        if verdict is not None:
            m.request_duration.labels(endpoint, "vicidial").observe(a.response_s)

    def _rescue(self, a: HookAttempt, endpoint: str, step: HookStep) -> None:
        cause = "never_completed" if a.verdict is None else "error"
        lead_id = _int(a.uniqueid) if a.url_type == APINEWLEAD else a.url_log_id
        if lead_id is None:
            return  # an apinewlead row whose uniqueid is not a lead_id: not VICIdial's
        resend = resend_of(a)
        if isinstance(resend, str):
            if a.url_type == APINEWLEAD:
                skip = check_url(a.url)
                if skip is not None:
                    step.skipped.append(Skipped(lead_id, 0, skip))
            else:
                self._metrics.child(self._metrics.hook_rescue_skipped, a.label, resend).inc()
            return
        apinewlead = a.url_type == APINEWLEAD
        status = a.verdict.status if a.verdict is not None else 0
        log.info(
            "hook.rescue url_type=%s url_log_id=%d lead_id=%d endpoint=%s cause=%s status=%d",
            a.label,
            a.url_log_id,
            lead_id if apinewlead else 0,
            endpoint,
            cause,
            status,
        )
        self._metrics.child(self._metrics.hook_rescues, a.label, endpoint, cause).inc()
        self._rescued[a.url_log_id] = None
        while len(self._rescued) > self._max_rescued:
            self._rescued.popitem(last=False)
        step.deliveries.append(
            Delivery(
                source=self._source if apinewlead else f"{self._source}{URL_LOG_SOURCE_SUFFIX}",
                lead_id=lead_id,
                list_id=0,
                endpoint_id=endpoint,
                method=resend.method,
                url=resend.url,
                url_source=UrlSource.VICIDIAL_RETRY if apinewlead else UrlSource.VICIDIAL_HOOK,
                inserted_at=a.started_at,
                body=resend.body,
                content_type=resend.content_type,
            )
        )

    def _publish_pending(self) -> None:
        pending = self.tracker.statistics().pending
        gauge = self._metrics.hook_pending
        for label in self._pending_labels - set(pending):
            self._metrics.child(gauge, label).set(0)
        for label, count in pending.items():
            self._metrics.child(gauge, label).set(count)
        self._pending_labels = set(pending)

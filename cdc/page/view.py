"""The status page's data as JSON-ready values: the sections ``/status`` adds for the page.

Pure: built from the components' statistics, the outbox counts, the dead-letter
summary and the activity report. Lead data (URLs, which carry names and phones) is in
it only when ``show_lead_data`` is on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..breaker import BreakerState
from ..delivery import EndpointStatistics
from ..store import DeadSummary
from .activity import ActivityReport, EndpointActivity, Window


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One endpoint as the page shows it."""

    endpoint_id: str
    #: ``ok``, ``breaker open``, ``breaker half-open``, ``paused by Retry-After`` or ``rate-limited``.
    state: str
    until: float | None  # when a breaker or pause lets requests go again (epoch seconds)
    in_flight: int
    sent_per_min: float
    p50_s: float | None
    p95_s: float | None
    backlog: int  # pending in the outbox
    oldest_waiting_s: float
    last_error: str
    dead: int


def endpoint_state(stats: EndpointStatistics | None, now: float) -> tuple[str, float | None]:
    """What holds an endpoint back now, and until when."""
    if stats is None:
        return "ok", None
    if stats.circuit is BreakerState.OPEN:
        return "breaker open", stats.blocked_until
    if stats.paused_until > now:
        return "paused by Retry-After", stats.paused_until
    if stats.circuit is BreakerState.HALF_OPEN:
        return "breaker half-open", None
    if stats.waiting > 0 and stats.tokens < 1.0:
        return "rate-limited", None
    return "ok", None


def endpoint_rows(
    now: float,
    stats: Sequence[EndpointStatistics],
    counts: Mapping[str, Mapping[str, float]],
    activity: Mapping[str, EndpointActivity],
) -> list[EndpointRow]:
    """One row per endpoint seen by the sender, the outbox or the activity."""
    by_id = {s.endpoint_id: s for s in stats}
    rows = []
    for endpoint_id in sorted(set(by_id) | set(counts) | set(activity)):
        s = by_id.get(endpoint_id)
        c = counts.get(endpoint_id, {})
        a = activity.get(endpoint_id)
        state, until = endpoint_state(s, now)
        rows.append(
            EndpointRow(
                endpoint_id=endpoint_id,
                state=state,
                until=until,
                in_flight=s.in_flight if s else 0,
                sent_per_min=a.sent_per_min if a else 0.0,
                p50_s=a.p50_s if a else None,
                p95_s=a.p95_s if a else None,
                backlog=int(c.get("pending", 0)),
                oldest_waiting_s=float(c.get("oldest_pending_age_s", 0.0)),
                last_error=a.last_error if a else "",
                dead=int(c.get("dead", 0)),
            )
        )
    return rows


def dead_letters(
    summary: DeadSummary, dead_by_endpoint: Mapping[str, int], now: float, *, show_lead_data: bool
) -> dict[str, Any]:
    """Dead letters by endpoint and reason, and the last ones (URL only with lead data on).

    The totals are ``dead_by_endpoint``, the outbox counts the dead-letter gauges show,
    so the page and ``/metrics`` agree even when a row went dead between the two reads.
    """
    by_endpoint = {e: n for e, n in dead_by_endpoint.items() if n}
    recent = []
    for r in summary.recent:
        row: dict[str, Any] = {
            "id": r.id,
            "lead_id": r.delivery.lead_id,
            "list_id": r.delivery.list_id,
            "endpoint_id": r.delivery.endpoint_id,
            "reason": r.last_error or (f"http_{r.last_status}" if r.last_status else "unknown"),
            "attempts": r.attempts,
            "age_s": max(0.0, now - r.updated_at),
        }
        if show_lead_data:
            row["url"] = r.delivery.url
        recent.append(row)
    return {
        "total": sum(by_endpoint.values()),
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "groups": [dataclasses.asdict(g) for g in summary.groups],
        "recent": recent,
    }


def activity(report: ActivityReport) -> dict[str, Any]:
    """Since start (equal to ``/metrics``), last hour and last day with per-minute series."""
    t = report.totals
    return {
        "since_start": {
            "detected": t.detected,
            "sent": t.sent,
            "skipped": t.skipped_total,
            "dead": t.dead,
            "skipped_by_reason": dict(sorted(t.skipped.items())),
        },
        "hour": _window(report.hour),
        "day": _window(report.day),
    }


def recent_deliveries(report: ActivityReport, now: float, *, show_lead_data: bool) -> list[dict[str, Any]]:
    """The last attempts, newest first (URL only with lead data on)."""
    out = []
    for a in report.recent:
        row = dataclasses.asdict(a)
        row["age_s"] = max(0.0, now - a.at)
        if not show_lead_data:
            del row["url"]
        out.append(row)
    return out


def vicidial_sender(report: ActivityReport, *, sends: bool) -> dict[str, Any]:
    """VICIdial's own sender (watch/auto): its attempts, failures, and ours re-sent."""
    return {
        "sends": sends,
        "attempts": report.totals.vicidial_attempts,
        "failures": report.totals.vicidial_failures,
        "resent": report.resent,
    }


def _window(w: Window) -> dict[str, Any]:
    return {
        "detected": w.detected,
        "sent": w.sent,
        "skipped": w.skipped,
        "dead": w.dead,
        "skipped_by_reason": dict(w.skipped_by_reason),
        "per_minute": {k: list(v) for k, v in w.per_minute.items()},
    }

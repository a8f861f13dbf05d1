"""The status page's HTML, rendered on the server from the ``/status`` JSON.

A thin view: every number comes from the status dict the streamer serves at
``/status``. Every value is escaped; there is no inline script or style (the page's
Content-Security-Policy forbids both), and charts are inline SVG with presentation
attributes. Pure: the time is an argument.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: ``?done=`` codes the actions redirect with, and what the page says for each.
DONE_MESSAGES: Mapping[str, str] = {
    "retried": "{n} dead letter(s) queued again: they are sent now.",
    "purged": "{n} dead letter(s) deleted.",
    "none": "Nothing selected: tick dead letters first.",
    "signed_in": "Signed in: dead-letter actions are available.",
    "signed_out": "Signed out.",
    "refused": "Wrong admin token.",
}

_SERIES = (("detected", "Detected"), ("sent", "Sent"), ("skipped", "Skipped"), ("dead", "Dead"))


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks at the page, which decides whether it offers actions."""

    #: An admin token is configured (else there are no actions and no sign-in form).
    admin_enabled: bool = False
    signed_in: bool = False
    csrf: str = ""  # the session's CSRF token, for the forms (signed in only)


def page(status: Mapping[str, Any], viewer: Viewer, now: float, done: str = "", count: int = 0) -> str:
    """The whole page."""
    source = _e(status.get("source", ""))
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>vicidial-cdc · {source}</title>"
        '<link rel="stylesheet" href="/static/page.css">'
        '<script src="/static/page.js" defer></script>'
        "</head><body>"
        f"<header><h1>vicidial-cdc <small>{source}</small></h1>{_account(viewer)}</header>"
        f"{_flash(done, count)}"
        f'<main id="main" data-refresh="/page/main">{main(status, viewer, now)}</main>'
        "</body></html>\n"
    )


def main(status: Mapping[str, Any], viewer: Viewer, now: float) -> str:
    """The part the page's script refreshes every few seconds."""
    return "".join(
        (
            _health(status),
            _leads(status.get("activity", {})),
            _endpoints(status.get("endpoints", [])),
            _dead_letters(status.get("dead_letters", {}), viewer),
            _vicidial(status.get("vicidial_sender", {}), status.get("mode", "")),
            _recent(status.get("recent_deliveries", [])),
            f'<footer>Updated <span id="updated">{_e(_clock(now))}</span> · '
            f'<a href="/status">/status</a> · <a href="/metrics">/metrics</a></footer>',
        )
    )


# -- sections ------------------------------------------------------------------------------


def _account(viewer: Viewer) -> str:
    if not viewer.admin_enabled:
        return '<p class="account">Read-only (no admin token configured).</p>'
    if viewer.signed_in:
        return (
            '<form class="account" method="post" action="/sign-out">'
            f'<input type="hidden" name="csrf" value="{_e(viewer.csrf)}">'
            '<button type="submit" id="sign-out">Sign out</button></form>'
        )
    return (
        '<form class="account" method="post" action="/sign-in">'
        '<label>Admin token <input type="password" name="token" id="admin-token" '
        'autocomplete="current-password" required></label>'
        '<button type="submit" id="sign-in">Sign in</button></form>'
    )


def _flash(done: str, count: int) -> str:
    message = DONE_MESSAGES.get(done)
    if message is None:
        return ""
    return f'<p class="flash" id="flash">{_e(message.format(n=count))}</p>'


def _health(s: Mapping[str, Any]) -> str:
    connected = bool(s.get("reader_connected"))
    fault = s.get("reader_fault")
    why = ""
    if fault:
        why = f"{fault.get('kind', '')}: {fault.get('message', '')}"
    elif not connected:
        causes = ", ".join(f"{k} x{v}" for k, v in sorted(s.get("reader_disconnects", {}).items()))
        why = f"reconnecting ({causes})" if causes else "connecting"
    state = "ok" if connected and not fault else "bad"
    fresh = "yes: no checkpoint was stored" if s.get("started_without_state") else "no"
    if s.get("started_without_state") and s.get("start_position"):
        fresh += f" (began at {s['start_position']})"
    rows = (
        (
            "Binlog",
            f"{'connected' if connected else 'not connected'}{' · ' + why if why else ''}",
            "connected",
        ),
        ("Database", s.get("database", ""), "database"),
        ("Position", s.get("checkpoint") or "none yet", "position"),
        ("Lag", f"{_num(s.get('lag_s', 0.0), 1)} s", "lag"),
        ("Mode", s.get("mode", ""), "mode"),
        ("Uptime", _age(float(s.get("uptime_s", 0.0))), "uptime"),
        ("Version", s.get("version", ""), "version"),
        ("Started without state", fresh, "fresh-start"),
    )
    body = "".join(
        f'<tr><th scope="row">{_e(label)}</th><td id="{key}">{_e(value)}</td></tr>'
        for label, value, key in rows
    )
    return f'<section id="health" class="{state}"><h2>Health</h2><table>{body}</table></section>'


def _leads(a: Mapping[str, Any]) -> str:
    since = a.get("since_start", {})
    hour = a.get("hour", {})
    day = a.get("day", {})
    head = (
        "<tr><th></th><th>Since start</th><th>Last hour</th><th>Last day</th>"
        "<th>Per minute, last hour</th></tr>"
    )
    body = ""
    for key, label in _SERIES:
        series = hour.get("per_minute", {}).get(key, [])
        body += (
            f'<tr><th scope="row">{label}</th><td id="total-{key}">{_int(since.get(key, 0))}</td>'
            f'<td id="hour-{key}">{_int(hour.get(key, 0))}</td>'
            f'<td id="day-{key}">{_int(day.get(key, 0))}</td>'
            f"<td>{_spark(series, f'{label} per minute, last hour')}</td></tr>"
        )
    reasons = since.get("skipped_by_reason", {})
    skipped = (
        "<p>Skipped since start, by reason: "
        + ", ".join(f'{_e(r)} <span id="skipped-{_e(r)}">{_int(n)}</span>' for r, n in reasons.items())
        + "</p>"
        if reasons
        else ""
    )
    day_charts = "".join(
        f"<figure><figcaption>{label}, last day</figcaption>"
        + _spark(day.get("per_minute", {}).get(key, []), f"{label} per minute, last day", width=480)
        + "</figure>"
        for key, label in _SERIES
    )
    return (
        f'<section id="leads"><h2>Leads</h2><table>{head}{body}</table>{skipped}'
        f'<div class="day">{day_charts}</div></section>'
    )


def _endpoints(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<section id="endpoints"><h2>Endpoints</h2><p>No endpoint has been used yet.</p></section>'
    head = (
        "<tr><th>Endpoint</th><th>State</th><th>In flight</th><th>Sent/min</th><th>p50</th><th>p95</th>"
        "<th>Backlog</th><th>Oldest waiting</th><th>Dead</th><th>Last error</th></tr>"
    )
    body = ""
    for r in rows:
        state = str(r.get("state", "ok"))
        if r.get("until"):
            state += f" until {_clock(float(r['until']))}"
        body += (
            f'<tr data-endpoint="{_e(r["endpoint_id"])}" class="{"ok" if r.get("state") == "ok" else "bad"}">'
            f'<td>{_e(r["endpoint_id"])}</td><td class="state">{_e(state)}</td>'
            f'<td class="in-flight">{_int(r.get("in_flight", 0))}</td>'
            f'<td class="rate">{_num(r.get("sent_per_min", 0.0), 1)}</td>'
            f"<td>{_ms(r.get('p50_s'))}</td><td>{_ms(r.get('p95_s'))}</td>"
            f'<td class="backlog">{_int(r.get("backlog", 0))}</td>'
            f"<td>{_age(float(r.get('oldest_waiting_s', 0.0)))}</td>"
            f'<td class="dead">{_int(r.get("dead", 0))}</td>'
            f'<td class="last-error">{_e(r.get("last_error") or "")}</td></tr>'
        )
    return f'<section id="endpoints"><h2>Endpoints</h2><table>{head}{body}</table></section>'


def _dead_letters(d: Mapping[str, Any], viewer: Viewer) -> str:
    total = int(d.get("total", 0))
    act = viewer.admin_enabled and viewer.signed_in
    csrf = f'<input type="hidden" name="csrf" value="{_e(viewer.csrf)}">' if act else ""
    out = f'<section id="dead-letters"><h2>Dead letters <span id="dead-total">{_int(total)}</span></h2>'
    if not total:
        return out + "<p>None: every delivery was accepted or is still being tried.</p></section>"
    if viewer.admin_enabled and not viewer.signed_in:
        out += "<p>Sign in with the admin token to retry or purge them.</p>"
    elif not viewer.admin_enabled:
        out += (
            "<p>Read-only: configure an admin token (http.admin_token_file or VICIDIAL_CDC_HTTP_ADMIN_TOKEN)"
            " to retry or purge here, or use <code>vicidial-cdc dlq</code>.</p>"
        )
    groups = ""
    for g in d.get("groups", []):
        groups += (
            f'<tr data-endpoint="{_e(g["endpoint_id"])}" data-reason="{_e(g["reason"])}">'
            f"<td>{_e(g['endpoint_id'])}</td><td>{_e(g['reason'])}</td>"
            f'<td class="count">{_int(g["count"])}</td></tr>'
        )
    out += (
        "<h3>By endpoint and reason</h3><table><tr><th>Endpoint</th><th>Reason</th><th>Count</th></tr>"
        f"{groups}</table>"
    )
    if act:
        for endpoint_id, n in d.get("by_endpoint", {}).items():
            out += (
                '<form class="endpoint-actions" method="post" action="/dead-letters">'
                f'{csrf}<input type="hidden" name="endpoint" value="{_e(endpoint_id)}">'
                f"<span>{_e(endpoint_id)}: {_int(n)}</span> "
                f'<button type="submit" name="action" value="retry" data-endpoint="{_e(endpoint_id)}" '
                f'class="retry-all">Retry all</button> '
                f'<button type="submit" name="action" value="purge" data-endpoint="{_e(endpoint_id)}" '
                'class="purge-all" data-confirm="Delete every dead letter of this endpoint?">'
                "Purge all</button>"
                "</form>"
            )
    recent = d.get("recent", [])
    has_url = any("url" in r for r in recent)
    head = (
        ("<th>Select</th>" if act else "")
        + "<th>Lead</th><th>List</th><th>Endpoint</th><th>Reason</th><th>Attempts</th><th>Dead for</th>"
        + ("<th>URL</th>" if has_url else "")
        + ("<th>Actions</th>" if act else "")
    )
    body = ""
    for r in recent:
        rid = int(r["id"])
        body += (
            f'<tr data-id="{rid}" data-lead="{_int(r["lead_id"])}">'
            + (
                f'<td><input type="checkbox" name="id" value="{rid}" aria-label="select {rid}"></td>'
                if act
                else ""
            )
            + f'<td class="lead">{_int(r["lead_id"])}</td><td>{_int(r["list_id"])}</td>'
            f"<td>{_e(r['endpoint_id'])}</td><td>{_e(r['reason'])}</td><td>{_int(r['attempts'])}</td>"
            f"<td>{_age(float(r['age_s']))}</td>"
            + (f'<td class="url">{_e(r.get("url", ""))}</td>' if has_url else "")
            + (
                f'<td><button type="submit" name="retry_one" value="{rid}" class="retry-one">Retry</button> '
                f'<button type="submit" name="purge_one" value="{rid}" class="purge-one" '
                'data-confirm="Delete this dead letter?">Purge</button></td>'
                if act
                else ""
            )
            + "</tr>"
        )
    table = f"<h3>Most recent</h3><table><tr>{head}</tr>{body}</table>"
    if act:
        table = (
            f'<form id="dead-selection" method="post" action="/dead-letters">{csrf}{table}'
            '<p><button type="submit" name="action" value="retry" id="retry-selected">'
            "Retry selected</button> "
            '<button type="submit" name="action" value="purge" id="purge-selected" '
            'data-confirm="Delete the selected dead letters?">Purge selected</button></p></form>'
        )
    return out + table + "</section>"


def _vicidial(v: Mapping[str, Any], mode: str) -> str:
    if mode == "send" and not v.get("attempts"):
        note = "<p>Mode send: the streamer sends every lead; VICIdial's own sender is not watched.</p>"
    else:
        note = ""
    rows = (
        ("Sends API New Lead URLs itself", "yes" if v.get("sends") else "no", "vicidial-sends"),
        ("Attempts seen (vicidial_url_log)", _int(v.get("attempts", 0)), "vicidial-attempts"),
        ("Failures", _int(v.get("failures", 0)), "vicidial-failures"),
        ("Re-sent by the streamer", _int(v.get("resent", 0)), "vicidial-resent"),
    )
    body = "".join(f'<tr><th scope="row">{_e(a)}</th><td id="{k}">{_e(b)}</td></tr>' for a, b, k in rows)
    return f'<section id="vicidial"><h2>VICIdial\'s own sender</h2>{note}<table>{body}</table></section>'


def _recent(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<section id="recent"><h2>Recent deliveries</h2><p>None since start.</p></section>'
    has_url = any("url" in r for r in rows)
    head = (
        "<tr><th>When</th><th>Lead</th><th>List</th><th>Endpoint</th><th>Outcome</th><th>Status</th>"
        "<th>Latency</th>" + ("<th>URL</th>" if has_url else "") + "</tr>"
    )
    body = ""
    for r in rows:
        outcome = str(r.get("outcome", ""))
        if r.get("error"):
            outcome += f" ({r['error']})"
        body += (
            f'<tr class="{_e(r.get("outcome", ""))}"><td>{_e(_clock(float(r["at"])))}</td>'
            f"<td>{_int(r['lead_id'])}</td><td>{_int(r['list_id'])}</td><td>{_e(r['endpoint_id'])}</td>"
            f"<td>{_e(outcome)}</td><td>{_int(r.get('status', 0)) if r.get('status') else '-'}</td>"
            f"<td>{_ms(r.get('latency_s'))}</td>"
            + (f'<td class="url">{_e(r.get("url") or "")}</td>' if has_url else "")
            + "</tr>"
        )
    return f'<section id="recent"><h2>Recent deliveries</h2><table>{head}{body}</table></section>'


# -- formatting ----------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _int(value: object) -> str:
    return str(int(value))  # type: ignore[call-overload]


def _num(value: object, digits: int) -> str:
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def _ms(value: object) -> str:
    if value is None:
        return "-"
    return f"{float(value) * 1000:.0f} ms"  # type: ignore[arg-type]


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(ts))


def _age(seconds: float) -> str:
    """3 s, 4 min, 2 h 5 min, 3 d 4 h."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _spark(values: Iterable[int], label: str, *, width: int = 240, height: int = 28) -> str:
    """A per-minute line chart as inline SVG (no script, no style attribute)."""
    points = list(values)
    if not points:
        return ""
    top = max(max(points), 1)
    step = width / max(len(points) - 1, 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(points)
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(label)}, highest {top}"><title>{_e(label)} (highest {top})</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/></svg>'
    )

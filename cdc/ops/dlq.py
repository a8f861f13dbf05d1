"""``vicidial-cdc dlq list|show|retry|purge``: the dead deliveries of the state file.

Rows made pending again are picked up by the running streamer itself, whose sender looks
at the outbox's next due time at least once a second; writes go in short batches next to
it (:mod:`cdc.ops.statefile`).

Nothing here prints a full delivery URL unless asked (``dlq show --show-url``): the
query string carries the lead's personal data, and the path often holds the receiver's
own secret (``/hooks/<token>``), so tables and JSON show the host and lead id only, and
the path with ``--show-path``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..config import Config
from ..errors import ExitCode
from ..store import DeadLetters, DeliveryRecord, DeliveryState, SqliteStore
from .output import json_text, text_table
from .statefile import open_store

__all__ = [
    "DeadSelector",
    "dead_row",
    "dlq_command",
    "render_dead_table",
    "render_delivery",
    "select_dead",
    "url_host_path",
    "write_summary",
]


@dataclass(frozen=True, slots=True)
class DeadSelector:
    """Which dead deliveries a ``dlq`` command acts on: every given filter must match."""

    ids: tuple[int, ...] = ()
    endpoint_id: str | None = None
    lead_ids: tuple[int, ...] = ()
    older_than_s: float | None = None
    all: bool = False

    def is_empty(self) -> bool:
        return not (self.ids or self.endpoint_id or self.lead_ids or self.older_than_s is not None)

    def older_than(self, now: float) -> float | None:
        """The ``updated_at`` bound (the time the row went dead) for the store's filters."""
        return None if self.older_than_s is None else now - self.older_than_s

    def matches(self, record: DeliveryRecord, now: float) -> bool:
        bound = self.older_than(now)
        return (
            record.state is DeliveryState.DEAD
            and (self.endpoint_id is None or record.delivery.endpoint_id == self.endpoint_id)
            and (not self.lead_ids or record.delivery.lead_id in self.lead_ids)
            and (bound is None or record.updated_at < bound)
        )


def select_dead(store: DeadLetters, selector: DeadSelector, now: float, limit: int) -> list[DeliveryRecord]:
    """Dead rows matching ``selector``, oldest id first, at most ``limit``."""
    if selector.ids:
        found = (store.get(delivery_id) for delivery_id in sorted(set(selector.ids)))
        return [r for r in found if r is not None and selector.matches(r, now)][:limit]
    records: dict[int, DeliveryRecord] = {}
    for lead_id in selector.lead_ids or (None,):
        for record in store.list_dead(
            endpoint_id=selector.endpoint_id,
            lead_id=lead_id,
            older_than=selector.older_than(now),
            limit=limit,
        ):
            records[record.id] = record
    return [records[i] for i in sorted(records)][:limit]


def _apply(action: Callable[..., int], selector: DeadSelector, now: float) -> int:
    """Run ``retry_dead``/``purge_dead`` once per lead id (the store takes one)."""
    older_than = selector.older_than(now)
    if selector.all and selector.is_empty():
        older_than = now + 1.0  # every dead row (the store wants at least one filter)
    changed = 0
    for lead_id in selector.lead_ids or (None,):
        changed += action(
            ids=sorted(set(selector.ids)) or None,
            endpoint_id=selector.endpoint_id,
            lead_id=lead_id,
            older_than=older_than,
        )
    return changed


def dead_row(record: DeliveryRecord, *, show_path: bool = False, show_url: bool = False) -> dict[str, Any]:
    """One delivery as a JSON object: URL host only; the path with ``show_path``, all with ``show_url``."""
    d = record.delivery
    host, path = url_host_path(d.url)
    doc: dict[str, Any] = {
        "id": record.id,
        "state": record.state.value,
        "source": d.source,
        "endpoint_id": d.endpoint_id,
        "lead_id": d.lead_id,
        "list_id": d.list_id,
        "method": d.method,
        "url_host": host,
        "url_source": d.url_source.value,
        "idempotency_key": d.idempotency_key,
        "attempts": record.attempts,
        "last_status": record.last_status,
        "last_error": record.last_error,
        "inserted_at": d.inserted_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "dead_since": record.updated_at if record.state is DeliveryState.DEAD else None,
        "dead_since_utc": _utc_time(record.updated_at) if record.state is DeliveryState.DEAD else None,
        "next_attempt_at": record.next_attempt_at,
        "delivered_at": record.delivered_at,
        "body_bytes": len(d.body),
    }
    if show_path or show_url:
        doc["url_path"] = path
    if show_url:
        doc["url"] = d.url
    return doc


def render_dead_table(records: Sequence[DeliveryRecord], total_dead: int, *, show_path: bool = False) -> str:
    """The ``dlq list`` table: the URL's host (with its path when ``show_path``), never its query."""
    rows = []
    for r in records:
        host, path = url_host_path(r.delivery.url)
        rows.append(
            [
                r.id,
                r.delivery.endpoint_id,
                r.delivery.lead_id,
                r.attempts,
                r.last_status or "-",
                (r.last_error or "-")[:24],
                _local_time(r.updated_at),
                f"{host}{path}" if show_path else host,
            ]
        )
    where = "URL" if show_path else "HOST"
    header = ["ID", "ENDPOINT", "LEAD_ID", "ATTEMPTS", "LAST_STATUS", "LAST_ERROR", "DEAD SINCE", where]
    text = "no matching dead deliveries\n"
    if rows:
        text = text_table(header, rows, frozenset({0, 2, 3, 4})) + "\n"
    return text + f"{len(records)} shown; {total_dead} dead in total\n"


def render_delivery(doc: dict[str, Any]) -> str:
    order = [
        ("id", "id"),
        ("state", "state"),
        ("source", "source"),
        ("endpoint", "endpoint_id"),
        ("lead_id", "lead_id"),
        ("list_id", "list_id"),
        ("method", "method"),
        ("url host", "url_host"),
        ("url path", "url_path"),
        ("url", "url"),
        ("url source", "url_source"),
        ("idempotency key", "idempotency_key"),
        ("attempts", "attempts"),
        ("last status", "last_status"),
        ("last error", "last_error"),
    ]
    lines = [f"{label + ':':<17}{doc[key]}" for label, key in order if key in doc]
    for label, key in (
        ("lead inserted", "inserted_at"),
        ("stored", "created_at"),
        ("dead since", "dead_since"),
        ("next attempt", "next_attempt_at"),
        ("delivered", "delivered_at"),
    ):
        if key == "next_attempt_at" and doc["state"] != DeliveryState.PENDING.value:
            continue
        if doc.get(key):
            lines.append(f"{label + ':':<17}{_local_time(doc[key])}")
    if "url" not in doc:
        hidden = "query string" if "url_path" in doc else "path and query string"
        lines.append(
            f"{'':<17}({hidden} hidden: they may carry personal data or the receiver's secret;"
            " --show-path prints the path, --show-url all)"
        )
    return "\n".join(lines) + "\n"


def dlq_command(
    config: Config,
    action: str,
    selector: DeadSelector,
    *,
    out: TextIO,
    err: TextIO,
    now: float,
    as_json: bool = False,
    show_path: bool = False,
    show_url: bool = False,
    yes: bool = False,
    limit: int = 100,
) -> int:
    """``vicidial-cdc dlq list|show|retry|purge``; returns the exit code."""
    if action in ("retry", "purge") and selector.is_empty() and not selector.all:
        err.write(
            f"vicidial-cdc: dlq {action} needs a selector: --id, --endpoint, --lead-id,"
            " --older-than, or --all\n"
        )
        return ExitCode.USAGE
    if action == "show" and len(selector.ids) != 1:
        err.write("vicidial-cdc: dlq show needs exactly one --id\n")
        return ExitCode.USAGE
    store = open_store(config)
    try:
        if action == "list":
            records = select_dead(store, selector, now, limit)
            total = sum(c.dead for c in store.counts())
            if as_json:
                rows = [dead_row(r, show_path=show_path) for r in records]
                out.write(json_text({"dead": rows, "total_dead": total}))
            else:
                out.write(render_dead_table(records, total, show_path=show_path))
            return ExitCode.OK
        if action == "show":
            record = store.get(selector.ids[0])
            if record is None:
                err.write(f"vicidial-cdc: no delivery with id {selector.ids[0]}\n")
                return ExitCode.ERROR
            doc = dead_row(record, show_path=show_path, show_url=show_url)
            if as_json:
                out.write(json_text(doc))
            else:
                out.write(render_delivery(doc))
            return ExitCode.OK
        if action == "retry":
            started = time.monotonic()
            changed = _apply(functools.partial(store.retry_dead, now), selector, now)
            out.write(
                f"{changed} dead deliveries back to pending; a running streamer sends them"
                " within about a second\n"
            )
            err.write(f"vicidial-cdc: {write_summary(store, started, time.monotonic())}\n")
            return ExitCode.OK
        if action == "purge":
            if not yes:
                matching = len(select_dead(store, selector, now, limit=10_000_000))
                err.write(
                    f"vicidial-cdc: dlq purge would delete {matching} dead deliveries for good;"
                    " add --yes to delete them\n"
                )
                return ExitCode.USAGE
            started = time.monotonic()
            deleted = _apply(store.purge_dead, selector, now)
            store.truncate_wal()  # erased from the -wal file too (the streamer retries if busy)
            out.write(f"{deleted} dead deliveries deleted\n")
            err.write(f"vicidial-cdc: {write_summary(store, started, time.monotonic())}\n")
            return ExitCode.OK
    finally:
        store.close()
    err.write(f"vicidial-cdc: unknown dlq action {action!r}\n")
    return ExitCode.USAGE


def url_host_path(url: str) -> tuple[str, str]:
    """``(host[:port], path)`` of a URL: no credentials, no query string, no fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "", ""
    if ":" in host:
        host = f"[{host}]"
    return (f"{host}:{port}" if port else host), parts.path


def write_summary(store: SqliteStore, started: float, now: float) -> str:
    """What a command's writes cost: for the operator, and for whoever watches the streamer."""
    stats = store.statistics()
    return (
        f"{stats.writes} write transactions in {now - started:.1f} s; longest write lock"
        f" held {stats.longest_write_s * 1000:.0f} ms; waited for the lock at most"
        f" {stats.longest_lock_wait_s * 1000:.0f} ms"
    )


def _local_time(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return _dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _utc_time(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

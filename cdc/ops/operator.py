"""Operator commands: ``status`` and ``dlq`` (the dead letters).

Both open the state file the streamer writes (``state.path`` of the same ``--config``
file the service runs with; a missing file is an error, never a new outbox), each
with its own SQLite connection. The store is single-writer by design, but WAL mode
and batched writes make ``dlq retry``/``purge`` safe next to a running streamer, however
many rows they change: each batch of :data:`~cdc.store.OPERATOR_BATCH_ROWS` is its own
short transaction, and the streamer's writes wait out the gaps. Rows made pending
again are picked up by the streamer itself, whose sender looks at the outbox's next
due time at least once a second.

Nothing here prints a full delivery URL unless asked (``dlq show --show-url``): the
query string carries the lead's personal data, and the path often holds the receiver's
own secret (``/hooks/<token>``), so tables and JSON show the host and lead id only, and
the path with ``--show-path``. Run these commands as the service user, so the state file keeps its owner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import pymysql

from ..config import Config
from ..duration import parse_duration
from ..errors import CdcError, ConfigError, ExitCode
from ..reader import library as binlog
from ..records import Position
from ..store import DeadLetters, DeliveryRecord, DeliveryState, EndpointCounts, SqliteStore

__all__ = [
    "DeadSelector",
    "Lag",
    "ServerState",
    "binlog_lag",
    "dlq_command",
    "open_store",
    "parse_duration",
    "status_command",
    "url_host_path",
    "write_summary",
]


#: A CLI write waits this long for the streamer's write lock.
CLI_BUSY_TIMEOUT_S: Final = 10.0
#: How long ``status`` waits for the streamer's HTTP ``/status``.
STREAMER_TIMEOUT_S: Final = 2.0


# -- shared helpers ---------------------------------------------------------------------


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


def open_store(config: Config, *, create: bool = False) -> SqliteStore:
    """Open the streamer's state file; without ``create``, a missing file is a
    :class:`ConfigError` (exit 2): a wrong ``--config`` must not start a second outbox."""
    path = Path(config.state.path)
    if not create and not path.exists():
        raise ConfigError(
            f"no state file at {path.absolute()}: state.path (from --config, or"
            " VICIDIAL_CDC_STATE_PATH) must name the running streamer's file; give the"
            " --config file the service runs with (the streamer creates its file when it"
            " first runs; `replay --create-state` starts a new one on purpose)"
        )
    store = SqliteStore(path, busy_timeout_s=CLI_BUSY_TIMEOUT_S, busy_limit_s=config.state.busy_limit_s)
    store.open()
    return store


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


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], right: frozenset[int]) -> str:
    cells = [list(header), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _dump_json(doc: object, out: TextIO) -> None:
    out.write(json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


# -- status -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerState:
    """What ``status`` could learn from the VICIdial database server."""

    reachable: bool
    position: Position | None = None
    binlogs: tuple[tuple[str, int], ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class Lag:
    """How far the checkpoint is behind the server's current binlog position."""

    bytes: int
    files: int
    #: The checkpoint's binlog file is no longer on the server (see ``run``'s error).
    purged: bool = False


def binlog_lag(checkpoint: Position, current: Position, binlogs: Sequence[tuple[str, int]]) -> Lag:
    """Bytes and files from ``checkpoint`` to ``current``, from ``SHOW BINARY LOGS`` sizes."""
    names = [name for name, _ in binlogs]
    if checkpoint.file not in names:
        return Lag(bytes=0, files=0, purged=True)
    if current.file not in names or checkpoint.file == current.file:
        return Lag(bytes=max(0, current.pos - checkpoint.pos), files=0)
    first, last = names.index(checkpoint.file), names.index(current.file)
    if last < first:
        return Lag(bytes=0, files=0)
    sizes = dict(binlogs)
    behind = sizes[checkpoint.file] - checkpoint.pos
    behind += sum(sizes[name] for name in names[first + 1 : last])
    return Lag(bytes=max(0, behind + current.pos), files=last - first)


def read_server(config: Config) -> ServerState:
    """The server's current binlog position and files, or why they cannot be read."""
    try:
        with contextlib.closing(binlog.connect(config.mysql, autocommit=True)) as conn:
            return ServerState(
                reachable=True,
                position=binlog.current_position(conn),
                binlogs=tuple(binlog.server_binlogs(conn)),
            )
    except (CdcError, pymysql.MySQLError, OSError) as exc:
        return ServerState(reachable=False, error=str(exc))


def read_streamer(config: Config, timeout_s: float = STREAMER_TIMEOUT_S) -> dict[str, Any] | None:
    """The running streamer's ``/status`` document, or None when it does not answer."""
    try:
        host, port = config.http.host_port()
    except ConfigError:
        return None
    if port == 0:
        return None
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=timeout_s) as response:
            doc = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def status_report(
    config: Config,
    checkpoint: Position | None,
    counts: Sequence[EndpointCounts],
    server: ServerState,
    streamer: dict[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The ``status --json`` document (the text output renders the same fields)."""
    lag: dict[str, Any] | None = None
    if checkpoint is not None and server.position is not None:
        lag = dataclasses.asdict(binlog_lag(checkpoint, server.position, server.binlogs))
        if lag["purged"]:
            lag["message"] = binlog.purged_message(checkpoint, [name for name, _ in server.binlogs])
    endpoints = [
        {
            "endpoint_id": c.endpoint_id,
            "pending": c.pending,
            "in_flight": c.in_flight,
            "dead": c.dead,
            "delivered": c.delivered,
            "oldest_pending_age_s": (
                round(max(0.0, now - c.oldest_pending_created_at), 3)
                if c.oldest_pending_created_at is not None
                else None
            ),
        }
        for c in counts
    ]
    ages = [e["oldest_pending_age_s"] for e in endpoints if e["oldest_pending_age_s"] is not None]
    return {
        "source": config.mysql.source_name,
        "state_path": config.state.path,
        "checkpoint": _position_doc(checkpoint),
        "server": {
            "reachable": server.reachable,
            "address": f"{config.mysql.host}:{config.mysql.port}",
            "position": _position_doc(server.position),
            "binlog_files": len(server.binlogs),
            "error": server.error or None,
        },
        "lag": lag,
        "endpoints": endpoints,
        "totals": {
            "pending": sum(c.pending for c in counts),
            "in_flight": sum(c.in_flight for c in counts),
            "dead": sum(c.dead for c in counts),
            "delivered": sum(c.delivered for c in counts),
            "oldest_pending_age_s": max(ages) if ages else None,
        },
        "streamer": streamer,
    }


def _position_doc(position: Position | None) -> dict[str, Any] | None:
    if position is None:
        return None
    return {"file": position.file, "pos": position.pos, "gtid": position.gtid or None}


def render_status(doc: dict[str, Any]) -> str:
    """The text form of :func:`status_report`."""
    lines = [f"source:      {doc['source']}", f"state file:  {doc['state_path']}"]
    ckpt = doc["checkpoint"]
    if ckpt is None:
        lines.append("checkpoint:  none yet (the streamer has not stored a position)")
    else:
        gtid = f"  gtid {ckpt['gtid']}" if ckpt["gtid"] else ""
        lines.append(f"checkpoint:  {ckpt['file']}:{ckpt['pos']}{gtid}")
    server = doc["server"]
    if server["reachable"]:
        pos = server["position"]
        lines.append(f"server:      {pos['file']}:{pos['pos']}  ({server['address']})")
    else:
        lines.append(
            f"server:      not reachable ({server['address']}): {server['error']}; showing local state only"
        )
    lag = doc["lag"]
    if lag is not None:
        if lag["purged"]:
            lines.append(f"lag:         CHECKPOINT BINLOG PURGED: {lag['message']}")
        else:
            lines.append(f"lag:         {lag['bytes']} bytes, {lag['files']} binlog file(s) behind")
    lines.append("outbox:")
    if doc["endpoints"]:
        rows = [
            [
                e["endpoint_id"],
                e["pending"],
                e["in_flight"],
                e["dead"],
                e["delivered"],
                "-" if e["oldest_pending_age_s"] is None else _age(e["oldest_pending_age_s"]),
            ]
            for e in doc["endpoints"]
        ]
        header = ["ENDPOINT", "PENDING", "IN_FLIGHT", "DEAD", "DELIVERED", "OLDEST_PENDING"]
        table = _table(header, rows, frozenset({1, 2, 3, 4, 5}))
        lines.extend("  " + line for line in table.splitlines())
    else:
        lines.append("  (empty)")
    streamer = doc["streamer"]
    if streamer is None:
        lines.append("streamer:    HTTP /status not reachable at http.listen (not running, or elsewhere)")
    else:
        lines.append(
            f"streamer:    running; reader_connected={streamer.get('reader_connected')}"
            f" lag_s={streamer.get('lag_s')} checkpoint={streamer.get('checkpoint')}"
            f" leads={streamer.get('leads')}"
        )
    return "\n".join(lines) + "\n"


def status_command(
    config: Config,
    *,
    as_json: bool,
    out: TextIO,
    now: float,
    server_reader: Callable[[Config], ServerState] = read_server,
    streamer_reader: Callable[[Config], dict[str, Any] | None] = read_streamer,
) -> int:
    """``vicidial-cdc status``: local state always; the server's when it answers."""
    store = open_store(config)
    try:
        checkpoint = store.load_checkpoint()
        counts = store.counts()
    finally:
        store.close()
    doc = status_report(config, checkpoint, counts, server_reader(config), streamer_reader(config), now)
    if as_json:
        _dump_json(doc, out)
    else:
        out.write(render_status(doc))
    return ExitCode.OK


# -- dlq ----------------------------------------------------------------------------------


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
    text = _table(header, rows, frozenset({0, 2, 3, 4})) + "\n" if rows else "no matching dead deliveries\n"
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
                _dump_json({"dead": rows, "total_dead": total}, out)
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
                _dump_json(doc, out)
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

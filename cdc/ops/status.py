"""``vicidial-cdc status``: the checkpoint, the server's position and the lag, the outbox
per endpoint, and the running streamer's own ``/status`` when it answers.

Local state always comes from the state file (:func:`cdc.ops.statefile.open_store`); the
server and the streamer are asked, and their absence is shown, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

import pymysql

from ..config import Config
from ..errors import CdcError, ConfigError, ExitCode
from ..reader.connection import connect
from ..reader.position import current_position, purged_message, server_binlogs
from ..records import Position
from ..store import EndpointCounts
from .output import json_text, text_table
from .statefile import open_store

__all__ = [
    "Lag",
    "ServerState",
    "binlog_lag",
    "read_server",
    "read_streamer",
    "render_status",
    "status_command",
    "status_report",
]

#: How long ``status`` waits for the streamer's HTTP ``/status``.
STREAMER_TIMEOUT_S: Final = 2.0


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
        with contextlib.closing(connect(config.mysql, autocommit=True)) as conn:
            return ServerState(
                reachable=True,
                position=current_position(conn),
                binlogs=tuple(server_binlogs(conn)),
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
            lag["message"] = purged_message(checkpoint, [name for name, _ in server.binlogs])
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
        table = text_table(header, rows, frozenset({1, 2, 3, 4, 5}))
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
        out.write(json_text(doc))
    else:
        out.write(render_status(doc))
    return ExitCode.OK


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"

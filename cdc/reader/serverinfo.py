"""What the database server can change across a restart, read at every (re)connect.

A restart may come back with another ``character_set_server`` (VICIdial's connection
charset with ``use_non_latin=0``, so the bytes of every URL), other binlog settings, or
as another server altogether (a restored backup, a promoted replica on the same
address). :func:`read_facts` reads them on the reader's control connection;
:func:`continuity` decides, without I/O, whether the stream can go on from the
checkpoint: the same server, a server that holds our history under the same GTIDs
(continue by GTID), or a different one (stop, with the recovery steps).

How a different server shows, strongest signal first:

- ``server_uuid`` (MySQL) or ``server_id`` differs from the one the state recorded;
- the checkpoint's binlog file is on the server but shorter than the checkpoint, or
  every binlog file on the server is older than it (a reset or fresh history; a purge
  leaves newer files);
- the server's last GTID of the checkpoint's domain is older than the checkpoint's.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pymysql

from ..records import Position

#: Variables read at every connect (absent ones are "": older servers, MariaDB vs MySQL).
_VARIABLES = (
    "character_set_server",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "server_id",
    "server_uuid",
    "gtid_binlog_pos",
    "gtid_binlog_state",
    "gtid_domain_id",
    "log_bin_compress",
    "binlog_transaction_compression",
    "version",
)
_GTID_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")


#: The variables that set how long the server keeps a binlog file, newest name first.
RETENTION_VARIABLES = ("binlog_expire_logs_seconds", "expire_logs_days")


def binlog_retention_s(variables: Mapping[str, str]) -> float | None:
    """Seconds a binlog file is kept (0: never purged); ``None`` when neither variable is known.

    ``binlog_expire_logs_seconds`` wins when non-zero; when it is 0 or absent,
    ``expire_logs_days`` still purges (MySQL 8 honours it then), so it is not read as "never".
    """
    known: dict[str, float] = {}
    for name in RETENTION_VARIABLES:
        with contextlib.suppress(KeyError, ValueError):
            known[name] = float(variables[name] or 0)
    if not known:
        return None
    seconds = known.get("binlog_expire_logs_seconds", 0.0)
    return seconds if seconds > 0 else known.get("expire_logs_days", 0.0) * 86400


#: The state store meta key under which the service keeps the :class:`ServerIdentity` it streams from.
META_KEY = "server_identity"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What tells one server from another; recorded in the state store's ``meta`` table."""

    server_id: int
    #: MySQL's ``server_uuid`` (``auto.cnf`` in its datadir); "" on MariaDB, which has none.
    server_uuid: str = ""

    def to_json(self) -> str:
        return json.dumps({"server_id": self.server_id, "server_uuid": self.server_uuid})

    @classmethod
    def from_json(cls, text: str) -> ServerIdentity:
        data = json.loads(text)
        return cls(int(data["server_id"]), str(data.get("server_uuid", "")))

    def __str__(self) -> str:
        return f"server_id={self.server_id}" + (
            f" server_uuid={self.server_uuid}" if self.server_uuid else ""
        )


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """One reading of the server's restart-changeable settings and identity."""

    identity: ServerIdentity
    character_set_server: str
    binlog_format: str
    binlog_row_image: str
    binlog_row_metadata: str
    #: MariaDB ``gtid_binlog_pos`` / ``gtid_binlog_state`` ("" on MySQL).
    gtid_binlog_pos: str
    gtid_binlog_state: str
    gtid_domain_id: str
    #: ``log_bin_compress`` (MariaDB) or ``binlog_transaction_compression`` (MySQL 8) is on.
    compression: bool
    version: str
    #: ``SHOW BINARY LOGS``: (name, size) in creation order.
    binlogs: tuple[tuple[str, int], ...]

    @property
    def first_binlog(self) -> str:
        return self.binlogs[0][0] if self.binlogs else ""

    def settings_summary(self) -> str:
        """The settings a log line names (never values of rows)."""
        return (
            f"character_set_server={self.character_set_server} binlog_format={self.binlog_format} "
            f"binlog_row_image={self.binlog_row_image} "
            f"binlog_row_metadata={self.binlog_row_metadata or 'n/a'}"
        )


def read_facts(conn: pymysql.Connection[Any]) -> ServerFacts:
    """Read :class:`ServerFacts` (``SHOW GLOBAL VARIABLES`` and ``SHOW BINARY LOGS``)."""
    names = ", ".join(f"'{n}'" for n in _VARIABLES)
    with conn.cursor() as cur:
        cur.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
        found = {str(k).lower(): "" if v is None else str(v) for k, v in cur.fetchall()}
        cur.execute("SHOW BINARY LOGS")
        logs = tuple((str(r[0]), int(r[1])) for r in cur.fetchall())
    return facts_from_variables(found, logs)


def facts_from_variables(found: Mapping[str, str], logs: tuple[tuple[str, int], ...]) -> ServerFacts:
    def get(name: str) -> str:
        return found.get(name, "")

    server_id = get("server_id")
    return ServerFacts(
        identity=ServerIdentity(int(server_id) if server_id.isdigit() else 0, get("server_uuid")),
        character_set_server=get("character_set_server"),
        binlog_format=get("binlog_format").upper(),
        binlog_row_image=get("binlog_row_image").upper(),
        binlog_row_metadata=get("binlog_row_metadata").upper(),
        gtid_binlog_pos=get("gtid_binlog_pos"),
        gtid_binlog_state=get("gtid_binlog_state"),
        gtid_domain_id=get("gtid_domain_id"),
        compression=get("log_bin_compress").upper() == "ON"
        or get("binlog_transaction_compression").upper() == "ON",
        version=get("version"),
        binlogs=logs,
    )


class Verdict(enum.StrEnum):
    SAME = "same"  # the server we followed: go on from the checkpoint's file:pos
    GTID = "gtid"  # another server holding our history: go on from the checkpoint's GTID
    CHANGED = "changed"  # another server: stop; the operator decides where to start


@dataclass(frozen=True, slots=True)
class Continuity:
    verdict: Verdict
    #: Why (for the log line and the message); "" when the same server.
    reason: str = ""


def _gtid_parts(gtid: str) -> tuple[int, int, int] | None:
    m = _GTID_RE.match(gtid.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def _gtid_list(text: str) -> list[tuple[int, int, int]]:
    return [p for p in (_gtid_parts(g) for g in text.split(",")) if p is not None]


def continuity(
    recorded: ServerIdentity | None, checkpoint: Position | None, facts: ServerFacts
) -> Continuity:
    """Can the stream go on from ``checkpoint`` on the server ``facts`` describes?

    ``recorded``: the identity of the server the checkpoint was read from (``None``:
    unknown, a state written before identities were recorded; only the binlog checks
    then apply).
    """
    reasons: list[str] = []
    if recorded is not None:
        if (
            recorded.server_uuid
            and facts.identity.server_uuid
            and recorded.server_uuid != facts.identity.server_uuid
        ):
            reasons.append(
                f"server_uuid is {facts.identity.server_uuid}, the state follows {recorded.server_uuid}"
            )
        if recorded.server_id and facts.identity.server_id != recorded.server_id:
            reasons.append(f"server_id is {facts.identity.server_id}, the state follows {recorded.server_id}")
    if checkpoint is not None and checkpoint.file and facts.binlogs:
        sizes = dict(facts.binlogs)
        size = sizes.get(checkpoint.file)
        if size is not None and size < checkpoint.pos:
            reasons.append(
                f"binlog {checkpoint.file} is {size} bytes, shorter than the checkpoint {checkpoint}"
            )
        elif recorded is not None and size is None and all(name < checkpoint.file for name in sizes):
            # (Without a recorded server, a checkpoint file the server lacks stays a purge.)
            reasons.append(
                f"every binlog on the server ({facts.binlogs[0][0]} .. {facts.binlogs[-1][0]}) is older "
                f"than the checkpoint's {checkpoint.file}"
            )
    gtid = checkpoint.gtid if checkpoint is not None else ""
    ours = _gtid_parts(gtid)
    held = _gtid_list(facts.gtid_binlog_state)
    if ours is not None and facts.gtid_binlog_pos:
        domain, _, seq = ours
        last = [s for d, _, s in _gtid_list(facts.gtid_binlog_pos) if d == domain]
        if last and last[0] < seq:
            reasons.append(
                f"the server's last GTID of domain {domain} ({last[0]}) is older than the checkpoint's {gtid}"
            )
    if not reasons:
        return Continuity(Verdict.SAME)
    reason = "; ".join(reasons)
    # Sound only on a server that holds our GTIDs as a replica does: written by another
    # server_id. The same server_id with a broken binlog is a restore or a clone, whose
    # GTIDs may repeat ours for other transactions.
    if (
        ours is not None
        and ours[1] != facts.identity.server_id
        and any(d == ours[0] and s == ours[1] and n >= ours[2] for d, s, n in held)
    ):
        return Continuity(Verdict.GTID, reason)
    return Continuity(Verdict.CHANGED, reason)


def changed_message(reason: str, checkpoint: Position | None, state_path: str) -> str:
    """The SERVER_CHANGED message: what was seen and the recovery steps."""
    where = (
        f" (checkpoint {checkpoint}{', GTID ' + checkpoint.gtid if checkpoint and checkpoint.gtid else ''})"
    )
    return (
        f"the database server is not the one the state follows{where}: {reason}. A restored backup "
        "or a promoted replica has another binlog history, so the checkpoint means nothing there. "
        "Recover: 1) stop vicidial-cdc; 2) if this is the right server now, send what the old one had not "
        "streamed with 'vicidial-cdc replay --since <time of the last delivered lead>'; 3) start from "
        "this server with 'vicidial-cdc run --start current' (or a FILE:POS / GTID on it), which records "
        f"the new server in {state_path}. If the address points at the wrong server, fix [mysql] host/port "
        "instead and restart"
    )

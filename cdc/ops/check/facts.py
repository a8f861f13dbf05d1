"""The facts ``vicidial-cdc check`` judges, read from the server and the state file.

The only I/O of the check: SHOW statements and SELECTs with the configured credentials
(nothing written), and the state file opened like every operator command opens it.
Each result is a frozen record; :mod:`.rules` judges them without a server.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pymysql

from ... import statelock, vicidb, vicidial
from ...config import Config, MysqlConfig
from ...errors import CdcError, SchemaError, SourceError
from ...hooks.configured import SETTING_COLUMNS, AltRow
from ...reader import serverinfo
from ...reader.connection import connect
from ...records import Position
from ..statefile import open_store
from .grants import Grant, is_harmless_grant_line, parse_grant
from .hooks import HookFacts

__all__ = ["ServerFacts", "StateFacts", "gather_facts", "gather_state"]

_T = TypeVar("_T")

#: Global variables read (absent from the result when the server does not have them).
_VARIABLES = (
    "version",
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "binlog_expire_logs_seconds",
    "expire_logs_days",
    "max_binlog_total_size",
    "server_id",
    "log_bin_compress",
    "binlog_transaction_compression",
)
_ER_PARSE = 1064
_CLIENT_ERRORS = 2000  # CR_* codes: the connection itself failed


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the checks need to know about the server, gathered once by SQL."""

    #: ``CURRENT_USER()``, e.g. ``vicidial_cdc@%``.
    account: str
    #: Global variables by lower-case name; a variable the server lacks is absent.
    variables: Mapping[str, str]
    grants: tuple[Grant, ...]
    #: ``Server_id`` of every replica in ``SHOW SLAVE HOSTS``; ``None`` when not allowed.
    replica_server_ids: tuple[int, ...] | None
    #: The database the config names (``[mysql] database``).
    database: str
    #: Tables of ``database`` this account can see in ``information_schema``.
    tables: frozenset[str]
    #: Labels of the ``vicidial_url_multi.url_type`` ENUM; ``None`` when not visible.
    url_type_labels: tuple[str, ...] | None
    #: The settings SELECTs (as the service runs them); ``None`` when they failed.
    settings: vicidb.SettingsRows | None
    #: ``vicidial_lists_fields`` rows (also read alone when other settings are not readable).
    field_rows: tuple[vicidb.Row, ...] | None = None
    replica_hosts_error: str = ""
    settings_error: str = ""
    #: ``SHOW GRANTS`` lines that are neither understood privileges nor role grants.
    unparsed_grants: int = 0
    #: This session's ``Ssl_cipher`` and ``Ssl_version`` ("": not encrypted).
    ssl_cipher: str = ""
    ssl_version: str = ""
    #: The hook URL settings of campaigns, in-groups, lists and ALT rows (:mod:`.hooks`).
    hooks: HookFacts = field(default_factory=HookFacts)

    @property
    def version(self) -> str:
        return self.variables.get("version", "")


@dataclass(frozen=True, slots=True)
class StateFacts:
    """The state file: whether it exists, who runs on it, which server it follows."""

    path: Path
    exists: bool
    #: The streamer holding the state file's lock, as :func:`cdc.statelock.held_by` says.
    holder: str | None = None
    checkpoint: Position | None = None
    #: The server identity the state file recorded (``None``: none yet).
    recorded: serverinfo.ServerIdentity | None = None
    #: The server answering now; ``None`` when the state or the server could not be read.
    server: serverinfo.ServerFacts | None = None
    #: Why the state or the server could not be read.
    error: str = ""


def gather_facts(mysql: MysqlConfig) -> ServerFacts:
    """Connect and read everything :func:`evaluate` needs (SHOW, SELECT; nothing written).

    Raises :class:`~cdc.errors.SourceError` when the connection fails or breaks; a
    statement the account may not run is recorded as a fact instead.
    """
    conn = connect(mysql, autocommit=True)
    try:
        return _gather(conn, mysql.database)
    except pymysql.MySQLError as exc:
        raise SourceError(
            f"lost the connection to {mysql.host}:{mysql.port} during the checks: {exc.args[-1]}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _gather(conn: pymysql.Connection[Any], database: str) -> ServerFacts:
    placeholders = ", ".join(["%s"] * len(_VARIABLES))
    variables = {
        str(name).lower(): "" if value is None else str(value)
        for name, value in _rows(
            conn, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", _VARIABLES
        )
    }
    account = str(_rows(conn, "SELECT CURRENT_USER()")[0][0])
    grants: list[Grant] = []
    unparsed = 0
    for (line,) in _rows(conn, "SHOW GRANTS"):
        text = str(line)
        grant = parse_grant(text)
        if grant is not None:
            grants.append(grant)
        elif not is_harmless_grant_line(text):
            unparsed += 1
    replica_ids, replica_error = _replica_server_ids(conn)
    tables = frozenset(
        str(name)
        for (name,) in _rows(
            conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (database,)
        )
    )
    labels = vicidb.url_type_labels(conn, database)
    settings, settings_error = _try_select(lambda: vicidb.load_settings_rows(conn, database))
    ssl_status = {
        str(name): str(value or "")
        for name, value in _rows(
            conn, "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')"
        )
    }
    field_rows = settings.field_rows if settings is not None else None
    if field_rows is None:  # the custom tables to check need only vicidial_lists_fields
        field_rows, _ = _try_select(lambda: vicidb.load_field_rows(conn, database))
    return ServerFacts(
        account=account,
        variables=types.MappingProxyType(variables),
        grants=tuple(grants),
        replica_server_ids=replica_ids,
        database=database,
        tables=tables,
        url_type_labels=labels,
        settings=settings,
        field_rows=tuple(field_rows) if field_rows is not None else None,
        replica_hosts_error=replica_error,
        settings_error=settings_error,
        unparsed_grants=unparsed,
        ssl_cipher=ssl_status.get("Ssl_cipher", ""),
        ssl_version=ssl_status.get("Ssl_version", ""),
        hooks=_hook_facts(conn, database),
    )


def _hook_facts(conn: pymysql.Connection[Any], database: str) -> HookFacts:
    """The hook settings (SELECT only); a table that cannot be read is noted, not fatal."""
    settings: dict[str, tuple[vicidb.Row, ...]] = {}
    unreadable: dict[str, str] = {}
    for table in SETTING_COLUMNS:
        rows, error = _try_select(functools.partial(vicidb.hook_setting_rows, conn, database, table))
        if rows is None:
            unreadable[table] = error
        else:
            settings[table] = tuple(rows)
    alt, error = _try_select(lambda: vicidb.hook_alt_rows(conn, database))
    if alt is None:
        unreadable[vicidial.URL_MULTI_TABLE] = error
    alt_rows = tuple(
        AltRow(str(r.get("campaign_id") or ""), str(r.get("entry_type") or ""), str(r.get("url_type") or ""))
        for r in alt or ()
    )
    return HookFacts(types.MappingProxyType(settings), alt_rows, types.MappingProxyType(unreadable))


def _try_select(select: Callable[[], _T]) -> tuple[_T | None, str]:
    """(result, "") or (None, why) when the account may not read a table or it is missing."""
    try:
        return select(), ""
    except SchemaError as exc:
        return None, str(exc)
    except pymysql.MySQLError as exc:
        if _is_client_error(exc):
            raise  # the connection is gone
        return None, str(exc.args[-1]) if exc.args else type(exc).__name__


def _is_client_error(exc: pymysql.MySQLError) -> bool:
    """A ``CR_*`` error: the connection itself failed, not the statement."""
    code = exc.args[0] if exc.args else 0
    return isinstance(code, int) and code >= _CLIENT_ERRORS


def _rows(conn: pymysql.Connection[Any], sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, tuple(args) or None)
        return [tuple(row) for row in cur.fetchall()]


def _replica_server_ids(conn: pymysql.Connection[Any]) -> tuple[tuple[int, ...] | None, str]:
    """``Server_id`` of the registered replicas, or ``None`` and why they are unknown."""
    for statement in ("SHOW SLAVE HOSTS", "SHOW REPLICAS"):  # MySQL 8.4 dropped the first
        try:
            rows = _rows(conn, statement)
        except pymysql.MySQLError as exc:
            if _is_client_error(exc):
                raise
            if exc.args and exc.args[0] == _ER_PARSE:
                continue
            return None, str(exc.args[-1])
        return tuple(int(row[0]) for row in rows), ""
    return None, "the server knows neither SHOW SLAVE HOSTS nor SHOW REPLICAS"


def gather_state(cfg: Config) -> StateFacts:
    """The state file's checkpoint and recorded server, and the server answering now."""
    path = Path(cfg.state.path)
    if not path.exists():
        return StateFacts(path, exists=False)
    holder = statelock.held_by(str(path))
    try:
        store = open_store(cfg)
        try:
            checkpoint = store.load_checkpoint()
            recorded_text = store.meta_get(serverinfo.META_KEY)
        finally:
            store.close()
        with contextlib.closing(connect(cfg.mysql)) as conn:
            server = serverinfo.read_facts(conn)
    except (CdcError, pymysql.MySQLError, OSError) as exc:
        return StateFacts(path, exists=True, holder=holder, error=str(exc))
    recorded = serverinfo.ServerIdentity.from_json(recorded_text) if recorded_text else None
    return StateFacts(
        path, exists=True, holder=holder, checkpoint=checkpoint, recorded=recorded, server=server
    )

"""Preflight (``vicidial-cdc check``): is this MariaDB ready for the streamer, and who sends?

Three steps, kept apart so that every rule is unit-tested without a server:

1. :func:`gather_facts` connects with the configured credentials and runs the SHOW
   statements and SELECTs (the only I/O here). It returns a frozen :class:`ServerFacts`.
2. :func:`evaluate` turns facts plus configuration into :class:`CheckResult` lines, one
   per check, each ``OK`` / ``INFO`` / ``WARN`` / ``FAIL`` (a blocker) and, when not OK,
   the exact fix: the ``my.cnf`` lines or the SQL to run.
3. :func:`render_text` / :func:`render_json` print them. :func:`exit_code` is 0 when
   everything is OK or INFO, 1 with warnings, 2 with at least one blocker.

:func:`run_checks` does all three steps but printing; a connection failure is itself a
``FAIL`` line with its fix.

Nothing printed carries lead data, passwords, password hashes (``SHOW GRANTS`` lines are
parsed on arrival and never kept) or URL templates: a template may hold an API key, so
only its host is shown.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import json
import math
import re
import ssl
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pymysql

from .. import vicidb
from ..config import DEFAULT_SERVER_ID, Config, MysqlConfig, SslMode, tls_warnings
from ..duration import parse_duration
from ..errors import CdcError, SchemaError, SourceError
from ..reader import library as binlog
from ..records import UrlSource
from ..resolve import check_url
from ..settings import (
    FIELD_COLUMNS,
    SYSTEM_CAMPAIGN_ID,
    SettingsCache,
    SettingsSnapshot,
    UrlOverrides,
    url_host,
)
from ..vicidial import (
    API_LOG_TABLE,
    DISABLED,
    LEAD_TABLE,
    LIST_FIELDS_TABLE,
    LISTS_TABLE,
    SENDER_SCHEMA_VERSION,
    SYSTEM_SETTINGS_TABLE,
    URL_LOG_TABLE,
    URL_MULTI_TABLE,
    URL_TYPE,
    custom_table,
    is_disabled,
    strip_var,
)

__all__ = [
    "READ_TABLES",
    "REQUIRED_TABLES",
    "CheckResult",
    "Grant",
    "ServerFacts",
    "Status",
    "check_tls",
    "evaluate",
    "exit_code",
    "gather_facts",
    "has_privilege",
    "parse_duration_s",
    "parse_grant",
    "render_json",
    "render_text",
    "run_checks",
]

_T = TypeVar("_T")

#: Tables the streamer cannot work without (binlog rows and start-up SELECTs).
REQUIRED_TABLES: tuple[str, ...] = (
    LEAD_TABLE,
    API_LOG_TABLE,
    URL_MULTI_TABLE,
    LISTS_TABLE,
    LIST_FIELDS_TABLE,
    SYSTEM_SETTINGS_TABLE,
)
#: Every table read, ``custom_<list_id>`` tables aside (``vicidial_url_log``: watch mode).
READ_TABLES: tuple[str, ...] = (*REQUIRED_TABLES, URL_LOG_TABLE)
#: Default of ``--max-downtime``: the longest outage after which the streamer must resume.
DEFAULT_MAX_DOWNTIME_S = 86400.0

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
_REPLICATION_CLIENT = frozenset({"REPLICATION CLIENT", "BINLOG MONITOR"})  # 10.5.2+ renamed it
_NEEDED_GLOBAL = frozenset({"USAGE", "REPLICATION SLAVE"}) | _REPLICATION_CLIENT
_ALL = frozenset({"ALL PRIVILEGES", "ALL"})
#: Why the recommended grant is SELECT on the whole VICIdial database (README, "Grants").
_WHY_DATABASE_SELECT = (
    "REPLICATION SLAVE already shows this account every row written to every table, "
    "vicidial_users included, so per-table grants protect nothing and break when lists are added"
)
#: A list_id no list has: ``url_for`` falls back to the system level for it.
_NO_LIST = -1
_MAX_IDS_SHOWN = 20
_ER_PARSE = 1064
_CLIENT_ERRORS = 2000  # CR_* codes: the connection itself failed
_ER_ACCESS_DENIED = 1045
_ER_HOST_NOT_PRIVILEGED = 1130
_CR_CONNECTION_ERRORS = frozenset({2002, 2003, 2005, 2006, 2013})
_CR_SSL_REQUIRED = 2026  # TLS required by ssl_mode, not offered by the server
_MY_CNF = "in my.cnf, section [mariadb] (e.g. /etc/mysql/mariadb.conf.d/60-vicidial-cdc.cnf):"


class Status(enum.StrEnum):
    """The outcome of one check. Only WARN and FAIL change the exit code."""

    OK = "OK"
    INFO = "INFO"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report: ``fix`` is the exact remedy, empty when none is needed."""

    name: str
    status: Status
    message: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Grant:
    """One privilege line of ``SHOW GRANTS``, without its grantee or password hash.

    ``database`` and ``table`` are ``"*"`` for a wider level; a database-level name may
    hold ``LIKE`` wildcards (``%``, ``_``, with ``\\`` escapes), as MariaDB allows.
    """

    privileges: frozenset[str]
    database: str = "*"
    table: str = "*"
    #: Column-level privileges as printed, e.g. ``SELECT (`lead_id`)``: not table SELECT.
    column_privileges: tuple[str, ...] = ()
    grant_option: bool = False
    #: ``FUNCTION`` / ``PROCEDURE`` / ``PACKAGE`` / ``PACKAGE BODY`` for routine grants.
    routine: str = ""

    @property
    def on(self) -> str:
        """The object as SQL: ``*.*``, ```db`.*``, ```db`.`tbl```."""
        db = "*" if self.database == "*" else quote(self.database)
        tbl = "*" if self.table == "*" else quote(self.table)
        return f"{self.routine} {db}.{tbl}".lstrip()


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

    @property
    def version(self) -> str:
        return self.variables.get("version", "")


# -- facts (I/O) ----------------------------------------------------------------------------


def gather_facts(mysql: MysqlConfig) -> ServerFacts:
    """Connect and read everything :func:`evaluate` needs (SHOW, SELECT; nothing written).

    Raises :class:`~cdc.errors.SourceError` when the connection fails or breaks; a
    statement the account may not run is recorded as a fact instead.
    """
    conn = binlog.connect(mysql, autocommit=True)
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
        elif not _is_harmless_grant_line(text):
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
        columns = ", ".join(vicidb.quote_name(c) for c in FIELD_COLUMNS)
        sql = f"SELECT {columns} FROM {vicidb.quote_name(database)}.vicidial_lists_fields"
        field_rows, _ = _try_select(lambda: vicidb.select(conn, sql))
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
    )


def _try_select(select: Callable[[], _T]) -> tuple[_T | None, str]:
    """(result, "") or (None, why) when the account may not read a table or it is missing."""
    try:
        return select(), ""
    except SchemaError as exc:
        return None, str(exc)
    except pymysql.MySQLError as exc:
        if exc.args and isinstance(exc.args[0], int) and exc.args[0] >= _CLIENT_ERRORS:
            raise  # a client error: the connection is gone
        return None, str(exc.args[-1]) if exc.args else type(exc).__name__


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
            code = exc.args[0] if exc.args else 0
            if isinstance(code, int) and code >= _CLIENT_ERRORS:
                raise
            if code == _ER_PARSE:
                continue
            return None, str(exc.args[-1])
        return tuple(int(row[0]) for row in rows), ""
    return None, "the server knows neither SHOW SLAVE HOSTS nor SHOW REPLICAS"


# -- SHOW GRANTS ----------------------------------------------------------------------------

_NAME = r"`(?:[^`]|``)*`|\*|[^\s.`]+"
_OBJECT_RE = re.compile(
    rf"(?:(?P<routine>PACKAGE\s+BODY|PACKAGE|PROCEDURE|FUNCTION|TABLE)\s+)?"
    rf"(?P<db>{_NAME})\.(?P<tbl>{_NAME})\s+TO\s+(?P<tail>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_QUOTED_RE = re.compile(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_GRANT_OPTION_RE = re.compile(r"\bWITH\b.*\bGRANT\s+OPTION\b", re.IGNORECASE | re.DOTALL)


def parse_grant(line: str) -> Grant | None:
    """A ``GRANT <privileges> ON <object> TO …`` line of ``SHOW GRANTS``, or ``None``.

    ``None`` for role grants (``GRANT `role` TO …``), ``PROXY`` grants and anything not
    understood. The grantee and any ``IDENTIFIED BY PASSWORD`` hash are dropped.
    """
    text = line.strip()
    if text[:6].upper() != "GRANT ":
        return None
    on_at = _find_on(text, 6)
    if on_at < 0:
        return None
    privileges: set[str] = set()
    column_privileges: list[str] = []
    for item in _split_top_level(text[6:on_at]):
        if "(" in item:
            name, _, columns = item.partition("(")
            column_privileges.append(f"{_normal(name)} ({columns.strip()}")
        elif item.strip():
            privileges.add(_normal(item))
    if privileges == {"PROXY"}:
        return None
    match = _OBJECT_RE.match(text[on_at + 4 :].lstrip())
    if match is None:
        return None
    tail = _QUOTED_RE.sub("", match.group("tail"))
    return Grant(
        privileges=frozenset(privileges),
        database=unquote(match.group("db")),
        table=unquote(match.group("tbl")),
        column_privileges=tuple(column_privileges),
        grant_option=_GRANT_OPTION_RE.search(tail) is not None,
        routine=_normal(match.group("routine") or "").replace("TABLE", ""),
    )


def _find_on(text: str, start: int) -> int:
    """Index of the `` ON `` that ends the privilege list (outside quotes and parentheses)."""
    depth = 0
    quote_char = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote_char:
            if ch == quote_char:
                if text[i + 1 : i + 2] == quote_char:
                    i += 1
                else:
                    quote_char = ""
        elif ch in "`'\"":
            quote_char = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and text[i : i + 4].upper() == " ON ":
            return i
        i += 1
    return -1


def _split_top_level(text: str) -> list[str]:
    """Split a privilege list at commas outside parentheses and quotes."""
    items: list[str] = []
    depth = 0
    quote_char = ""
    current: list[str] = []
    for ch in text:
        if quote_char:
            if ch == quote_char:
                quote_char = ""
        elif ch in "`'\"":
            quote_char = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return items


def _normal(words: str) -> str:
    return " ".join(words.split()).upper()


def _is_harmless_grant_line(line: str) -> bool:
    """Role grants, PROXY grants and ``SET DEFAULT ROLE``: no table privilege in them."""
    text = line.strip().upper()
    return text.startswith(("SET DEFAULT ROLE", "GRANT PROXY ON")) or (
        text.startswith("GRANT ") and _find_on(line.strip(), 6) < 0
    )


def unquote(name: str) -> str:
    """```a``b``` → ``a`b``; unquoted names and ``*`` pass through."""
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1].replace("``", "`")
    return name


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _db_matches(pattern: str, database: str) -> bool:
    """Database-level grant names are ``LIKE`` patterns (``%``, ``_``; ``\\`` escapes)."""
    if pattern == "*":
        return True
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(parts), database, re.DOTALL) is not None


def has_privilege(
    grants: Iterable[Grant], privileges: Iterable[str], database: str = "*", table: str = "*"
) -> bool:
    """True when a grant gives one of ``privileges`` on ``database.table``.

    With the default ``database="*"`` only global grants count (``REPLICATION …``).
    ``ALL PRIVILEGES`` at a level covers every privilege of that level.
    """
    wanted = frozenset(privileges) | _ALL
    for grant in grants:
        if grant.routine or not (grant.privileges & wanted):
            continue
        if grant.database == "*":
            return True
        if database == "*":
            continue
        if grant.table == "*":
            if _db_matches(grant.database, database):
                return True
        elif grant.database == database and grant.table == table:
            return True
    return False


def _names_database(pattern: str, database: str) -> bool:
    """A database-level grant name that is ``database`` itself, not a wider pattern."""
    if pattern == database:
        return True
    return pattern.replace("\\_", "_").replace("\\%", "%") == database


def has_database_select(grants: Iterable[Grant], database: str) -> bool:
    """SELECT on every table of ``database``, present and future (database or global level)."""
    wanted = {"SELECT"} | _ALL
    return any(
        not g.routine and g.table == "*" and g.privileges & wanted and _db_matches(g.database, database)
        for g in grants
    )


def extra_privileges(grants: Iterable[Grant], database: str, tables: Iterable[str]) -> list[str]:
    """Privileges held beyond what the streamer uses, one text per grant (no grantee)."""
    needed_tables = frozenset(tables)
    out: list[str] = []
    for grant in grants:
        note = ""
        if grant.routine:
            extra = set(grant.privileges)
        elif grant.database == "*":
            extra = set(grant.privileges - _NEEDED_GLOBAL)
            if "SELECT" in extra or extra & _ALL:
                note = " (every database on the server, not only VICIdial's)"
        elif grant.table == "*":
            extra = set(grant.privileges - {"USAGE"})
            if _names_database(grant.database, database):
                extra.discard("SELECT")  # the recommended grant
            elif _db_matches(grant.database, database) and ({"SELECT"} | _ALL) & extra:
                note = " (a pattern: every database whose name it matches)"
        elif grant.database == database and grant.table in needed_tables:
            extra = set(grant.privileges - {"SELECT", "USAGE"})
        else:
            extra = set(grant.privileges - {"USAGE"})
        parts = sorted(extra, key=lambda p: (p not in _ALL, p))
        parts.extend(grant.column_privileges)
        if parts:
            option = " WITH GRANT OPTION" if grant.grant_option else ""
            out.append(f"{', '.join(parts)} ON {grant.on}{option}{note}")
        elif grant.grant_option:
            out.append(f"GRANT OPTION ON {grant.on}")
    return out


# -- evaluation (pure) ----------------------------------------------------------------------


def evaluate(
    facts: ServerFacts,
    *,
    server_id: int = DEFAULT_SERVER_ID,
    overrides: UrlOverrides | None = None,
    max_downtime_s: float = DEFAULT_MAX_DOWNTIME_S,
) -> list[CheckResult]:
    """Every check, in report order, from the facts and the configuration."""
    overrides = overrides if overrides is not None else UrlOverrides()
    ours = vicidial_view = None
    if facts.settings is not None:
        ours = _snapshot(facts.settings, overrides)
        vicidial_view = _snapshot(facts.settings, UrlOverrides())
    custom_lists = _custom_field_lists(facts)
    read_tables = [*READ_TABLES, *(custom_table(list_id) for list_id in custom_lists or ())]
    results = [
        check_log_bin(facts),
        check_binlog_format(facts),
        check_row_image(facts),
        check_row_metadata(facts),
        check_compression(facts),
        check_retention(facts, max_downtime_s),
        check_server_id(facts, server_id),
        *check_privileges(facts, read_tables, custom_known=custom_lists is not None),
        check_tables(facts),
        check_custom_tables(facts, custom_lists),
        check_schema_version(facts),
    ]
    if ours is None or vicidial_view is None:
        results.append(
            CheckResult(
                "urls",
                Status.INFO,
                f"not checked: cannot read VICIdial's settings ({facts.settings_error}); "
                "see the grant and table checks",
            )
        )
        return results
    results.extend(check_urls(ours))
    results.extend(check_double_send(facts, ours, vicidial_view))
    return results


def _custom_field_lists(facts: ServerFacts) -> list[int] | None:
    """Lists with custom data fields, whose ``custom_<list_id>`` tables are read; None: unknown."""
    rows = facts.field_rows
    if rows is None and facts.settings is not None:
        rows = tuple(facts.settings.field_rows)
    if rows is None:
        return None
    cache = SettingsCache()
    cache.load((), (), rows, None)
    return sorted(cache.snapshot().custom_field_lists())


def exit_code(results: Iterable[CheckResult]) -> int:
    """2 when anything FAILed (a blocker), 1 when anything WARNed, else 0."""
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return 2
    if Status.WARN in statuses:
        return 1
    return 0


def _snapshot(rows: vicidb.SettingsRows, overrides: UrlOverrides) -> SettingsSnapshot:
    cache = SettingsCache(overrides)
    cache.load(rows.url_rows, rows.list_rows, rows.field_rows, rows.system_row)
    return cache.snapshot()


def _variable_is_on(value: str) -> bool:
    return value.upper() in ("ON", "1", "YES", "TRUE")


def _my_cnf_fix(name: str, value: str, *, dynamic: bool) -> str:
    lines = [_MY_CNF, f"    {name} = {value}"]
    if dynamic:
        lines.append(
            f"and now, without a restart: SET GLOBAL {name} = '{value}';"
            " (only new connections use it: restart VICIdial's daemons and web server, or MariaDB)"
        )
    else:
        lines.append("then restart MariaDB (it cannot be changed at run time)")
    return "\n".join(lines)


def check_log_bin(facts: ServerFacts) -> CheckResult:
    value = facts.variables.get("log_bin", "")
    if _variable_is_on(value):
        return CheckResult("log_bin", Status.OK, "the binary log is on")
    return CheckResult(
        "log_bin",
        Status.FAIL,
        f"log_bin is {value or 'OFF'}: the server writes no binary log, so there is nothing to follow",
        _my_cnf_fix("log_bin", "mysql-bin", dynamic=False),
    )


def check_binlog_format(facts: ServerFacts) -> CheckResult:
    value = facts.variables.get("binlog_format", "").upper()
    if value == "ROW":
        return CheckResult("binlog_format", Status.OK, "binlog_format is ROW")
    return CheckResult(
        "binlog_format",
        Status.FAIL,
        f"binlog_format is {value or 'unknown'}: leads travel as row events only with ROW",
        _my_cnf_fix("binlog_format", "ROW", dynamic=True),
    )


def check_row_image(facts: ServerFacts) -> CheckResult:
    value = facts.variables.get("binlog_row_image", "").upper()
    if value == "FULL":
        return CheckResult("binlog_row_image", Status.OK, "binlog_row_image is FULL")
    return CheckResult(
        "binlog_row_image",
        Status.FAIL,
        f"binlog_row_image is {value or 'unknown'}: rows must carry every column (FULL), "
        "or settings and entry_list_id updates are misread",
        _my_cnf_fix("binlog_row_image", "FULL", dynamic=True),
    )


def check_row_metadata(facts: ServerFacts) -> CheckResult:
    if "binlog_row_metadata" not in facts.variables:
        return CheckResult(
            "binlog_row_metadata",
            Status.INFO,
            f"this server ({facts.version or 'unknown version'}) has no binlog_row_metadata "
            "(MariaDB 10.5+): column names come from information_schema, re-read after DDL",
        )
    value = facts.variables["binlog_row_metadata"].upper()
    if value == "FULL":
        return CheckResult(
            "binlog_row_metadata", Status.OK, "binlog_row_metadata is FULL: column names travel in the binlog"
        )
    return CheckResult(
        "binlog_row_metadata",
        Status.WARN,
        f"binlog_row_metadata is {value or 'unknown'}: column names, ENUM labels and charsets "
        "come from information_schema and are re-read after DDL; FULL is recommended",
        _my_cnf_fix("binlog_row_metadata", "FULL", dynamic=True),
    )


def check_compression(facts: ServerFacts) -> CheckResult:
    """Compressed binlog events cannot be read (the reader stops at the first one)."""
    for name in ("log_bin_compress", "binlog_transaction_compression"):
        if _variable_is_on(facts.variables.get(name, "")):
            return CheckResult(
                "binlog_compression",
                Status.FAIL,
                f"{name} is ON: compressed binlog events cannot be read; the reader stops at the first "
                "one of a watched table (reader fault compressed_events)",
                _my_cnf_fix(name, "OFF", dynamic=True),
            )
    return CheckResult("binlog_compression", Status.OK, "binlog events are not compressed")


def check_state(cfg: Config) -> list[CheckResult]:
    """The state file: which server it follows (vs the one answering), who runs on it."""
    from .. import statelock
    from ..reader import serverinfo
    from ..store.sqlite import SqliteStore

    path = Path(cfg.state.path)
    if not path.exists():
        return [
            CheckResult(
                "state",
                Status.INFO,
                f"no state file at {path} yet: the first start begins at reader.start "
                f"({cfg.reader.start}) and says so (state.fresh_start)",
            )
        ]
    results = []
    holder = statelock.held_by(str(path))
    if holder is not None:
        results.append(CheckResult("state_lock", Status.INFO, f"a streamer runs on {path} ({holder})"))
    try:
        store = SqliteStore(path)
        store.open()
        try:
            checkpoint = store.load_checkpoint()
            recorded_text = store.meta_get("server_identity")
        finally:
            store.close()
        with contextlib.closing(binlog.connect(cfg.mysql)) as conn:
            facts = serverinfo.read_facts(conn)
    except (CdcError, pymysql.MySQLError, OSError) as exc:
        return [*results, CheckResult("state_server", Status.INFO, f"not checked: {exc}")]
    recorded = serverinfo.ServerIdentity.from_json(recorded_text) if recorded_text else None
    verdict = serverinfo.continuity(recorded, checkpoint, facts)
    if verdict.verdict is serverinfo.Verdict.CHANGED:
        results.append(
            CheckResult(
                "state_server",
                Status.FAIL,
                f"the state file follows another server: {verdict.reason}",
                serverinfo.changed_message(verdict.reason, checkpoint, str(path)),
            )
        )
    elif verdict.verdict is serverinfo.Verdict.GTID:
        results.append(
            CheckResult(
                "state_server",
                Status.WARN,
                f"another server holding the checkpoint's GTID ({verdict.reason}): the stream goes on "
                "from that GTID",
            )
        )
    else:
        results.append(
            CheckResult(
                "state_server",
                Status.OK,
                f"the state follows this server ({facts.identity}), checkpoint {checkpoint or 'none yet'}",
            )
        )
    return results


def retention_s(variables: Mapping[str, str]) -> float | None:
    """Seconds a binlog file is kept (0 = never purged); ``None`` when unknown."""
    for name, scale in (("binlog_expire_logs_seconds", 1.0), ("expire_logs_days", 86400.0)):
        with contextlib.suppress(ValueError):
            if name in variables:
                return float(variables[name]) * scale
    return None


def check_retention(facts: ServerFacts, max_downtime_s: float) -> CheckResult:
    kept = retention_s(facts.variables)
    downtime = human_duration(max_downtime_s)
    needed = max(86400, math.ceil(max_downtime_s / 86400) * 86400)
    if "binlog_expire_logs_seconds" in facts.variables:
        name, value = "binlog_expire_logs_seconds", str(needed)
    else:
        name, value = "expire_logs_days", str(needed // 86400)
    expiry_lines = [f"    {name} = {value}", f"and now: SET GLOBAL {name} = {value};"]
    fix = "\n".join(
        [
            _MY_CNF,
            *expiry_lines,
            "(or accept a shorter outage: --max-downtime; the config key max_downtime_s is planned)",
        ]
    )
    size_limit = facts.variables.get("max_binlog_total_size", "0")
    if size_limit.isdigit() and int(size_limit) > 0:
        return CheckResult(
            "binlog_retention",
            Status.WARN,
            f"binlogs are also purged once they exceed {int(size_limit)} bytes in total "
            f"(max_binlog_total_size), possibly sooner than the max downtime of {downtime}",
            "\n".join(
                [
                    _MY_CNF,
                    "    max_binlog_total_size = 0",
                    "(or a size that holds the binlog of the whole max downtime), and keep the expiry:",
                    *expiry_lines,
                ]
            ),
        )
    if kept is None:
        return CheckResult(
            "binlog_retention",
            Status.WARN,
            "cannot read binlog_expire_logs_seconds or expire_logs_days",
            fix,
        )
    if kept == 0:
        return CheckResult(
            "binlog_retention",
            Status.OK,
            "binlogs are never purged automatically (expiry 0): no outage outlives them; "
            "purge old files yourself to bound the disk use",
        )
    if kept >= max_downtime_s:
        return CheckResult(
            "binlog_retention",
            Status.OK,
            f"binlogs are kept {human_duration(kept)}, at least the max downtime of {downtime}",
        )
    return CheckResult(
        "binlog_retention",
        Status.WARN,
        f"binlogs are purged after {human_duration(kept)}, less than the max downtime of {downtime}: "
        "after a longer outage the streamer cannot resume and leads in between are not sent",
        fix,
    )


def check_server_id(facts: ServerFacts, server_id: int) -> CheckResult:
    own = facts.variables.get("server_id", "")
    replicas = facts.replica_server_ids or ()
    used = {int(own)} if own.isdigit() else set()
    used |= set(replicas)
    suggestion = DEFAULT_SERVER_ID
    while suggestion in used or suggestion == server_id:
        suggestion += 1
    fix = (
        f"set [mysql] server_id = {suggestion} in the config file (or env VICIDIAL_CDC_MYSQL_SERVER_ID): "
        "a value that no server and no replica of this replication topology uses"
    )
    if not 1 <= server_id <= 2**32 - 1:
        return CheckResult(
            "server_id", Status.FAIL, f"the streamer's server_id {server_id} is not in 1..4294967295", fix
        )
    if own.isdigit() and int(own) == server_id:
        return CheckResult(
            "server_id",
            Status.FAIL,
            f"the streamer's server_id {server_id} is this server's own server_id",
            fix,
        )
    if server_id in replicas:
        return CheckResult(
            "server_id",
            Status.FAIL,
            f"the streamer's server_id {server_id} is used by a replica of this server "
            "(SHOW SLAVE HOSTS): the server drops one of the two connections whenever the other connects",
            fix,
        )
    if facts.replica_server_ids is None:
        return CheckResult(
            "server_id",
            Status.INFO,
            f"server_id {server_id} differs from the server's ({own or 'unknown'}); the replicas are "
            f"not visible to this account ({facts.replica_hosts_error})",
            f"as an admin, run SHOW SLAVE HOSTS and check that Server_id {server_id} is not listed",
        )
    listed = f" and its {len(replicas)} replica(s)" if replicas else " (no replica registered)"
    return CheckResult(
        "server_id", Status.OK, f"server_id {server_id} differs from the server's ({own}){listed}"
    )


def _account_sql(account: str) -> str:
    """``user@host`` (from CURRENT_USER()) as ``'user'@'host'``."""
    user, sep, host = account.rpartition("@")
    if not sep:
        user, host = account, "%"
    return "'{}'@'{}'".format(user.replace("'", "''"), host.replace("'", "''"))


def check_privileges(
    facts: ServerFacts, read_tables: Sequence[str], *, custom_known: bool = True
) -> list[CheckResult]:
    """REPLICATION SLAVE, REPLICATION CLIENT, SELECT on each table read; and nothing more."""
    account = _account_sql(facts.account)
    db = quote(facts.database)
    results: list[CheckResult] = []
    for name, privilege, accepted, purpose in (
        ("grant.replication_slave", "REPLICATION SLAVE", {"REPLICATION SLAVE"}, "to read the binlog"),
        (
            "grant.replication_client",
            "REPLICATION CLIENT",
            _REPLICATION_CLIENT,
            "for SHOW MASTER STATUS and SHOW BINARY LOGS; named BINLOG MONITOR since MariaDB 10.5.2",
        ),
    ):
        if has_privilege(facts.grants, accepted):
            results.append(CheckResult(name, Status.OK, f"{privilege} held ({purpose})"))
        else:
            results.append(
                CheckResult(
                    name,
                    Status.FAIL,
                    f"{facts.account} lacks {privilege}, needed {purpose}",
                    f"GRANT {privilege} ON *.* TO {account};",
                )
            )
    missing = [t for t in read_tables if not has_privilege(facts.grants, {"SELECT"}, facts.database, t)]
    unknown_custom = (
        "" if custom_known else "; custom_<list_id> tables unknown until vicidial_lists_fields is readable"
    )
    select_all = f"GRANT SELECT ON {db}.* TO {account};"
    if missing:
        results.append(
            CheckResult(
                "grant.select",
                Status.FAIL,
                f"{facts.account} cannot SELECT from {', '.join(missing)} in {db}{unknown_custom}",
                f"{select_all}\n(the whole database: {_WHY_DATABASE_SELECT})",
            )
        )
    elif not has_database_select(facts.grants, facts.database):
        results.append(
            CheckResult(
                "grant.select",
                Status.WARN,
                f"SELECT is granted table by table: fragile. When an admin gives a new list custom fields, "
                f"VICIdial creates custom_<list_id>, which {facts.account} cannot read, and that list's "
                f"leads wait until someone grants it{unknown_custom}",
                f"{select_all}\n(then the per-table SELECT grants can go: {_WHY_DATABASE_SELECT})",
            )
        )
    else:
        results.append(
            CheckResult(
                "grant.select",
                Status.OK,
                f"SELECT on {db}.*: the {len(read_tables)} tables read and the lists added later"
                f"{unknown_custom}",
            )
        )
    extra = extra_privileges(facts.grants, facts.database, read_tables)
    if facts.unparsed_grants:
        extra.append(f"{facts.unparsed_grants} SHOW GRANTS line(s) not understood")
    if not extra:
        results.append(CheckResult("grant.extra", Status.OK, "nothing held beyond what is needed"))
        return results
    user, _, host = facts.account.rpartition("@")
    if user == "root":
        dedicated = _account_sql(f"vicidial_cdc@{host or '%'}")
        lines = [
            "nothing more is needed; a dedicated account with only what the streamer uses:",
            f"CREATE USER {dedicated} IDENTIFIED BY '<password>';",
            *least_privilege_grants(dedicated, facts.database),
        ]
    else:
        lines = [
            "nothing more is needed; to keep only what the streamer uses:",
            f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account};",
            *least_privilege_grants(account, facts.database),
        ]
    results.append(
        CheckResult("grant.extra", Status.INFO, "also holds: " + "; ".join(extra), "\n".join(lines))
    )
    return results


def least_privilege_grants(account: str, database: str) -> list[str]:
    """The GRANT statements of the recommended account (deploy/sql/grants.sql)."""
    return [
        f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account};",
        f"GRANT SELECT ON {quote(database)}.* TO {account};",
    ]


def check_tables(facts: ServerFacts) -> CheckResult:
    """VICIdial's tables present in the configured database (as far as this account can see)."""
    db = quote(facts.database)
    missing = [t for t in READ_TABLES if t not in facts.tables]
    readable = [t for t in missing if has_privilege(facts.grants, {"SELECT"}, facts.database, t)]
    hidden = [t for t in missing if t not in readable]
    absent_required = [t for t in readable if t in REQUIRED_TABLES]
    fix_db = (
        "set [mysql] database (env VICIDIAL_CDC_MYSQL_DATABASE) to VICIdial's database "
        "(usually asterisk); the VICIdial tables must exist there"
    )
    if absent_required:
        return CheckResult(
            "tables",
            Status.FAIL,
            f"{db} has no {', '.join(readable)}: is this VICIdial's database?",
            fix_db,
        )
    if readable:
        return CheckResult(
            "tables",
            Status.WARN,
            f"{db} has no {', '.join(readable)}: VICIdial's own sends cannot be followed (watch mode)",
            "upgrade VICIdial's schema (vicidial_url_log exists in every current build)",
        )
    if hidden:
        return CheckResult(
            "tables",
            Status.INFO,
            f"{', '.join(hidden)} not visible to {facts.account} (no privilege): see grant.select",
        )
    return CheckResult("tables", Status.OK, f"the {len(READ_TABLES)} VICIdial tables read are in {db}")


def check_custom_tables(facts: ServerFacts, custom_lists: Sequence[int] | None) -> CheckResult:
    if custom_lists is None:
        return CheckResult("tables.custom", Status.INFO, "not checked: cannot read vicidial_lists_fields")
    if not custom_lists:
        return CheckResult("tables.custom", Status.OK, "no list has custom fields")
    names = [custom_table(list_id) for list_id in custom_lists]
    missing = [n for n in names if n not in facts.tables]
    absent = [n for n in missing if has_privilege(facts.grants, {"SELECT"}, facts.database, n)]
    if absent:
        return CheckResult(
            "tables.custom",
            Status.WARN,
            f"{', '.join(absent)} missing although vicidial_lists_fields defines custom fields for "
            "those lists: their custom tokens stay literal",
            "open each list's custom fields in VICIdial's admin screen (Lists > Custom Fields) "
            "so that VICIdial creates the table, or delete the orphan vicidial_lists_fields rows",
        )
    if missing:
        return CheckResult(
            "tables.custom",
            Status.INFO,
            f"{', '.join(missing)} not visible to {facts.account} (no privilege): see grant.select",
        )
    return CheckResult("tables.custom", Status.OK, f"custom field tables present: {_ids(names)}")


def vicidial_sends(facts: ServerFacts) -> bool | None:
    """True when this VICIdial build sends API New Lead URLs itself; ``None`` when unknown."""
    if facts.settings is None or facts.settings.system_row is None or facts.url_type_labels is None:
        return None
    return _schema_version(facts) >= SENDER_SCHEMA_VERSION and URL_TYPE in facts.url_type_labels


def _schema_version(facts: ServerFacts) -> int:
    if facts.settings is None or facts.settings.system_row is None:
        return 0
    value = facts.settings.system_row.get("db_schema_version")
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else 0


def check_schema_version(facts: ServerFacts) -> CheckResult:
    if facts.settings is None or facts.url_type_labels is None:
        return CheckResult(
            "vicidial.schema",
            Status.INFO,
            "unknown: system_settings or vicidial_url_multi is not readable (see the grant and table checks)",
        )
    if facts.settings.system_row is None:
        return CheckResult(
            "vicidial.schema",
            Status.WARN,
            "system_settings has no row: the VICIdial version is unknown",
            "check [mysql] database: VICIdial's system_settings always has one row",
        )
    version = _schema_version(facts)
    has_enum = URL_TYPE in facts.url_type_labels
    new_enough = version >= SENDER_SCHEMA_VERSION
    if new_enough and has_enum:
        return CheckResult(
            "vicidial.schema",
            Status.INFO,
            f"db_schema_version {version}: this VICIdial build sends API New Lead URLs itself "
            "(synchronously from PHP, once, no retry)",
        )
    if not new_enough and not has_enum:
        return CheckResult(
            "vicidial.schema",
            Status.INFO,
            f"db_schema_version {version}: this VICIdial build has no API New Lead URL sender "
            f"(before {SENDER_SCHEMA_VERSION}); only the streamer sends, with the config file's [urls]",
        )
    half = "lacks" if new_enough else "has"
    return CheckResult(
        "vicidial.schema",
        Status.WARN,
        f"db_schema_version {version} but vicidial_url_multi.url_type {half} 'apinewlead': "
        "a half-upgraded schema; treated as a build that does not send",
        "finish VICIdial's schema upgrade (the upgrade SQL of your VICIdial version), then run check again",
    )


_SOURCE_TEXT = {
    UrlSource.CONFIG_LIST: "config file [urls.lists]",
    UrlSource.CONFIG_SYSTEM: "config file [urls] system",
    UrlSource.VICIDIAL_LIST: "VICIdial's list setting",
    UrlSource.VICIDIAL_SYSTEM: "VICIdial's system setting",
}


def _ids(items: Sequence[object]) -> str:
    shown = ", ".join(str(i) for i in items[:_MAX_IDS_SHOWN])
    more = len(items) - _MAX_IDS_SHOWN
    return f"{shown}, … ({more} more)" if more > 0 else shown


def _own_level(snap: SettingsSnapshot, list_id: int) -> bool:
    """True when the list has its own value (config or VICIdial), even blank."""
    return list_id in snap.overrides.lists or list_id in snap.list_urls


def _sendable(template: str | None) -> bool:
    if template is None:
        return False
    return check_url(strip_var(template.strip())) is None


def check_urls(snap: SettingsSnapshot) -> list[CheckResult]:
    """Which URL (host only) each list resolves to, and from where."""
    results: list[CheckResult] = []
    resolved_any = False
    levels: list[int | None] = [None, *(i for i in sorted(_known_lists(snap)) if _own_level(snap, i))]
    for list_id in levels:
        template, source, _ = snap.url_for(_NO_LIST if list_id is None else list_id)
        name = "url.system" if list_id is None else f"url.list.{list_id}"
        who = "lists without their own URL" if list_id is None else f"list {list_id}"
        if template is None or source is None:
            results.append(CheckResult(name, Status.INFO, f"{who}: {_no_url_reason(snap, list_id)}"))
            continue
        where = _SOURCE_TEXT[source]
        if not _sendable(template):
            results.append(
                CheckResult(
                    name,
                    Status.WARN,
                    f"{who}: the URL from {where} is not a full http(s)://host URL longer than "
                    "10 characters: neither VICIdial nor the streamer sends it",
                    f"set a full URL in {where}, e.g. https://crm.example.com/lead?phone=--A--phone_number--B--",
                )
            )
            continue
        resolved_any = True
        results.append(CheckResult(name, Status.INFO, f"{who} → {url_host(template)} (from {where})"))
    inheriting = [i for i in sorted(_known_lists(snap)) if not _own_level(snap, i)]
    if inheriting:
        results.append(
            CheckResult(
                "url.lists",
                Status.INFO,
                f"{len(inheriting)} list(s) use the system level: {_ids(inheriting)}",
            )
        )
    if not resolved_any:
        results.append(
            CheckResult(
                "urls",
                Status.WARN,
                "no list resolves to a URL: the streamer has nothing to send",
                '[urls] system = "https://crm.example.com/lead?phone=--A--phone_number--B--" in the '
                "config file (or [urls.lists] per list), or the API New Lead URL in VICIdial "
                f"(db_schema_version {SENDER_SCHEMA_VERSION}+)",
            )
        )
    return results


def _known_lists(snap: SettingsSnapshot) -> set[int]:
    return set(snap.lists) | set(snap.list_urls) | set(snap.overrides.lists)


def _no_url_reason(snap: SettingsSnapshot, list_id: int | None) -> str:
    if list_id is not None:
        from_config = list_id in snap.overrides.lists
        value = snap.overrides.lists[list_id] if from_config else snap.list_urls.get(list_id, "")
        if is_disabled(value):
            where = _SOURCE_TEXT[UrlSource.CONFIG_LIST if from_config else UrlSource.VICIDIAL_LIST]
            return f"{DISABLED} in {where}: no request"
        return "no URL at the list or system level: no request"
    if snap.overrides.system is not None and is_disabled(snap.overrides.system):
        return f"{DISABLED} in {_SOURCE_TEXT[UrlSource.CONFIG_SYSTEM]}: no request"
    return "no system-level URL: no request"


def check_double_send(
    facts: ServerFacts, ours: SettingsSnapshot, vicidial_view: SettingsSnapshot
) -> list[CheckResult]:
    """Levels whose leads VICIdial sends itself and the streamer sends too.

    The streamer (no watch mode yet) sends every URL it resolves, from the config file
    or from VICIdial's own rows, so on a build that sends, any level both resolve gets
    two requests per lead.
    """
    sends = vicidial_sends(facts)
    if not sends:
        why = "unknown build" if sends is None else f"db_schema_version {_schema_version(facts)}"
        return [
            CheckResult(
                "double_send",
                Status.OK,
                f"VICIdial does not send API New Lead URLs itself ({why}): only the streamer sends",
            )
        ]
    results: list[CheckResult] = []
    levels: list[int | None] = [None, *(i for i in sorted(_known_lists(ours)) if _own_level(ours, i))]
    for list_id in levels:
        key = _NO_LIST if list_id is None else list_id
        theirs, their_source, _ = vicidial_view.url_for(key)
        mine, my_source, _ = ours.url_for(key)
        if not (_sendable(theirs) and _sendable(mine)) or their_source is None or my_source is None:
            continue
        name = "double_send.system" if list_id is None else f"double_send.list.{list_id}"
        who = "lists without their own URL" if list_id is None else f"list {list_id}"
        results.append(
            CheckResult(
                name,
                Status.WARN,
                f"{who}: every lead is sent twice, by VICIdial ({url_host(theirs)}, "
                f"{_SOURCE_TEXT[their_source]}) and by the streamer ({url_host(mine)}, "
                f"{_SOURCE_TEXT[my_source]})",
                _double_send_fix(list_id, their_source, my_source, vicidial_view),
            )
        )
    if not results:
        results.append(
            CheckResult("double_send", Status.OK, "no list is sent by both VICIdial and the streamer")
        )
    return results


def _double_send_fix(
    list_id: int | None, their_source: UrlSource, my_source: UrlSource, vicidial_view: SettingsSnapshot
) -> str:
    """Two exact ways out: the streamer leaves the level alone, or VICIdial does."""
    if list_id is None:
        table, key = "[urls]", "system"
    else:
        table, key = "[urls.lists]", str(list_id)
    lines = [f'either leave it to VICIdial: in the config file, under {table}: {key} = "{DISABLED}"']
    if my_source in (UrlSource.CONFIG_LIST, UrlSource.CONFIG_SYSTEM):
        lines.append("or let the streamer send it (with retries), and turn VICIdial's off:")
    else:
        lines.append(
            "or let the streamer send it (with retries): copy VICIdial's URL into the config file, "
            f'under {table}: {key} = "<the URL>", then turn VICIdial\'s off:'
        )
    url_type = f"url_type='{URL_TYPE}'"
    if list_id is None:
        lines.append(
            "UPDATE vicidial_url_multi SET url_address='' WHERE "
            f"campaign_id='{SYSTEM_CAMPAIGN_ID}' AND entry_type='system' AND {url_type};"
        )
    elif their_source is UrlSource.VICIDIAL_LIST or list_id in vicidial_view.list_urls:
        lines.append(
            f"UPDATE vicidial_url_multi SET url_address='{DISABLED}' WHERE "
            f"campaign_id='{list_id}' AND entry_type='list' AND {url_type};"
        )
    else:  # VICIdial sends this list its system URL: a list row turns off only this list
        lines.append(
            "INSERT INTO vicidial_url_multi (campaign_id, entry_type, active, url_type, url_address) "
            f"VALUES ('{list_id}', 'list', 'Y', '{URL_TYPE}', '{DISABLED}');"
        )
    return "\n".join(lines)


# -- running and rendering ------------------------------------------------------------------


def connect_failure(mysql: MysqlConfig, exc: SourceError) -> CheckResult:
    """The FAIL line for a connection that could not be made, with what to check."""
    cause = exc.__cause__
    code = cause.args[0] if isinstance(cause, pymysql.MySQLError) and cause.args else 0
    account = _account_sql(f"{mysql.user}@<this host>")
    if code == _ER_ACCESS_DENIED:
        fix = (
            "check [mysql] user (env VICIDIAL_CDC_MYSQL_USER) and the password "
            "(env VICIDIAL_CDC_MYSQL_PASSWORD or [mysql] password_file); to create the account:\n"
            f"CREATE USER {account} IDENTIFIED BY '<password>';\n"
            f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account};\n"
            f"GRANT SELECT ON {quote(mysql.database)}.* TO {account};"
        )
    elif isinstance(getattr(cause, "original_exception", None), ssl.SSLError) or code == _CR_SSL_REQUIRED:
        fix = (
            "TLS: [mysql] ssl_ca must be the CA that signed the server's certificate (ssl_cert in the "
            "server's my.cnf), the certificate must name [mysql] host, and the server must have TLS on "
            "(SHOW VARIABLES LIKE 'have_ssl': YES); see the README, \"TLS to MySQL\""
        )
    elif code == _ER_HOST_NOT_PRIVILEGED:
        fix = (
            f"the server has no account {mysql.user!r} for the host the streamer connects from: "
            f"CREATE USER {account} (or grant to '{mysql.user}'@'%')"
        )
    elif code in _CR_CONNECTION_ERRORS:
        fix = (
            f"check [mysql] host and port (env VICIDIAL_CDC_MYSQL_HOST, VICIDIAL_CDC_MYSQL_PORT): MariaDB "
            f"must listen on TCP at {mysql.host}:{mysql.port} (my.cnf: bind-address, no skip-networking) "
            "and the firewall must let this host in"
        )
    else:
        fix = "check the [mysql] settings of the config file and that MariaDB is running"
    return CheckResult("connect", Status.FAIL, str(exc), fix)


_LOOPBACK_HOSTS = frozenset({"localhost", "::1"})
_TLS_FIX = (
    f"on the server, {_MY_CNF}\n    ssl_cert = /etc/mysql/tls/server.pem\n"
    "    ssl_key  = /etc/mysql/tls/server.key\n    ssl_ca   = /etc/mysql/tls/ca.pem\n"
    "and in this config file, [mysql]:\n    ssl_ca = \"/etc/vicidial-cdc/mysql-ca.pem\"   "
    "# ssl_mode is then verify_identity"
)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tls(facts: ServerFacts, mysql: MysqlConfig) -> list[CheckResult]:
    """Whether this session is encrypted (``Ssl_cipher``) and the server verified; key file mode."""
    mode = mysql.tls_mode
    local = _is_loopback(mysql.host)
    if not facts.ssl_cipher:
        if local:
            result = CheckResult(
                "tls", Status.OK, f"not encrypted (ssl_mode {mode.value}): {mysql.host} is this host"
            )
        else:
            result = CheckResult(
                "tls",
                Status.WARN,
                f"not encrypted (ssl_mode {mode.value}): the binlog, with leads and password hashes, "
                f"crosses the network to {mysql.host} in plaintext",
                _TLS_FIX,
            )
    else:
        verified = {
            SslMode.VERIFY_IDENTITY: "server certificate and name verified",
            SslMode.VERIFY_CA: "server certificate verified, not its name",
        }.get(mode, "server not verified")
        encrypted = f"encrypted ({facts.ssl_version or 'TLS'}, {facts.ssl_cipher}), {verified}"
        if mode in (SslMode.VERIFY_IDENTITY, SslMode.VERIFY_CA) or local:
            result = CheckResult("tls", Status.OK, f"{encrypted} (ssl_mode {mode.value})")
        else:
            result = CheckResult(
                "tls",
                Status.WARN,
                f"{encrypted} (ssl_mode {mode.value}): anyone on the path to {mysql.host} can pose as the "
                "server and read the binlog",
                "in this config file, [mysql]: ssl_ca = \"<the CA that signed the server's certificate>\" "
                "and ssl_mode = \"verify_identity\" (or leave ssl_mode out)",
            )
    results = [result]
    results.extend(
        CheckResult("tls.key", Status.WARN, warning, f"chmod 600 {mysql.ssl_key}")
        for warning in tls_warnings(mysql)
    )
    return results


def run_checks(cfg: Config, *, max_downtime_s: float = DEFAULT_MAX_DOWNTIME_S) -> list[CheckResult]:
    """Gather the facts with ``cfg``'s credentials and evaluate every check."""
    mysql = cfg.mysql
    try:
        facts = gather_facts(mysql)
    except SourceError as exc:
        return [connect_failure(mysql, exc)]
    connected = CheckResult(
        "connect",
        Status.OK,
        f"connected to {mysql.host}:{mysql.port} as {facts.account} ({facts.version or 'unknown version'}), "
        f"database {quote(mysql.database)}",
    )
    overrides = UrlOverrides(system=cfg.urls.system, lists=dict(cfg.urls.lists))
    return [
        connected,
        *check_tls(facts, mysql),
        *evaluate(facts, server_id=mysql.server_id, overrides=overrides, max_downtime_s=max_downtime_s),
        *check_state(cfg),
    ]


def render_text(results: Sequence[CheckResult]) -> str:
    """One line per check (status, name, message), the fix indented below it."""
    width = min(max((len(r.name) for r in results), default=0), 26)
    lines: list[str] = []
    pad = " " * (4 + 2 + width + 2)
    for r in results:
        lines.append(f"{r.status.value:<4}  {r.name:<{width}}  {r.message}")
        for i, fix_line in enumerate(r.fix.splitlines()):
            lines.append(f"{pad}{'fix: ' if i == 0 else '     '}{fix_line}")
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    code = exit_code(results)
    if code == 0:
        summary = "all good"
    else:
        parts = [f"{counts[Status.FAIL]} blocker(s)"] if counts[Status.FAIL] else []
        if counts[Status.WARN]:
            parts.append(f"{counts[Status.WARN]} warning(s)")
        summary = ", ".join(parts)
    lines.append(f"{summary} (exit {code})")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[CheckResult]) -> str:
    """A JSON list of ``{name, status, message, fix}``, in report order."""
    return json.dumps([_as_dict(r) for r in results], indent=2, ensure_ascii=False) + "\n"


def _as_dict(result: CheckResult) -> dict[str, str]:
    return {
        "name": result.name,
        "status": result.status.value,
        "message": result.message,
        "fix": result.fix,
    }


def parse_duration_s(text: str) -> float:
    """``--max-downtime``: seconds (``86400``) or any duration (``90m``, ``12h``, ``3d``, ``1w``), > 0."""
    return parse_duration(text, what="--max-downtime", bare_seconds=True, positive=True)


_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"))


def human_duration(seconds: float) -> str:
    """``172800`` → ``2 days (172800 s)``; ``5400`` → ``1.5 hours (5400 s)``."""
    for size, name in _UNITS:
        if seconds >= size:
            count = seconds / size
            shown = f"{count:g}" if count == int(count) else f"{count:.1f}"
            return f"{shown} {name}{'' if shown == '1' else 's'} ({seconds:g} s)"
    return f"{seconds:g} s"

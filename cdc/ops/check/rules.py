"""The rules of ``vicidial-cdc check``: pure functions from facts to report lines.

Each ``check_*`` judges one thing and, when it is not right, gives the exact fix: the
``my.cnf`` lines or the SQL to run. Here: the binlog settings, retention, server_id,
privileges and the state file; :func:`evaluate` runs them with the checks of
:mod:`.tables` and :mod:`.urls`, in report order. The connection's own checks are in
:mod:`.connection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...config import DEFAULT_SERVER_ID, ReaderConfig
from ...reader import serverinfo
from ...settings import SettingsCache, UrlOverrides
from ...vicidb import quote_name
from ...vicidial import custom_table
from .facts import ServerFacts, StateFacts
from .grants import (
    REPLICATION_CLIENT,
    account_sql,
    extra_privileges,
    has_database_select,
    has_privilege,
    least_privilege_grants,
)
from .results import MY_CNF, CheckResult, Status
from .tables import READ_TABLES, check_custom_tables, check_tables
from .urls import check_double_send, check_schema_version, check_urls

__all__ = [
    "evaluate",
    "human_duration",
]

#: The config's default ``reader.max_downtime_s``, for callers without a config.
_DEFAULT_MAX_DOWNTIME_S = ReaderConfig().max_downtime_s
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"))
#: Why the recommended grant is SELECT on the whole VICIdial database (README, "Grants").
_WHY_DATABASE_SELECT = (
    "REPLICATION SLAVE already shows this account every row written to every table, "
    "vicidial_users included, so per-table grants protect nothing and break when lists are added"
)


def evaluate(
    facts: ServerFacts,
    *,
    server_id: int = DEFAULT_SERVER_ID,
    overrides: UrlOverrides | None = None,
    max_downtime_s: float = _DEFAULT_MAX_DOWNTIME_S,
) -> list[CheckResult]:
    """Every check, in report order, from the facts and the configuration."""
    overrides = overrides if overrides is not None else UrlOverrides()
    ours = vicidial_view = None
    if facts.settings is not None:
        ours = facts.settings.snapshot(overrides)
        vicidial_view = facts.settings.snapshot()
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


def _variable_is_on(value: str) -> bool:
    return value.upper() in ("ON", "1", "YES", "TRUE")


def _my_cnf_fix(name: str, value: str, *, dynamic: bool) -> str:
    lines = [MY_CNF, f"    {name} = {value}"]
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


def check_state(state: StateFacts, start: str) -> list[CheckResult]:
    """The state file: which server it follows (vs the one answering), who runs on it."""
    path = state.path
    if not state.exists:
        return [
            CheckResult(
                "state",
                Status.INFO,
                f"no state file at {path} yet: the first start begins at reader.start "
                f"({start}) and says so (state.fresh_start)",
            )
        ]
    results = []
    if state.holder is not None:
        results.append(CheckResult("state_lock", Status.INFO, f"a streamer runs on {path} ({state.holder})"))
    if state.server is None:
        return [*results, CheckResult("state_server", Status.INFO, f"not checked: {state.error}")]
    checkpoint = state.checkpoint
    verdict = serverinfo.continuity(state.recorded, checkpoint, state.server)
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
        identity = state.server.identity
        results.append(
            CheckResult(
                "state_server",
                Status.OK,
                f"the state follows this server ({identity}), checkpoint {checkpoint or 'none yet'}",
            )
        )
    return results


def check_retention(facts: ServerFacts, max_downtime_s: float) -> CheckResult:
    kept = serverinfo.binlog_retention_s(facts.variables)
    downtime = human_duration(max_downtime_s)
    needed = max(86400, math.ceil(max_downtime_s / 86400) * 86400)
    if "binlog_expire_logs_seconds" in facts.variables:
        name, value = "binlog_expire_logs_seconds", str(needed)
    else:
        name, value = "expire_logs_days", str(needed // 86400)
    expiry_lines = [f"    {name} = {value}", f"and now: SET GLOBAL {name} = {value};"]
    fix = "\n".join(
        [
            MY_CNF,
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
                    MY_CNF,
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


def check_privileges(
    facts: ServerFacts, read_tables: Sequence[str], *, custom_known: bool = True
) -> list[CheckResult]:
    """REPLICATION SLAVE, REPLICATION CLIENT, SELECT on each table read; and nothing more."""
    account = account_sql(facts.account)
    db = quote_name(facts.database)
    results: list[CheckResult] = []
    for name, privilege, accepted, purpose in (
        ("grant.replication_slave", "REPLICATION SLAVE", {"REPLICATION SLAVE"}, "to read the binlog"),
        (
            "grant.replication_client",
            "REPLICATION CLIENT",
            REPLICATION_CLIENT,
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
        dedicated = account_sql(f"vicidial_cdc@{host or '%'}")
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


def human_duration(seconds: float) -> str:
    """``172800`` → ``2 days (172800 s)``; ``5400`` → ``1.5 hours (5400 s)``."""
    for size, name in _UNITS:
        if seconds >= size:
            count = seconds / size
            shown = f"{count:g}" if count == int(count) else f"{count:.1f}"
            return f"{shown} {name}{'' if shown == '1' else 's'} ({seconds:g} s)"
    return f"{seconds:g} s"

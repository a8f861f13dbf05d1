"""VICIdial's tables in the configured database: those the streamer reads, and each list's
``custom_<list_id>`` table, as far as this account can see them."""

from __future__ import annotations

from collections.abc import Sequence

from ...vicidb import quote_name
from ...vicidial import (
    API_LOG_TABLE,
    LEAD_TABLE,
    LIST_FIELDS_TABLE,
    LISTS_TABLE,
    SYSTEM_SETTINGS_TABLE,
    URL_LOG_TABLE,
    URL_MULTI_TABLE,
    custom_table,
)
from .facts import ServerFacts
from .grants import has_privilege
from .results import CheckResult, Status, shown_ids

__all__ = ["READ_TABLES", "REQUIRED_TABLES", "check_custom_tables", "check_tables"]

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


def check_tables(facts: ServerFacts) -> CheckResult:
    """VICIdial's tables present in the configured database (as far as this account can see)."""
    db = quote_name(facts.database)
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
    return CheckResult("tables.custom", Status.OK, f"custom field tables present: {shown_ids(names)}")

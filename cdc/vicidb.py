"""Plain SELECTs against the VICIdial database (settings at start-up, replay, check).

The dialer database is only read: these queries name the columns they need and never
touch the tables that carry API passwords (``vicidial_users``, ``vicidial_api_urls``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pymysql

from .errors import SchemaError
from .records import Value
from .settings import FIELD_COLUMNS, LIST_COLUMNS, SYSTEM_COLUMNS, URL_COLUMNS

Row = Mapping[str, Value]

_ER_NO_SUCH_TABLE = 1146
_ER_BAD_FIELD = 1054


@dataclass(frozen=True, slots=True)
class SettingsRows:
    url_rows: list[Row]
    list_rows: list[Row]
    field_rows: list[Row]
    system_row: Row | None


def select(conn: pymysql.Connection[Any], sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
    """Run one SELECT; a missing table or column becomes a :class:`SchemaError`."""
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    except pymysql.err.ProgrammingError as exc:
        if exc.args and exc.args[0] == _ER_NO_SUCH_TABLE:
            raise SchemaError(f"{exc.args[1]}: is this a VICIdial database? check [mysql] database") from exc
        raise
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == _ER_BAD_FIELD:
            raise SchemaError(f"{exc.args[1]}: the VICIdial schema is older than expected") from exc
        raise


def load_settings_rows(conn: pymysql.Connection[Any], database: str) -> SettingsRows:
    """One SELECT per settings table, the columns the settings cache reads."""
    db = quote_name(database)

    def cols(names: tuple[str, ...]) -> str:
        return ", ".join(quote_name(n) for n in names)

    urls = select(
        conn,
        f"SELECT {cols(URL_COLUMNS)} FROM {db}.vicidial_url_multi WHERE url_type='apinewlead'",
    )
    lists = select(conn, f"SELECT {cols(LIST_COLUMNS)} FROM {db}.vicidial_lists")
    fields = select(conn, f"SELECT {cols(FIELD_COLUMNS)} FROM {db}.vicidial_lists_fields")
    system = select(conn, f"SELECT {cols(SYSTEM_COLUMNS)} FROM {db}.system_settings LIMIT 1")
    return SettingsRows(urls, lists, fields, system[0] if system else None)


def quote_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def connection_charset(conn: pymysql.Connection[Any], configured: str) -> str:
    """The charset VICIdial's PHP gets with ``use_non_latin=0``: the server's default."""
    if configured:
        return configured
    rows = select(conn, "SELECT @@global.character_set_server AS cs")
    return str(rows[0]["cs"]) if rows and rows[0]["cs"] else "latin1"


def url_type_has_apinewlead(conn: pymysql.Connection[Any], database: str) -> bool:
    """Whether ``vicidial_url_multi.url_type`` lists ``apinewlead`` (builds that send it)."""
    rows = select(
        conn,
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA=%s AND TABLE_NAME='vicidial_url_multi' AND COLUMN_NAME='url_type'",
        (database,),
    )
    return bool(rows) and "'apinewlead'" in str(rows[0]["COLUMN_TYPE"])

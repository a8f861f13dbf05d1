"""Plain SELECTs against the VICIdial database (settings at start-up, replay, check).

The dialer database is only read: these queries name the columns they need and never
touch the tables that carry API passwords (``vicidial_users``, ``vicidial_api_urls``).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pymysql

from . import vicidial
from .errors import SchemaError
from .hooks.configured import setting_columns
from .records import Value
from .records import as_text as _text
from .settings import (
    FIELD_COLUMNS,
    LIST_COLUMNS,
    SYSTEM_COLUMNS,
    URL_COLUMNS,
    SettingsCache,
    SettingsSnapshot,
    UrlOverrides,
)

Row = Mapping[str, Value]

_ER_NO_SUCH_TABLE = 1146
_ER_BAD_FIELD = 1054


@dataclass(frozen=True, slots=True)
class SettingsRows:
    url_rows: list[Row]
    list_rows: list[Row]
    field_rows: list[Row]
    system_row: Row | None

    def snapshot(self, overrides: UrlOverrides | None = None) -> SettingsSnapshot:
        """These rows as the settings cache holds them, over the config file's ``[urls]``."""
        cache = SettingsCache(overrides)
        cache.load(self.url_rows, self.list_rows, self.field_rows, self.system_row)
        return cache.snapshot()


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
        f"SELECT {cols(URL_COLUMNS)} FROM {db}.{vicidial.URL_MULTI_TABLE}"
        f" WHERE url_type='{vicidial.URL_TYPE}'",
    )
    lists = select(conn, f"SELECT {cols(LIST_COLUMNS)} FROM {db}.{vicidial.LISTS_TABLE}")
    fields = load_field_rows(conn, database)
    system = select(conn, f"SELECT {cols(SYSTEM_COLUMNS)} FROM {db}.{vicidial.SYSTEM_SETTINGS_TABLE} LIMIT 1")
    return SettingsRows(urls, lists, fields, system[0] if system else None)


def load_field_rows(conn: pymysql.Connection[Any], database: str) -> list[Row]:
    """The ``vicidial_lists_fields`` columns the settings cache reads (custom fields per list)."""
    columns = ", ".join(quote_name(n) for n in FIELD_COLUMNS)
    return select(conn, f"SELECT {columns} FROM {quote_name(database)}.{vicidial.LIST_FIELDS_TABLE}")


def quote_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def connection_charset(conn: pymysql.Connection[Any], configured: str) -> str:
    """The charset VICIdial's PHP gets with ``use_non_latin=0``: the server's default."""
    if configured:
        return configured
    rows = select(conn, "SELECT @@global.character_set_server AS cs")
    return effective_charset(configured, str(rows[0]["cs"] or "") if rows else "")


def effective_charset(configured: str, character_set_server: str) -> str:
    """``reader.server_charset`` when set, else the server's default (latin1 when unknown)."""
    return configured or character_set_server or "latin1"


def enum_labels(column_type: str) -> tuple[str, ...]:
    """``enum('a','b''c')`` → ``('a', "b'c")`` (an ``information_schema.COLUMNS.COLUMN_TYPE``)."""
    if "(" not in column_type:
        return ()
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", inner))


def url_type_labels(conn: pymysql.Connection[Any], database: str) -> tuple[str, ...] | None:
    """The labels of the ``vicidial_url_multi.url_type`` ENUM; ``None`` when not visible."""
    rows = select(
        conn,
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS"
        f" WHERE TABLE_SCHEMA=%s AND TABLE_NAME='{vicidial.URL_MULTI_TABLE}' AND COLUMN_NAME='url_type'",
        (database,),
    )
    return enum_labels(str(rows[0]["COLUMN_TYPE"])) if rows else None


def url_type_has_apinewlead(conn: pymysql.Connection[Any], database: str) -> bool:
    """Whether ``vicidial_url_multi.url_type`` lists ``apinewlead`` (builds that send it)."""
    return vicidial.URL_TYPE in (url_type_labels(conn, database) or ())


# -- rows read by SELECT, with the values the binlog reader gives ------------------------
#
# Replay (and anything else that reads a lead by SELECT) must build the very ApiLead the
# binlog path builds, or the same lead renders differently (a post-json body without
# modify_date, a GET with another date format). One column list, the table's own, in
# its order; one normalization, to what cdc.reader.rowdecode produces.

#: The binlog's TIMESTAMP: seconds after this, as a naive UTC datetime.
_EPOCH: Final = _dt.datetime(1970, 1, 1)
_ZERO_DATETIME: Final = "0000-00-00 00:00:00"
_DATETIME_TEXT: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")
_DATE_TEXT: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME_TEXT: Final = re.compile(r"(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table, from ``information_schema``."""

    name: str
    #: ``DATA_TYPE``, lower case (``int``, ``varchar``, ``timestamp``, …).
    data_type: str


def table_columns(conn: pymysql.Connection[Any], database: str, table: str) -> tuple[Column, ...]:
    """Every column of ``table`` in table order (as a binlog row image has them); () when none."""
    rows = select(
        conn,
        "SELECT COLUMN_NAME AS name, DATA_TYPE AS data_type FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    return tuple(Column(_text(row.get("name")), _text(row.get("data_type")).lower()) for row in rows)


def row_select(columns: Sequence[Column]) -> str:
    """The SELECT list reading ``columns`` for :func:`binlog_row`, each under its own name.

    A TIMESTAMP is read as ``UNIX_TIMESTAMP()``: MariaDB stores it in UTC and returns
    that value as is, while its text would be in the session's time zone.
    """
    return ", ".join(
        f"UNIX_TIMESTAMP({quote_name(c.name)}) AS {quote_name(c.name)}"
        if c.data_type == "timestamp"
        else quote_name(c.name)
        for c in columns
    )


def binlog_row(row: Mapping[str, Value], columns: Sequence[Column]) -> dict[str, Value]:
    """A row read with :func:`row_select` over a connection that returns DATE, DATETIME and
    TIME as text (``cdc.leadfetch.connection_options``), with the values the binlog reader gives.

    DATE → ``date``, DATETIME → ``datetime`` (a zero or partly zero date stays text, as the
    binlog's), TIMESTAMP → naive UTC ``datetime``, TIME → ``timedelta``; the rest (text,
    ENUM labels, integers, ``Decimal``) PyMySQL already gives as the binlog path does.
    Keys keep the row's order; keys not in ``columns`` are left as they are.
    """
    types = {c.name: c.data_type for c in columns}
    return {name: _binlog_value(value, types.get(name, "")) for name, value in row.items()}


def _binlog_value(value: Value, data_type: str) -> Value:
    if value is None:
        return None
    if data_type == "timestamp" and isinstance(value, int | decimal.Decimal):
        stamp = decimal.Decimal(value)
        whole = int(stamp)
        return _EPOCH + _dt.timedelta(seconds=whole, microseconds=int((stamp - whole) * 1_000_000))
    if not isinstance(value, str):
        return value
    if data_type == "datetime" and (m := _DATETIME_TEXT.fullmatch(value)) is not None:
        year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
        micro = _micro(m[7])
        try:
            return _dt.datetime(year, month, day, hour, minute, second, micro)
        except ValueError:
            zero = not (year or month or day or hour or minute or second or micro)
            return _ZERO_DATETIME if zero else value
    if data_type == "date" and _DATE_TEXT.fullmatch(value):
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            return value
    if data_type == "time" and (m := _TIME_TEXT.fullmatch(value)) is not None:
        hours, minutes, secs = int(m[2]), int(m[3]), int(m[4])
        delta = _dt.timedelta(hours=hours, minutes=minutes, seconds=secs, microseconds=_micro(m[5]))
        return -delta if m[1] else delta
    return value


def _micro(fraction: str | None) -> int:
    """Microseconds of a ``.ffffff`` fraction's digits (``"5"`` is 500000)."""
    return int((fraction or "0").ljust(6, "0"))


def hook_setting_rows(conn: pymysql.Connection[Any], database: str, table: str) -> list[Row]:
    """The active rows of a campaign, in-group or list table, with the hook URL columns this
    build has (:mod:`cdc.hooks.configured`); ``check`` reports what they fire."""
    present = [column.name for column in table_columns(conn, database, table)]
    if not present:
        raise SchemaError(f"{database}.{table} is missing or not readable by this account")
    columns = ", ".join(quote_name(c) for c in setting_columns(table, present))
    where = " WHERE active = 'Y'" if "active" in present else ""
    return select(conn, f"SELECT {columns} FROM {quote_name(database)}.{quote_name(table)}{where}")


def hook_alt_rows(conn: pymysql.Connection[Any], database: str) -> list[Row]:
    """The active ALT rows of ``vicidial_url_multi`` (campaign, in-group or list, and type)."""
    table = f"{quote_name(database)}.{vicidial.URL_MULTI_TABLE}"
    return select(conn, f"SELECT campaign_id, entry_type, url_type FROM {table} WHERE active = 'Y'")

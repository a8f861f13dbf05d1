"""Leads rebuilt by SELECT: the ``vicidial_list`` row and its ``custom_<list_id>`` row.

One home for the SELECTs that ``replay`` and the live path's late matches share (a
lead whose ``add_lead`` api_log row came after the detector gave up on its insert).
Blocking (PyMySQL): callers run it in a thread.

Values are read as the binlog path produces them: every column (as a binlog row image
has them), text through a ``utf8mb4`` connection, ENUM labels, DECIMAL with the
column's scale, and temporal values turned into the binlog reader's values by
:func:`cdc.vicidb.binlog_row`. The lead is read as it stands now, and ``inserted_at`` is
``UNIX_TIMESTAMP(entry_date)`` (the server's local time, as VICIdial wrote it with
``NOW()``), or the caller's fallback.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import pymysql
from pymysql.constants import FIELD_TYPE

from . import vicidb, vicidial
from .errors import ConfigError
from .records import ApiLead, Value, as_int

__all__ = ["LeadFetcher", "build_lead", "connection_options"]

_EPOCH_ALIAS: Final = "cdc_entry_epoch"  # extra column of the lead SELECT, removed from the row
_TEMPORAL_TYPES: Final = (
    FIELD_TYPE.DATE,
    FIELD_TYPE.NEWDATE,
    FIELD_TYPE.DATETIME,
    FIELD_TYPE.TIMESTAMP,
    FIELD_TYPE.TIME,
)


def connection_options() -> dict[str, Any]:
    """``cdc.reader.connection.connect`` options for lead SELECTs: read-only, temporal values as text.

    DATE/DATETIME/TIMESTAMP/TIME come back as the server's text (``0000-00-00``
    included), exactly what PHP reads, which :func:`cdc.vicidb.binlog_row` turns into
    the binlog reader's values; the rest keeps PyMySQL's conversions (DECIMAL →
    ``Decimal`` with scale, integers → ``int``, text decoded from ``utf8mb4``).
    """
    conv = dict(pymysql.converters.conversions)
    for field_type in _TEMPORAL_TYPES:
        conv[field_type] = str
    return {
        "autocommit": True,
        "conv": conv,
        "init_command": "SET SESSION TRANSACTION READ ONLY",
    }


class LeadFetcher:
    """SELECTs of lead rows and custom rows on one connection (opened by the caller).

    ``needs_custom(list_id)``: whether a lead of that list needs its custom row (the
    router's :meth:`~cdc.endpoints.Router.needs_custom` against the settings now).
    """

    def __init__(
        self, conn: pymysql.Connection[Any], database: str, needs_custom: Callable[[int], bool]
    ) -> None:
        self._conn = conn
        self._database = database
        self._db = vicidb.quote_name(database)
        self._needs_custom = needs_custom
        # Every column, as the binlog row image has them: the post-json event carries them all.
        self._lead_columns = vicidb.table_columns(conn, database, vicidial.LEAD_TABLE)
        names = {c.name for c in self._lead_columns}
        if "lead_id" not in names or "list_id" not in names:
            raise ConfigError(f"{database}.vicidial_list has no lead_id/list_id: check [mysql] database")
        self._lead_select = vicidb.row_select(self._lead_columns)
        if "entry_date" in names:
            self._lead_select += f", UNIX_TIMESTAMP(`entry_date`) AS {_EPOCH_ALIAS}"
        self._custom_columns: dict[int, tuple[vicidb.Column, ...]] = {}
        #: Lists whose leads needed a custom row but whose custom table showed no columns
        #: (missing, or no SELECT on it): their leads came back without custom values.
        self.unreadable_lists: set[int] = set()

    def fetch(self, lead_ids: Sequence[int], fallback_epoch: Mapping[int, int]) -> list[ApiLead]:
        """The leads of ``lead_ids`` that still exist, with their custom rows when needed.

        ``fallback_epoch[lead_id]`` is ``inserted_at`` when the row has no valid
        ``entry_date`` (the api_log row's time).
        """
        if not lead_ids:
            return []
        rows = self.select_leads(
            "`lead_id` IN (" + ", ".join(["%s"] * len(lead_ids)) + ")", tuple(lead_ids)
        )
        chosen: list[tuple[dict[str, Value], int, int, int]] = []
        for row in rows:
            lead_id, list_id = as_int(row.get("lead_id")), as_int(row.get("list_id"))
            if lead_id is None or list_id is None:
                continue
            epoch = self.take_epoch(row)
            chosen.append((row, lead_id, list_id, epoch or fallback_epoch.get(lead_id, 0)))
        customs = self.custom_rows([(lead_id, list_id) for _, lead_id, list_id, _ in chosen])
        return [
            build_lead(row, lead_id, list_id, epoch, customs.get(lead_id))
            for row, lead_id, list_id, epoch in chosen
        ]

    def select_leads(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Value]]:
        """``vicidial_list`` rows (every column, as the binlog has them) matching ``where``."""
        rows = vicidb.select(
            self._conn, f"SELECT {self._lead_select} FROM {self._db}.`vicidial_list` WHERE {where}", args
        )
        return [vicidb.binlog_row(row, self._lead_columns) for row in rows]

    @staticmethod
    def take_epoch(row: dict[str, Value]) -> int:
        """Remove the ``UNIX_TIMESTAMP(entry_date)`` column from ``row``; 0 when invalid."""
        epoch = as_int(row.pop(_EPOCH_ALIAS, None)) or 0
        return max(epoch, 0)

    def custom_rows(self, leads: Sequence[tuple[int, int]]) -> dict[int, dict[str, Value]]:
        """``custom_<list_id>`` rows of the (lead_id, list_id) whose URL needs them, by lead_id."""
        by_list: dict[int, list[int]] = {}
        for lead_id, list_id in leads:
            if self._needs_custom(list_id):
                by_list.setdefault(list_id, []).append(lead_id)
        out: dict[int, dict[str, Value]] = {}
        for list_id, lead_ids in sorted(by_list.items()):
            table = vicidial.custom_table(list_id)
            columns = self._custom_columns.get(list_id)
            if columns is None:
                columns = vicidb.table_columns(self._conn, self._database, table)
                self._custom_columns[list_id] = columns
            if "lead_id" not in {c.name for c in columns}:
                self.unreadable_lists.add(list_id)
                continue  # no such table (or not readable): the lead has no custom row
            rows = vicidb.select(
                self._conn,
                f"SELECT {vicidb.row_select(columns)} FROM {self._db}.{vicidb.quote_name(table)}"
                " WHERE `lead_id` IN (" + ", ".join(["%s"] * len(lead_ids)) + ")",
                tuple(lead_ids),
            )
            for row in rows:
                owner = as_int(row.get("lead_id"))
                if owner is not None:
                    out[owner] = vicidb.binlog_row(row, columns)
        return out

    def columns(self, table: str) -> tuple[vicidb.Column, ...]:
        """Columns of ``table`` in order; empty when it is missing (or not readable)."""
        return vicidb.table_columns(self._conn, self._database, table)


def build_lead(
    row: dict[str, Value], lead_id: int, list_id: int, inserted_at: int, custom: dict[str, Value] | None
) -> ApiLead:
    """An :class:`ApiLead` from SELECTed rows, as the detector builds one from the binlog."""
    return ApiLead(
        lead_id=lead_id,
        list_id=list_id,
        lead=types.MappingProxyType(row),
        custom=types.MappingProxyType(custom) if custom is not None else None,
        inserted_at=inserted_at,
    )

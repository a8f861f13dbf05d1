"""Watched ``custom_<list_id>`` tables whose columns the streamer's account cannot read.

With ``binlog_row_metadata`` at the server default (NO_LOG) the binlog has no column
names, and ``information_schema`` shows nothing of a table the account has no SELECT
on: an admin who adds custom fields to a new list creates such a table under per-table
grants. Its rows cannot be decoded, but that must not stop the other lists: both
readers hand over :class:`cdc.records.UnreadableRows` for them (the pipeline holds the
leads that need those rows) and read the columns again every ``retry_s`` (not at every
event), so rows decode again once the GRANT is given.

Only ``custom_<list_id>`` tables are handled so: the other watched tables are needed
for every lead, and a fault there stops the reader with its cause.

Reader thread only (no locking); the clock is the monotonic one, passed in.
"""

from __future__ import annotations

import logging

from ..errors import ReaderFault
from ..vicidial import custom_table_list_id

log = logging.getLogger(__name__)

__all__ = ["UNREADABLE_REASON", "UnreadableTables", "grant_statement"]

#: The ``reason`` of :class:`cdc.records.UnreadableRows` for these tables.
UNREADABLE_REASON = ReaderFault.TABLE_UNREADABLE.value


def grant_statement(database: str, table: str, user: str) -> str:
    """The GRANT that makes ``table`` readable (host part as the site created the account)."""
    return f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'<host>'"


class UnreadableTables:
    """Which tables are unreadable now, and when to try reading their columns again."""

    __slots__ = ("_database", "_next_try", "_retry_s", "_user")

    def __init__(self, database: str, user: str, retry_s: float) -> None:
        self._database = database
        self._user = user
        self._retry_s = retry_s
        self._next_try: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self._next_try)

    def __contains__(self, table: object) -> bool:
        return table in self._next_try

    def tables(self) -> frozenset[str]:
        # A copy: the reader thread changes the dict (a snapshot for other threads).
        return frozenset(list(self._next_try))

    def due(self, now: float) -> frozenset[str]:
        """The unreadable tables whose columns should be read again now."""
        return frozenset(t for t, next_try in self._next_try.items() if now >= next_try)

    def retry_due(self, table: str, now: float) -> bool:
        """True when ``table`` is unreadable and its columns should be read again now."""
        next_try = self._next_try.get(table)
        return next_try is not None and now >= next_try

    def update(self, table: str, readable: bool, now: float) -> bool:
        """After looking up ``table``'s columns: True when its rows cannot be decoded.

        ``readable``: a definition of the table is known (``information_schema`` or the
        schema history) or the binlog carries column names (``binlog_row_metadata=FULL``).
        """
        if readable or custom_table_list_id(table) is None:
            if self._next_try.pop(table, None) is not None:
                log.warning("binlog.table_readable table=%s", table)
            return False
        first = table not in self._next_try
        self._next_try[table] = now + self._retry_s
        (log.error if first else log.warning)(
            "binlog.table_unreadable table=%s reason=%s retry_in_s=%.0f"
            " cause=the account cannot read the table's columns and the binlog has no column names;"
            " its leads wait, other lists go on"
            " fix=%s (or GRANT SELECT ON `%s`.* so lists added later are readable too)",
            table,
            UNREADABLE_REASON,
            self._retry_s,
            grant_statement(self._database, table, self._user),
            self._database,
        )
        return True

"""What the reader knows about the watched tables: which they are and what columns they had.

:class:`WatchedTables` is the table filter (the configured tables plus every
``custom_<list_id>`` table, :func:`always_watched`). :class:`SchemaCache` reads
``information_schema`` (how tables look *now*) on the reader thread's own connection.
:class:`TableSchemas` joins both with the schema history (:mod:`cdc.reader.schemahistory`,
how they looked *then*) and its store: what both sources ask when a table map lacks
names, signedness, ENUM labels or charsets, and what they tell it when a DDL passes by.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import pymysql

from ..config import MysqlConfig
from ..errors import ReaderFault, ReaderFaultError, SourceError
from ..records import Position, SchemaChange
from ..vicidb import enum_labels
from ..vicidial import custom_table_list_id
from .connection import connect
from .schemahistory import (
    ColumnInfo,
    SchemaHistory,
    TableDefinition,
    ambiguous_message,
    columns_from_json,
    columns_to_json,
    fits,
)

__all__ = ["SchemaCache", "SchemaHistoryStore", "TableSchemas", "WatchedTables", "always_watched"]

log = logging.getLogger(__name__)

_DDL_RE = re.compile(
    rb"^\s*(?:/\*.*?\*/\s*)*(?:ALTER|CREATE|DROP|RENAME|TRUNCATE)\s+(?:TEMPORARY\s+)?TABLE\b",
    re.IGNORECASE | re.DOTALL,
)
_NAME_RE = re.compile(rb"[`\"]?(?:\w+[`\"]?\.[`\"]?)?(\w+)[`\"]?")


class SchemaCache:
    """``information_schema`` reads of the reader thread, on its own connection.

    What it reads is how tables look *now*; :class:`cdc.reader.schemahistory.SchemaHistory`
    keeps what they looked like before.
    """

    def __init__(self, mysql: MysqlConfig) -> None:
        self._mysql = mysql
        self._conn: pymysql.Connection[Any] | None = None

    def columns(self, table: str) -> tuple[ColumnInfo, ...]:
        """The table's columns now (empty when it does not exist or cannot be seen)."""
        return self.load([table]).get(table, ())

    def load(self, tables: Iterable[str]) -> dict[str, tuple[ColumnInfo, ...]]:
        """The columns of several tables now, in one query (tables not seen are absent)."""
        names = sorted(set(tables))
        if not names:
            return {}
        rows = self._query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME IN "
            f"({', '.join(['%s'] * len(names))}) ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (self._mysql.database, *names),
        )
        out: dict[str, list[ColumnInfo]] = {}
        for table, name, data_type, column_type, cs in rows:
            kind = str(data_type).lower()
            out.setdefault(str(table), []).append(
                ColumnInfo(
                    name=str(name),
                    data_type=kind,
                    unsigned="unsigned" in str(column_type).lower(),
                    charset=str(cs) if cs else None,
                    enum_labels=enum_labels(str(column_type)) if kind in ("enum", "set") else (),
                )
            )
        return {table: tuple(columns) for table, columns in out.items()}

    def position(self) -> Position:
        """The server's current binlog position."""
        rows = self._query("SHOW MASTER STATUS", ())
        if not rows:
            raise SourceError("the server has no binary log (log_bin=OFF)")
        return Position(str(rows[0][0]), int(rows[0][1]))

    def server_time(self, timestamp: int) -> str:
        """A binlog timestamp as the server's local time (what ``replay --since`` takes)."""
        rows = self._query("SELECT CAST(FROM_UNIXTIME(%s) AS CHAR)", (timestamp,))
        return str(rows[0][0])[:19]

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _query(self, sql: str, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
        if self._conn is None:
            self._conn = connect(self._mysql, autocommit=True)
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql, args)
                return tuple(cur.fetchall())
        except pymysql.MySQLError:
            self.close()
            raise


class SchemaHistoryStore(Protocol):
    """Where the reader keeps its schema history: the state store, on the reader's own connection.

    :class:`cdc.store.sqlite.SqliteStore` implements it; the reader opens it in its thread, so
    it never shares the service's connection.
    """

    def open(self) -> None: ...

    def close(self) -> None: ...

    def schema_history(self, database: str) -> list[tuple[str, Position, str]]: ...

    def add_schema_history(
        self, database: str, entries: Sequence[tuple[str, Position, str]], now: float
    ) -> None: ...

    def prune_schema_history(self, database: str, keep_from: Position) -> int: ...


def always_watched(table: str) -> bool:
    """``custom_<list_id>`` tables are read whether or not they are in the watched set.

    VICIdial creates one while running (a list gets its first custom field), and the
    reader is usually batches ahead of the pipeline that learns of the new fields: by
    the time the pipeline could ask for the table, its first rows may be read already.
    """
    return custom_table_list_id(table) is not None


class WatchedTables(set[str]):
    """The reader's table filter: the configured tables plus :func:`always_watched` ones.

    A set, so ``mysql-replication``'s ``only_tables`` check (``in``) applies the same rule.
    """

    def __contains__(self, table: object) -> bool:
        return set.__contains__(self, table) or (isinstance(table, str) and always_watched(table))


class TableSchemas:
    """The columns each watched table had at each binlog position, for both sources.

    Reader thread only. The history is learned at the first connect (the stored
    history, then every watched table as it is now) and at every DDL for a watched
    table; new definitions are stored before the batch that passes their position is
    handed over, so the checkpoint never passes a position whose definition is not stored.
    """

    def __init__(
        self,
        database: str,
        tables: WatchedTables,
        cache: SchemaCache,
        store: SchemaHistoryStore | None = None,
    ) -> None:
        """``store``: where the history is kept (unopened; opened on the reader thread at
        the first :meth:`learn`). Without one the history lives in memory."""
        self._database = database
        self.tables = tables
        self._cache = cache
        self._history = SchemaHistory()
        self._store = store
        self._opened = False
        self._learned = False

    def learn(self, resume: Position | None) -> None:
        """At the first connect: the stored history (pruned before ``resume``), then every
        watched table as it is now."""
        if self._learned:
            return
        store = self._store
        if store is not None and not self._opened:
            store.open()
            self._opened = True
            if resume is not None:
                store.prune_schema_history(self._database, resume)
            for table, position, columns in store.schema_history(self._database):
                self._history.add(table, position, columns_from_json(columns))
        position = self._cache.position()  # first: what is read next holds from here on
        now = self._cache.load(set(self.tables))
        self.remember([(table, position, columns) for table, columns in now.items()])
        self._learned = True
        log.info("binlog.schema_history tables=%d definitions=%d", len(now), len(self._history))

    def remember(self, learned: Iterable[tuple[str, Position, Sequence[ColumnInfo]]]) -> None:
        """Add definitions to the history; new ones are durable before this returns."""
        added = (self._history.add(table, position, columns) for table, position, columns in learned)
        new = [d for d in added if d is not None]
        if not new:
            return
        for d in new:
            log.info(
                "binlog.schema_learned table=%s position=%s columns=%d", d.table, d.position, len(d.columns)
            )
        if self._store is not None:
            self._store.add_schema_history(
                self._database,
                [(d.table, d.position, columns_to_json(d.columns)) for d in new],
                time.time(),
            )

    def has(self, table: str) -> bool:
        """Whether any definition of ``table`` is known."""
        return self._history.has(table)

    def at(self, table: str, position: Position) -> TableDefinition | None:
        """The definition in force at ``position`` (``None``: none known before it)."""
        return self._history.at(table, position)

    def columns_now(self, table: str) -> tuple[ColumnInfo, ...]:
        """The table's columns as ``information_schema`` shows them now."""
        return self._cache.columns(table)

    def columns_at(
        self, table: str, position: Position, types: Sequence[int]
    ) -> tuple[ColumnInfo, ...] | None:
        """The definition the rows of a table map at ``position`` were written with.

        ``None`` when no known definition fits their column ``types`` (see
        :meth:`cdc.reader.schemahistory.SchemaHistory.choose`), even after a fresh look at
        ``information_schema``. Callers that have no column names in the binlog then
        raise :meth:`ambiguous`.
        """
        if not self._history.has(table):
            self.remember([(table, position, self._cache.columns(table))])
        chosen = self._history.choose(table, position, types)
        if chosen is None:
            fresh = self._cache.columns(table)
            if fits(types, fresh):
                self.remember([(table, position, fresh)])
                chosen = self._history.choose(table, position, types)
        return chosen.columns if chosen is not None else None

    def ambiguous(
        self, schema: str, table: str, position: Position, types: Sequence[int], timestamp: int
    ) -> SourceError:
        """The error for rows no definition fits (``table_unreadable`` when none is known at all)."""
        known = self._history.definitions(table)
        if not known:
            # A fault by kind, not by wording: the reader stops retrying fast and says so.
            return ReaderFaultError(
                ReaderFault.TABLE_UNREADABLE,
                f"table {schema}.{table} has {len(types)} columns in the binlog but none in "
                "information_schema, and the server does not log column names: grant SELECT on it "
                "or set binlog_row_metadata=FULL",
            )
        try:
            since = self._cache.server_time(timestamp)
            resume: Position | None = self._cache.position()
        except (pymysql.MySQLError, OSError, SourceError):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp)) + " (UTC: use server time)"
            resume = None
        message = ambiguous_message(schema, table, position, types, known, since=since, resume=resume)
        log.error("binlog.schema_ambiguous table=%s position=%s %s", table, position, message)
        return ReaderFaultError(ReaderFault.SCHEMA_AMBIGUOUS, message)

    def schema_changes(
        self, schema: str, query: bytes, timestamp: int, position: Position
    ) -> list[SchemaChange]:
        """The watched tables a statement's DDL touches; their columns from ``position`` on are learned."""
        if not _DDL_RE.match(query):
            return []
        touched = [name.decode() for name in _NAME_RE.findall(query) if name.decode() in self.tables]
        tables = list(dict.fromkeys(touched))
        if tables:
            now = self._cache.load(tables)  # read after the DDL: never older than it
            self.remember([(table, position, now.get(table, ())) for table in tables])
        out: list[SchemaChange] = []
        for table in tables:
            out.append(SchemaChange(schema or self._database, table, timestamp))
            log.info("binlog.schema_change table=%s", table)
        return out

    def close(self) -> None:
        """Close the ``information_schema`` connection and the history store (reader thread)."""
        self._cache.close()
        if self._store is not None and self._opened:
            self._store.close()

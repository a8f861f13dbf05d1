"""Schema history: which columns a watched table had at which binlog position.

Without ``binlog_row_metadata=FULL`` a row image carries only column types: names,
signedness, ENUM labels and charsets come from ``information_schema``, which tells
how a table looks *now*. A row written before an ``ALTER TABLE`` must be read with the
columns it was written with, so both readers keep, per table, the definitions they
learned and the position from which each holds: at start, and at every DDL event the
stream carries for the table (:class:`SchemaHistory`). The reader saves new entries
in the state store before it hands over the batch that passes their position, so a
restart reads old row images as they were written.

A definition read from ``information_schema`` while the reader catches up may be
newer than the DDL event that made the reader read it (later DDLs already ran).
VICIdial's upgrades add columns at the end, so a row image with fewer columns than
the definition is read with the definition's first columns (:func:`fits`: the table
map's column count and types say which prefix applies; the types must agree). Only
when no known definition fits does the reader stop, with
:class:`cdc.errors.ReaderFaultError` (``schema_ambiguous``) and the way out
(:func:`ambiguous_message`). Pure, no I/O.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ..records import Position
from . import rowdecode as rd

__all__ = [
    "ColumnInfo",
    "SchemaHistory",
    "TableDefinition",
    "ambiguous_message",
    "columns_from_json",
    "columns_to_json",
    "fits",
]


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column as ``information_schema.COLUMNS`` describes it."""

    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    unsigned: bool
    charset: str | None
    #: ENUM or SET members in definition order (this reader uses the ENUM ones only).
    enum_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TableDefinition:
    """``columns`` of ``table`` hold from ``position`` on (until the table's next entry)."""

    table: str
    position: Position
    columns: tuple[ColumnInfo, ...]


#: Binlog column types (after the ENUM/SET real-type substitution both readers make)
#: that each information_schema DATA_TYPE is written as. Types not listed (MariaDB's
#: INET6, UUID, …) cannot be checked and are taken as agreeing.
_BINLOG_TYPES: Final[dict[str, frozenset[int]]] = {
    "tinyint": frozenset({rd.T_TINY}),
    "smallint": frozenset({rd.T_SHORT}),
    "mediumint": frozenset({rd.T_INT24}),
    "int": frozenset({rd.T_LONG}),
    "bigint": frozenset({rd.T_LONGLONG}),
    "decimal": frozenset({rd.T_NEWDECIMAL, rd.T_DECIMAL}),
    "float": frozenset({rd.T_FLOAT}),
    "double": frozenset({rd.T_DOUBLE}),
    "bit": frozenset({rd.T_BIT}),
    "year": frozenset({rd.T_YEAR}),
    "date": frozenset({rd.T_DATE, rd.T_NEWDATE}),
    "time": frozenset({rd.T_TIME, rd.T_TIME2}),
    "datetime": frozenset({rd.T_DATETIME, rd.T_DATETIME2}),
    "timestamp": frozenset({rd.T_TIMESTAMP, rd.T_TIMESTAMP2}),
    "char": frozenset({rd.T_STRING}),
    "binary": frozenset({rd.T_STRING}),
    "varchar": frozenset({rd.T_VARCHAR, rd.T_VAR_STRING}),
    "varbinary": frozenset({rd.T_VARCHAR, rd.T_VAR_STRING}),
    "enum": frozenset({rd.T_ENUM}),
    "set": frozenset({rd.T_SET}),
    "json": frozenset({rd.T_BLOB, rd.T_JSON}),
    **{
        name: frozenset({rd.T_BLOB})
        for name in (
            "tinytext",
            "text",
            "mediumtext",
            "longtext",
            "tinyblob",
            "blob",
            "mediumblob",
            "longblob",
        )
    },
    **{
        name: frozenset({rd.T_GEOMETRY})
        for name in (
            "geometry",
            "point",
            "linestring",
            "polygon",
            "multipoint",
            "multilinestring",
            "multipolygon",
            "geometrycollection",
        )
    },
}


def agrees(binlog_type: int, column: ColumnInfo) -> bool:
    """Whether a table map's column type can be ``column`` (unknown DATA_TYPEs agree)."""
    allowed = _BINLOG_TYPES.get(column.data_type)
    return allowed is None or binlog_type in allowed


def fits(types: Sequence[int], columns: Sequence[ColumnInfo]) -> bool:
    """Whether row images with these column types were written with ``columns``.

    They were if the types agree with the definition's first ``len(types)`` columns:
    the whole definition, or a prefix of it when columns were added at the end since.
    """
    return len(types) <= len(columns) and all(agrees(t, c) for t, c in zip(types, columns, strict=False))


class SchemaHistory:
    """Per watched table, its definitions ordered by the position from which they hold.

    Owned by one reader thread. :meth:`add` keeps only definitions that change what
    is in force; :meth:`choose` picks the definition a table map was written with.
    """

    def __init__(self, definitions: Iterable[TableDefinition] = ()) -> None:
        self._positions: dict[str, list[Position]] = {}
        self._definitions: dict[str, list[TableDefinition]] = {}
        for definition in definitions:
            self.add(definition.table, definition.position, definition.columns)

    def __len__(self) -> int:
        return sum(len(defs) for defs in self._definitions.values())

    def has(self, table: str) -> bool:
        return table in self._definitions

    def definitions(self, table: str) -> list[TableDefinition]:
        """Every known definition of ``table``, oldest first."""
        return list(self._definitions.get(table, ()))

    def at(self, table: str, position: Position) -> TableDefinition | None:
        """The definition in force at ``position``: the latest from at or before it.

        Before the first entry (rows older than anything learned), the first entry:
        it is the best knowledge there is, and :func:`fits` checks it against the row.
        """
        positions = self._positions.get(table)
        if not positions:
            return None
        k = bisect.bisect_right(positions, position)
        return self._definitions[table][max(k - 1, 0)]

    def add(self, table: str, position: Position, columns: Sequence[ColumnInfo]) -> TableDefinition | None:
        """Learn that ``columns`` hold from ``position``; the new entry, or ``None`` if nothing changed."""
        columns = tuple(columns)
        if not columns:
            return None  # the table is gone or unreadable: nothing learned
        position = Position(position.file, position.pos)
        current = self.at(table, position)
        if current is not None and current.position <= position and current.columns == columns:
            return None
        positions = self._positions.setdefault(table, [])
        definitions = self._definitions.setdefault(table, [])
        definition = TableDefinition(table, position, columns)
        k = bisect.bisect_left(positions, position)
        if k < len(positions) and positions[k] == position:
            definitions[k] = definition
        else:
            positions.insert(k, position)
            definitions.insert(k, definition)
        return definition

    def choose(self, table: str, position: Position, types: Sequence[int]) -> TableDefinition | None:
        """The definition row images of ``types`` at ``position`` were written with, if certain.

        First the definition in force there, whole or as a prefix; failing that, another
        known definition with exactly as many columns, all types agreeing (the nearest
        first). ``None`` when none fits.
        """
        current = self.at(table, position)
        if current is None:
            return None
        if fits(types, current.columns):
            return current
        later = [d for d in self._definitions[table] if d.position > current.position]
        earlier = [d for d in self._definitions[table] if d.position < current.position]
        for other in [*later, *reversed(earlier)]:
            if len(other.columns) == len(types) and fits(types, other.columns):
                return other
        return None


def columns_to_json(columns: Sequence[ColumnInfo]) -> str:
    """The stored form of a definition (no pickle: plain JSON lists)."""
    return json.dumps(
        [[c.name, c.data_type, c.unsigned, c.charset, list(c.enum_labels)] for c in columns],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def columns_from_json(text: str) -> tuple[ColumnInfo, ...]:
    return tuple(
        ColumnInfo(str(name), str(data_type), bool(unsigned), None if cs is None else str(cs), tuple(labels))
        for name, data_type, unsigned, cs, labels in json.loads(text)
    )


def ambiguous_message(
    schema: str,
    table: str,
    position: Position,
    types: Sequence[int],
    known: Sequence[TableDefinition],
    *,
    since: str,
    resume: Position | None,
) -> str:
    """The fault's message: what cannot be read, why, and the way out.

    ``since`` is the rows' binlog time as the server's local time (what ``replay
    --since`` takes); ``resume`` the server's current position, when known.
    """
    sizes = sorted({len(d.columns) for d in known})
    resume_at = str(resume) if resume is not None else "FILE:POS (from SHOW MASTER STATUS)"
    return (
        f"the rows of {schema}.{table} at binlog {position} have {len(types)} columns whose types fit no "
        f"definition of the table this reader knows (definitions with {sizes} columns: a column was "
        "dropped, moved or changed type since they were written) and the server does not log column "
        "names, so they cannot be decoded with certainty. Set binlog_row_metadata=FULL in my.cnf "
        "(MariaDB >= 10.5, MySQL >= 8.0.1) so that rows carry their own column names from then on; "
        f"then skip the rows that cannot be read with 'vicidial-cdc run --start {resume_at}' and send "
        f"the leads added since then with 'vicidial-cdc replay --since \"{since}\"'"
    )

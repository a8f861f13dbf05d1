"""Event groups into records: a group's rows are handed over with its end, never without.

Both sources feed a :class:`GroupAssembler`: the rows of the open group (kept as plain
tuples until the group ends, when its thread id is known), the group's end
(``COMMIT`` Query of a MyISAM group, ``Xid``, a DDL statement, a real rotation), and
other records (``SchemaChange``). At a group end the rows become :class:`RowChange`
records followed by a :class:`GroupEnd`; a run of empty groups (the dialer's noise on
unwatched tables) collapses to its last end, which is made a record only when
something follows it or the batch is taken. A GTID event opens a new group and drops
rows of a group that did not end (a re-sent group).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..records import GroupEnd, Op, Position, RowChange, SourceItem, UnreadableRows, Value

__all__ = ["GroupAssembler", "Row", "gtid_text"]

#: One decoded row waiting for its group end: (schema, table, op, before, after, ts, log_pos).
Row = tuple[str, str, Op, dict[str, Value] | None, dict[str, Value] | None, int, int]
#: A GTID as a source read it: MariaDB (domain, server_id, seq), MySQL ("mysql", uuid, seq), or text.
Gtid = tuple[Any, ...] | str | None
#: (file, position, gtid, timestamp, thread id): a group end not yet made a record.
_End = tuple[str, int, Gtid, int, int]


def gtid_text(gtid: Gtid) -> str:
    """A GTID as :class:`cdc.records.Position` keeps it."""
    if gtid is None:
        return ""
    if isinstance(gtid, str):
        return gtid
    if gtid[0] == "mysql":
        hexed = gtid[1].hex()
        return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}:{gtid[2]}"
    return f"{gtid[0]}-{gtid[1]}-{gtid[2]}"


class GroupAssembler:
    """The open group and the batch being built, for one connection of one source.

    Reader thread only. Sources append to :attr:`rows` directly on their hot path and
    set :attr:`thread` from the group's Query event; everything else goes through methods.
    """

    __slots__ = ("_batch_end", "_end", "_unreadable", "batch", "file", "gtid", "has_rows", "rows", "thread")

    def __init__(self, file: str) -> None:
        #: The binlog file being read (positions and rows name it).
        self.file = file
        #: Rows of the open group (:data:`Row`; :class:`UnreadableRows` too, see :meth:`add_unreadable`).
        self.rows: list[Row | UnreadableRows] = []
        #: The open group's GTID and thread id (0 until its Query event says).
        self.gtid: Gtid = None
        self.thread = 0
        #: Records ready to hand over, and whether any of them are rows.
        self.batch: list[SourceItem] = []
        self.has_rows = False
        self._unreadable = False
        self._end: _End | None = None
        self._batch_end: Position | None = None

    def begin(self, gtid: Gtid) -> None:
        """A GTID event: a new group starts (rows of one that did not end are dropped)."""
        self.gtid = gtid
        self.thread = 0
        if self.rows:
            self.rows = []
            self._unreadable = False

    def add_unreadable(self, rows: UnreadableRows) -> None:
        """Rows of an unreadable table: counted, handed over with the group (:mod:`cdc.reader.unreadable`)."""
        self.rows.append(rows)
        self._unreadable = True

    def finish(self, log_pos: int, timestamp: int, thread: int) -> None:
        """The open group ends at ``log_pos`` of :attr:`file`: its rows, with ``thread``, then its end."""
        rows = self.rows
        if rows:
            if self._end is not None:
                self._materialize()
            file = self.file
            append = self.batch.append
            if self._unreadable:
                for row in rows:
                    append(_record(row, thread, file))
                self._unreadable = False
            else:
                # One group per statement on a MyISAM dialer: this loop runs once per row
                # read, so it builds each record directly (no generator, no cast).
                for schema, table, op, before, after, row_ts, row_pos in rows:  # type: ignore[misc]
                    append(RowChange(schema, table, op, before, after, row_ts, thread, file, row_pos))
            self.rows = []
            self.has_rows = True
        self._end = (self.file, log_pos, self.gtid, timestamp, thread)
        self.gtid = None
        self.thread = 0

    def rotate(self, file: str, position: int, *, real: bool, timestamp: int) -> None:
        """A Rotate event to ``file``: a real rotation (not the one a connect announces)
        between groups makes the new file's start a group end (a valid resume position)."""
        self.file = file
        if real and not self.rows:
            self.finish(position, timestamp, self.thread)

    def add(self, items: list[SourceItem]) -> None:
        """Records that are not rows (``SchemaChange``), after the group end before them."""
        self._materialize()
        self.batch.extend(items)

    def pending(self) -> bool:
        """Whether there is anything to hand over (records, or a group end not yet made one)."""
        return bool(self.batch) or self._end is not None

    def take(self) -> tuple[list[SourceItem], Position | None]:
        """The batch and its last group end (``None``: it holds none); a new batch starts."""
        self._materialize()
        batch, end = self.batch, self._batch_end
        self.batch = []
        self._batch_end = None
        self.has_rows = False
        return batch, end

    def _materialize(self) -> None:
        """Make the pending group end (the latest of a run of empty groups) a record."""
        end = self._end
        if end is None:
            return
        file, pos, gtid, ts, thread = end
        position = Position(file, pos, gtid_text(gtid))
        self.batch.append(GroupEnd(position, ts, thread))
        self._batch_end = position
        self._end = None


def _record(row: Row | UnreadableRows, thread: int, file: str) -> RowChange | UnreadableRows:
    if isinstance(row, UnreadableRows):
        return row if row.thread_id == thread else dataclasses.replace(row, thread_id=thread)
    schema, table, op, before, after, ts, log_pos = row
    return RowChange(
        schema=schema,
        table=table,
        op=op,
        before=before,
        after=after,
        timestamp=ts,
        thread_id=thread,
        log_file=file,
        log_pos=log_pos,
    )

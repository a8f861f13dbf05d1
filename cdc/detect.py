"""The detector: pairs ``vicidial_list`` inserts with their ``add_lead`` api_log row.

A state machine over row changes fed in binlog order, with two explicit, bounded
buffers. It does no I/O and reads no clock: binlog time comes in as ``now_binlog``.

States of one lead::

    insert ──► PENDING ──add_lead SUCCESS──► released (an ApiLead)
                  │                     └──► HELD ──custom NOTICE / custom_wait_s──► released
                  ├── update_lead SUCCESS "LEAD HAS BEEN ADDED" ──► Skipped(UPDATE_LEAD_INSERT)
                  ├── match_window_s without a match ────────────► Skipped(NOT_API)
                  ├── buffer full, oldest first ──────────────────► Skipped(OVERFLOW)
                  └── DELETE ──► dropped (counted as ``deleted``)

Matching is by the lead_id in the api_log ``data`` (``phone|list_id|lead_id|gmt``),
never by adjacency: concurrent API calls interleave in the binlog.

Late matches
    An ``add_lead`` SUCCESS for a lead that is neither pending nor held (its insert
    expired as ``not_api`` or was evicted, or lies before our start position: a MyISAM
    lock held on ``vicidial_api_log`` delays the row past ``match_window_s``) is a
    :class:`LateMatch`, handed out by :meth:`Detector.take_late`. The detector does no
    I/O: the caller fetches those leads by SELECT and commits their deliveries with the
    same step's checkpoint, so the checkpoint never passes a late row whose lead is not
    durable. Counted in ``orphan_matches``.

Hold and release rule
    VICIdial sends the URL at the end of the API call, so its SELECT sees everything
    ``add_lead`` wrote. With ``custom_fields=Y`` the call writes, after the add_lead
    api_log row: the ``custom_<list_id>`` row, the ``UPDATE vicidial_list SET
    entry_list_id``, then an api_log NOTICE ``add_lead CUSTOM FIELDS …`` whose ``data``
    is ``phone|lead_id|…``. Every outcome of the custom-field step writes such a NOTICE
    (``VALUES ADDED``, ``NOT ADDED, NO FIELDS DEFINED``, ``… DISABLED`` …), and it is the
    last write of that step. So a lead for which ``needs_custom(list_id)`` is true is
    HELD at its match; custom rows and ``vicidial_list`` updates for it are applied
    while held; it is released on that NOTICE (the entry_list_id update, which comes
    before it, is then already applied) or, when the call did not send
    ``custom_fields=Y`` (no NOTICE ever comes), when ``custom_wait_s`` of binlog time
    has passed since the match (:meth:`Detector.expire`). Other leads are released at
    their match, with every update seen before it applied. NOTICE rows of other steps
    (``MULTI-ALT-PHONE NUMBERS LOADED`` comes *before* the custom step) do not release.

Output
    :meth:`Detector.feed` returns the leads released by that change. Skips decided
    while feeding (``UPDATE_LEAD_INSERT``, ``OVERFLOW``, a reused lead_id) are kept and
    returned, with the expiry skips, by the next :meth:`Detector.expire`, which the
    caller runs after every batch: ``expire() -> (leads, skipped)``.

Checkpoint support
    ``feed(change, resume, seen_monotonic)``: ``resume`` is the position of the last
    event-group end before the change (for the first changes after a (re)start, the
    start position); it is required for ``vicidial_list`` inserts. Every pending or
    held lead keeps the ``resume`` of its insert, in insert order;
    :meth:`Detector.min_resume_position` returns that of the oldest lead still
    waiting (O(1)), or ``None`` when nothing waits. Inserts arrive in binlog order and
    each ``resume`` is at or before its insert, so no waiting insert lies before it.
    The caller checkpoints at ``min(min_resume_position(), last group end)``, in the
    same commit as the deliveries of the leads already released, so a restart re-reads
    every insert still waiting (re-enqueueing is idempotent).

Time
    The binlog clock only: ``feed`` takes ``change.timestamp`` (or ``now_binlog=``),
    and ``expire(now_binlog)`` the newest event timestamp (group ends of unwatched
    tables included). Never the local clock: a lock that stalls the api_log stalls no
    clock, and a stopped or lagging streamer decides exactly as a live one. So waiting
    is bounded by binlog activity: on a quiet server an insert waits until the next
    event (a VICIdial server writes its keepalive tables every second); while it
    waits it holds the checkpoint (a restart re-reads it), and ``max_pending`` /
    ``max_pending_bytes`` bound the memory. The detector keeps the maximum seen, so
    deadlines are monotonic and expiry is O(expired). An entry expires once the clock is strictly
    past ``arrival + window``. ``max_held`` bounds the held buffer too: when it is
    full, the oldest held lead is released early (``held_overflow``).

Memory
    Pending inserts are bounded in count (``max_pending``) and in estimated bytes
    (``max_pending_bytes``, :func:`row_size_bytes`); past either, the oldest is
    evicted (``OVERFLOW``). An evicted insert that was an API lead is not lost: its
    add_lead row later makes it a late match.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .records import (
    ApiLead,
    Op,
    Position,
    RowChange,
    Skipped,
    SkipReason,
    Value,
)
from .records import as_int as _int
from .records import as_text as _text
from .vicidial import (
    ADD_LEAD,
    API_LOG_TABLE,
    API_SUCCESS,
    DATA_LEAD_ID,
    DATA_LIST_ID,
    LEAD_ADDED_REASON,
    LEAD_TABLE,
    UPDATE_LEAD,
    api_log_data_field,
    custom_table_list_id,
)

#: The fixed tables the detector consumes; plus every ``custom_<list_id>`` table.
DETECT_TABLES = frozenset({LEAD_TABLE, API_LOG_TABLE})

_NOTICE = "NOTICE"
_CUSTOM_STEP = f"{ADD_LEAD} CUSTOM FIELDS"


def is_detect_table(table: str) -> bool:
    return table in DETECT_TABLES or custom_table_list_id(table) is not None


@dataclass(frozen=True, slots=True)
class LateMatch:
    """An add_lead SUCCESS whose insert the detector no longer holds: fetch the lead."""

    lead_id: int
    #: From the api_log ``data`` (0 when unreadable); the fetched row has the truth.
    list_id: int
    #: Binlog time of the api_log row: ``inserted_at`` when the lead has no entry_date.
    api_ts: int


@dataclass(frozen=True, slots=True)
class DetectorStatistics:
    """Gauges (``pending``, ``held``) and counters since start."""

    pending: int
    held: int
    inserts: int
    matched: int
    released: int
    #: Held leads released at ``custom_wait_s`` (no custom-step NOTICE came).
    custom_timeouts: int
    #: Held leads released early because ``max_held`` was reached.
    held_overflow: int
    not_api: int
    update_lead_inserts: int
    evicted: int
    deleted: int
    orphan_matches: int
    #: Estimated bytes of the pending inserts (see :func:`row_size_bytes`).
    pending_bytes: int
    #: Rows the detector needed but could not read (no lead_id, bad api_log data).
    malformed: int

    def skipped_by_reason(self) -> Mapping[SkipReason, int]:
        return {
            SkipReason.NOT_API: self.not_api,
            SkipReason.UPDATE_LEAD_INSERT: self.update_lead_inserts,
            SkipReason.OVERFLOW: self.evicted,
        }


@dataclass(slots=True)
class _Entry:
    seq: int
    lead_id: int
    list_id: int
    row: dict[str, Value]
    custom: dict[str, Value] | None
    inserted_at: int
    seen_monotonic: float
    thread_id: int
    deadline: float
    size_bytes: int


class Detector:
    """Turns row changes into :class:`~cdc.records.ApiLead` records; see the module doc.

    ``needs_custom(list_id)`` is asked at each match: true when the lead's URL depends
    on what the custom-field step writes (see :func:`cdc.resolve.needs_custom`).
    """

    def __init__(
        self,
        *,
        needs_custom: Callable[[int], bool] = lambda _list_id: False,
        match_window_s: float = 30.0,
        custom_wait_s: float = 10.0,
        max_pending: int = 100_000,
        max_held: int = 10_000,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if max_pending < 1 or max_held < 1 or max_pending_bytes < 1:
            raise ValueError("max_pending, max_held and max_pending_bytes must be at least 1")
        self._max_pending_bytes = max_pending_bytes
        self._pending_bytes = 0
        self._late: list[LateMatch] = []
        self._needs_custom = needs_custom
        self._match_window_s = match_window_s
        self._custom_wait_s = custom_wait_s
        self._max_pending = max_pending
        self._max_held = max_held
        self._pending: OrderedDict[int, _Entry] = OrderedDict()  # by lead_id, insert order
        self._held: OrderedDict[int, _Entry] = OrderedDict()  # by lead_id, match order
        self._resume: OrderedDict[int, Position] = OrderedDict()  # by seq, insert order
        self._skipped: list[Skipped] = []  # from feed(), handed out by expire()
        self._seq = 0
        self._clock = float("-inf")
        self._inserts = 0
        self._matched = 0
        self._released = 0
        self._custom_timeouts = 0
        self._held_overflow = 0
        self._not_api = 0
        self._update_lead_inserts = 0
        self._evicted = 0
        self._deleted = 0
        self._orphan_matches = 0
        self._malformed = 0

    # -- input -------------------------------------------------------------------------

    def feed(
        self,
        change: RowChange,
        resume: Position | None = None,
        seen_monotonic: float = 0.0,
        *,
        now_binlog: float | None = None,
    ) -> list[ApiLead]:
        """Consume one row change (binlog order); return the leads it released.

        ``resume``: the last group-end position before ``change`` (required for
        ``vicidial_list`` inserts). ``seen_monotonic``: the caller's monotonic time of
        the change, passed through to :attr:`ApiLead.seen_monotonic`. ``now_binlog``:
        the binlog clock, ``change.timestamp`` by default. Leads skipped while feeding
        are returned by the next :meth:`expire`.
        """
        now = float(change.timestamp) if now_binlog is None else now_binlog
        self._clock = max(self._clock, now)
        leads: list[ApiLead] = []
        table = change.table
        if table == LEAD_TABLE:
            if change.op is Op.INSERT:
                self._on_insert(change, resume, seen_monotonic)
            elif change.op is Op.UPDATE:
                self._on_update(change)
            else:
                self._on_delete(change)
        elif table == API_LOG_TABLE:
            if change.op is Op.INSERT:
                self._on_api_log(change.values, leads, change.timestamp)
        elif change.op is Op.INSERT and custom_table_list_id(table) is not None:
            self._on_custom(change.values)
        return leads

    def expire(self, now_binlog: float) -> tuple[list[ApiLead], list[Skipped]]:
        """Skip unmatched inserts past ``match_window_s``; release held leads past
        ``custom_wait_s``; also return the skips :meth:`feed` produced since the last
        call. Costs O(expired). Call it after every batch (binlog time only)."""
        self._clock = max(self._clock, now_binlog)
        leads: list[ApiLead] = []
        skipped, self._skipped = self._skipped, []
        while self._pending:
            entry = next(iter(self._pending.values()))
            if self._clock <= entry.deadline:
                break
            self._pop_pending(entry.lead_id)
            self._not_api += 1
            skipped.append(Skipped(entry.lead_id, entry.list_id, SkipReason.NOT_API))
        while self._held:
            entry = next(iter(self._held.values()))
            if self._clock <= entry.deadline:
                break
            self._custom_timeouts += 1
            leads.append(self._release(self._held.pop(entry.lead_id)))
        return leads, skipped

    # -- queries -----------------------------------------------------------------------

    def take_late(self) -> list[LateMatch]:
        """The late matches fed since the last call (the caller fetches those leads)."""
        late, self._late = self._late, []
        return late

    def min_resume_position(self) -> Position | None:
        """The smallest ``resume`` among pending and held leads: never checkpoint past it."""
        return next(iter(self._resume.values()), None)

    def statistics(self) -> DetectorStatistics:
        return DetectorStatistics(
            pending=len(self._pending),
            held=len(self._held),
            inserts=self._inserts,
            matched=self._matched,
            released=self._released,
            custom_timeouts=self._custom_timeouts,
            held_overflow=self._held_overflow,
            not_api=self._not_api,
            update_lead_inserts=self._update_lead_inserts,
            evicted=self._evicted,
            deleted=self._deleted,
            orphan_matches=self._orphan_matches,
            pending_bytes=self._pending_bytes,
            malformed=self._malformed,
        )

    # -- transitions -------------------------------------------------------------------

    def _on_insert(
        self,
        change: RowChange,
        resume: Position | None,
        seen_monotonic: float,
    ) -> None:
        if resume is None:
            raise ValueError("Detector.feed needs resume= for a vicidial_list insert")
        row = change.values
        lead_id = _int(row.get("lead_id"))
        list_id = _int(row.get("list_id"))
        if lead_id is None or list_id is None:
            self._malformed += 1
            return
        self._inserts += 1
        if lead_id in self._pending:  # lead_id reused while the first is unmatched
            old = self._pop_pending(lead_id)
            self._not_api += 1
            self._skipped.append(Skipped(old.lead_id, old.list_id, SkipReason.NOT_API))
        copy = dict(row)
        size = row_size_bytes(copy)
        while self._pending and (
            len(self._pending) >= self._max_pending or self._pending_bytes + size > self._max_pending_bytes
        ):
            oldest = self._pop_pending(next(iter(self._pending)))
            self._evicted += 1
            self._skipped.append(Skipped(oldest.lead_id, oldest.list_id, SkipReason.OVERFLOW))
        self._seq += 1
        self._pending_bytes += size
        self._pending[lead_id] = _Entry(
            seq=self._seq,
            lead_id=lead_id,
            list_id=list_id,
            row=copy,
            custom=None,
            inserted_at=change.timestamp,
            seen_monotonic=seen_monotonic,
            thread_id=change.thread_id,
            deadline=self._clock + self._match_window_s,
            size_bytes=size,
        )
        self._resume[self._seq] = resume

    def _on_update(self, change: RowChange) -> None:
        if change.after is None:
            return
        lead_id = _int((change.before or change.after).get("lead_id"))
        if lead_id is None:
            return
        for buffer in (self._held, self._pending):
            entry = buffer.get(lead_id)
            if entry is not None:
                entry.row.update(change.after)
                list_id = _int(entry.row.get("list_id"))
                if list_id is not None:
                    entry.list_id = list_id

    def _on_delete(self, change: RowChange) -> None:
        lead_id = _int(change.values.get("lead_id"))
        if lead_id is not None and lead_id in self._pending:
            self._pop_pending(lead_id)
            self._deleted += 1

    def _on_custom(self, row: Mapping[str, Value]) -> None:
        lead_id = _int(row.get("lead_id"))
        if lead_id is None:
            self._malformed += 1
            return
        entry = self._held.get(lead_id)
        if entry is None:
            entry = self._pending.get(lead_id)
        if entry is not None:
            entry.custom = dict(row)

    def _on_api_log(self, row: Mapping[str, Value], leads: list[ApiLead], ts: int) -> None:
        function = _text(row.get("function"))
        if function not in (ADD_LEAD, UPDATE_LEAD):
            return
        result = _text(row.get("result")).strip().upper()
        reason = _text(row.get("result_reason"))
        if function == ADD_LEAD and result == API_SUCCESS:
            lead_id = self._data_lead_id(row, DATA_LEAD_ID)
            if lead_id is not None:
                self._on_add_lead(lead_id, leads, row, ts)
        elif function == ADD_LEAD and result == _NOTICE and reason.startswith(_CUSTOM_STEP):
            lead_id = self._data_lead_id(row, 1)
            held = self._held.pop(lead_id, None) if lead_id is not None else None
            if held is not None:
                leads.append(self._release(held))
        elif function == UPDATE_LEAD and result == API_SUCCESS and LEAD_ADDED_REASON in reason:
            lead_id = self._data_lead_id(row, 2)
            if lead_id is not None and lead_id in self._pending:
                entry = self._pop_pending(lead_id)
                self._update_lead_inserts += 1
                self._skipped.append(Skipped(entry.lead_id, entry.list_id, SkipReason.UPDATE_LEAD_INSERT))

    def _on_add_lead(self, lead_id: int, leads: list[ApiLead], row: Mapping[str, Value], ts: int) -> None:
        entry = self._pending.get(lead_id)
        if entry is None:
            if lead_id not in self._held:  # a second SUCCESS row of a held lead changes nothing
                self._orphan_matches += 1
                list_id = _int(api_log_data_field(_text(row.get("data")), DATA_LIST_ID))
                self._late.append(LateMatch(lead_id, list_id or 0, ts))
            return
        hold = self._needs_custom(entry.list_id)
        del self._pending[lead_id]
        self._pending_bytes -= entry.size_bytes
        self._matched += 1
        if not hold:
            leads.append(self._release(entry))
            return
        if len(self._held) >= self._max_held:
            self._held_overflow += 1
            leads.append(self._release(self._held.popitem(last=False)[1]))
        entry.deadline = self._clock + self._custom_wait_s
        self._held[lead_id] = entry

    def _data_lead_id(self, row: Mapping[str, Value], index: int) -> int | None:
        """Field ``index`` of the ``|``-separated ``data`` column as a lead_id."""
        lead_id = _int(api_log_data_field(_text(row.get("data")), index))
        if lead_id is None:
            self._malformed += 1
        return lead_id

    def _pop_pending(self, lead_id: int) -> _Entry:
        entry = self._pending.pop(lead_id)
        self._pending_bytes -= entry.size_bytes
        del self._resume[entry.seq]
        return entry

    def _release(self, entry: _Entry) -> ApiLead:
        """Build the ApiLead of an entry already removed from its buffer."""
        self._resume.pop(entry.seq, None)
        self._released += 1
        custom = types.MappingProxyType(entry.custom) if entry.custom is not None else None
        return ApiLead(
            lead_id=entry.lead_id,
            list_id=entry.list_id,
            lead=types.MappingProxyType(entry.row),
            custom=custom,
            inserted_at=entry.inserted_at,
            seen_monotonic=entry.seen_monotonic,
            thread_id=entry.thread_id,
        )


#: Bytes of one pending entry besides its row values (entry, dict slots, resume position).
_ENTRY_OVERHEAD_BYTES = 400


def row_size_bytes(row: Mapping[str, Value]) -> int:
    """Estimated memory of a copied row: its dict and value objects (keys are shared)."""
    return _ENTRY_OVERHEAD_BYTES + sys.getsizeof(row) + sum(map(sys.getsizeof, row.values()))

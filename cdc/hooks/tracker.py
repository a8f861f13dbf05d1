"""Following every VICIdial sender through ``vicidial_url_log``: INSERT, then UPDATE.

A sender INSERTs the row (``url_response=''``) before its request and UPDATEs it with
the response after; this state machine turns the pair into one :class:`HookAttempt`.
An INSERT whose UPDATE does not come within its type's timeout (binlog time) is *never
completed*; an UPDATE that comes after that, or after the row's first UPDATE
(``RUNurls`` run twice), is *late* (the caller counts it as a duplicate when it re-sent
the request meanwhile).

Pending INSERTs of the types the caller pins (those it would re-send) hold the
checkpoint back, so a restart re-reads them; the others are only watched and cost no
re-reading. Pure: time comes from the binlog.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..records import Op, Position, RowChange, as_text
from ..records import as_int as _int
from .response import Verdict, classify
from .types import hook_type, label_of


class Event(enum.StrEnum):
    #: The INSERT: VICIdial started a request.
    STARTED = "started"
    #: The UPDATE: VICIdial's request finished (``verdict`` says how).
    COMPLETED = "completed"
    #: No UPDATE within the type's timeout.
    NEVER_COMPLETED = "never_completed"
    #: Another UPDATE of a row already reported (completed or never completed).
    LATE = "late"


@dataclass(frozen=True, slots=True)
class HookAttempt:
    """One request VICIdial's own sender made (or started and never finished)."""

    event: Event
    url_log_id: int
    #: ``url_type`` as stored, and its bounded label.
    url_type: str
    label: str
    #: ``vicidial_url_log.uniqueid``: the lead_id for ``apinewlead``, a call's uniqueid else.
    uniqueid: str
    url: str
    #: ``None`` for STARTED and NEVER_COMPLETED.
    verdict: Verdict | None
    #: VICIdial's ``response_sec`` (whole seconds).
    response_s: float
    #: Binlog time of the INSERT (when VICIdial started the request).
    started_at: int

    @property
    def ok(self) -> bool:
        return self.verdict is not None and self.verdict.ok


@dataclass(frozen=True, slots=True)
class TrackerStatistics:
    #: Pending INSERTs by label.
    pending: Mapping[str, int]
    completed: int
    failed: int
    never_completed: int
    late: int


@dataclass(slots=True)
class _Pending:
    url_type: str
    uniqueid: str
    url: str
    started_at: int
    resume: Position
    pinned: bool


@dataclass(slots=True)
class _Counts:
    completed: int = 0
    failed: int = 0
    never_completed: int = 0
    late: int = 0
    pending: dict[str, int] = field(default_factory=dict)


class HookTracker:
    """INSERT→UPDATE pairs per ``url_type``, with per-type never-completed timeouts."""

    def __init__(
        self,
        timeout_s: Callable[[str], float],
        pinned: Callable[[str], bool],
        max_pending: int = 100_000,
    ) -> None:
        """``timeout_s(url_type)``: 0 means the type has no UPDATE to wait for;
        ``pinned(url_type)``: whether its pending INSERTs hold the checkpoint."""
        self._timeout_s = timeout_s
        self._pinned = pinned
        self._max_pending = max_pending
        #: Pending INSERTs per url_type, oldest first (one timeout per type).
        self._pending: dict[str, OrderedDict[int, _Pending]] = {}
        self._size = 0
        #: Rows already reported (completed or never completed): another UPDATE is late (bounded).
        self._closed: OrderedDict[int, int] = OrderedDict()
        self._counts = _Counts()

    def feed(self, change: RowChange, resume: Position) -> list[HookAttempt]:
        """A ``vicidial_url_log`` row change; the attempts it starts, completes or evicts."""
        row = change.values
        url_log_id = _int(row.get("url_log_id"))
        if url_log_id is None:
            return []
        url_type = as_text(row.get("url_type"))
        if change.op is Op.INSERT:
            return self._insert(url_log_id, url_type, change, resume)
        if change.op is Op.UPDATE:
            return self._update(url_log_id, url_type, change)
        self._forget(url_log_id)
        return []

    def _insert(
        self, url_log_id: int, url_type: str, change: RowChange, resume: Position
    ) -> list[HookAttempt]:
        row = change.values
        pending = _Pending(
            url_type,
            as_text(row.get("uniqueid")),
            as_text(row.get("url")),
            change.timestamp,
            resume,
            self._pinned(url_type),
        )
        out = [self._attempt(Event.STARTED, url_log_id, pending, None, 0.0)]
        if self._timeout_s(url_type) <= 0:
            return out  # a log row (web form click, API call received): no UPDATE comes
        queue = self._pending.setdefault(url_type, OrderedDict())
        queue[url_log_id] = pending
        self._size += 1
        while self._size > self._max_pending:
            fullest = max(self._pending.values(), key=len)
            out.append(self._never_completed(*fullest.popitem(last=False)))
            self._size -= 1
        return out

    def _update(self, url_log_id: int, url_type: str, change: RowChange) -> list[HookAttempt]:
        row = change.values
        before = change.before or {}
        response = as_text(row.get("url_response"))
        if (
            not response
            and not before.get("url_response")
            and before.get("response_sec") == row.get("response_sec")
        ):
            return []  # nothing a sender writes (another column changed)
        pending = self._pop(url_log_id, url_type)
        verdict = classify(response)
        if pending is None:
            pending = _Pending(
                url_type,
                as_text(row.get("uniqueid")),
                as_text(row.get("url")),
                change.timestamp,
                Position("", 0),
                False,
            )
        response_s = float(_int(row.get("response_sec")) or 0)
        if url_log_id in self._closed:
            self._counts.late += 1
            return [self._attempt(Event.LATE, url_log_id, pending, verdict, response_s)]
        self._counts.completed += 1
        if not verdict.ok:
            self._counts.failed += 1
        self._close(url_log_id)
        return [self._attempt(Event.COMPLETED, url_log_id, pending, verdict, response_s)]

    def expire(self, now_binlog: float) -> list[HookAttempt]:
        """Attempts whose UPDATE did not come within their type's timeout: never completed."""
        out: list[HookAttempt] = []
        for url_type, queue in self._pending.items():
            timeout_s = self._timeout_s(url_type)
            while queue:
                url_log_id, pending = next(iter(queue.items()))
                if now_binlog - pending.started_at <= timeout_s:
                    break
                del queue[url_log_id]
                self._size -= 1
                out.append(self._never_completed(url_log_id, pending))
        return out

    def min_resume_position(self) -> Position | None:
        """Where a restart must resume so no pinned pending attempt is forgotten."""
        firsts = (next(iter(queue.values())) for queue in self._pending.values() if queue)
        holds = [p.resume for p in firsts if p.pinned]  # one type: all pinned or none
        return min(holds) if holds else None

    def statistics(self) -> TrackerStatistics:
        pending: dict[str, int] = {}
        for url_type, queue in self._pending.items():
            if not queue:
                continue
            label = label_of(url_type)
            pending[label] = pending.get(label, 0) + len(queue)
        c = self._counts
        return TrackerStatistics(pending, c.completed, c.failed, c.never_completed, c.late)

    def _never_completed(self, url_log_id: int, pending: _Pending) -> HookAttempt:
        self._counts.never_completed += 1
        self._close(url_log_id)
        return self._attempt(Event.NEVER_COMPLETED, url_log_id, pending, None, 0.0)

    def _close(self, url_log_id: int) -> None:
        self._closed[url_log_id] = 0
        while len(self._closed) > self._max_pending:
            self._closed.popitem(last=False)

    def _pop(self, url_log_id: int, url_type: str) -> _Pending | None:
        queue = self._pending.get(url_type)
        pending = queue.pop(url_log_id, None) if queue is not None else None
        if pending is None:  # the type changed between INSERT and UPDATE (never seen in VICIdial)
            for other in self._pending.values():
                pending = other.pop(url_log_id, None)
                if pending is not None:
                    break
        if pending is not None:
            self._size -= 1
        return pending

    def _forget(self, url_log_id: int) -> None:
        """A DELETE (VICIdial's archiving of old rows): nothing to wait for any more."""
        if self._pop(url_log_id, "") is None:
            self._closed.pop(url_log_id, None)

    @staticmethod
    def _attempt(
        event: Event, url_log_id: int, p: _Pending, verdict: Verdict | None, response_s: float
    ) -> HookAttempt:
        return HookAttempt(
            event,
            url_log_id,
            p.url_type,
            label_of(p.url_type),
            p.uniqueid,
            p.url,
            verdict,
            response_s,
            p.started_at,
        )


def default_timeout_s(url_type: str) -> float:
    """The never-completed timeout VICIdial's sender of this type implies (:mod:`cdc.hooks.types`)."""
    return hook_type(url_type).timeout_s

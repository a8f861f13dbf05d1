"""Following VICIdial's own sender through ``vicidial_url_log``.

VICIdial (schema 1726+) logs each API New Lead URL it sends: an INSERT with
``url_type='apinewlead'``, ``uniqueid`` = lead_id and the ``url``, then, after the
fetch, an UPDATE with ``url_response`` and ``response_sec``. A failed fetch stores a
response beginning ``PHP ERROR:``. This state machine turns those rows into
:class:`VicidialAttempt` records (for metrics, and for re-sending failures) and treats
an INSERT whose UPDATE never comes within ``timeout_s`` of binlog time as failed.
Pending INSERTs pin the checkpoint, like the detector's pending leads.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from .records import Op, Position, RowChange
from .records import as_int as _int
from .vicidial import URL_TYPE

PHP_ERROR = "PHP ERROR:"
_HTTP_STATUS = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})")


@dataclass(frozen=True, slots=True)
class VicidialAttempt:
    """One request VICIdial's own sender made (or started and never finished)."""

    url_log_id: int
    lead_id: int
    url: str
    ok: bool
    #: HTTP status found in VICIdial's error text, or 0 (unknown / no response).
    status: int
    response_s: float
    timed_out: bool
    #: Binlog time of the INSERT (when VICIdial started the request).
    started_at: int


@dataclass(frozen=True, slots=True)
class UrlLogStatistics:
    pending: int
    completed: int
    failed: int
    timed_out: int


@dataclass(slots=True)
class _Pending:
    lead_id: int
    url: str
    started_at: int
    resume: Position


class UrlLogTracker:
    def __init__(self, timeout_s: float = 60.0, max_pending: int = 100_000) -> None:
        self._timeout_s = timeout_s
        self._max_pending = max_pending
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._completed = 0
        self._failed = 0
        self._timed_out = 0

    def feed(self, change: RowChange, resume: Position) -> list[VicidialAttempt]:
        """An ``apinewlead`` url_log row change; returns the attempts it completes."""
        row = change.values
        if str(row.get("url_type") or "") != URL_TYPE:
            return []
        url_log_id = _int(row.get("url_log_id"))
        if change.op is Op.INSERT:
            lead_id = _int(row.get("uniqueid"))
            if url_log_id is None or lead_id is None:
                return []
            self._pending[url_log_id] = _Pending(lead_id, str(row.get("url") or ""), change.timestamp, resume)
            out: list[VicidialAttempt] = []
            while len(self._pending) > self._max_pending:
                out.append(self._timeout(*self._pending.popitem(last=False)))
            return out
        if change.op is Op.UPDATE:
            response = str(row.get("url_response") or "")
            if url_log_id is None or not response:
                return []
            pending = self._pending.pop(url_log_id, None)
            lead_id = pending.lead_id if pending is not None else _int(row.get("uniqueid"))
            if lead_id is None:
                return []
            ok = not response.startswith(PHP_ERROR)
            match = None if ok else _HTTP_STATUS.search(response)
            self._completed += 1
            self._failed += 0 if ok else 1
            return [
                VicidialAttempt(
                    url_log_id=url_log_id,
                    lead_id=lead_id,
                    url=str(row.get("url") or (pending.url if pending else "")),
                    ok=ok,
                    status=int(match.group(1)) if match else (200 if ok else 0),
                    response_s=float(_int(row.get("response_sec")) or 0),
                    timed_out=False,
                    started_at=pending.started_at if pending else change.timestamp,
                )
            ]
        if url_log_id is not None:
            self._pending.pop(url_log_id, None)
        return []

    def expire(self, now_binlog: float) -> list[VicidialAttempt]:
        """Attempts whose UPDATE did not come within ``timeout_s``: failed."""
        out: list[VicidialAttempt] = []
        while self._pending:
            url_log_id, pending = next(iter(self._pending.items()))
            if now_binlog - pending.started_at <= self._timeout_s:
                break
            del self._pending[url_log_id]
            out.append(self._timeout(url_log_id, pending))
        return out

    def _timeout(self, url_log_id: int, pending: _Pending) -> VicidialAttempt:
        self._timed_out += 1
        return VicidialAttempt(
            url_log_id, pending.lead_id, pending.url, False, 0, 0.0, True, pending.started_at
        )

    def min_resume_position(self) -> Position | None:
        """Where a restart must resume so no pending attempt is forgotten (oldest first)."""
        first = next(iter(self._pending.values()), None)
        return first.resume if first is not None else None

    def statistics(self) -> UrlLogStatistics:
        return UrlLogStatistics(len(self._pending), self._completed, self._failed, self._timed_out)

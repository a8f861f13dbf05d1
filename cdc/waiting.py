"""Leads held until data the streamer cannot read now becomes readable.

A lead whose URL needs its ``custom_<list_id>`` row, when the reader could not decode
that table (:class:`cdc.records.UnreadableRows`, see :mod:`cdc.reader.unreadable`), is not
routed with literal tokens: it waits here. Only its ids are kept, durably, in the state
store's ``meta`` table (:data:`META_KEY`, JSON), written *before* the checkpoint that
passes the lead is committed; so a wait of hours neither holds the checkpoint (binlog
retention) nor loses the lead on a restart. Once the table is readable the service
fetches the lead and its custom row by SELECT (:mod:`cdc.leadfetch`, as a late match)
and routes it; past ``reader.unreadable_max_wait_s`` it becomes a dead letter whose
reason names the GRANT (recover with ``vicidial-cdc replay --lead-id N``).

Pure: time comes in as ``now`` (wall seconds: a bound for operators, not a matching
decision).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import vicidial
from .records import ApiLead

__all__ = ["META_KEY", "WaitingLead", "WaitingLeads"]

#: The state store ``meta`` key holding the waiting leads.
META_KEY = "waiting_data"


@dataclass(frozen=True, slots=True)
class WaitingLead:
    lead_id: int
    list_id: int
    #: Binlog time of the insert, ``inserted_at`` when the lead has no entry_date.
    inserted_at: int
    #: Wall time the lead started waiting.
    since: float
    #: Why: a :class:`cdc.errors.ReaderFault` value (``table_unreadable``).
    reason: str


class WaitingLeads:
    """The waiting leads by lead_id, in arrival order."""

    __slots__ = ("_leads",)

    def __init__(self, leads: Iterable[WaitingLead] = ()) -> None:
        self._leads: dict[int, WaitingLead] = {w.lead_id: w for w in leads}

    def __len__(self) -> int:
        return len(self._leads)

    def add(self, leads: Iterable[ApiLead], reason: str, now: float) -> None:
        """Hold ``leads`` (a lead already waiting keeps its first ``since``)."""
        for lead in leads:
            if lead.lead_id not in self._leads:
                w = WaitingLead(lead.lead_id, lead.list_id, lead.inserted_at, now, reason)
                self._leads[lead.lead_id] = w

    def remove(self, lead_ids: Iterable[int]) -> None:
        for lead_id in lead_ids:
            self._leads.pop(lead_id, None)

    def by_list(self) -> Mapping[int, list[WaitingLead]]:
        out: dict[int, list[WaitingLead]] = {}
        for w in self._leads.values():
            out.setdefault(w.list_id, []).append(w)
        return out

    def expired(self, now: float, max_wait_s: float) -> list[WaitingLead]:
        """The leads that have waited longer than ``max_wait_s``."""
        return [w for w in self._leads.values() if now - w.since > max_wait_s]

    def counts(self) -> dict[str, int]:
        """Waiting leads by reason."""
        out: dict[str, int] = {}
        for w in self._leads.values():
            out[w.reason] = out.get(w.reason, 0) + 1
        return out

    def status(self, now: float) -> dict[str, object]:
        """For ``/status``: per reason, the count, the tables, the longest wait."""
        out: dict[str, object] = {}
        for reason in sorted(self.counts()):
            leads = [w for w in self._leads.values() if w.reason == reason]
            out[reason] = {
                "leads": len(leads),
                "tables": sorted({vicidial.custom_table(w.list_id) for w in leads}),
                "longest_wait_s": round(max(now - w.since for w in leads), 1),
            }
        return out

    def dumps(self) -> str:
        return json.dumps(
            [[w.lead_id, w.list_id, w.inserted_at, w.since, w.reason] for w in self._leads.values()],
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None) -> WaitingLeads:
        """From :meth:`dumps` (``None``: nothing stored yet)."""
        if not text:
            return cls()
        return cls(
            WaitingLead(int(lead_id), int(list_id), int(inserted_at), float(since), str(reason))
            for lead_id, list_id, inserted_at, since, reason in json.loads(text)
        )

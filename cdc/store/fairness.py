"""Fair claiming: the order in which ``claim_due`` hands out capped endpoints' rows.

Every backend claims through :func:`fair_merge`, and chooses the new rows a commit hands
straight to the sender with :func:`choose_hand_off`, so the turns are the same whichever
store the sender uses. Pure.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .records import HandOff

__all__ = ["DueKey", "cap_of", "choose_hand_off", "fair_merge"]


class _Due(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def next_attempt_at(self) -> float: ...


_R = TypeVar("_R", bound=_Due)


def fair_merge(per_endpoint: Sequence[Sequence[_R]], limit: int) -> list[_R]:
    """At most ``limit`` rows taken in turns, one per endpoint per round.

    Each inner sequence is one endpoint's due rows, oldest first; endpoints take turns
    in the order their oldest row became due (the caller's order breaks ties), so a
    short ``limit`` is shared instead of going to whichever backlog is oldest.
    """
    queues = sorted((rows for rows in per_endpoint if rows), key=lambda rows: _due_key(rows[0]))
    merged: list[_R] = []
    depth = 0
    while len(merged) < limit and queues:
        queues = [rows for rows in queues if depth < len(rows)]
        for rows in queues:
            if len(merged) == limit:
                break
            merged.append(rows[depth])
        depth += 1
    return merged


def _due_key(row: _Due) -> tuple[float, int]:
    return (row.next_attempt_at, row.id)


@dataclass(frozen=True, slots=True)
class DueKey:
    """A pending row as fair claiming sees it: its id and when it became due."""

    id: int
    next_attempt_at: float


def cap_of(offer: HandOff, endpoint_id: str) -> int:
    """The rows ``endpoint_id`` may take now under ``offer`` (as ``claim_due`` caps it)."""
    default = offer.limit if offer.default_cap is None else offer.default_cap
    return min(offer.limit, offer.caps.get(endpoint_id, default))


def choose_hand_off(
    new: Sequence[tuple[int, str]],
    offer: HandOff,
    due: Mapping[str, Sequence[DueKey]],
    now: float,
) -> set[int]:
    """Which new rows a commit inserts in flight: those a claim right after it would take.

    ``new`` is (index, endpoint id) of each new row that may be sent, in insertion order;
    ``due`` the rows already due of every endpoint that has some (up to its cap). An
    endpoint with due rows hands off nothing: its new rows wait behind them for the
    claim path. Its due rows still take their turns in the merge, so new rows of other
    endpoints get no more of ``offer.limit`` than a claim would give them.
    """
    queues: list[Sequence[DueKey | _NewKey]] = []
    by_endpoint: dict[str, list[DueKey | _NewKey]] = {}
    for index, endpoint_id in new:
        if endpoint_id in due:
            continue
        rows = by_endpoint.get(endpoint_id)
        if rows is None:
            rows = by_endpoint[endpoint_id] = []
            queues.append(rows)
        if len(rows) < cap_of(offer, endpoint_id):
            rows.append(_NewKey(index, now))
    queues.extend(waiting[: cap_of(offer, endpoint_id)] for endpoint_id, waiting in due.items())
    return {row.index for row in fair_merge(queues, offer.limit) if isinstance(row, _NewKey)}


@dataclass(frozen=True, slots=True)
class _NewKey:
    """A new row (not stored yet): due now, after every stored row (id above theirs)."""

    index: int
    next_attempt_at: float
    id: int = sys.maxsize  # equal for all new rows: the stable sort keeps insertion order

"""Fair claiming: the order in which ``claim_due`` hands out capped endpoints' rows.

Every backend claims through :func:`fair_merge`, so the turns are the same whichever
store the sender uses. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["fair_merge"]


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

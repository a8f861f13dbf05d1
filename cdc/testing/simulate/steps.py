"""Step sequences: how every simulated write is expressed, run, and interleaved into load.

An operation is a generator that yields one :class:`Statement` at a time and receives
that statement's :class:`Result` back (so the ``lead_id`` of the first INSERT is known
to the later statements); its return value is the id the operation produced. A
:class:`StepRunner` drives one sequence on one connection; :func:`run_interleaved`
steps many of them in a random order, as concurrent API calls arrive on VICIdial.
"""

from __future__ import annotations

import random
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PhpText", "Result", "Statement", "StepRunner", "Steps", "execute", "run_interleaved"]

_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|SELECT\s.*?\sFROM)\s+`?(\w+)", re.I | re.S)


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement with PyMySQL ``%s`` parameters (``%%`` for a literal ``%``)."""

    sql: str
    args: tuple[Any, ...] = ()

    @property
    def verb(self) -> str:
        """``INSERT``, ``UPDATE``, ``DELETE``, ``SELECT``, ``CREATE``, ..."""
        return self.sql.split(None, 1)[0].upper()

    @property
    def table(self) -> str:
        """The table written or read ('' when not a plain DML statement)."""
        match = _TABLE.match(self.sql)
        return match.group(1) if match else ""


@dataclass(frozen=True, slots=True)
class Result:
    """What one executed statement returned."""

    lastrowid: int
    rowcount: int
    rows: tuple[tuple[Any, ...], ...] = ()


#: A step sequence: yields statements, receives their results, returns an id.
Steps = Generator[Statement, Result, int]


@dataclass(frozen=True, slots=True)
class PhpText:
    """How VICIdial's PHP sends text: as ``str``, or as raw UTF-8 bytes over a latin1 connection.

    With ``send_utf8_bytes`` MariaDB stores double-encoded text such as ``JosÃ©``,
    exactly as a real VICIdial does with ``use_non_latin=0`` on a latin1 server.
    """

    send_utf8_bytes: bool = False

    def __call__(self, value: Any) -> Any:
        if self.send_utf8_bytes and isinstance(value, str):
            return value.encode("utf-8")
        return value


def execute(conn: Any, statement: Statement) -> Result:
    """Run one statement on a PyMySQL connection."""
    with conn.cursor() as cur:
        cur.execute(statement.sql, statement.args if statement.args else None)
        rows = tuple(tuple(row) for row in cur.fetchall()) if cur.description else ()
        return Result(lastrowid=int(cur.lastrowid or 0), rowcount=int(cur.rowcount), rows=rows)


class StepRunner:
    """Drives one step sequence on one connection, one statement per :meth:`step`."""

    def __init__(self, conn: Any, steps: Steps) -> None:
        self._conn = conn
        self._steps = steps
        self._result: int | None = None
        self._pending: Statement | None = None
        self.executed: list[Statement] = []
        try:
            self._pending = next(steps)
        except StopIteration as stop:
            self._result = int(stop.value)

    @property
    def done(self) -> bool:
        return self._pending is None

    @property
    def result(self) -> int:
        """The sequence's return value (the lead_id for lead inserts)."""
        if self._result is None:
            raise RuntimeError("the step sequence has not finished")
        return self._result

    def step(self) -> bool:
        """Execute the next statement; return whether statements remain."""
        if self._pending is None:
            return False
        statement = self._pending
        outcome = execute(self._conn, statement)
        self.executed.append(statement)
        try:
            self._pending = self._steps.send(outcome)
        except StopIteration as stop:
            self._pending = None
            self._result = int(stop.value)
        return self._pending is not None

    def run(self) -> int:
        while self.step():
            pass
        return self.result


def run_interleaved(runners: Sequence[StepRunner], *, rng: random.Random) -> list[int]:
    """Step the runners in a random interleaving until all finish; their results."""
    active = [runner for runner in runners if not runner.done]
    while active:
        runner = rng.choice(active)
        if not runner.step():
            active.remove(runner)
    return [runner.result for runner in runners]

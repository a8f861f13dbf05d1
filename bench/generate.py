"""Write a VICIdial-shaped binlog fast, with the simulator's own statements.

:class:`cdc.simulate.Vicidial` builds every statement (its ``add_lead_steps``,
``loader_insert_steps`` and ``noise_steps`` sequences); this module only runs them
faster than one round trip per statement. A :class:`BatchWriter` drives each step
sequence to its end without waiting for the server: it predicts the ``lastrowid`` the
sequence needs (the ``lead_id`` of the lead insert, the ``api_id`` of the api_log row)
from the tables' AUTO_INCREMENT counters, which is exact because the writer is the only
client writing while it runs (MyISAM never reuses an AUTO_INCREMENT value), and sends
the rendered statements as one multi-statement batch. The server still executes and
binlogs them one by one: every statement stays its own event group, as on VICIdial.
:meth:`BatchWriter.verify` compares the predictions with the server afterwards.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from cdc.mariadb import PrivateMariaDB
from cdc.records import Position
from cdc.simulate import Result, Statement, Steps, Vicidial

__all__ = [
    "BENCH_LIST_ID",
    "BatchWriter",
    "LiveLoad",
    "Segment",
    "connect_writer",
    "generate_segment",
    "master_position",
]

BENCH_LIST_ID = 101
_FIRST_NAMES = ("John", "Mary", "José", "Anna", "Zoë", "Li", "Mohammed", "Olga", "Peter", "Ana María")
_LAST_NAMES = ("Smith", "Müller", "Nguyễn", "García", "O'Neil", "Kowalski", "Johnson", "Brown")
_CITIES = ("Chicago", "Springfield", "São Paulo", "Austin", "Denver")


def connect_writer(server: PrivateMariaDB, database: str) -> pymysql.Connection[Any]:
    """A connection that accepts multi-statement batches."""
    return pymysql.connect(
        host=server.host,
        port=server.port,
        user="root",
        password="",
        database=database,
        autocommit=True,
        charset="utf8mb4",
        client_flag=CLIENT.MULTI_STATEMENTS,
        read_timeout=600,
        write_timeout=600,
    )


def master_position(conn: pymysql.Connection[Any]) -> Position:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    assert row is not None, "the server has no binlog"
    return Position(str(row[0]), int(row[1]))


@dataclass(slots=True)
class _Pending:
    sql: str
    dml: bool
    lead_id: int = 0  # set on a lead's vicidial_list INSERT


@dataclass(slots=True)
class FlushResult:
    row_events: int = 0
    #: (lead_id, wall time when the server acknowledged the lead's vicidial_list INSERT)
    lead_acks: list[tuple[int, float]] = field(default_factory=list)


class BatchWriter:
    """Runs simulator step sequences as multi-statement batches on one connection."""

    def __init__(self, conn: pymysql.Connection[Any], database: str, *, seed: int = 1) -> None:
        self._conn = conn
        self._database = database
        self.sim = Vicidial(conn, database=database, seed=seed)
        self._next_id = self._load_auto_increment()
        self._pending: list[_Pending] = []
        self._rng = random.Random(seed)
        self._phone = 2_000_000_000 + seed * 10_000_000
        self.statements = 0

    def _load_auto_increment(self) -> dict[str, int]:
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA=%s AND AUTO_INCREMENT IS NOT NULL",
                (self._database,),
            )
            return {str(name): int(value) for name, value in cur.fetchall()}

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- queueing ---------------------------------------------------------------------

    def run(self, steps: Steps, *, lead: bool = False) -> int:
        """Queue every statement of ``steps``; the sequence's return value (e.g. lead_id)."""
        marked = not lead
        try:
            statement = next(steps)
            while True:
                result, item = self._queue(statement)
                if not marked and statement.verb == "INSERT" and statement.table == "vicidial_list":
                    item.lead_id = result.lastrowid
                    marked = True
                statement = steps.send(result)
        except StopIteration as stop:
            return int(stop.value)

    def _queue(self, statement: Statement) -> tuple[Result, _Pending]:
        verb = statement.verb
        if verb not in ("INSERT", "UPDATE", "DELETE"):
            raise ValueError(f"the batch writer runs DML only, got {verb}: use the simulator directly")
        lastrowid = 0
        if verb == "INSERT":
            table = statement.table
            next_id = self._next_id.get(table)
            if next_id is not None:
                lastrowid = next_id
                self._next_id[table] = next_id + 1
        with self._conn.cursor() as cur:
            sql = cur.mogrify(statement.sql, statement.args if statement.args else None)
        item = _Pending(sql, True)
        self._pending.append(item)
        self.statements += 1
        return Result(lastrowid=lastrowid, rowcount=1), item

    def add_noise(self, n: int) -> None:
        self.run(self.sim.noise_steps(n))

    def add_lead(self) -> int:
        """One full add_lead (users UPDATE, lead, api_log, api_urls, hopper, NOTICE)."""
        self._phone += 1
        rng = self._rng
        return self.run(
            self.sim.add_lead_steps(
                phone_number=str(self._phone),
                list_id=BENCH_LIST_ID,
                first_name=rng.choice(_FIRST_NAMES),
                last_name=rng.choice(_LAST_NAMES),
                city=rng.choice(_CITIES),
                state="IL",
                postal_code=f"{rng.randrange(10000, 99999)}",
                email=f"lead{self._phone}@example.com",
                vendor_lead_code=f"V{self._phone % 1_000_000:06d}",
                source="bench",
            ),
            lead=True,
        )

    def add_loader_insert(self) -> int:
        """The web lead loader's insert: a vicidial_list row that is not an API lead."""
        self._phone += 1
        return self.run(self.sim.loader_insert_steps(phone_number=str(self._phone), list_id=BENCH_LIST_ID))

    # -- executing --------------------------------------------------------------------

    def flush(self) -> FlushResult:
        """Send the queued statements as one batch; count the row events they wrote."""
        out = FlushResult()
        items, self._pending = self._pending, []
        if not items:
            return out
        with self._conn.cursor() as cur:
            cur.execute(";\n".join(item.sql for item in items))
            index = 0
            while True:
                item = items[index]
                if item.dml and cur.rowcount > 0:
                    out.row_events += 1
                if item.lead_id:
                    out.lead_acks.append((item.lead_id, time.time()))
                index += 1
                if not cur.nextset():
                    break
        if index != len(items):
            raise RuntimeError(f"batch of {len(items)} statements returned {index} results")
        return out

    def verify(self) -> None:
        """Fail when a predicted AUTO_INCREMENT id differs from the server's."""
        actual = self._load_auto_increment()
        wrong = {
            t: (self._next_id[t], actual.get(t)) for t in self._next_id if actual.get(t) != self._next_id[t]
        }
        if wrong:
            raise RuntimeError(f"AUTO_INCREMENT predictions went wrong (predicted, actual): {wrong}")


@dataclass(slots=True)
class Segment:
    """A stretch of binlog written by one generator run, between two group ends."""

    name: str
    start: Position
    end: Position
    row_events: int = 0
    noise_statements: int = 0
    leads: int = 0
    loader_inserts: int = 0
    statements: int = 0
    generate_s: float = 0.0
    #: Binlog bytes between start and end (across files).
    size_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": str(self.start),
            "end": str(self.end),
            "bytes": self.size_bytes,
            "row_events": self.row_events,
            "noise_statements": self.noise_statements,
            "lead_statements": self.statements - self.noise_statements,
            "leads": self.leads,
            "loader_inserts": self.loader_inserts,
            "statements": self.statements,
            "generate_s": round(self.generate_s, 3),
            "statements_per_s": round(self.statements / self.generate_s, 1) if self.generate_s else None,
        }


def generate_segment(
    server: PrivateMariaDB,
    database: str,
    name: str,
    *,
    statements: int,
    noise_ratio: float,
    loader_per_lead: float,
    seed: int,
    batch_statements: int = 1000,
) -> Segment:
    """About ``statements`` single-row statements, a ``noise_ratio`` share of them noise.

    The rest are complete add_lead sequences, plus ``loader_per_lead`` loader inserts
    per lead. The binlog is rotated first, so the segment starts a fresh file.
    """
    with contextlib.closing(connect_writer(server, database)) as conn:
        with conn.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")
        writer = BatchWriter(conn, database, seed=seed)
        start = master_position(conn)
        segment = Segment(name, start, start)
        started = time.perf_counter()
        lead_statements = 0
        loader_debt = 0.0
        while writer.statements < statements:
            if writer.statements - lead_statements < noise_ratio * (writer.statements + 1):
                writer.add_noise(1)
            else:
                before = writer.statements
                writer.add_lead()
                segment.leads += 1
                loader_debt += loader_per_lead
                while loader_debt >= 1.0:
                    writer.add_loader_insert()
                    segment.loader_inserts += 1
                    loader_debt -= 1.0
                lead_statements += writer.statements - before
            if writer.pending >= batch_statements:
                segment.row_events += writer.flush().row_events
        segment.row_events += writer.flush().row_events
        segment.generate_s = time.perf_counter() - started
        segment.statements = writer.statements
        segment.noise_statements = writer.statements - lead_statements
        writer.verify()
        segment.end = master_position(conn)
        segment.size_bytes = _bytes_between(conn, segment.start, segment.end)
    return segment


def _bytes_between(conn: pymysql.Connection[Any], start: Position, end: Position) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        sizes = {str(name): int(size) for name, size, *_ in cur.fetchall()}
    if start.file == end.file:
        return end.pos - start.pos
    total = sizes.get(start.file, start.pos) - start.pos + end.pos
    return total + sum(size for name, size in sizes.items() if start.file < name < end.file)


@dataclass(slots=True)
class LiveStats:
    duration_s: float = 0.0
    leads: int = 0
    noise_statements: int = 0
    row_events: int = 0
    #: lead_id -> wall time of the server's acknowledgement of its vicidial_list INSERT
    inserted_at: dict[int, float] = field(default_factory=dict)
    late_ticks: int = 0


class LiveLoad:
    """Offered load in real time: ``leads_per_s`` add_lead calls and ``noise_per_s`` noise.

    Every ``tick_s`` the statements that are due go out: the noise as one batch, each
    lead as its own small batch, so the acknowledgement time of a lead's insert is
    exact to within that lead's own six statements.
    """

    def __init__(self, server: PrivateMariaDB, database: str, *, seed: int) -> None:
        self._server = server
        self._database = database
        self._seed = seed

    def run(
        self, duration_s: float, leads_per_s: float, noise_per_s: float, tick_s: float = 0.01
    ) -> LiveStats:
        stats = LiveStats()
        with contextlib.closing(connect_writer(self._server, self._database)) as conn:
            writer = BatchWriter(conn, self._database, seed=self._seed)
            started = time.monotonic()
            deadline = started + duration_s
            next_tick = started
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                elapsed = now - started
                due_noise = int(noise_per_s * elapsed) - stats.noise_statements
                due_leads = int(leads_per_s * elapsed) - stats.leads
                if due_noise > 0:
                    writer.add_noise(due_noise)
                    stats.noise_statements += due_noise
                    stats.row_events += writer.flush().row_events
                for _ in range(max(0, due_leads)):
                    writer.add_lead()
                    stats.leads += 1
                    flushed = writer.flush()
                    stats.row_events += flushed.row_events
                    stats.inserted_at.update(flushed.lead_acks)
                next_tick += tick_s
                pause = next_tick - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    stats.late_ticks += 1
                    next_tick = time.monotonic()
            stats.duration_s = time.monotonic() - started
            writer.verify()
        return stats

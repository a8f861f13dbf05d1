"""Write a VICIdial-shaped binlog fast, with the simulator's own statements.

:class:`cdc.testing.simulate.Vicidial` builds every statement (its ``add_lead_steps``,
``loader_insert_steps`` and ``noise_steps`` sequences); this module only runs them
faster than one round trip per statement. A :class:`BatchWriter` drives each step
sequence to its end without waiting for the server: it predicts the ``lastrowid`` the
sequence needs (the ``lead_id`` of the lead insert, the ``api_id`` of the api_log row)
from the tables' AUTO_INCREMENT counters, which is exact because the writer is the only
client writing while it runs (MyISAM never reuses an AUTO_INCREMENT value), and sends
the rendered statements as one multi-statement batch. The server still executes and
binlogs them one by one: every statement stays its own event group, as on VICIdial.
:meth:`BatchWriter.verify` compares the predictions with the server afterwards.

:class:`LiveLoad` renders a whole real-time schedule the same way before it starts,
so that while it runs, sending is all it does (see its docstring).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from cdc.records import Position
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.simulate import Result, Statement, Steps, Vicidial

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

    def take(self) -> list[_Pending]:
        """Hand over the queued statements unsent (a caller that renders ahead sends them)."""
        items, self._pending = self._pending, []
        return items

    def predicted_ids(self) -> dict[str, int]:
        """The AUTO_INCREMENT counters the server will have once all queued statements ran."""
        return dict(self._next_id)

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

    def verify(self, predicted: Mapping[str, int] | None = None) -> None:
        """Fail when a predicted AUTO_INCREMENT id differs from the server's.

        ``predicted`` (from :meth:`predicted_ids`) checks a prefix of what was queued,
        for a caller that stopped sending early; by default everything was sent.
        """
        expected = self._next_id if predicted is None else predicted
        actual = self._load_auto_increment()
        wrong = {t: (expected[t], actual.get(t)) for t in expected if actual.get(t) != expected[t]}
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
    #: Ticks whose batch went out more than one tick after it was due.
    late_ticks: int = 0
    #: Ticks planned, and sent before the window closed (the rest were not sent).
    ticks: int = 0
    sent_ticks: int = 0
    #: Seconds spent rendering the schedule (before the window).
    render_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _LeadBatch:
    """One add_lead's statements as one batch; result ``insert_index`` is its lead INSERT."""

    sql: bytes
    statements: int
    insert_index: int
    lead_id: int


@dataclass(frozen=True, slots=True)
class _Tick:
    #: Seconds after the start when this tick's statements are due.
    due_s: float
    noise_sql: bytes
    noise_statements: int
    leads: tuple[_LeadBatch, ...]
    #: AUTO_INCREMENT predictions once this tick has run: what to verify if the run stops here.
    next_ids: dict[str, int]


def _render(items: list[_Pending]) -> bytes:
    """One multi-statement batch, encoded as the connection would (utf8mb4)."""
    return ";\n".join(item.sql for item in items).encode("utf-8", "surrogateescape")


def _send(cur: Any, sql: bytes, statements: int, mark: int = -1) -> tuple[int, float]:
    """Run one rendered batch: (row events written, wall time when result ``mark`` arrived)."""
    cur.execute(sql)
    rows = index = 0
    marked_at = 0.0
    while True:
        if cur.rowcount > 0:
            rows += 1
        if index == mark:
            marked_at = time.time()
        index += 1
        if not cur.nextset():
            break
    if index != statements:
        raise RuntimeError(f"batch of {statements} statements returned {index} results")
    return rows, marked_at


class LiveLoad:
    """Offered load in real time: ``leads_per_s`` add_lead calls and ``noise_per_s`` noise.

    :meth:`prepare` renders the whole schedule first (the same simulator statements, in
    the same order, as :class:`BatchWriter` runs them), because building statements in
    Python while the clock runs cannot keep up with a busy dialer. :meth:`run` then only
    sends: every ``tick_s`` the statements due go out, the noise as one batch and each
    lead as its own small batch, so the acknowledgement time of a lead's insert is exact
    to within that lead's own six statements. A tick that cannot start before the window
    (plus one tick) ends is not sent: the achieved rates say what the server took.
    """

    def __init__(self, server: PrivateMariaDB, database: str, *, seed: int) -> None:
        self._server = server
        self._database = database
        self._seed = seed
        self._conn: pymysql.Connection[Any] | None = None
        self._writer: BatchWriter | None = None
        self._ticks: list[_Tick] = []
        #: AUTO_INCREMENT counters before the first tick (verified when none was sent).
        self._initial_ids: dict[str, int] = {}
        self._duration_s = 0.0
        self._tick_s = 0.0
        self._render_s = 0.0

    def __enter__(self) -> LiveLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        conn, self._conn, self._writer = self._conn, None, None
        self._ticks = []
        if conn is not None:
            conn.close()

    def prepare(
        self, duration_s: float, leads_per_s: float, noise_per_s: float, tick_s: float = 0.01
    ) -> None:
        """Open the connection and render every tick of a ``duration_s`` run (writes nothing)."""
        if self._conn is not None:
            raise RuntimeError("LiveLoad.prepare() was already called; use a new LiveLoad per run")
        if duration_s <= 0 or tick_s <= 0:
            raise ValueError(f"duration_s and tick_s must be > 0, got {duration_s!r} and {tick_s!r}")
        started = time.perf_counter()
        self._conn = connect_writer(self._server, self._database)
        writer = self._writer = BatchWriter(self._conn, self._database, seed=self._seed)
        self._initial_ids = writer.predicted_ids()
        noise_done = leads_done = 0
        for i in range(1, math.ceil(duration_s / tick_s) + 1):
            due_s = min(i * tick_s, duration_s)
            noise = int(noise_per_s * due_s) - noise_done
            noise_sql = b""
            if noise > 0:
                writer.add_noise(noise)
                noise_sql = _render(writer.take())
                noise_done += noise
            leads: list[_LeadBatch] = []
            for _ in range(int(leads_per_s * due_s) - leads_done):
                writer.add_lead()
                items = writer.take()
                index = next(k for k, item in enumerate(items) if item.lead_id)
                leads.append(_LeadBatch(_render(items), len(items), index, items[index].lead_id))
            leads_done += len(leads)
            self._ticks.append(_Tick(due_s, noise_sql, noise, tuple(leads), writer.predicted_ids()))
        self._duration_s = duration_s
        self._tick_s = tick_s
        self._render_s = time.perf_counter() - started

    def run(self) -> LiveStats:
        """Send the rendered ticks at their due times; verify the server's AUTO_INCREMENTs."""
        ticks, self._ticks = self._ticks, []
        if self._conn is None or self._writer is None or not ticks:
            raise RuntimeError("LiveLoad.run() needs prepare() first, and runs once")
        tick_s = self._tick_s
        stats = LiveStats(ticks=len(ticks), render_s=round(self._render_s, 3))
        verified = self._initial_ids
        with self._conn.cursor() as cur:
            started = time.monotonic()
            closes = started + self._duration_s + tick_s
            for tick in ticks:
                due = started + tick.due_s
                now = time.monotonic()
                if now >= closes:
                    break
                if now < due:
                    time.sleep(due - now)
                elif now - due > tick_s:
                    stats.late_ticks += 1
                if tick.noise_statements:
                    rows, _ = _send(cur, tick.noise_sql, tick.noise_statements)
                    stats.row_events += rows
                    stats.noise_statements += tick.noise_statements
                for lead in tick.leads:
                    rows, acked_at = _send(cur, lead.sql, lead.statements, lead.insert_index)
                    stats.row_events += rows
                    stats.inserted_at[lead.lead_id] = acked_at
                    stats.leads += 1
                stats.sent_ticks += 1
                verified = tick.next_ids
            stats.duration_s = time.monotonic() - started
        self._writer.verify(verified)
        return stats

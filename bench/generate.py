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
import multiprocessing
import pickle
import random
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pymysql
from pymysql.constants import CLIENT

from cdc.records import Position
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.simulate import Result, Statement, Steps, Vicidial
from cdc.testing.simulate.noise import NOISE_TABLES

__all__ = [
    "BENCH_LIST_ID",
    "BatchWriter",
    "LiveLoad",
    "Segment",
    "bytes_between",
    "connect_writer",
    "generate_segment",
    "master_position",
]

BENCH_LIST_ID = 101
_SPAWN = multiprocessing.get_context("spawn")
_FIRST_NAMES = ("John", "Mary", "José", "Anna", "Zoë", "Li", "Mohammed", "Olga", "Peter", "Ana María")
_LAST_NAMES = ("Smith", "Müller", "Nguyễn", "García", "O'Neil", "Kowalski", "Johnson", "Brown")
_CITIES = ("Chicago", "Springfield", "São Paulo", "Austin", "Denver")


def connect_writer(server: PrivateMariaDB, database: str) -> pymysql.Connection[Any]:
    """A connection that accepts multi-statement batches."""
    return _connect(server.host, server.port, database)


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
    #: The table written (routes the statement to its connection in :class:`LiveLoad`).
    table: str = ""


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
        item = _Pending(sql, True, table=statement.table)
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
        segment.size_bytes = bytes_between(conn, segment.start, segment.end)
    return segment


def bytes_between(conn: pymysql.Connection[Any], start: Position, end: Position) -> int:
    """Binlog bytes from ``start`` to ``end``, across files."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        sizes = {str(name): int(size) for name, size, *_ in cur.fetchall()}
    if start.file == end.file:
        return end.pos - start.pos
    total = sizes.get(start.file, start.pos) - start.pos + end.pos
    return total + sum(size for name, size in sizes.items() if start.file < name < end.file)


@dataclass(slots=True)
class ConnectionStats:
    """What one of the live load's connections sent (``role``: ``leads`` or ``noise-<k>``)."""

    role: str
    tables: tuple[str, ...]
    noise_statements: int = 0
    lead_statements: int = 0
    row_events: int = 0
    sent_ticks: int = 0
    late_ticks: int = 0
    #: Seconds after the start when it finished its last tick.
    ended_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "tables": list(self.tables),
            "noise_statements": self.noise_statements,
            "lead_statements": self.lead_statements,
            "row_events": self.row_events,
            "sent_ticks": self.sent_ticks,
            "late_ticks": self.late_ticks,
            "ended_s": round(self.ended_s, 3),
        }


@dataclass(slots=True)
class LiveStats:
    duration_s: float = 0.0
    leads: int = 0
    noise_statements: int = 0
    row_events: int = 0
    #: lead_id -> wall time of the server's acknowledgement of its vicidial_list INSERT
    inserted_at: dict[int, float] = field(default_factory=dict)
    #: Ticks whose batch went out more than one tick after it was due, on the connection
    #: with the most of them.
    late_ticks: int = 0
    #: Ticks planned, and sent before the window closed by every connection (the
    #: slowest connection's count: the other ticks were not all sent).
    ticks: int = 0
    sent_ticks: int = 0
    #: Seconds spent rendering the schedule (before the window).
    render_s: float = 0.0
    connections: list[ConnectionStats] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Tick:
    """What one connection sends in one tick, as one multi-statement batch.

    On the lead connection: the noise's ``vicidial_api_log`` rows, then each lead's
    statements; ``marks`` are the (result index, lead_id) of the leads' INSERTs. The
    server sends each statement's result as soon as that statement is done, so the
    time its result is read is the lead's acknowledgement, as with a batch per lead.
    """

    index: int
    #: Seconds after the start of its phase when this tick's statements are due.
    due_s: float
    sql: bytes
    noise_statements: int
    lead_statements: int = 0
    marks: tuple[tuple[int, int], ...] = ()


def _render(items: list[_Pending]) -> bytes:
    """One multi-statement batch, encoded as the connection would (utf8mb4)."""
    return ";\n".join(item.sql for item in items).encode("utf-8", "surrogateescape")


def _send(
    cur: Any, sql: bytes, statements: int, marks: tuple[tuple[int, int], ...], acked: dict[int, float] | None
) -> int:
    """Run one rendered batch; the row events written. ``acked[lead_id]`` = the wall time
    when the result of statement ``index`` was read, for each (index, lead_id) of ``marks``."""
    cur.execute(sql)
    rows = index = 0
    pending = iter(marks)
    mark, lead_id = next(pending, (-1, 0))
    while True:
        if cur.rowcount > 0:
            rows += 1
        if index == mark:
            if acked is not None:
                acked[lead_id] = time.time()
            mark, lead_id = next(pending, (-1, 0))
        index += 1
        if not cur.nextset():
            break
    if index != statements:
        raise RuntimeError(f"batch of {statements} statements returned {index} results")
    return rows


@dataclass(frozen=True, slots=True)
class _Phase:
    """Which ticks to send and when: ``start`` None sends them as fast as the server takes them."""

    first: int
    last: int
    start: float | None
    #: Seconds subtracted from a tick's ``due_s`` (the ticks of earlier phases).
    offset_s: float
    tick_s: float
    closes: float


def _drive(
    cur: Any, ticks: list[_Tick], phase: _Phase, stats: ConnectionStats, inserted_at: dict[int, float] | None
) -> None:
    """Send one connection's ticks of ``phase``, paced to their due times unless unpaced."""
    started = time.monotonic() if phase.start is None else phase.start
    for tick in ticks:
        if not phase.first <= tick.index < phase.last:
            continue
        now = time.monotonic()
        if now >= phase.closes:
            break
        if phase.start is not None:
            due = started + tick.due_s - phase.offset_s
            if now < due:
                time.sleep(due - now)
            elif now - due > phase.tick_s:
                stats.late_ticks += 1
        if tick.sql:
            stats.row_events += _send(
                cur, tick.sql, tick.noise_statements + tick.lead_statements, tick.marks, inserted_at
            )
            stats.noise_statements += tick.noise_statements
            stats.lead_statements += tick.lead_statements
        stats.sent_ticks = tick.index + 1 - phase.first
    stats.ended_s = time.monotonic() - started


def _connect(host: str, port: int, database: str) -> pymysql.Connection[Any]:
    """A connection that accepts multi-statement batches."""
    return pymysql.connect(
        host=host,
        port=port,
        user="root",
        password="",
        database=database,
        autocommit=True,
        charset="utf8mb4",
        client_flag=CLIENT.MULTI_STATEMENTS,
        read_timeout=600,
        write_timeout=600,
    )


def _noise_worker(pipe: Connection, host: str, port: int, database: str, schedule: str, role: str) -> None:
    """A noise connection in its own process: loads its ticks, then sends each phase it is told.

    Replies ``("ready", None)``, then ``("done", ConnectionStats)`` per phase, or
    ``("error", traceback)``; ``None`` ends it.
    """
    try:
        with contextlib.closing(_connect(host, port, database)) as conn, open(schedule, "rb") as fh:
            tables, ticks = pickle.load(fh)
            pipe.send(("ready", None))
            with conn.cursor() as cur:
                while (phase := pipe.recv()) is not None:
                    stats = ConnectionStats(role, tables)
                    _drive(cur, ticks, phase, stats, None)
                    pipe.send(("done", stats))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
        raise


class _Worker:
    """The parent's end of one :func:`_noise_worker` process."""

    def __init__(self, server: PrivateMariaDB, database: str, schedule: Path, role: str) -> None:
        self.role = role
        self._pipe, child = _SPAWN.Pipe()
        self._proc = _SPAWN.Process(
            target=_noise_worker,
            args=(child, server.host, server.port, database, str(schedule), role),
            daemon=True,
        )
        self._proc.start()
        child.close()

    def _reply(self, timeout_s: float) -> Any:
        if not self._pipe.poll(timeout_s):
            raise RuntimeError(f"live load {self.role}: no reply within {timeout_s:g} s")
        kind, value = self._pipe.recv()
        if kind == "error":
            raise RuntimeError(f"live load {self.role} failed:\n{value}")
        return value

    def wait_ready(self) -> None:
        self._reply(120)

    def send(self, phase: _Phase) -> None:
        self._pipe.send(phase)

    def result(self) -> ConnectionStats:
        stats: ConnectionStats = self._reply(3600)
        return stats

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send(None)
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._pipe.close()


class LiveLoad:
    """Offered load in real time: ``leads_per_s`` add_lead calls and ``noise_per_s`` noise.

    :meth:`prepare` renders the whole schedule first, with one :class:`BatchWriter` (the
    same simulator statements, in the same order, as it runs them), because building
    statements in Python while the clock runs cannot keep up with a busy dialer. The
    statements are then routed by table over several connections, so that no one
    connection (or Python process) limits the load:

    - ``noise_connections`` processes each own some of the busy noise tables
      (``NOISE_TABLES``) and send their statements, one batch per tick;
    - the lead connection, in this process, sends everything else: the leads and the
      noise's ``vicidial_api_log`` rows (that table's AUTO_INCREMENT is shared with the
      leads'), one batch per tick. The server sends each statement's result when that
      statement is done, so the time a lead's INSERT result is read is its
      acknowledgement (late only by this connection's own read lag).

    Each table is written by one connection in the rendered order, so every predicted
    AUTO_INCREMENT id stays exact (what :meth:`BatchWriter.verify` checks afterwards);
    only the interleaving of different tables differs from one connection's.

    :meth:`run` sends: every ``tick_s`` the statements due go out on each connection. A
    tick that cannot start before the window (plus one tick) ends is not sent: the
    achieved rates say what the server took. With ``burst_s``, the first ``burst_s``
    seconds of the schedule are written first by :meth:`write_burst`, as fast as the
    server takes them (an outage's binlog), and :meth:`run` sends the rest in real time.
    """

    def __init__(
        self, server: PrivateMariaDB, database: str, *, seed: int, noise_connections: int = 3
    ) -> None:
        if noise_connections < 0:
            raise ValueError(f"noise_connections must be >= 0, got {noise_connections!r}")
        self._server = server
        self._database = database
        self._seed = seed
        self._noise_connections = noise_connections
        self._conn: pymysql.Connection[Any] | None = None
        self._writer: BatchWriter | None = None
        self._ticks: list[_Tick] = []
        self._workers: list[_Worker] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        #: AUTO_INCREMENT predictions once tick i has run (index 0: before any tick).
        self._next_ids: list[dict[str, int]] = []
        #: table -> index of the connection that writes it (0: the lead connection).
        self._owner: dict[str, int] = {}
        self._last_sent: list[int] = []
        self._duration_s = 0.0
        self._burst_s = 0.0
        self._burst_ticks = 0
        self._tick_s = 0.0
        self._render_s = 0.0

    def __enter__(self) -> LiveLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        conn, self._conn, self._writer = self._conn, None, None
        self._ticks = []
        if conn is not None:
            conn.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def connections(self) -> int:
        """Connections the load is sent over (the lead connection and the noise ones)."""
        return 1 + len(self._workers)

    def prepare(
        self,
        duration_s: float,
        leads_per_s: float,
        noise_per_s: float,
        tick_s: float = 0.01,
        burst_s: float = 0.0,
    ) -> None:
        """Open the connections and render every tick of ``burst_s`` + ``duration_s`` (writes nothing)."""
        if self._conn is not None:
            raise RuntimeError("LiveLoad.prepare() was already called; use a new LiveLoad per run")
        if duration_s <= 0 or tick_s <= 0 or burst_s < 0:
            raise ValueError(
                f"duration_s and tick_s must be > 0 and burst_s >= 0,"
                f" got {duration_s!r}, {tick_s!r} and {burst_s!r}"
            )
        started = time.perf_counter()
        self._conn = connect_writer(self._server, self._database)
        writer = self._writer = BatchWriter(self._conn, self._database, seed=self._seed)
        workers = min(self._noise_connections, len(NOISE_TABLES))
        self._owner = {table: 1 + i % workers for i, table in enumerate(NOISE_TABLES)} if workers else {}
        self._next_ids = [writer.predicted_ids()]
        noise_ticks: list[list[_Tick]] = [[] for _ in range(workers)]
        burst_ticks = math.ceil(burst_s / tick_s - 1e-9) if burst_s else 0
        total_s = burst_s + duration_s
        noise_done = leads_done = 0
        index = 0
        while True:
            if index < burst_ticks:
                due_s = min((index + 1) * tick_s, burst_s)
            else:
                due_s = min(burst_s + (index + 1 - burst_ticks) * tick_s, total_s)
            noise = int(noise_per_s * due_s) - noise_done
            by_owner: list[list[_Pending]] = [[] for _ in range(workers + 1)]
            if noise > 0:
                writer.add_noise(noise)
                for item in writer.take():
                    by_owner[self._owner.get(item.table, 0)].append(item)
                noise_done += noise
            mine = by_owner[0]
            noise_here = len(mine)
            leads = int(leads_per_s * due_s) - leads_done
            for _ in range(leads):
                writer.add_lead()
                items = writer.take()
                if any(self._owner.get(item.table, 0) for item in items):
                    raise RuntimeError(
                        "an add_lead statement writes a noise table: the routing would reorder it"
                    )
                mine.extend(items)
            leads_done += leads
            marks = tuple((k, item.lead_id) for k, item in enumerate(mine) if item.lead_id)
            self._ticks.append(_Tick(index, due_s, _render(mine), noise_here, len(mine) - noise_here, marks))
            for w in range(workers):
                if by_owner[w + 1]:
                    noise_ticks[w].append(_Tick(index, due_s, _render(by_owner[w + 1]), len(by_owner[w + 1])))
            self._next_ids.append(writer.predicted_ids())
            index += 1
            if index > burst_ticks and due_s >= total_s:
                break
        self._tmp = tempfile.TemporaryDirectory(prefix="vicidial-cdc-liveload-")
        for w in range(workers):
            tables = tuple(t for t, owner in self._owner.items() if owner == w + 1)
            schedule = Path(self._tmp.name) / f"noise-{w + 1}.pickle"
            with open(schedule, "wb") as fh:
                pickle.dump((tables, noise_ticks[w]), fh, protocol=pickle.HIGHEST_PROTOCOL)
            noise_ticks[w] = []
            self._workers.append(_Worker(self._server, self._database, schedule, f"noise-{w + 1}"))
        for worker in self._workers:
            worker.wait_ready()
        self._last_sent = [-1] * (workers + 1)
        self._duration_s = duration_s
        self._burst_s = burst_s
        self._burst_ticks = burst_ticks
        self._tick_s = tick_s
        self._render_s = time.perf_counter() - started

    def write_burst(self) -> LiveStats:
        """Write the first ``burst_s`` seconds of the schedule as fast as the server takes them."""
        if not self._burst_ticks:
            raise RuntimeError("LiveLoad.write_burst() needs prepare(burst_s=...) > 0")
        phase = _Phase(0, self._burst_ticks, None, 0.0, self._tick_s, math.inf)
        return self._phase(phase, ticks=self._burst_ticks)

    def run(self) -> LiveStats:
        """Send the rendered ticks (after any burst) at their due times; verify the AUTO_INCREMENTs."""
        if self._conn is None or not self._ticks:
            raise RuntimeError("LiveLoad.run() needs prepare() first")
        if self._burst_ticks and self._last_sent[0] < 0:
            raise RuntimeError("LiveLoad.run() comes after write_burst() when a burst was prepared")
        # Every process sleeps until the same start, a little ahead so each has its phase.
        start = time.monotonic() + 0.05
        phase = _Phase(
            self._burst_ticks,
            len(self._ticks),
            start,
            self._burst_s,
            self._tick_s,
            start + self._duration_s + self._tick_s,
        )
        return self._phase(phase, ticks=len(self._ticks) - self._burst_ticks)

    def _phase(self, phase: _Phase, *, ticks: int) -> LiveStats:
        assert self._conn is not None and self._writer is not None
        for worker in self._workers:
            worker.send(phase)
        lead_tables = tuple(sorted({t for t in self._next_ids[0] if self._owner.get(t, 0) == 0}))
        lead_stats = ConnectionStats("leads", lead_tables)
        stats = LiveStats(ticks=ticks, render_s=round(self._render_s, 3))
        try:
            with self._conn.cursor() as cur:
                _drive(cur, self._ticks, phase, lead_stats, stats.inserted_at)
        finally:
            per_connection = [lead_stats] + [worker.result() for worker in self._workers]
        stats.connections = per_connection
        for k, conn_stats in enumerate(per_connection):
            if conn_stats.sent_ticks:
                self._last_sent[k] = phase.first + conn_stats.sent_ticks - 1
        stats.leads = len(stats.inserted_at)
        stats.noise_statements = sum(c.noise_statements for c in per_connection)
        stats.row_events = sum(c.row_events for c in per_connection)
        stats.late_ticks = max(c.late_ticks for c in per_connection)
        stats.sent_ticks = min(c.sent_ticks for c in per_connection)
        stats.duration_s = max(c.ended_s for c in per_connection)
        self._verify()
        return stats

    def _verify(self) -> None:
        """Each table's counter is the prediction after the last tick its connection sent."""
        assert self._writer is not None
        expected = {
            table: self._next_ids[self._last_sent[self._owner.get(table, 0)] + 1][table]
            for table in self._next_ids[0]
        }
        self._writer.verify(expected)

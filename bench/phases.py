"""The measurements of ``bench.run``; each runs in a fresh process (see ``bench.run``).

A fresh process per measurement keeps them apart: no GIL shared with the
orchestrator, and ``resource.getrusage`` (CPU seconds, peak RSS) covers that
measurement only. Arguments and results are plain picklable values.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import logging
import math
import multiprocessing.synchronize
import os
import re
import resource
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized, SynchronizedString
from pathlib import Path
from typing import Any

from cdc.config import (
    Config,
    DeliveryConfig,
    EndpointLimits,
    HttpConfig,
    MysqlConfig,
    ReaderConfig,
    StateConfig,
    UrlsConfig,
)
from cdc.reader import ReaderFactory, reader_for
from cdc.records import GroupEnd, Op, Position, RowChange
from cdc.service import LEAD_TABLES
from cdc.settings import SETTINGS_TABLES

__all__ = [
    "READERS",
    "E2EParams",
    "ScanParams",
    "Usage",
    "event_loop_name",
    "mariadb_binlog_remote_scan",
    "mariadb_binlog_scan",
    "receiver_main",
    "run_e2e",
    "running_loop_name",
    "scan_reader",
    "scan_stock",
    "sequential_sender",
]

#: Reader implementations the service can be run with (``--readers``).
READERS = ("library", "fast", "process")
WATCHED_TABLES = frozenset(LEAD_TABLES | set(SETTINGS_TABLES))
_LEAD_ID = re.compile(r"[?&]id=(\d+)")


def usage() -> tuple[float, int]:
    """(CPU seconds of this process so far, peak RSS in kB).

    The peak is ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` across
    ``exec``, so a spawned process would report its parent's peak when larger.
    """
    r = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = int(r.ru_maxrss)
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
                break
    return r.ru_utime + r.ru_stime, peak_kb


def process_usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, peak RSS in kB) of another live process from ``/proc``; None once gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The command name may hold spaces and parentheses: count fields after the last ")".
            fields = stat.read().rpartition(")")[2].split()
        peak_kb = 0
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak_kb = int(line.split()[1])
                    break
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
    return (int(fields[11]) + int(fields[12])) / ticks, peak_kb


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds and peak RSS (kB) of this process and, where the reader runs in a
    process of its own (``bench.procreader``), of that one too."""

    cpu_s: float
    peak_kb: int
    reader_cpu_s: float | None = None
    reader_peak_kb: int | None = None
    #: CPU seconds the reader process spent starting (interpreter, imports), once known.
    reader_startup_cpu_s: float | None = None

    @classmethod
    def sample(cls, reader: object | None) -> Usage:
        """Now, for this process and ``reader``'s process if it has one (read from ``/proc``)."""
        from bench.procreader import ProcessBinlogReader

        cpu, peak = usage()
        pid = reader.pid if isinstance(reader, ProcessBinlogReader) else None
        if pid is None:
            return cls(cpu, peak)
        child = process_usage(pid)
        if child is None:
            raise RuntimeError(f"the reader process {pid} ended before its usage was read")
        return cls(cpu, peak, child[0], child[1], reader.startup_cpu_s)

    def cpu_since(self, before: Usage) -> tuple[float, float | None]:
        """(CPU seconds of both processes, of the reader process or None) since ``before``."""
        cpu = self.cpu_s - before.cpu_s
        if self.reader_cpu_s is None:
            return cpu, None
        # Like this process's, the reader process's CPU counts from the end of its
        # start-up, which may come after ``before`` (it may not have started then).
        reader = self.reader_cpu_s - max(before.reader_cpu_s or 0.0, self.reader_startup_cpu_s or 0.0)
        return cpu + reader, reader

    def figures(self, before: Usage) -> dict[str, Any]:
        """``cpu_s`` and ``peak_rss_mb`` counting both processes, and each process's own.

        With two processes ``peak_rss_mb`` is the sum of the two peaks: an upper bound
        of what they held together.
        """
        total, reader = self.cpu_since(before)
        if reader is None or self.reader_peak_kb is None:
            return {"processes": 1, "cpu_s": round(total, 3), "peak_rss_mb": round(self.peak_kb / 1024, 1)}
        return {
            "processes": 2,
            "cpu_s": round(total, 3),
            "cpu_s_main_process": round(total - reader, 3),
            "cpu_s_reader_process": round(reader, 3),
            "cpu_s_reader_process_startup": (
                None if self.reader_startup_cpu_s is None else round(self.reader_startup_cpu_s, 3)
            ),
            "peak_rss_mb": round((self.peak_kb + self.reader_peak_kb) / 1024, 1),
            "peak_rss_mb_main_process": round(self.peak_kb / 1024, 1),
            "peak_rss_mb_reader_process": round(self.reader_peak_kb / 1024, 1),
        }


def event_loop_name() -> str:
    """The event loop ``cdc.runtime.run`` picks here: ``uvloop`` or ``asyncio``."""
    from cdc import runtime

    return runtime.run(running_loop_name())


async def running_loop_name() -> str:
    """The running loop's kind: ``uvloop`` or ``asyncio``."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def mysql_config(port: int, database: str, heartbeat_s: float = 1.0) -> MysqlConfig:
    return MysqlConfig(
        host="127.0.0.1",
        port=port,
        user="root",
        database=database,
        source="bench",
        heartbeat_s=heartbeat_s,
        read_timeout_s=30.0,
    )


def reader_factory(kind: str) -> ReaderFactory:
    """The reader factory for ``kind``: ``reader.decoder``'s two, or the process prototype."""
    if kind in ("library", "fast"):
        return reader_for(kind)
    if kind == "process":
        from bench.procreader import ProcessBinlogReader

        return ProcessBinlogReader
    raise ValueError(f"unknown reader {kind!r}; expected one of {READERS}")


@dataclass(frozen=True, slots=True)
class ScanParams:
    port: int
    database: str
    start: Position
    end: Position


def _scan_result(elapsed: float, figures: dict[str, Any], rows: int, lead_rows: int) -> dict[str, Any]:
    """A scan's figures; ``figures`` are :meth:`Usage.figures`'s."""
    return {"elapsed_s": round(elapsed, 4), **figures, "rows_decoded": rows, "lead_rows": lead_rows}


def scan_stock(p: ScanParams) -> dict[str, Any]:
    """Stock ``mysql-replication`` iteration: the same filters, ``freeze_schema=True``.

    Rows of watched tables are decoded (``event.rows``); iteration stops at the first
    event at or past ``p.end``.
    """
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

    logging.getLogger("pymysqlreplication").setLevel(logging.WARNING)
    before = Usage.sample(None)
    started = time.perf_counter()
    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": p.port, "user": "root", "passwd": ""},
        server_id=4_200_000_001,
        log_file=p.start.file,
        log_pos=p.start.pos,
        resume_stream=True,
        blocking=False,
        only_events=[
            WriteRowsEvent,
            UpdateRowsEvent,
            DeleteRowsEvent,
            TableMapEvent,
            QueryEvent,
            XidEvent,
            RotateEvent,
        ],
        only_schemas=[p.database],
        only_tables=list(WATCHED_TABLES),
        freeze_schema=True,
        enable_logging=False,
    )
    rows = lead_rows = 0
    end = (p.end.file, p.end.pos)
    try:
        for event in stream:
            if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                n = len(event.rows)
                rows += n
                if event.table == "vicidial_list" and isinstance(event, WriteRowsEvent):
                    lead_rows += n
            if (stream.log_file, stream.log_pos) >= end:
                break
    finally:
        stream.close()
    elapsed = time.perf_counter() - started
    return _scan_result(elapsed, Usage.sample(None).figures(before), rows, lead_rows)


def scan_reader(kind: str, p: ScanParams) -> dict[str, Any]:
    """One of our readers feeding an asyncio consumer, until a group end at ``p.end``."""
    return asyncio.run(_scan_reader(kind, p))


async def _scan_reader(kind: str, p: ScanParams) -> dict[str, Any]:
    factory = reader_factory(kind)
    before = Usage.sample(None)
    started = time.perf_counter()
    reader = factory(
        mysql_config(p.port, p.database, heartbeat_s=0.2), WATCHED_TABLES, p.start, flush_interval_s=0.01
    )
    reader.start()
    rows = lead_rows = 0
    try:
        done = False
        while not done:
            async with asyncio.timeout(600):
                batch = await reader.get_batch()
            for item in batch:
                if type(item) is RowChange:
                    rows += 1
                    if item.table == "vicidial_list" and item.op is Op.INSERT:
                        lead_rows += 1
                elif type(item) is GroupEnd and item.position >= p.end:
                    done = True
                    break
        elapsed = time.perf_counter() - started
        after = Usage.sample(reader)
    finally:
        await reader.stop()
    result = _scan_result(elapsed, after.figures(before), rows, lead_rows)
    result["events_seen"] = reader.statistics().events
    return result


def mariadb_binlog_scan(binary: str, datadir: Path, start: Position, end: Position) -> dict[str, Any]:
    """``mariadb-binlog --verbose`` over the same stretch of the same files, to /dev/null.

    With several files, the start position applies to the first and the stop
    position to the last, as ``mariadb-binlog`` defines them.
    """
    files = [str(datadir / name) for name in _binlog_names(start, end)]
    return _timed_binary([binary, "--no-defaults", "--verbose", *_range_args(start, end), *files])


def mariadb_binlog_remote_scan(
    binary: str, port: int, user: str, start: Position, end: Position, *, decode: bool
) -> dict[str, Any]:
    """``mariadb-binlog --read-from-remote-server`` over the same segment, to /dev/null.

    It reads the binlog from the server over TCP as our readers do (127.0.0.1,
    ``port``, ``user`` without password). ``decode=False`` prints each row event as
    the server sent it (a base64 ``BINLOG`` statement: every event framed and read,
    no row decoded); ``decode=True`` adds ``--verbose``, which decodes every row of
    every table into pseudo-SQL comments as well.
    """
    argv = [
        binary,
        "--no-defaults",
        "--read-from-remote-server",
        "--protocol=TCP",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--user={user}",
        *(["--verbose"] if decode else []),
        *_range_args(start, end),
        *_binlog_names(start, end),
    ]
    result = _timed_binary(argv)
    result["source"] = "remote"
    result["decoded"] = decode
    return result


def _binlog_names(start: Position, end: Position) -> list[str]:
    """The binlog file names from ``start``'s to ``end``'s (``binlog.000002`` ...)."""
    stem, _, first = start.file.rpartition(".")
    last = end.file.rpartition(".")[2]
    return [f"{stem}.{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)]


def _range_args(start: Position, end: Position) -> list[str]:
    # With several files the start position applies to the first and the stop
    # position to the last, as mariadb-binlog defines them.
    return [f"--start-position={start.pos}", f"--stop-position={end.pos}"]


def _timed_binary(argv: list[str]) -> dict[str, Any]:
    """Run ``argv`` to /dev/null: wall seconds and the CPU seconds of that child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"elapsed_s": round(elapsed, 4), "cpu_s": round(cpu, 3)}


# -- the receiver process ---------------------------------------------------------------


def receiver_main(conn: Connection, received: Synchronized[int], latency_s: float) -> None:
    """Run a :class:`cdc.testing.receiver.Receiver` until told to stop; report (lead_id, received_at)."""
    asyncio.run(_receiver_main(conn, received, latency_s))


async def _receiver_main(conn: Connection, received: Synchronized[int], latency_s: float) -> None:
    from cdc.testing.receiver import Receiver

    receiver = Receiver(latency_s=latency_s)
    await receiver.start()
    conn.send(receiver.port)
    loop = asyncio.get_running_loop()
    command = loop.run_in_executor(None, conn.recv)
    try:
        while not command.done():
            received.value = len(receiver.requests)
            await asyncio.wait({command}, timeout=0.01)
        received.value = len(receiver.requests)
    finally:
        await receiver.stop()
    report = []
    for request in receiver.requests:
        match = _LEAD_ID.search(request.target)
        report.append((int(match.group(1)) if match else 0, request.received_at))
    conn.send(report)


# -- the streamer, end to end ------------------------------------------------------------


def delivery_config(concurrency: int, limits: EndpointLimits) -> DeliveryConfig:
    """The sender's settings for a benchmark: no rate limit, ``concurrency`` in flight.

    Always send (``mode="send"`` where the setting exists): the simulator's leads
    never carry VICIdial's own ``vicidial_url_log`` attempt. Field names are looked
    up, so the benchmark keeps working while the delivery settings evolve.
    """
    names = {f.name for f in dataclasses.fields(DeliveryConfig)}
    settings: dict[str, Any] = {"defaults": limits}
    for name in ("max_in_flight", "concurrency"):
        if name in names:
            settings[name] = max(200, concurrency)
    if "mode" in names:
        settings["mode"] = "send"
    return DeliveryConfig(**settings)


@dataclass(frozen=True, slots=True)
class E2EParams:
    port: int
    database: str
    start: Position
    url_template: str
    reader: str = "fast"
    #: Stop once the receiver has this many requests (0: wait for ``expected_value``).
    expected: int = 0
    #: Also wait until the reader has passed this position (e.g. the segment's end).
    until: Position | None = None
    concurrency: int = 100
    timeout_s: float = 900.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_e2e(
    p: E2EParams,
    received: Synchronized[int],
    expected_value: Synchronized[int] | None = None,
    ready: multiprocessing.synchronize.Event | None = None,
    window: tuple[multiprocessing.synchronize.Event, multiprocessing.synchronize.Event] | None = None,
    head: SynchronizedString | None = None,
) -> dict[str, Any]:
    """The real :class:`cdc.service.Service` (with the chosen reader) until all is delivered.

    ``window`` = (started, finished) events from the load generator: CPU is also
    measured between them, and from the start until the service has drained the load
    (``drain_*``). ``head`` is the binlog position (``file:pos``) the load ended at,
    set before ``finished``: drained means every expected lead received and the
    reader past it (a run without leads waits for the reader only). The service's own
    durable SQLite outbox is used.
    """
    from cdc import runtime

    return runtime.run(_run_e2e(p, received, expected_value, ready, window, head))


def parse_position(text: str) -> Position:
    """``file:pos`` (``str(Position)``) back to a :class:`Position`."""
    name, _, pos = text.rpartition(":")
    if not name or not pos.isdigit():
        raise ValueError(f"not a binlog position: {text!r}")
    return Position(name, int(pos))


async def _wait_event(event: multiprocessing.synchronize.Event) -> None:
    """Wait for an event set by another process, in waits short enough for cancelling.

    Each wait is a thread hop in the measured process: 4 per second rather than 20, so
    the harness adds little to the CPU a live window counts as the service's.
    """
    while not await asyncio.to_thread(event.wait, 0.25):
        pass


async def _run_e2e(
    p: E2EParams,
    received: Synchronized[int],
    expected_value: Synchronized[int] | None,
    ready: multiprocessing.synchronize.Event | None,
    window: tuple[multiprocessing.synchronize.Event, multiprocessing.synchronize.Event] | None,
    head: SynchronizedString | None,
) -> dict[str, Any]:
    from cdc.metrics import Metrics
    from cdc.service import Service

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="vicidial-cdc-bench-") as tmp:
        limits = EndpointLimits(concurrency=p.concurrency, rate_per_s=1e9, burst=1_000_000, timeout_s=60.0)
        config = Config(
            mysql=mysql_config(p.port, p.database),
            reader=ReaderConfig(
                start=str(p.start),
                match_window_s=30.0,
                decoder="library" if p.reader == "library" else "fast",
            ),
            state=StateConfig(path=str(Path(tmp) / "state.db")),
            http=HttpConfig(listen="127.0.0.1:0"),
            delivery=delivery_config(p.concurrency, limits),
            urls=UrlsConfig(system=p.url_template),
        )
        # The process prototype is not a configurable reader: the service is given it.
        service = Service(config, Metrics(), reader_factory=reader_factory(p.reader))
        stop = asyncio.Event()
        loop_name = await running_loop_name()
        before = Usage.sample(None)
        started = time.perf_counter()
        started_at = time.time()
        task = asyncio.create_task(service.run(stop))
        measured_window: tuple[Usage, Usage, float] | None = None
        ready_at = reader_until_at = checkpoint_until_at = None
        head_position: Position | None = None
        try:
            async with asyncio.timeout(p.timeout_s):
                await service.ready.wait()
                ready_at = time.time()
                if ready is not None:
                    ready.set()
                if window is not None:
                    await _wait_event(window[0])
                    u0, t0 = Usage.sample(service.reader), time.perf_counter()
                    await _wait_event(window[1])
                    u1, t1 = Usage.sample(service.reader), time.perf_counter()
                    measured_window = (u0, u1, t1 - t0)
                    if head is not None:
                        head_position = parse_position(head.value.decode("ascii"))
                while True:
                    if task.done():
                        task.result()
                        raise RuntimeError("the service stopped by itself")
                    want = p.expected or (expected_value.value if expected_value is not None else 0)
                    reader = service.reader
                    position = reader.statistics().position if reader is not None else None
                    checkpoint = service.stats.checkpoint
                    if p.until is not None and position is not None and position >= p.until:
                        reader_until_at = reader_until_at or time.time()
                    if p.until is not None and checkpoint is not None and checkpoint >= p.until:
                        checkpoint_until_at = checkpoint_until_at or time.time()
                    past = p.until is None or reader_until_at is not None
                    at_head = head_position is None or (position is not None and position >= head_position)
                    if (
                        (want > 0 or head_position is not None)
                        and received.value >= want
                        and past
                        and at_head
                    ):
                        break
                    await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            after = Usage.sample(service.reader)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(60):
                    await task
    result: dict[str, Any] = {
        "reader": p.reader,
        "event_loop": loop_name,
        "elapsed_s": round(elapsed, 3),
        **after.figures(before),
        "leads_detected": service.stats.leads,
        "deliveries": service.stats.deliveries,
        "skipped": dict(service.stats.skipped),
    }
    if measured_window is not None:
        # Both processes' CPU where the reader has its own.
        u0, u1, wall = measured_window
        cpu, reader_cpu = u1.cpu_since(u0)
        result["window_cpu_s"] = round(cpu, 3)
        if reader_cpu is not None:
            result["window_cpu_s_reader_process"] = round(reader_cpu, 3)
        result["window_wall_s"] = round(wall, 3)
        result["window_cpu_share_of_one_core"] = round(cpu / wall, 4)
        # From the load's start until the service had drained it (its tail included).
        drain_cpu, _ = after.cpu_since(u0)
        result["drain_cpu_s"] = round(drain_cpu, 3)
        result["drain_wall_s"] = round(elapsed - (t0 - started), 3)
        result["drain_lag_s"] = round(elapsed - (t1 - started), 3)
    if p.until is not None:
        # Wall times (time.time()) for runs that measure when the service got somewhere.
        result.update(
            {
                "service_started_at": started_at,
                "ready_at": ready_at,
                "reader_until_at": reader_until_at,
                "checkpoint_until_at": checkpoint_until_at,
                "checkpoint": str(service.stats.checkpoint),
            }
        )
    return result


# -- VICIdial's own model: one blocking request at a time ---------------------------------


def sequential_sender(port: int, requests: int, path: str) -> dict[str, Any]:
    """Like VICIdial's PHP: a new connection, one GET, ``Connection: close``, wait, repeat."""
    started = time.perf_counter()
    for i in range(requests):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path.format(i=i), headers={"Connection": "close"})
            conn.getresponse().read()
        finally:
            conn.close()
    elapsed = time.perf_counter() - started
    return {
        "requests": requests,
        "elapsed_s": round(elapsed, 4),
        "requests_per_s": round(requests / elapsed, 1),
    }


def child_main(conn: Connection, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    """Entry point of a measurement process: send back (True, result) or (False, traceback)."""
    try:
        result = fn(*args)
    except BaseException:
        conn.send((False, traceback.format_exc()))
        raise
    conn.send((True, result))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


Phase = Callable[..., dict[str, Any]]

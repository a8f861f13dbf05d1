"""Prototype: the fast reader in its own process, for the process-layout measurement.

:class:`ProcessBinlogReader` is a :class:`cdc.reader.Reader`, so the benchmark hands it
to the real ``Service`` as its reader factory (``--readers process``). A child process
(``spawn``) runs a :class:`cdc.reader.follower.Follower` on the raw source on its main
thread; each batch goes to the parent over a pipe with a snapshot of the reader's
statistics. In the parent a thread receives the batches and hands them to the event
loop through a :class:`cdc.reader.follower.Channel`, the in-process reader's bounded
channel. Backpressure is end to end: when the parent's channel is full its thread
stops receiving, the pipe fills, and the child blocks in ``send`` exactly where the
in-process reader blocks.

Not production code: batches travel as pickles between two processes of the same
interpreter (fine here, never on disk); the decode-error callback and the server
facts are not forwarded (the decode-error count is, in ``statistics()``); ``on_event``
is called in the parent per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any

from cdc.config import MysqlConfig
from cdc.errors import SourceError
from cdc.reader import ReaderStatistics, serverinfo
from cdc.reader.follower import Channel, Follower
from cdc.reader.raw import RawSource
from cdc.records import Position, RowChange, SourceItem

__all__ = ["ProcessBinlogReader"]

_CTX = multiprocessing.get_context("spawn")
#: Follower settings that can cross to the child (callbacks cannot).
_PORTABLE = ("batch_rows", "reconnect_initial_s", "reconnect_max_s", "flush_interval_s")


class ProcessBinlogReader:
    """A :class:`cdc.reader.Reader` whose reader loop runs in a child process."""

    def __init__(
        self,
        mysql: MysqlConfig,
        tables: Iterable[str],
        start: Position | str,
        *,
        queue_batches: int = 64,
        on_event: Callable[[str, str, int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._mysql = mysql
        self._tables = sorted(tables)
        self._start = start
        self._child_settings = {k: v for k, v in kwargs.items() if k in _PORTABLE}
        self._on_event = on_event
        self._stop = threading.Event()
        self._channel = Channel(self._stop, queue_batches=queue_batches)
        self._stats = ReaderStatistics()
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._batches: Connection | None = None
        self._control: Connection | None = None
        self._thread: threading.Thread | None = None
        self._startup_cpu_s: float | None = None

    @property
    def pid(self) -> int | None:
        """The child process's id once started (the benchmark reads its CPU and memory)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def startup_cpu_s(self) -> float | None:
        """CPU seconds the child spent starting (interpreter, imports) before it read;
        None until it reported them."""
        return self._startup_cpu_s

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("ProcessBinlogReader.start() called twice")
        self._channel.bind(asyncio.get_running_loop())
        batches, child_batches = _CTX.Pipe(duplex=False)
        child_control, control = _CTX.Pipe(duplex=False)
        self._proc = _CTX.Process(
            target=_child_main,
            args=(child_batches, child_control, self._mysql, self._tables, self._start, self._child_settings),
            name="binlog-reader",
            daemon=True,
        )
        self._proc.start()
        child_batches.close()
        child_control.close()
        self._batches, self._control = batches, control
        self._thread = threading.Thread(target=self._receive, name="binlog-receiver", daemon=True)
        self._thread.start()

    async def get_batch(self) -> list[SourceItem]:
        return await self._channel.get_batch()

    def get_batch_nowait(self) -> list[SourceItem] | None:
        return self._channel.get_batch_nowait()

    def queued(self) -> int:
        return self._channel.queued()

    def statistics(self) -> ReaderStatistics:
        return self._stats

    def request_stop(self) -> None:
        self._stop.set()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.send(("stop", ""))

    async def stop(self) -> None:
        self.request_stop()
        proc = self._proc
        if proc is not None:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- receiver thread (parent) ------------------------------------------------------

    def _receive(self) -> None:
        assert self._batches is not None
        try:
            while not self._stop.is_set():
                try:
                    kind, payload, stats = self._batches.recv()
                except EOFError:
                    if self._stop.is_set():
                        return
                    raise SourceError("the binlog reader process ended unexpectedly") from None
                if kind == "started":
                    self._startup_cpu_s = payload
                    continue
                if stats is not None:
                    self._stats = stats
                if kind == "error":
                    raise payload
                if self._on_event is not None:
                    for item in payload:
                        if isinstance(item, RowChange):
                            self._on_event(item.table, item.op.value, 1)
                if not self._channel.send(payload):
                    return
        except BaseException as exc:
            self._channel.send_error(exc)


def _child_main(
    batches: Connection,
    control: Connection,
    mysql: MysqlConfig,
    tables: list[str],
    start: Position | str,
    settings: dict[str, Any],
) -> None:
    """The child process: the raw source's reader loop, batches out through ``batches``."""
    # The start-up cost first: the parent's measurements begin after its own imports.
    batches.send(("started", time.process_time(), None))
    stop = threading.Event()
    sink = _PipeSink(batches, stop)
    follower = Follower(mysql, tables, start, RawSource(), sink, stop=stop, **settings)
    sink.stats = follower.stats

    def follow_control() -> None:
        while True:
            try:
                command, _arg = control.recv()
            except (EOFError, OSError):
                stop.set()
                return
            if command == "stop":
                stop.set()
                return

    threading.Thread(target=follow_control, name="binlog-control", daemon=True).start()
    follower.run()


class _PipeSink:
    """The child's end of the channel: batches and the fatal error go to the parent with
    a snapshot of the statistics."""

    def __init__(self, pipe: Connection, stop: threading.Event) -> None:
        self._pipe = pipe
        self._stop = stop
        self.stats = ReaderStatistics()

    def send(self, batch: list[SourceItem]) -> bool:
        if self._stop.is_set():
            return False
        try:
            self._pipe.send(("batch", batch, self._snapshot()))
        except (BrokenPipeError, OSError):
            return False
        return True

    def send_facts(self, facts: serverinfo.ServerFacts) -> None:
        """Not forwarded (see the module docstring)."""

    def send_error(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):
            self._pipe.send(("error", exc, self._snapshot()))

    def _snapshot(self) -> ReaderStatistics:
        return dataclasses.replace(self.stats, rows=dict(self.stats.rows))

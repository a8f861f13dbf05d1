"""Prototype: the fast reader in its own process, for the process-layout measurement.

:class:`ProcessBinlogReader` has the :class:`cdc.reader.library.BinlogReader` interface, so
the benchmark hands it to the real ``Service`` as its reader factory (``--readers process``).
A child process (``spawn``) runs :class:`cdc.reader.raw.FastBinlogReader`'s reader
loop on its main thread; each batch goes to the parent over a pipe with a snapshot
of the reader's statistics. In the parent a thread receives the batches and hands
them to the event loop through the inherited bounded channel. Backpressure is end to
end: when the parent's channel is full its thread stops receiving, the pipe fills,
and the child blocks in ``send`` exactly where the in-process reader blocks.

Not production code: batches travel as pickles between two processes of the same
interpreter (fine here, never on disk); the decode-error callback is not forwarded
(the count is, in ``statistics()``); ``on_event`` is called in the parent per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

from cdc.config import MysqlConfig
from cdc.errors import SourceError
from cdc.reader.library import BinlogReader, ReaderStatistics
from cdc.reader.raw import FastBinlogReader
from cdc.records import Position, RowChange, SourceItem

__all__ = ["ProcessBinlogReader"]

_CTX = multiprocessing.get_context("spawn")
#: Constructor settings that can cross to the child (callbacks cannot).
_PORTABLE = ("queue_batches", "batch_rows", "reconnect_initial_s", "reconnect_max_s", "flush_interval_s")


class ProcessBinlogReader(BinlogReader):
    """:class:`cdc.reader.library.BinlogReader` whose reader loop runs in a child process."""

    def __init__(
        self, mysql: MysqlConfig, tables: Iterable[str], start: Position | str, **kwargs: Any
    ) -> None:
        super().__init__(mysql, tables, start, **kwargs)
        self._child_settings = {k: v for k, v in kwargs.items() if k in _PORTABLE}
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._batches: Connection | None = None
        self._control: Connection | None = None

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("ProcessBinlogReader.start() called twice")
        self._loop = asyncio.get_running_loop()
        batches, child_batches = _CTX.Pipe(duplex=False)
        child_control, control = _CTX.Pipe(duplex=False)
        self._proc = _CTX.Process(
            target=_child_main,
            args=(
                child_batches,
                child_control,
                self._mysql,
                sorted(self._tables),
                self._start,
                self._child_settings,
            ),
            name="binlog-reader",
            daemon=True,
        )
        self._proc.start()
        child_batches.close()
        child_control.close()
        self._batches, self._control = batches, control
        self._thread = threading.Thread(target=self._receive, name="binlog-receiver", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        super().request_stop()
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
        await super().stop()

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
                if stats is not None:
                    self._stats = stats
                if kind == "error":
                    raise payload
                if self._on_event is not None:
                    for item in payload:
                        if isinstance(item, RowChange):
                            self._on_event(item.table, item.op.value, 1)
                if not self._send(payload):
                    return
        except BaseException as exc:
            self._send_error(exc)


def _child_main(
    batches: Connection,
    control: Connection,
    mysql: MysqlConfig,
    tables: list[str],
    start: Position | str,
    settings: dict[str, Any],
) -> None:
    """The child process: the fast reader's loop, batches out through ``batches``."""
    reader = _ChildReader(batches, mysql, tables, start, **settings)

    def follow_control() -> None:
        while True:
            try:
                command, _arg = control.recv()
            except (EOFError, OSError):
                reader.request_stop()
                return
            if command == "stop":
                reader.request_stop()
                return

    threading.Thread(target=follow_control, name="binlog-control", daemon=True).start()
    reader._run()


class _ChildReader(FastBinlogReader):
    """The fast reader with the channel replaced by the pipe to the parent."""

    def __init__(self, batches: Connection, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pipe = batches

    def _send(self, batch: list[SourceItem]) -> bool:
        if self._stop.is_set():
            return False
        try:
            self._pipe.send(("batch", batch, self._snapshot()))
        except (BrokenPipeError, OSError):
            return False
        return True

    def _send_error(self, exc: BaseException) -> None:
        with contextlib.suppress(Exception):
            self._pipe.send(("error", exc, self._snapshot()))

    def _snapshot(self) -> ReaderStatistics:
        stats = self._stats
        copy = ReaderStatistics(**{name: getattr(stats, name) for name in stats.__dataclass_fields__})
        copy.rows = dict(stats.rows)
        return copy

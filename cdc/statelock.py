"""One streamer per state file: an OS lock held for the life of the service.

Two streamers on one state file would both read the binlog and both send every lead
(their outbox rows and checkpoints interleave). ``run`` takes an exclusive
``flock`` on ``<state>.lock`` before it opens the store and keeps it until the process
ends (the kernel drops it when the process dies, even after ``kill -9``); a second
``run`` is refused with the holder's pid, host and start time, which the holder writes
into the file. Operator commands (``status``, ``dlq``, ``replay``) do not take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from .errors import StateLockedError


def lock_path(state_path: str) -> Path:
    return Path(f"{state_path}.lock")


class StateLock:
    """``with StateLock(path):`` holds the state file's lock, or raises :class:`StateLockedError`."""

    def __init__(self, state_path: str) -> None:
        self._path = lock_path(state_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLockedError(
                f"another vicidial-cdc is running on the state file {self._path.with_suffix('')} "
                f"({holder}): two streamers on one state would send every lead twice. Stop the other "
                "one (systemctl status vicidial-cdc; docker ps) or give this one its own state.path"
            ) from None
        os.ftruncate(fd, 0)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": int(time.time())}
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def held_by(state_path: str) -> str | None:
    """Who holds the state file's lock now (``None``: nobody), without keeping it."""
    path = lock_path(state_path)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it (best effort)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not isinstance(data, dict) or "pid" not in data:
        return "holder unknown"
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(data.get("started_at", 0))))
    return f"pid {data['pid']} on host {data.get('host', '?')}, started {started}"

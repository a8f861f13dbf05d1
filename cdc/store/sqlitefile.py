"""One connection to the SQLite state file: private, migrated, one thread at a time, timed.

:class:`SqliteFile` is what every SQLite statement of :class:`~cdc.store.sqlite.SqliteStore`
goes through. It opens (creating if missing) the file with mode 0600 in WAL mode and
migrates it (:mod:`cdc.store.migrations`); lends the connection to one caller at a time
(:meth:`SqliteFile.use`), a call that overlaps another raising :class:`RuntimeError`
instead of corrupting the connection's state; runs write transactions
(:meth:`SqliteFile.write`) that take the write lock up front, wait out another
process's lock up to ``busy_limit_s`` and record how long they held it; and translates
every ``sqlite3`` error into a :class:`~cdc.errors.StoreError` that says what to do.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, Literal, TypeVar

from ..errors import StoreError
from .interfaces import OPERATOR_BATCH_ROWS
from .migrations import migrate
from .records import LockWait, StoreStatistics

__all__ = ["SqliteFile", "store_error"]

log = logging.getLogger(__name__)

# Primary SQLite result codes (https://sqlite.org/rescode.html).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_CONSTRAINT, _SQLITE_NOTADB = 19, 26

_MIN_SQLITE: Final = (3, 24, 0)  # INSERT ... ON CONFLICT DO NOTHING

#: Between busy slices (SQLite's busy handler has already waited busy_timeout_s).
_BUSY_BACKOFF_S, _BUSY_BACKOFF_MAX_S = 0.01, 0.5
#: The least an operator batch waits for the previous one (see SqliteFile.batches).
_OPERATOR_PAUSE_MIN_S: Final = 0.01

_Item = TypeVar("_Item")


class _Lifecycle(enum.Enum):
    UNOPENED = enum.auto()  # constructed; open() not called yet
    OPENED = enum.auto()  # connection usable
    CLOSED = enum.auto()  # closed for good; a store is not reopened


class SqliteFile:
    """The state file's connection, lent to one caller at a time (see the module docstring).

    Args:
        path: the state file; may instead be given to :meth:`open`.
        synchronous: ``"NORMAL"`` or ``"FULL"`` (fsync every commit).
        busy_timeout_s: how long one try at a statement waits for another process's
            lock (SQLite's busy handler, polling with growing sleeps up to 100 ms).
        busy_limit_s: how long a write keeps trying, one ``busy_timeout_s`` slice after
            another (logged as ``store.busy`` after each), before it fails with
            :class:`StoreError`. 0: fail after the first slice.
        on_lock_wait: called (on the caller's thread) with each write's :class:`LockWait`:
            once per busy slice, and once when the lock is held.
    """

    __slots__ = (
        "_busy_limit_s",
        "_busy_timeout_s",
        "_busy_waits",
        "_conn",
        "_last_write_s",
        "_lock",
        "_longest_lock_wait_s",
        "_longest_write_s",
        "_on_lock_wait",
        "_path",
        "_state",
        "_synchronous",
        "_waiting_since",
        "_writes",
    )

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 5.0,
        busy_limit_s: float = 0.0,
        on_lock_wait: Callable[[LockWait], None] | None = None,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            msg = f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}"
            raise ValueError(msg)
        if busy_timeout_s < 0 or busy_limit_s < 0:
            msg = f"busy_timeout_s and busy_limit_s must be >= 0, not {busy_timeout_s!r}, {busy_limit_s!r}"
            raise ValueError(msg)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._busy_limit_s = busy_limit_s
        self._on_lock_wait = on_lock_wait
        self._conn: sqlite3.Connection | None = None
        self._path = None if path is None else Path(path)
        self._state = _Lifecycle.UNOPENED
        self._lock = threading.Lock()
        self._writes = self._busy_waits = 0
        self._last_write_s = self._longest_write_s = self._longest_lock_wait_s = 0.0
        self._waiting_since: float | None = None  # set by _begin between busy slices

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def busy_timeout_s(self) -> float:
        return self._busy_timeout_s

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            writes=self._writes,
            longest_write_s=self._longest_write_s,
            busy_waits=self._busy_waits,
            longest_lock_wait_s=self._longest_lock_wait_s,
            waiting_s=0.0 if (since := self._waiting_since) is None else time.monotonic() - since,
        )

    # -- lifecycle --------------------------------------------------------------------

    def open(self, path: str | os.PathLike[str] | None = None) -> None:
        """Open (creating if missing) the state file and bring its schema up to date.

        ``path`` is needed here unless it was given to the constructor. A missing parent
        directory is created with mode 0700; the file and its ``-wal`` and ``-shm``
        companions end up with mode 0600.
        """
        if self._state is not _Lifecycle.UNOPENED:
            msg = f"SqliteStore cannot be opened when {self._state.name.lower()}"
            raise RuntimeError(msg)
        if path is not None:
            if self._path is not None and Path(path) != self._path:
                msg = f"path {path!s} differs from the constructor's {self._path!s}"
                raise ValueError(msg)
            self._path = Path(path)
        if self._path is None:
            msg = "path: SqliteStore needs a state file path (constructor or open())"
            raise ValueError(msg)
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            msg = f"SQLite {sqlite3.sqlite_version} is too old; vicidial-cdc needs >= 3.24"
            raise StoreError(msg)
        db_path = self._path
        try:
            _create_private_file(db_path)
        except OSError as exc:
            msg = (
                f"cannot create the state file {db_path}: {exc.strerror}; check that"
                " state.path is on a writable filesystem owned by the service user"
            )
            raise StoreError(msg) from exc
        try:
            conn = sqlite3.connect(
                db_path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # one thread at a time, guaranteed by the caller
            )
        except sqlite3.Error as exc:
            raise store_error(exc, "open the state file", db_path) from exc
        try:
            _prepare(conn, db_path, self._synchronous, functools.partial(self._begin, conn, "open"))
            _restrict_mode(db_path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._state = _Lifecycle.OPENED

    def close(self) -> None:
        """Close the connection. Closing twice, or before opening, is harmless."""
        conn, self._conn, self._state = self._conn, None, _Lifecycle.CLOSED
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise store_error(exc, "close the state file", self._path) from exc

    # -- use ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def use(self, action: str) -> Iterator[sqlite3.Connection]:
        """The open connection, held by one caller, with sqlite3 errors translated."""
        conn = self._conn
        if conn is None:
            msg = f"SqliteStore is {self._state.name.lower()}; cannot {action}"
            raise RuntimeError(msg)
        if not self._lock.acquire(blocking=False):
            msg = "SqliteStore called from two threads at once; use one single-thread executor"
            raise RuntimeError(msg)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise store_error(exc, action, self._path) from exc
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on the held connection, timed from the lock to the commit."""
        with self.use(action) as conn:
            with _transaction(conn, functools.partial(self._begin, conn, action)):
                held_from = time.monotonic()
                yield conn
            held_s = time.monotonic() - held_from
            self._writes += 1
            self._last_write_s = held_s
            self._longest_write_s = max(self._longest_write_s, held_s)

    def batches(self, items: Sequence[_Item]) -> Iterator[Sequence[_Item]]:
        """``items`` in slices of :data:`OPERATOR_BATCH_ROWS`; before each slice but the
        first, wait as long as the last write held the lock (at least 10 ms): the other
        writers' busy handlers poll every 100 ms at most, so they get the lock in a few polls."""
        for start in range(0, len(items), OPERATOR_BATCH_ROWS):
            if start:
                time.sleep(max(_OPERATOR_PAUSE_MIN_S, self._last_write_s))
            yield items[start : start + OPERATOR_BATCH_ROWS]

    # -- the write lock ---------------------------------------------------------------------

    def _begin(self, conn: sqlite3.Connection, action: str) -> None:
        """``BEGIN IMMEDIATE``, waiting out another process's write lock up to ``busy_limit_s``.

        Another writer (an operator command, a second streamer, an ``sqlite3`` shell) is
        transient until the bound: each ``busy_timeout_s`` slice that ends busy is
        reported and logged, and the write tries again; past the bound it fails loudly.
        Nothing is written before the lock is held, so trying again is always safe.
        """
        started = time.monotonic()
        slices = 0
        try:
            while (busy := _try_begin(conn)) is not None:
                slices += 1
                self._busy_waits += 1
                self._waiting_since = started
                waited_s = time.monotonic() - started
                self._report(LockWait(action, waited_s, acquired=False))
                if waited_s >= self._busy_limit_s:
                    what = f"{action} after waiting {waited_s:.1f} s for the write lock (state.busy_limit_s)"
                    raise store_error(busy, what, self._path) from busy
                log.warning(
                    "store.busy action=%s waited_s=%.1f limit_s=%.0f path=%s: another process holds"
                    " the state file's write lock (an operator command, a second streamer, an"
                    " sqlite3 shell?); waiting",
                    action,
                    waited_s,
                    self._busy_limit_s,
                    self._path,
                )
                time.sleep(min(_BUSY_BACKOFF_MAX_S, _BUSY_BACKOFF_S * 2**slices))
        finally:
            self._waiting_since = None
        waited_s = time.monotonic() - started
        self._longest_lock_wait_s = max(self._longest_lock_wait_s, waited_s)
        if slices:
            log.warning("store.busy_over action=%s waited_s=%.1f", action, waited_s)
        self._report(LockWait(action, waited_s, acquired=True))

    def _report(self, wait: LockWait) -> None:
        if self._on_lock_wait is not None:
            self._on_lock_wait(wait)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: Callable[[], None]) -> Iterator[None]:
    """A write transaction: ``begin`` takes the write lock up front; commits or rolls back."""
    begin()
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            # The original error matters; a failed rollback (SQLite may already have
            # rolled back after an I/O error) must not replace it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _create_private_file(path: Path) -> None:
    """Create the state file with mode 0600 if it does not exist; never touch one that does.

    POSIX advisory locks belong to the process: closing *any* descriptor of the file
    drops every lock this process holds on it, SQLite's included. Opening and closing an
    existing state file while another connection of this process (the service's second
    store, an in-process ``check``) has it open would let another process's connection
    believe it is the last one, checkpoint and delete the WAL under ours, which then
    reads a stale snapshot for good. Only a file this call creates (``O_EXCL``) is closed.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return  # created meanwhile by someone else: theirs, not ours to close
    os.close(fd)


def _restrict_mode(path: Path) -> None:
    """Make the database and its WAL files 0600 (they hold URLs, which may hold secrets)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if name.stat().st_mode & 0o777 != 0o600:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            msg = f"cannot make {name} private (mode 0600): {exc.strerror}; chmod 600 it"
            raise StoreError(msg) from exc


def _prepare(conn: sqlite3.Connection, path: Path, synchronous: str, begin: Callable[[], None]) -> None:
    """Set the connection's pragmas and migrate the schema (:mod:`cdc.store.migrations`)."""
    try:
        (journal_mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(journal_mode).lower() != "wal":
            msg = (
                f"SQLite refused WAL mode for {path} (got {journal_mode!r});"
                " put state.path on a local filesystem"
            )
            raise StoreError(msg)
        conn.execute(f"PRAGMA synchronous = {synchronous}")  # validated in __init__
        conn.execute("PRAGMA trusted_schema = OFF")
        # What an UPDATE or DELETE removes (a delivered row's URL and body, pruned and
        # purged rows) is overwritten with zeros, not left in free space.
        conn.execute("PRAGMA secure_delete = ON")
        with _transaction(conn, begin):
            migrate(conn, path)
    except sqlite3.Error as exc:
        raise store_error(exc, "open the state file", path) from exc


def _try_begin(conn: sqlite3.Connection) -> sqlite3.OperationalError | None:
    """``BEGIN IMMEDIATE``; the error when the lock stayed taken for a whole busy timeout."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _primary_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return exc
        raise
    return None


def _primary_code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of ``exc`` (-1 when it carries none)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return -1 if code is None else int(code) & 0xFF


def store_error(exc: sqlite3.Error, action: str, path: Path | None) -> StoreError:
    """Translate a sqlite3 error into a :class:`StoreError` that says what to do."""
    primary = _primary_code(exc)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        hint = (
            "the file is locked by another process (a second streamer, a CLI command or an"
            " sqlite3 shell using the same state.path?); `fuser -v` on the file names it: stop"
            " it, or give each streamer its own file"
        )
    elif primary == _SQLITE_FULL:
        hint = "the disk is full; free space on its filesystem (nothing was committed)"
    elif primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        hint = (
            "the file is not a vicidial-cdc state database or is corrupt; stop the"
            " service, move the file aside (keep it: `sqlite3 FILE .recover` may save"
            " pending deliveries) and restart, which resumes from reader.start"
        )
    elif primary in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN):
        hint = (
            "the file or its directory is not writable; check ownership, mode and"
            " that the filesystem is mounted read-write"
        )
    elif primary == _SQLITE_IOERR:
        hint = "the disk reported an I/O error; check it and the kernel log, then restart"
    elif primary == _SQLITE_CONSTRAINT:
        hint = "a record does not fit the schema; this is a bug, please report it"
    else:
        hint = "restart the service; report it if it happens again"
    return StoreError(f"cannot {action} ({path}): {name}: {exc}; {hint}")

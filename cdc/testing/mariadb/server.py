"""A private ``mariadbd`` with the binlog on, standing in for a VICIdial server.

Used by the test fixtures, the ``demo`` command and the benchmarks. Each instance owns
a base directory (datadir, ``my.cnf``, socket, pid file, error log), listens on a free
TCP port of 127.0.0.1 and never touches the machine's own MariaDB::

    ensure_installed(allow_install=False)
    with PrivateMariaDB(charset="latin1") as server:   # starts; stops and cleans on exit
        conn = server.connect()
        ...

Lifecycle: ``start()`` (initialises the datadir the first time), ``stop()`` (clean
SHUTDOWN, bounded, then SIGKILL), ``kill()`` (SIGKILL, to simulate a crash),
``restart()`` (same datadir, same port), ``close()`` (stop and remove the base
directory if the instance created it). Root has an empty password.

TLS: ``PrivateMariaDB(tls=make_tls_files(directory))`` (see ``tls.py``) serves TLS;
``require_tls=True`` refuses plaintext clients.

One cohesive thing: one server process, the option file it starts from (built from
the instance's own paths, port and settings), its lifecycle, and connections to it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import pymysql

from .install import LOG_TAIL_LINES, MariaDBError, ensure_installed, find_binaries, initialise_datadir
from .tls import TlsFiles

__all__ = ["Charset", "OptionValue", "PrivateMariaDB", "RowMetadata"]

Charset = Literal["utf8mb4", "latin1"]
RowMetadata = Literal["FULL", "MINIMAL", "NO_LOG"]
#: A ``my.cnf`` value; ``None`` writes a bare flag such as ``skip-name-resolve``.
OptionValue = str | int | None

_COLLATIONS: dict[str, str] = {"utf8mb4": "utf8mb4_general_ci", "latin1": "latin1_swedish_ci"}
_LOCALHOST = "127.0.0.1"
# Unix socket paths longer than this do not fit ``sockaddr_un.sun_path``.
_MAX_SOCKET_PATH = 100

_running: weakref.WeakSet[PrivateMariaDB] = weakref.WeakSet()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _option_key(name: str) -> str:
    return name.strip().replace("-", "_").lower()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.kill()


class PrivateMariaDB:
    """One private ``mariadbd`` process with its own datadir, port and socket."""

    ensure_installed = staticmethod(ensure_installed)

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        charset: Charset = "utf8mb4",
        row_metadata: RowMetadata = "FULL",
        server_id: int = 1,
        options: Mapping[str, OptionValue] | None = None,
        max_binlog_size: int | None = None,
        port: int | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        tls: TlsFiles | None = None,
        require_tls: bool = False,
    ) -> None:
        if charset not in _COLLATIONS:
            raise ValueError(f"charset must be one of {sorted(_COLLATIONS)}, got {charset!r}")
        if row_metadata not in ("FULL", "MINIMAL", "NO_LOG"):
            raise ValueError(f"row_metadata must be FULL, MINIMAL or NO_LOG, got {row_metadata!r}")
        self._owns_dir = base_dir is None
        if base_dir is None:
            base_dir = tempfile.mkdtemp(prefix="vicidial-cdc-mariadb-")
        self._base = Path(base_dir).resolve()
        self._base.mkdir(parents=True, exist_ok=True)
        self.charset: Charset = charset
        self.row_metadata: RowMetadata = row_metadata
        self.server_id = server_id
        self.max_binlog_size = max_binlog_size
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        if require_tls and tls is None:
            raise ValueError("require_tls needs tls files")
        #: Server certificate, key and CA (``None``: no TLS); root's connections verify the CA.
        self.tls = tls
        self.require_tls = require_tls
        self._extra: dict[str, tuple[str, OptionValue]] = {
            _option_key(k): (k, v) for k, v in (options or {}).items()
        }
        self._socket_dir: Path | None = None
        #: A fixed port (another server taking over a stopped one's address), else chosen at start.
        self._port: int | None = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    # -- paths and properties ---------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self._base

    @property
    def datadir(self) -> Path:
        return self._base / "data"

    @property
    def error_log(self) -> Path:
        return self._base / "error.log"

    @property
    def config_file(self) -> Path:
        return self._base / "my.cnf"

    @property
    def host(self) -> str:
        return _LOCALHOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has no port yet: call start() first")
        return self._port

    @property
    def socket(self) -> str:
        path = self._base / "mysqld.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return str(path)
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="vcdc-sock-"))
        return str(self._socket_dir / "mysqld.sock")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<PrivateMariaDB {state} port={self._port} charset={self.charset} dir={self._base}>"

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Initialise the datadir (first time only), start ``mariadbd`` and wait for it."""
        if self._closed:
            raise RuntimeError("this PrivateMariaDB was closed; create a new one")
        if self.is_running():
            raise RuntimeError("the server is already running")
        binaries = find_binaries()
        if binaries is None:
            raise MariaDBError("mariadbd not found: call ensure_installed() first")
        server_bin, installer = binaries
        initialise_datadir(installer, self.datadir, self._base / "tmp")
        fixed_port = self._port is not None
        for _ in range(1 if fixed_port else 3):
            if not fixed_port:
                self._port = _free_port()
            if self._launch(server_bin):
                return
        raise MariaDBError(f"mariadbd could not bind a TCP port on {_LOCALHOST}:\n{self._log_tail(0)}")

    def stop(self) -> None:
        """SHUTDOWN, wait (bounded by ``stop_timeout_s``), then SIGKILL if still alive."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                conn = self.connect(connect_timeout_s=2.0)
            except pymysql.MySQLError:
                proc.send_signal(signal.SIGTERM)
            else:
                try:
                    with conn.cursor() as cur:
                        cur.execute("SHUTDOWN")
                except pymysql.MySQLError:
                    proc.send_signal(signal.SIGTERM)
                finally:
                    with contextlib.suppress(pymysql.MySQLError, OSError):
                        conn.close()
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the server (a crash): the next ``start()`` runs crash recovery."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._forget_process()

    def restart(self) -> None:
        """Stop cleanly and start again with the same datadir and port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove the base directory if this instance created it."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        if self._owns_dir:
            shutil.rmtree(self._base, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        if not self.is_running():
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- client -----------------------------------------------------------------------

    def connect(
        self,
        db: str | None = None,
        user: str = "root",
        password: str = "",
        autocommit: bool = True,
        *,
        charset: str = "utf8mb4",
        connect_timeout_s: float = 10.0,
    ) -> pymysql.Connection:
        """A new PyMySQL connection over TCP (TLS, CA verified, when the server has it)."""
        tls: dict[str, Any] = {"ssl_disabled": True}
        if self.tls is not None:
            tls = {"ssl_ca": str(self.tls.ca), "ssl_verify_cert": True}
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=password,
            database=db,
            autocommit=autocommit,
            charset=charset,
            connect_timeout=connect_timeout_s,
            **tls,
        )

    def binlog_files(self) -> list[str]:
        """Names of the binlog files the server still has, oldest first."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW BINARY LOGS")
                return [str(row[0]) for row in cur.fetchall()]
        finally:
            conn.close()

    def flush_binary_logs(self) -> str:
        """Rotate to a new binlog file and return its name."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("FLUSH BINARY LOGS")
                cur.execute("SHOW MASTER STATUS")
                row = cur.fetchone()
                return str(row[0])
        finally:
            conn.close()

    # -- internals --------------------------------------------------------------------

    def _options(self) -> dict[str, tuple[str, OptionValue]]:
        defaults: list[tuple[str, OptionValue]] = [
            ("datadir", str(self.datadir)),
            ("bind-address", _LOCALHOST),
            ("port", self.port),
            ("socket", self.socket),
            ("pid-file", str(self._base / "mysqld.pid")),
            ("log-error", str(self.error_log)),
            ("tmpdir", str(self._base / "tmp")),
            ("log-bin", str(self.datadir / "binlog")),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", self.row_metadata),
            ("server-id", self.server_id),
            ("sql_mode", '""'),
            ("character-set-server", self.charset),
            ("collation-server", _COLLATIONS[self.charset]),
            ("skip-name-resolve", None),
            ("skip-external-locking", None),
            ("performance_schema", "OFF"),
            ("innodb_buffer_pool_size", "16M"),
            ("innodb_log_file_size", "8M"),
            ("innodb_log_buffer_size", "2M"),
            ("innodb_buffer_pool_dump_at_shutdown", "OFF"),
            ("innodb_buffer_pool_load_at_startup", "OFF"),
            ("innodb_flush_log_at_trx_commit", 2),
            ("key_buffer_size", "8M"),
            ("aria_pagecache_buffer_size", "8M"),
            ("max_connections", 500),
            ("table_open_cache", 400),
            ("max_allowed_packet", "64M"),
            ("local-infile", 0),
        ]
        if self.max_binlog_size is not None:
            defaults.append(("max_binlog_size", self.max_binlog_size))
        if self.tls is not None:
            defaults.append(("ssl_ca", str(self.tls.ca)))
            defaults.append(("ssl_cert", str(self.tls.server_cert)))
            defaults.append(("ssl_key", str(self.tls.server_key)))
        if self.require_tls:
            defaults.append(("require_secure_transport", "ON"))
        if os.geteuid() == 0:
            defaults.append(("user", "root"))
        merged = {_option_key(name): (name, value) for name, value in defaults}
        merged.update(self._extra)
        return merged

    def _write_config(self) -> None:
        lines = ["# written by cdc.testing.mariadb.PrivateMariaDB", "[mariadbd]"]
        for name, value in self._options().values():
            lines.append(name if value is None else f"{name}={value}")
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _launch(self, server_bin: str) -> bool:
        """Start the process and wait; False when the port was taken (caller retries)."""
        (self._base / "tmp").mkdir(exist_ok=True)
        self._write_config()
        log_offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        proc = subprocess.Popen(
            [server_bin, f"--defaults-file={self.config_file}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._proc = proc
        _running.add(self)
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if proc.poll() is not None:
                tail = self._log_tail(log_offset)
                self._forget_process()
                if "Bind on TCP/IP port" in tail or "Address already in use" in tail:
                    return False
                raise MariaDBError(f"mariadbd exited with {proc.returncode} at start:\n{tail}")
            if self._accepts_connection():
                return True
            if time.monotonic() > deadline:
                self.kill()
                raise MariaDBError(
                    f"mariadbd did not accept connections within {self.start_timeout_s:g} s:\n"
                    f"{self._log_tail(log_offset)}"
                )
            time.sleep(0.05)

    def _accepts_connection(self) -> bool:
        try:
            conn = self.connect(connect_timeout_s=1.0)
        except pymysql.MySQLError:
            return False
        conn.close()
        return True

    def _forget_process(self) -> None:
        self._proc = None
        _running.discard(self)

    def _log_tail(self, offset: int) -> str:
        try:
            with self.error_log.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return f"(no error log at {self.error_log})"
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])

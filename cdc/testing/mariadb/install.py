"""Get MariaDB onto the machine and a fresh datadir: what a private server needs before it starts.

Finds ``mariadbd`` and ``mariadb-install-db`` (PATH, then the sbin directories a
package puts them in), installs Debian's ``mariadb-server`` when allowed, and runs
``mariadb-install-db`` into a new datadir. The packaged service is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ...errors import CdcError

__all__ = [
    "LOG_TAIL_LINES",
    "MariaDBError",
    "ensure_installed",
    "find_binaries",
    "find_binary",
    "initialise_datadir",
]

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")
#: How many lines of a failed command's output (or of the error log) an error quotes.
LOG_TAIL_LINES = 25


class MariaDBError(CdcError):
    """The private MariaDB could not be installed, started or stopped."""


def find_binary(name: str) -> str | None:
    """``name`` on PATH or in the sbin/bin directories a non-root PATH often lacks; ``None`` if absent."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_binaries() -> tuple[str, str] | None:
    """``(mariadbd, mariadb-install-db)`` paths (or their ``mysql`` names), ``None`` if either is missing."""
    server = find_binary("mariadbd") or find_binary("mysqld")
    installer = find_binary("mariadb-install-db") or find_binary("mysql_install_db")
    if server is None or installer is None:
        return None
    return server, installer


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def ensure_installed(allow_install: bool) -> None:
    """Make sure ``mariadbd`` and ``mariadb-install-db`` exist.

    When they are missing and ``allow_install`` is true, runs ``apt-get update`` and
    ``apt-get install -y mariadb-server`` (non-interactive, needs root) and does nothing
    else: the packaged service is neither stopped nor disabled, and never used.
    """
    if find_binaries() is not None:
        return
    if not allow_install:
        raise MariaDBError(
            "mariadbd or mariadb-install-db not found (looked in PATH and /usr/sbin): "
            "install the mariadb-server package, or allow the install"
        )
    if shutil.which("apt-get") is None:
        raise MariaDBError("mariadbd is missing and apt-get is not available: install MariaDB")
    if os.geteuid() != 0:
        raise MariaDBError("mariadbd is missing and installing it needs root: run as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "mariadb-server"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise MariaDBError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{_tail(done.stdout + done.stderr)}"
            )
    if find_binaries() is None:
        raise MariaDBError("mariadb-server was installed but mariadbd is still not found")


def initialise_datadir(installer: str, datadir: Path, tmpdir: Path) -> None:
    """Run ``mariadb-install-db`` into ``datadir`` unless it already holds a server's tables."""
    if (datadir / "mysql").is_dir():
        return
    tmpdir.mkdir(exist_ok=True)
    argv = [
        installer,
        "--no-defaults",
        f"--datadir={datadir}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--skip-name-resolve",
        # Passed on to the bootstrap mariadbd: its temporary tables stay out of a shared
        # /tmp, where another process's clean-up made the install fail now and then.
        f"--tmpdir={tmpdir}",
    ]
    if os.geteuid() == 0:
        argv.append("--user=root")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)
        raise MariaDBError(
            f"mariadb-install-db failed ({done.returncode}):\n{_tail(done.stdout + done.stderr)}"
        )

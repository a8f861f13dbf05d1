"""The operator CLI from a test: a config file for it, and ``cli.main`` run beside the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cdc import cli
from cdc.testing.mariadb import PrivateMariaDB


def write_config(
    path: Path,
    server: PrivateMariaDB | None,
    database: str,
    state: Path,
    *,
    listen: str = "127.0.0.1:0",
    port: int | None = None,
) -> Path:
    """A TOML config for the CLI (root without password, as the private server has)."""
    host = server.host if server is not None else "127.0.0.1"
    port = port if port is not None else (server.port if server is not None else 9)
    path.write_text(
        "[mysql]\n"
        f'host = "{host}"\nport = {port}\nuser = "root"\ndatabase = "{database}"\nsource = "test"\n'
        "connect_timeout_s = 3.0\n"
        f'[state]\npath = "{state}"\n'
        f'[http]\nlisten = "{listen}"\n'
        '[delivery]\nmode = "send"\n',  # the simulator is a 1728 build that does not send itself
        encoding="utf-8",
    )
    return path


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``cli.main(argv)`` in a worker thread (it blocks); (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err

"""Where the checkout is, and a free loopback port."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

#: The repository checkout the tests run from.
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

"""A local HTTP receiver that records every request: used by ``demo``, tests and benchmarks.

It answers each request after ``latency_s`` with the next status from ``statuses``
(then 200), and records the raw request target (path and query, as sent on the
wire), method, headers and body, so tests can compare bytes with what VICIdial sends.
It binds to loopback only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web

from ..server import bound_port


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    target: str  # raw path + query exactly as received
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at: float  # time.time()

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


@dataclass(slots=True)
class Receiver:
    """Start with ``await r.start()``; ``r.url`` is its base URL; ``await r.stop()``."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_s: float = 0.0
    statuses: deque[int] = field(default_factory=deque)
    retry_after: str | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def respond_with(self, statuses: Iterable[int], retry_after: str | None = None) -> None:
        """Answer the next requests with these statuses (then 200 again)."""
        self.statuses.extend(statuses)
        self.retry_after = retry_after

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("receiver already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = bound_port(self._runner, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                target=request.raw_path,
                headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
                body=body,
                received_at=time.time(),
            )
        )
        self._arrived.set()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        status = self.statuses.popleft() if self.statuses else 200
        headers = {"Retry-After": self.retry_after} if status in (429, 503) and self.retry_after else {}
        return web.Response(status=status, text="OK\n" if status < 400 else "ERR\n", headers=headers)

    async def wait_for(self, count: int, timeout_s: float) -> list[ReceivedRequest]:
        """Wait (bounded) until at least ``count`` requests arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests

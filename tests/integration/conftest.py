"""The pipeline harness: a real Service on a private MariaDB, a real receiver on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cdc.config import Config, DeliveryConfig, HttpConfig, MysqlConfig, ReaderConfig, StateConfig
from cdc.metrics import Metrics
from cdc.service import ReaderFactory, Service
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver


@dataclasses.dataclass
class Running:
    """A service running in the test's loop; ``await stop()`` drains it."""

    service: Service
    config: Config
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        self.stop_event.set()
        async with asyncio.timeout(60):
            await self.task


StartPipeline = Callable[..., Awaitable[Running]]


def make_config(server: PrivateMariaDB, database: str, state_path: Path, **reader: Any) -> Config:
    reader.setdefault("match_window_s", 5.0)
    reader.setdefault("custom_wait_s", 3.0)
    return Config(
        mysql=MysqlConfig(
            host=server.host,
            port=server.port,
            user="root",
            database=database,
            source="test",
            read_timeout_s=10.0,
            heartbeat_s=1.0,
        ),
        reader=ReaderConfig(reconnect_initial_s=0.2, reconnect_max_s=1.0, **reader),
        state=StateConfig(path=str(state_path)),
        http=HttpConfig(listen="127.0.0.1:0"),
        # The simulated VICIdial is a 1728 build whose PHP does not send: we always do.
        delivery=DeliveryConfig(mode="send"),
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
def reader_factory() -> ReaderFactory | None:
    """The reader ``start_pipeline`` services build: ``None``, the one ``reader.decoder``
    names (a test class overrides this fixture to run its scenarios with another)."""
    return None


@pytest.fixture
async def start_pipeline(
    tmp_path: Path, reader_factory: ReaderFactory | None
) -> AsyncIterator[StartPipeline]:
    """``await start_pipeline(server, database, state=..., **reader_settings)``."""
    running: list[Running] = []

    async def start(
        server: PrivateMariaDB,
        database: str,
        *,
        state: Path | None = None,
        config: Config | None = None,
        **reader: Any,
    ) -> Running:
        cfg = config or make_config(server, database, state or tmp_path / "state.db", **reader)
        service = Service(cfg, Metrics(), reader_factory=reader_factory)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        ready = asyncio.create_task(service.ready.wait())
        await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            if task.done():
                task.result()
            raise AssertionError("service did not become ready within 30 s")
        run = Running(service, cfg, task, stop)
        running.append(run)
        return run

    yield start
    for run in running:
        if not run.task.done():
            with contextlib.suppress(Exception):
                await run.stop()

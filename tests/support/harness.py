"""The pipeline harness: a real Service on a private MariaDB, a real receiver on loopback.

- :func:`make_config` is the harness's config (fast timers, loopback HTTP, ``send`` mode);
  :func:`fast_config` adds short retry and breaker timers; :func:`configure` adds the
  ``[endpoints]``/``[fanout]`` of a TOML text, loaded as a deployment would.
- :class:`Running` is one service running in the test's loop.
- :class:`Pipeline` (the ``pipeline`` fixture) bundles the session server, a fresh
  VICIdial database, its simulator, a receiver, and ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from cdc.config import (
    Config,
    DeliveryConfig,
    EndpointLimits,
    HttpConfig,
    MysqlConfig,
    ReaderConfig,
    RetryPolicy,
    StateConfig,
    load,
)
from cdc.metrics import Metrics
from cdc.reader import ReaderFactory
from cdc.service import Service
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial
from support import fence as fencing

#: Delivery settings with short retry and breaker timers, for tests that watch them act.
FAST_DELIVERY = DeliveryConfig(
    mode="send",
    retry=RetryPolicy(base_s=0.2, factor=2.0, cap_s=1.0, max_attempts=6),
    breaker_failures=3,
    breaker_cooldown_s=0.5,
    breaker_max_cooldown_s=1.0,
    defaults=EndpointLimits(timeout_s=1.0, connect_timeout_s=0.5),
    shutdown_grace_s=10.0,
)


def make_config(server: PrivateMariaDB, database: str, state_path: Path, **reader: Any) -> Config:
    """The harness config for ``database`` on ``server``; ``reader`` overrides [reader] settings."""
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


def fast_config(
    server: PrivateMariaDB,
    database: str,
    state: Path,
    *,
    max_attempts: int = FAST_DELIVERY.retry.max_attempts,
    **delivery: object,
) -> Config:
    """:func:`make_config` with :data:`FAST_DELIVERY` (``delivery`` overrides its fields,
    ``max_attempts`` its retry policy's)."""
    cfg = make_config(server, database, state)
    retry = dataclasses.replace(FAST_DELIVERY.retry, max_attempts=max_attempts)
    return dataclasses.replace(cfg, delivery=dataclasses.replace(FAST_DELIVERY, retry=retry, **delivery))


def configure(
    server: PrivateMariaDB,
    database: str,
    tmp_path: Path,
    toml: str,
    env: dict[str, str] | None = None,
    **delivery: Any,
) -> Config:
    """The harness config plus the [endpoints]/[fanout] of ``toml``, loaded as a deployment would."""
    path = tmp_path / "endpoints.toml"
    path.write_text(toml, encoding="utf-8")
    loaded = load(path, env=env or {})
    base = make_config(server, database, tmp_path / "state.db")
    return dataclasses.replace(
        base,
        delivery=dataclasses.replace(
            base.delivery,
            endpoints=loaded.delivery.endpoints,
            endpoint_headers=loaded.delivery.endpoint_headers,
            named_endpoints=loaded.delivery.named_endpoints,
            fanout=loaded.delivery.fanout,
            **delivery,
        ),
    )


@dataclasses.dataclass
class Running:
    """A service running in the test's loop; ``await stop()`` drains it."""

    service: Service
    config: Config
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        """Signal the service to stop and wait (60 s at most) until it has drained."""
        self.stop_event.set()
        async with asyncio.timeout(60):
            await self.task


#: ``await start(server, database, *, state=, config=, reader_factory=, **reader_settings)``.
StartPipeline = Callable[..., Awaitable[Running]]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Everything a pipeline test needs: the server, a fresh VICIdial database on it, the
    simulator writing to it, a receiver on loopback, and ``start`` for the service."""

    server: PrivateMariaDB
    database: str
    vicidial: Vicidial
    receiver: Receiver
    start_pipeline: StartPipeline

    async def start(self, **kwargs: Any) -> Running:
        """Start a service on this database (same keywords as ``start_pipeline``)."""
        return await self.start_pipeline(self.server, self.database, **kwargs)

    def setup_fence(self) -> None:
        """Create the fence list, pointing at this receiver (:func:`support.fence.setup_fence`)."""
        fencing.setup_fence(self.vicidial, self.receiver)

    async def fence(self, tag: str) -> None:
        """Add a fence lead and wait for its request: everything written before it is done."""
        await fencing.fence(self.vicidial, self.receiver, tag)

    def targets(self, prefix: str) -> list[str]:
        """Targets this receiver got under ``prefix``, in arrival order."""
        return fencing.targets(self.receiver, prefix)

    async def wait_count(self, prefix: str, count: int, busy: Vicidial | None = None) -> list[str]:
        """Wait for ``count`` requests under ``prefix`` (:func:`support.fence.wait_count`)."""
        return await fencing.wait_count(self.receiver, prefix, count, busy)


@contextlib.asynccontextmanager
async def pipeline_starter(tmp_path: Path, decoder: str | None) -> AsyncIterator[StartPipeline]:
    """Starts services (``start_pipeline``); stops those still running on exit.

    ``decoder`` (the ``decoder`` fixture) is the reader every service of the test must use:
    it becomes ``reader.decoder`` of the harness config, and a config the test built itself
    must name it.
    """
    running: list[Running] = []

    async def start(
        server: PrivateMariaDB,
        database: str,
        *,
        state: Path | None = None,
        config: Config | None = None,
        reader_factory: ReaderFactory | None = None,
        **reader: Any,
    ) -> Running:
        if decoder is not None and config is None:
            reader.setdefault("decoder", decoder)
        cfg = config or make_config(server, database, state or tmp_path / "state.db", **reader)
        if decoder is not None and cfg.reader.decoder != decoder:
            msg = f"the test runs with the {decoder} reader, its config names {cfg.reader.decoder}"
            raise AssertionError(msg)
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

"""The backlog measurement: the real service draining a large outbox it finds on disk.

The issue's memory target is "RSS ≤ 200 MB including a 1M-delivery backlog on disk".
Two fresh processes (see ``bench.run``), so that the service's peak RSS is its own:

- :func:`fill_backlog` writes ``deliveries`` pending deliveries into a new state file
  with the service's own store (:class:`cdc.store.sqlite.SqliteStore`), in batches, as the
  pipeline would have committed them: URLs of about 300 bytes rendered from the bench
  template (plus address fields) with VICIdial's substitution, ``host:port`` as endpoint;
- :func:`drain_backlog` starts the real :class:`cdc.service.Service` on that file
  (configured as ``bench.phases.run_e2e`` does, ``mode=send``, fast reader starting
  at the binlog's end, so only the outbox has work) and lets it send to the receiver
  for ``drain_s`` seconds; then it stops the service and reports its peak RSS, CPU,
  time to ready and the outbox's counts.

``bench.run`` adds what only the receiver knows: the first request and how many
arrived inside the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from bench import phases
from cdc.config import Config, EndpointLimits, HttpConfig, ReaderConfig, StateConfig, UrlsConfig
from cdc.records import Delivery, Position, UrlSource
from cdc.resolve import origin_of
from cdc.store.sqlite import SqliteStore
from cdc.template import render

__all__ = ["BacklogParams", "drain_backlog", "fill_backlog", "state_size_mb"]

_FIRST_NAMES = ("John", "Mary", "José", "Anna", "Zoë", "Li", "Mohammed", "Olga", "Peter", "Ana María")
_LAST_NAMES = ("Smith", "Müller", "Nguyễn", "García", "O'Neil", "Kowalski", "Johnson", "Brown")
_CITIES = ("Chicago", "Springfield", "São Paulo", "Austin", "Denver")
#: Lead ids of the backlog start far above the live segments' (no key collides with them).
_FIRST_LEAD_ID = 50_000_000
#: Address fields after the bench's template: about 300 bytes a URL, a typical CRM request.
_MORE_FIELDS = (
    "&addr=--A--address1--B--&state=--A--state--B--&zip=--A--postal_code--B--"
    "&src=--A--source_id--B--&user=--A--user--B--"
)


@dataclass(frozen=True, slots=True)
class BacklogParams:
    port: int
    database: str
    #: Where the service's reader starts: the binlog's end, so the outbox is all the work.
    start: Position
    state_path: str
    #: The receiver's base URL followed by the bench's URL template (``--A--field--B--``).
    url_template: str
    deliveries: int
    drain_s: float
    concurrency: int = 100
    fill_batch: int = 10_000
    #: The service must be ready and drained within this, or the run fails.
    timeout_s: float = 600.0


def state_size_mb(path: str) -> float:
    """The state file with its ``-wal``: what the backlog costs on disk."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += Path(path + suffix).stat().st_size
    return round(total / 1e6, 1)


def _deliveries(p: BacklogParams, first: int, count: int, source: str, rng: random.Random) -> list[Delivery]:
    """``count`` deliveries as the resolver would build them for leads of ``BENCH_LIST_ID``."""
    now = int(time.time())
    out: list[Delivery] = []
    for lead_id in range(first, first + count):
        phone = f"{3_120_000_000 + lead_id % 1_000_000_000}"
        tokens = {
            "lead_id": str(lead_id),
            "phone_number": phone,
            "first_name": rng.choice(_FIRST_NAMES),
            "last_name": rng.choice(_LAST_NAMES),
            "list_id": "101",
            "list_name": "Bench leads",
            "campaign": "BENCH",
            "email": f"lead{phone}@example.com",
            "city": rng.choice(_CITIES),
            "vendor_lead_code": f"V{lead_id % 1_000_000:06d}",
            "entry_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
            "address1": f"{lead_id % 9000 + 100} W Madison St",
            "state": "IL",
            "postal_code": f"{60600 + lead_id % 100}",
            "source_id": "bench",
            "user": "6666",
        }
        url = render(p.url_template + _MORE_FIELDS, tokens, "utf-8")
        out.append(
            Delivery(
                source=source,
                lead_id=lead_id,
                list_id=101,
                endpoint_id=origin_of(url)[1],
                method="GET",
                url=url,
                url_source=UrlSource.CONFIG_SYSTEM,
                inserted_at=now,
            )
        )
    return out


def fill_backlog(p: BacklogParams) -> dict[str, Any]:
    """Write ``p.deliveries`` pending deliveries into a new state file, ``p.fill_batch`` a commit."""
    source = phases.mysql_config(p.port, p.database).source_name
    rng = random.Random(7)
    started = time.perf_counter()
    inserted = 0
    url_bytes = 0
    store = SqliteStore(p.state_path)
    store.open()
    try:
        for first in range(_FIRST_LEAD_ID, _FIRST_LEAD_ID + p.deliveries, p.fill_batch):
            count = min(p.fill_batch, _FIRST_LEAD_ID + p.deliveries - first)
            batch = _deliveries(p, first, count, source, rng)
            url_bytes += sum(len(d.url) for d in batch)
            inserted += len(store.commit_batch(batch, None, time.time()))
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    return {
        "pending_at_start": inserted,
        "mean_url_bytes": round(url_bytes / max(1, p.deliveries), 1),
        "fill_s": round(elapsed, 2),
        "state_mb_at_start": state_size_mb(p.state_path),
    }


def drain_backlog(p: BacklogParams, received: Synchronized[int]) -> dict[str, Any]:
    """The real service on the filled state file for ``p.drain_s`` seconds, then stopped."""
    from cdc import runtime

    return runtime.run(_drain_backlog(p, received))


async def _drain_backlog(p: BacklogParams, received: Synchronized[int]) -> dict[str, Any]:
    from cdc.metrics import Metrics
    from cdc.service import Service

    logging.basicConfig(level=logging.WARNING)
    limits = EndpointLimits(concurrency=p.concurrency, rate_per_s=1e9, burst=1_000_000, timeout_s=60.0)
    config = Config(
        mysql=phases.mysql_config(p.port, p.database),
        reader=ReaderConfig(start=str(p.start), match_window_s=30.0, decoder="fast"),
        state=StateConfig(path=p.state_path),
        http=HttpConfig(listen="127.0.0.1:0"),
        delivery=phases.delivery_config(p.concurrency, limits),
        urls=UrlsConfig(system=p.url_template),
    )
    service = Service(config, Metrics())
    stop = asyncio.Event()
    cpu0, _ = phases.usage()
    started_at = time.time()
    started = time.perf_counter()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(p.timeout_s):
            while not service.ready.is_set():
                _check_running(task)
                await asyncio.sleep(0.001)
            ready_s = time.perf_counter() - started
            window_end = started + p.drain_s
            while (left := window_end - time.perf_counter()) > 0:
                _check_running(task)
                await asyncio.sleep(min(0.05, left))
            ended_at = time.time()
            received_in_window = received.value
            cpu1, _ = phases.usage()
            assert service.store is not None and service.sender is not None
            sent = service.sender.sent
            counts = await service.store.counts()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(60):
                await task
    _, rss = phases.usage()  # the peak over the whole life of the service, shutdown included
    return {
        "started_at": started_at,
        "ended_at": ended_at,
        "window_s": round(ended_at - started_at, 3),
        "ready_s": round(ready_s, 3),
        "cpu_s": round(cpu1 - cpu0, 3),
        "peak_rss_mb": round(rss / 1024, 1),
        "sent_in_window": sent,
        "receiver_count_at_end": received_in_window,
        "pending_at_end": sum(c.pending + c.in_flight for c in counts),
        "delivered_in_outbox": sum(c.delivered for c in counts),
        "dead": sum(c.dead for c in counts),
        "state_mb_at_end": state_size_mb(p.state_path),
    }


def _check_running(task: asyncio.Task[None]) -> None:
    if task.done():
        task.result()
        raise RuntimeError("the service stopped by itself")

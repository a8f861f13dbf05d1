"""One endpoint's trouble stays its own: two measurements of the sender, on loopback.

Usage: ``.venv/bin/python bench/isolation.py [--backlog 10000] [--healthy-s 20] [--blocked-s 5]
[--out bench/results/isolation.json]``

The real :class:`cdc.delivery.Sender` on a real SQLite outbox (:class:`cdc.store.SqliteStore`
in a temporary directory) sending to real aiohttp receivers on 127.0.0.1; no MariaDB (the
sender only sees the outbox). Prints one JSON object and writes it to ``--out``.

``fairness``
    Endpoint ``slow`` has ``--backlog`` pending deliveries and is throttled to 5/s
    (``rate_per_s = 5``, ``burst = 5``); endpoint ``healthy`` (default limits) gets one
    new delivery every 50 ms for ``--healthy-s`` seconds, each committed and notified as
    the service does. Reported: the healthy endpoint's latency from commit to the
    request reaching its receiver (p50, p99, max), how many never arrived within the
    run, and how many of the backlog went out meanwhile.

``blocked``
    Every endpoint blocked: ``auth`` answers 503 (its breaker opens after one failure),
    then 401 to every probe (the token expired during the outage); ``down`` refuses
    connections. Breaker cool-down 1 s doubling up to 600 s (the default maximum). Once
    the first 401 probe is answered, claim transactions (``claim_due`` calls, each one
    ``BEGIN IMMEDIATE``) and all write transactions are counted for ``--blocked-s``.

Nothing is asserted; ``git stash``-free comparisons: copy this file into an export of
another commit (``git archive``) and run it there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from cdc.config import DeliveryConfig, EndpointLimits, RetryPolicy
from cdc.delivery import SKIP_AUTO_HEADERS, Sender
from cdc.metrics import Metrics
from cdc.records import Attempt, Delivery, UrlSource
from cdc.store import AsyncStore, LockWait, SqliteStore, StoredDelivery
from cdc.testing.receiver import Receiver


class CountingStore:
    """The sender's store, counting claim calls (each one write transaction)."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self.claims = 0

    async def claim_due(
        self, now: float, limit: int, exclude_endpoints: Collection[str] = (), **caps: Any
    ) -> Sequence[StoredDelivery]:
        self.claims += 1
        return await self.store.claim_due(now, limit, exclude_endpoints, **caps)

    async def record_attempts(self, results: Sequence[tuple[Attempt, float | None]], now: float) -> int:
        return await self.store.record_attempts(results, now)

    async def next_due_at(self, exclude_endpoints: Collection[str] = ()) -> float | None:
        return await self.store.next_due_at(exclude_endpoints)

    async def release(self, ids: Sequence[int], next_attempt_at: float, now: float) -> int:
        return await self.store.release(ids, next_attempt_at, now)


def _delivery(lead_id: int, endpoint_id: str, base_url: str) -> Delivery:
    return Delivery(
        source="bench",
        lead_id=lead_id,
        list_id=101,
        endpoint_id=endpoint_id,
        method="GET",
        url=f"{base_url}/{endpoint_id}?lead_id={lead_id}",
        url_source=UrlSource.CONFIG_SYSTEM,
        inserted_at=int(time.time()),
    )


@contextlib.asynccontextmanager
async def _sender(path: Path, config: DeliveryConfig) -> Any:
    transactions = [0]

    def count(wait: LockWait) -> None:
        if wait.acquired:  # reported once per write transaction (BEGIN IMMEDIATE held)
            transactions[0] += 1

    store = AsyncStore(SqliteStore(path, on_lock_wait=count))
    await store.open()
    counting = CountingStore(store)
    session = aiohttp.ClientSession(skip_auto_headers=SKIP_AUTO_HEADERS, raise_for_status=False)
    sender = Sender(session, counting, config, Metrics())  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield store, sender, counting, transactions
    finally:
        stop.set()
        _, late = await asyncio.wait({task}, timeout=2.0)
        if late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await session.close()
        await store.close()


async def fairness(directory: Path, backlog: int, healthy_s: float) -> dict[str, Any]:
    slow, healthy = Receiver(), Receiver()
    await slow.start()
    await healthy.start()
    config = DeliveryConfig(
        mode="send",
        endpoints={"slow": EndpointLimits(rate_per_s=5.0, burst=5)},
        shutdown_grace_s=1.0,
    )
    committed: dict[int, float] = {}
    try:
        async with _sender(directory / "fairness.db", config) as (store, sender, counting, _):
            rows = [_delivery(i, "slow", slow.url) for i in range(1, backlog + 1)]
            for start in range(0, len(rows), 2000):
                await store.commit_batch(rows[start : start + 2000], None, time.time())
            sender.notify()
            await asyncio.sleep(1.0)  # the backlog has filled whatever it can
            lead_id = 10_000_000
            deadline = time.monotonic() + healthy_s
            while time.monotonic() < deadline:
                lead_id += 1
                await store.commit_batch([_delivery(lead_id, "healthy", healthy.url)], None, time.time())
                committed[lead_id] = time.time()
                sender.notify()
                await asyncio.sleep(0.05)
            with contextlib.suppress(TimeoutError):
                await healthy.wait_for(len(committed), 5.0)
            claims = counting.claims
    finally:
        await slow.stop()
        await healthy.stop()
    latencies = []
    for request in healthy.requests:
        lead = int(request.target.rpartition("=")[2])
        latencies.append(request.received_at - committed[lead])
    latencies.sort()
    return {
        "backlog": backlog,
        "slow_rate_per_s": 5.0,
        "healthy_leads": len(committed),
        "healthy_arrived": len(latencies),
        "healthy_never_arrived": len(committed) - len(latencies),
        "healthy_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "healthy_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "healthy_max_ms": round(1000 * latencies[-1], 1) if latencies else None,
        "slow_sent_during_run": len(slow.requests),
        "claim_transactions": claims,
    }


async def blocked(directory: Path, blocked_s: float) -> dict[str, Any]:
    auth = Receiver()
    await auth.start()
    auth.respond_with([503, *([401] * 1000)])
    refused = Receiver()
    await refused.start()
    refused_url = refused.url
    await refused.stop()
    config = DeliveryConfig(
        mode="send",
        breaker_failures=1,
        breaker_cooldown_s=1.0,
        breaker_max_cooldown_s=600.0,
        retry=RetryPolicy(base_s=0.05, cap_s=0.1, max_attempts=1000),
        defaults=EndpointLimits(timeout_s=1.0, connect_timeout_s=0.5),
        shutdown_grace_s=1.0,
    )
    try:
        async with _sender(directory / "blocked.db", config) as (store, sender, counting, transactions):
            rows = [_delivery(i, "auth", auth.url) for i in range(1, 101)]
            rows += [_delivery(i, "down", refused_url) for i in range(101, 201)]
            await store.commit_batch(rows, None, time.time())
            sender.notify()
            await auth.wait_for(2, 30.0)  # the 503, then the first probe: 401
            await asyncio.sleep(0.1)
            claims0, transactions0, started = counting.claims, transactions[0], time.monotonic()
            await asyncio.sleep(blocked_s)
            elapsed = time.monotonic() - started
            claims, writes = counting.claims - claims0, transactions[0] - transactions0
            states = {e.endpoint_id: e.circuit.name for e in sender.statistics()}
            probes = len(auth.requests)
    finally:
        await auth.stop()
    return {
        "measured_s": round(elapsed, 2),
        "claim_transactions": claims,
        "claim_transactions_per_s": round(claims / elapsed, 1),
        "write_transactions_per_s": round(writes / elapsed, 1),
        "breakers_at_end": states,
        "auth_requests_total": probes,
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "label": args.label,
            "commit": args.commit or _commit(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "blocked": await blocked(Path(tmp), args.blocked_s),
            "fairness": await fairness(Path(tmp), args.backlog, args.healthy_s),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--healthy-s", type=float, default=20.0)
    parser.add_argument("--blocked-s", type=float, default=5.0)
    parser.add_argument("--label", default="")
    parser.add_argument("--commit", default="", help="the commit measured (an export has no .git)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

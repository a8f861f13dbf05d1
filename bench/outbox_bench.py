"""Throughput of the SQLite outbox: how many deliveries/s ``commit_batch`` sustains.

Usage: ``.venv/bin/python bench/outbox_bench.py [--batches N] [--batch-size N] [--dir D]``

Prints one JSON object. Each batch carries a checkpoint, as in the service. Also times
one ``claim_due`` + ``record_attempts`` cycle of the same size, and ``claim_due`` while
another endpoint has a large excluded backlog. Nothing is asserted: the figures depend
on the disk (put ``--dir`` on the production filesystem to measure it).
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdc.records import Attempt, Delivery, Outcome, Position, UrlSource
from cdc.store import SqliteStore

NOW = 1_700_000_000.0


def _delivery(lead_id: int, endpoint_id: str) -> Delivery:
    return Delivery(
        source="bench",
        lead_id=lead_id,
        list_id=101,
        endpoint_id=endpoint_id,
        method="GET",
        url=f"https://crm.example.com/api/lead.php?lead_id={lead_id}&phone=5550001234&list_id=101"
        "&first_name=Alexandra&last_name=Montgomery&vendor_lead_code=ABC123",
        url_source=UrlSource.VICIDIAL_LIST,
        inserted_at=int(NOW),
    )


def _run(
    directory: Path, synchronous: Literal["NORMAL", "FULL"], batches: int, batch_size: int
) -> dict[str, float | int | str]:
    store = SqliteStore(directory / f"bench-{synchronous.lower()}.db", synchronous=synchronous)
    store.open()
    try:
        lead_id = 0
        started = time.perf_counter()
        for batch in range(batches):
            deliveries = []
            for _ in range(batch_size):
                lead_id += 1
                deliveries.append(_delivery(lead_id, "crm"))
            store.commit_batch(deliveries, Position("mysql-bin.000001", 4 + batch), NOW)
        commit_s = time.perf_counter() - started

        started = time.perf_counter()
        cycled = 0
        while claimed := store.claim_due(NOW, batch_size):
            results: list[tuple[Attempt, float | None]] = [
                (Attempt(c.id, Outcome.DELIVERED, 200, "", 0.01), None) for c in claimed
            ]
            store.record_attempts(results, NOW + 1)
            cycled += len(claimed)
        cycle_s = time.perf_counter() - started

        # A backlog on an excluded endpoint must not slow claims for the others.
        store.commit_batch([_delivery(lead_id + 1 + i, "down") for i in range(50_000)], None, NOW)
        store.commit_batch([_delivery(lead_id + 60_000 + i, "up") for i in range(batch_size)], None, NOW + 1)
        started = time.perf_counter()
        excluded_claim = store.claim_due(NOW + 2, batch_size, exclude_endpoints={"down"})
        excluded_claim_s = time.perf_counter() - started
        assert len(excluded_claim) == batch_size
    finally:
        store.close()
    deliveries_total = batches * batch_size
    return {
        "synchronous": synchronous,
        "deliveries": deliveries_total,
        "commit_seconds": round(commit_s, 3),
        "commit_deliveries_per_s": round(deliveries_total / commit_s),
        "commit_batches_per_s": round(batches / commit_s),
        "claim_record_deliveries_per_s": round(cycled / cycle_s),
        "claim_with_50k_excluded_backlog_ms": round(excluded_claim_s * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the bench files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        runs = [_run(Path(tmp), sync, args.batches, args.batch_size) for sync in ("NORMAL", "FULL")]
    print(
        json.dumps(
            {
                "bench": "outbox.commit_batch",
                "batch_size": args.batch_size,
                "batches": args.batches,
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
                "runs": runs,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

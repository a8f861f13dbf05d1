"""A busy state file never kills the streamer: operator writes are batched, the service waits.

Real parts only: a private MariaDB with VICIdial's tables, the streamer (in the test's
loop, or the real CLI as a child process), a loopback receiver and one SQLite file
that another connection or a real ``vicidial-cdc dlq retry --all`` process writes to
at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.harness import Pipeline
from support.host import free_port

from cdc.records import Attempt, Delivery, Outcome, UrlSource
from cdc.store import SqliteStore
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

WAIT_S = 60.0
DEAD_LETTERS = 200_000
LIVE_LEADS = 200


def _lead_ids(receiver: Receiver, path: str) -> list[int]:
    prefix = f"{path}?id="
    return [int(r.target[len(prefix) :]) for r in receiver.requests if r.target.startswith(prefix)]


async def _wait_for_leads(receiver: Receiver, path: str, wanted: set[int], timeout_s: float) -> None:
    """Until every lead of ``wanted`` reached ``path`` (the requests are parsed only as they come)."""
    deadline = time.monotonic() + timeout_s
    seen: set[int] = set()
    parsed = 0
    prefix = f"{path}?id="
    while True:
        requests = receiver.requests
        for r in requests[parsed:]:
            if r.target.startswith(prefix):
                seen.add(int(r.target[len(prefix) :]))
        parsed = len(requests)
        missing = wanted - seen
        if not missing:
            return
        assert time.monotonic() < deadline, f"{len(missing)} leads never arrived, e.g. {sorted(missing)[:5]}"
        await asyncio.sleep(0.2)


def _scrape(port: int, page: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=10) as resp:
        return str(resp.read().decode())


def _tail(log: Path) -> str:
    """The end of the child streamer's log, for an assertion message."""
    return log.read_text("utf-8", errors="replace")[-4000:]


async def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the child streamer's /readyz answers 200 (binlog connected, first position stored)."""
    deadline = time.monotonic() + WAIT_S

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    while not await asyncio.to_thread(ready):
        assert proc.poll() is None, _tail(log)
        assert time.monotonic() < deadline, "the streamer did not become ready"
        await asyncio.sleep(0.2)


def _sample(text: str, name: str) -> float:
    """One unlabelled sample of a Prometheus text exposition."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


class TestHeldWriteLock:
    """Another connection holding BEGIN IMMEDIATE past the busy timeout: the service waits."""

    async def test_service_survives_a_lock_held_past_the_busy_timeout(
        self, pipeline: Pipeline, tmp_path: Path
    ) -> None:
        """Leads written while the lock is held wait, are counted as busy, and arrive after it."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/held?id=--A--lead_id--B--")
        state = tmp_path / "state.db"
        run = await pipeline.start(state=state)  # state.busy_limit_s: 120
        assert run.config.state.busy_limit_s > 5.0
        registry = run.service.metrics.registry
        first = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550100", list_id=101)
        await _wait_for_leads(pipeline.receiver, "/held", {first}, WAIT_S)

        other = sqlite3.connect(state, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            held = [
                await asyncio.to_thread(
                    pipeline.vicidial.add_lead, phone_number=f"31255501{i:02d}", list_id=101
                )
                for i in range(1, 6)
            ]
            deadline = time.monotonic() + WAIT_S
            # One whole busy timeout (5 s) passes, the write is counted and tried again.
            while not registry.get_sample_value("vicidial_cdc_store_busy_total"):
                assert time.monotonic() < deadline, "the service never reported waiting for the lock"
                assert not run.task.done(), "the service stopped while the lock was held"
                await asyncio.sleep(0.1)
            assert not set(held) & set(_lead_ids(pipeline.receiver, "/held"))  # really held back
            assert run.service.status()["store"]["waiting_s"] > 0  # /status shows the wait
        finally:
            other.execute("ROLLBACK")
            other.close()

        await _wait_for_leads(pipeline.receiver, "/held", set(held), WAIT_S)
        assert not run.task.done()
        waited = registry.get_sample_value("vicidial_cdc_store_lock_wait_seconds_bucket", {"le": "5.0"})
        total = registry.get_sample_value("vicidial_cdc_store_lock_wait_seconds_count")
        assert waited is not None and total is not None and total > waited  # a write waited > 5 s
        doc = run.service.status()["store"]
        assert doc["busy_waits"] >= 1 and doc["longest_lock_wait_s"] > 5.0 and doc["waiting_s"] == 0
        await run.stop()


class TestHeldWriteLockAtDdl:
    """The reader's own connection to the state file (schema history) waits like the service's."""

    async def test_a_ddl_while_the_lock_is_held_waits_and_is_stored(
        self, pipeline: Pipeline, tmp_path: Path
    ) -> None:
        """An ALTER of a watched table while another process holds the write lock past the
        busy timeout: the reader waits (counted as busy), is never called faulty (it was a
        'malformed_event' after 5 s), and the definition is stored once the lock is free."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/ddl?id=--A--lead_id--B--")
        state = tmp_path / "state.db"
        run = await pipeline.start(state=state)  # state.busy_limit_s: 120
        registry = run.service.metrics.registry
        first = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550200", list_id=101)
        await _wait_for_leads(pipeline.receiver, "/ddl", {first}, WAIT_S)

        def malformed() -> float:
            value = registry.get_sample_value("vicidial_cdc_reader_errors_total", {"kind": "malformed_event"})
            return value or 0.0

        other = sqlite3.connect(state, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            await asyncio.to_thread(
                pipeline.vicidial.execute,
                "ALTER TABLE vicidial_list ADD COLUMN held_flag VARCHAR(5) DEFAULT 'h'",
            )
            deadline = time.monotonic() + WAIT_S
            # One whole busy timeout (5 s) passes while the reader waits to store the definition.
            while not registry.get_sample_value("vicidial_cdc_store_busy_total"):
                fault = run.service.reader.statistics().fault if run.service.reader else None
                assert fault is None and not malformed(), f"the reader was called faulty: {fault}"
                assert time.monotonic() < deadline, "the reader never reported waiting for the lock"
                assert not run.task.done(), "the service stopped while the lock was held"
                await asyncio.sleep(0.1)
        finally:
            other.execute("ROLLBACK")
            other.close()

        after = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550201", list_id=101)
        await _wait_for_leads(pipeline.receiver, "/ddl", {after}, WAIT_S)
        assert run.service.reader is not None and run.service.reader.statistics().fault is None
        assert not malformed()
        await run.stop()
        store = SqliteStore(state)
        store.open()
        try:
            stored = [json.loads(columns) for table, _, columns in store.schema_history(pipeline.database)]
        finally:
            store.close()
        assert any(c[0] == "held_flag" for columns in stored for c in columns), "definition not stored"


def _fill_dead(path: Path, url: str, count: int) -> None:
    """``count`` dead letters (HTTP 404) for endpoint ``dlq``, written fast with the store's API."""
    store = SqliteStore(path)
    store.open()
    try:
        now = time.time()
        for start in range(0, count, 10_000):
            deliveries = [
                Delivery(
                    source="test",
                    lead_id=10_000_000 + i,
                    list_id=101,
                    endpoint_id="dlq",
                    method="GET",
                    url=f"{url}/dlq?id={10_000_000 + i}",
                    url_source=UrlSource.CONFIG_SYSTEM,
                    inserted_at=int(now),
                )
                for i in range(start, min(count, start + 10_000))
            ]
            store.commit_batch(deliveries, None, now - 60)
            claimed = store.claim_due(now, len(deliveries))
            store.record_attempts(
                [(Attempt(c.id, Outcome.DEAD, 404, "http_404", 0.01), None) for c in claimed], now - 30
            )
    finally:
        store.close()


def _write_config(path: Path, server: PrivateMariaDB, database: str, state: Path, http_port: int) -> Path:
    path.write_text(
        "[mysql]\n"
        f'host = "{server.host}"\nport = {server.port}\nuser = "root"\ndatabase = "{database}"\n'
        'source = "test"\nheartbeat_s = 1\nread_timeout_s = 10\n'
        '[reader]\nstart = "current"\nmatch_window_s = 5\ncheck_at_start = false\n'
        f'[state]\npath = "{state}"\n'
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
        '[delivery]\nmode = "send"\nmax_in_flight = 400\nconcurrency = 200\n'
        "rate_per_s = 1000000.0\nburst = 1000000\n"
        '[log]\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    return path


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VICIDIAL_CDC_")}


@contextlib.contextmanager
def _streamer(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdc.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_clean_env(),
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class TestDlqRetryWhileDelivering:
    """`dlq retry --all` over 200k dead letters, as a real process, next to a delivering streamer."""

    async def test_200k_retry_keeps_the_streamer_running_and_loses_nothing(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        receiver: Receiver,
        tmp_path: Path,
    ) -> None:
        """Live leads written during the retry all arrive; every dead letter is requeued and sent."""
        vicidial.add_list(101, "L", "C", "")
        vicidial.set_system_url(f"{receiver.url}/live?id=--A--lead_id--B--")
        state = tmp_path / "state.db"
        started = time.monotonic()
        await asyncio.to_thread(_fill_dead, state, receiver.url, DEAD_LETTERS)
        fill_s = time.monotonic() - started
        http_port = free_port()
        config = _write_config(tmp_path / "c.toml", mariadb, vicidial_db, state, http_port)
        log = tmp_path / "streamer.log"

        with _streamer(config, log) as proc:
            await _wait_ready(http_port, proc, log)
            first = await asyncio.to_thread(vicidial.add_lead, phone_number="3125550000", list_id=101)
            await _wait_for_leads(receiver, "/live", {first}, WAIT_S)

            written: list[int] = []
            failure: list[BaseException] = []
            retry_done = threading.Event()

            def write_live() -> None:
                """Leads keep coming before, during and after the retry (bounded in count)."""
                try:
                    with Vicidial.connect(mariadb, database=vicidial_db, seed=5) as vici:
                        for i in range(LIVE_LEADS):
                            written.append(vici.add_lead(phone_number=f"3{i:09d}", list_id=101))
                            time.sleep(0.05 if not retry_done.is_set() else 0.01)
                except BaseException as exc:
                    failure.append(exc)

            writer = threading.Thread(target=write_live, name="live-writer")
            writer.start()
            await asyncio.sleep(0.5)
            retry_started = time.monotonic()
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "cdc.cli", "dlq", "retry", "--all", "-c", str(config)],
                capture_output=True,
                text=True,
                env=_clean_env(),
                timeout=240,
                check=False,
            )
            retry_s = time.monotonic() - retry_started
            retry_done.set()
            await asyncio.to_thread(writer.join, 120)
            assert not writer.is_alive() and not failure, failure
            assert done.returncode == 0, done.stderr
            assert done.stdout.split()[0] == str(DEAD_LETTERS)
            assert f"state_file={state}" in done.stderr
            summary = re.search(r"(\d+) write transactions.*longest write lock held (\d+) ms", done.stderr)
            assert summary, done.stderr
            assert int(summary.group(1)) >= DEAD_LETTERS // 1000  # batches, not one transaction

            assert proc.poll() is None, _tail(log)
            # Claims are oldest first: the live leads written after the retry wait behind it.
            await _wait_for_leads(receiver, "/dlq", {10_000_000 + i for i in range(DEAD_LETTERS)}, 240)
            await _wait_for_leads(receiver, "/live", set(written), WAIT_S)
            delivered_all_s = time.monotonic() - retry_started
            assert proc.poll() is None, _tail(log)
            metrics = await asyncio.to_thread(_scrape, http_port, "metrics")
            busy = _sample(metrics, "vicidial_cdc_store_busy_total")
            waits = _sample(metrics, "vicidial_cdc_store_lock_wait_seconds_count")
            streamer_store = json.loads(await asyncio.to_thread(_scrape, http_port, "status"))["store"]

        store = SqliteStore(state)
        store.open()
        try:
            counts = {c.endpoint_id: c for c in store.counts()}
        finally:
            store.close()
        assert counts["dlq"].dead == 0 and counts["dlq"].delivered == DEAD_LETTERS
        print(  # the figures for the report (pytest -s)
            f"\nfill {DEAD_LETTERS} dead letters: {fill_s:.1f} s; dlq retry --all: {retry_s:.1f} s"
            f" ({summary.group(1)} transactions, longest write lock {summary.group(2)} ms);"
            f" all {DEAD_LETTERS} retried deliveries and {len(written)} live leads delivered"
            f" {delivered_all_s:.1f} s after the retry started; the streamer: {waits:.0f} writes,"
            f" {busy:.0f} busy slices, longest wait for the lock"
            f" {streamer_store['longest_lock_wait_s'] * 1000:.0f} ms, longest write lock"
            f" {streamer_store['longest_write_s'] * 1000:.0f} ms\n{done.stderr}"
        )

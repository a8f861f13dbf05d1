"""Never lose a lead: crashes, endpoint outages, retries, dead letters, purged binlog, shutdown.

The crash and shutdown tests run the real CLI (``python -m cdc.cli run``) as a child
process and SIGKILL / SIGTERM it; the others run the service in the test's loop with
a fast retry schedule so the paths are exercised in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from support.fence import targets, wait_count
from support.harness import Pipeline, StartPipeline, fast_config
from support.host import free_port
from support.mariadb import MariaDBFactory

from cdc.store import SqliteStore
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb


def _write_config(path: Path, server: PrivateMariaDB, database: str, state: Path, **extra: str) -> Path:
    lines = [
        "[mysql]",
        f'host = "{server.host}"',
        f"port = {server.port}",
        'user = "root"',
        f'database = "{database}"',
        'source = "crash"',
        "heartbeat_s = 1",
        "read_timeout_s = 10",
        "[reader]",
        'start = "current"',
        "match_window_s = 5",
        "[state]",
        f'path = "{state}"',
        "[http]",
        f'listen = "127.0.0.1:{free_port()}"',
        "[delivery]",
        'mode = "send"',
        "breaker_cooldown_s = 0.5",
        "breaker_max_cooldown_s = 1",
        *(f"{k} = {v}" for k, v in extra.items()),
        "[delivery.retry]",
        "base_s = 0.2",
        "factor = 2",
        "cap_s = 1",
        "[log]",
        'level = "WARNING"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _spawn(config: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "cdc.cli", "run", "--config", str(config), *extra],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "VICIDIAL_CDC_MYSQL_PASSWORD": ""},
        )


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill the spawned services a failed test left running (a passing test stopped them)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _wait_ready(config: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the spawned service answers /readyz 200: it has stored its start position."""
    listen = tomllib.loads(config.read_text("utf-8"))["http"]["listen"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://{listen}/readyz", timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the service did not become ready in 60 s: {log.read_text()[-2000:]}")


class TestCrash:
    """SIGKILL at random moments: every lead arrives at least once, duplicates share their key."""

    async def test_kill_9_during_2000_add_leads(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        receiver: Receiver,
        tmp_path: Path,
    ) -> None:
        """2,000 add_leads, the streamer killed 6 times and restarted; all delivered."""
        total = 2000
        vicidial.add_list(101, "L", "C", "")
        vicidial.set_system_url(f"{receiver.url}/k?id=--A--lead_id--B--")
        config = _write_config(tmp_path / "c.toml", mariadb, vicidial_db, tmp_path / "state.db")
        log = tmp_path / "streamer.log"
        proc = _spawn(config, log)
        written: list[int] = []
        failure: list[BaseException] = []

        def write() -> None:
            try:
                with Vicidial.connect(mariadb, database=vicidial_db, seed=11) as vici:
                    for i in range(total):
                        written.append(vici.add_lead(phone_number=f"3{i:09d}", list_id=101))
                        if i % 50 == 0:
                            vici.loader_insert(phone_number=f"4{i:09d}", list_id=101)
            except BaseException as exc:
                failure.append(exc)

        try:
            # the first start stores its "current" position before traffic
            await asyncio.to_thread(_wait_ready, config, proc, log)
            writer = threading.Thread(target=write, name="crash-writer")
            writer.start()
            rng = random.Random(2026)
            kills = 0
            deadline = time.monotonic() + 240
            while kills < 6 and time.monotonic() < deadline:
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 10)
                kills += 1
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                proc = _spawn(config, log)
            await asyncio.to_thread(writer.join, 240)
            assert not failure, failure
            assert kills == 6
            expected = set(written)
            assert len(expected) == total
            async with asyncio.timeout(180):
                while not expected <= {int(t.split("id=")[1]) for t in targets(receiver, "/k")}:
                    assert proc.poll() is None, log.read_text()[-2000:]
                    await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
        keys: dict[int, set[str | None]] = defaultdict(set)
        for r in receiver.requests:
            if r.target.startswith("/k"):
                keys[int(r.target.split("id=")[1])].add(r.header("Idempotency-Key"))
        assert set(keys) == expected  # nothing else was sent (no loader inserts)
        assert all(len(k) == 1 and None not in k for k in keys.values())
        counts = Counter(int(t.split("id=")[1]) for t in targets(receiver, "/k"))
        duplicates = sum(c - 1 for c in counts.values())
        report = {"leads": total, "kills": kills, "requests": sum(counts.values()), "duplicates": duplicates}
        print(f"crash test: {json.dumps(report)}")
        (tmp_path / "crash-report.json").write_text(json.dumps(report))


def _metric(config: Path, sample: str) -> float:
    """One sample of the spawned service's /metrics (``name{labels}`` as exposed), 0 when absent."""
    listen = tomllib.loads(config.read_text("utf-8"))["http"]["listen"]
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as r:
        text = r.read().decode("utf-8")
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


class TestHandOffCrash:
    """Rows a commit handed to the sender survive a SIGKILL before their outcome is recorded."""

    async def test_kill_9_with_handed_rows_in_flight(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        receiver: Receiver,
        tmp_path: Path,
    ) -> None:
        """Killed with three handed-off rows unanswered: after the restart each is re-sent, one row each."""
        vicidial.add_list(101, "L", "C", "")
        vicidial.set_system_url(f"{receiver.url}/h?id=--A--lead_id--B--")
        state = tmp_path / "state.db"
        config = _write_config(tmp_path / "c.toml", mariadb, vicidial_db, state)
        log = tmp_path / "streamer.log"
        procs = [_spawn(config, log)]
        try:
            await asyncio.to_thread(_wait_ready, config, procs[0], log)
            receiver.latency_s = 5.0  # no answer before the kill: the rows stay in flight
            leads = [
                await asyncio.to_thread(vicidial.add_lead, phone_number=f"31255500{i:02d}", list_id=101)
                for i in range(3)
            ]
            await receiver.wait_for(3, 30)
            assert _metric(config, 'vicidial_cdc_deliveries_started_total{path="handoff"}') == 3.0
            assert _metric(config, "vicidial_cdc_outbox_claims_total") == 0.0
            procs[0].send_signal(signal.SIGKILL)
            await asyncio.to_thread(procs[0].wait, 10)
            store = SqliteStore(state)
            store.open()
            try:
                (counts,) = store.counts()
                assert (counts.in_flight, counts.pending, counts.delivered) == (3, 0, 0)
            finally:
                store.close()
            receiver.latency_s = 0.0
            procs.append(_spawn(config, log))
            await asyncio.to_thread(_wait_ready, config, procs[1], log)
            async with asyncio.timeout(60):
                while len(targets(receiver, "/h")) < 6:
                    await asyncio.sleep(0.1)
            procs[1].send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(procs[1].wait, 30) == 0
        finally:
            _reap(procs)
        assert Counter(int(t.split("id=")[1]) for t in targets(receiver, "/h")) == {lead: 2 for lead in leads}
        keys: dict[int, set[str | None]] = defaultdict(set)
        for r in receiver.requests:
            if r.target.startswith("/h"):
                keys[int(r.target.split("id=")[1])].add(r.header("Idempotency-Key"))
        assert all(len(k) == 1 and None not in k for k in keys.values())  # re-sent under the same key
        store = SqliteStore(state)
        store.open()
        try:
            (counts,) = store.counts()
            assert (counts.delivered, counts.in_flight, counts.pending, counts.dead) == (3, 0, 0, 0)
        finally:
            store.close()


class TestOutage:
    """An endpoint down for a while: the backlog waits on disk, survives a restart, drains."""

    async def test_backlog_survives_restart(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """Receiver stopped, 30 leads, streamer restarted, receiver back on the same port."""
        down = Receiver()
        await down.start()
        port = down.port
        await down.stop()
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_list_url(101, f"http://127.0.0.1:{port}/o?id=--A--lead_id--B--")
        pipeline.setup_fence()
        state = tmp_path / "outage.db"
        first = await pipeline.start(config=fast_config(pipeline.server, pipeline.database, state))
        ids = [
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255{i:05d}", list_id=101)
            for i in range(30)
        ]
        await pipeline.fence("outage")
        await asyncio.sleep(1.0)  # some attempts fail, the breaker opens
        await first.stop()
        back = Receiver(port=port)
        await back.start()
        try:
            await pipeline.start_pipeline(
                pipeline.server,
                pipeline.database,
                config=fast_config(pipeline.server, pipeline.database, state, max_attempts=50),
            )
            await wait_count(back, "/o", 30)
            assert Counter(targets(back, "/o")) == Counter(f"/o?id={i}" for i in ids)
        finally:
            await back.stop()


class TestResponsePaths:
    """429 + Retry-After, 500 then 200, 404, a slow endpoint, refused: each its own path."""

    async def test_paths(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """Retried ones arrive; 404 and the endless timeout end dead with their reason."""
        statuses = {
            "r429": Receiver(),
            "r500": Receiver(),
            "r404": Receiver(),
            "slow": Receiver(latency_s=3.0),
        }
        for r in statuses.values():
            await r.start()
        refused = Receiver()
        await refused.start()
        refused_port = refused.port
        await refused.stop()
        try:
            statuses["r429"].respond_with([429], retry_after="1")
            statuses["r500"].respond_with([500, 500])
            statuses["r404"].respond_with([404])
            lists = {201: "r429", 202: "r500", 203: "r404", 204: "slow"}
            for list_id, name in lists.items():
                pipeline.vicidial.add_list(list_id, name, "C", "")
                pipeline.vicidial.set_list_url(list_id, f"{statuses[name].url}/{name}?id=--A--lead_id--B--")
            pipeline.vicidial.add_list(205, "refused", "C", "")
            pipeline.vicidial.set_list_url(
                205, f"http://127.0.0.1:{refused_port}/refused?id=--A--lead_id--B--"
            )
            pipeline.setup_fence()
            state = tmp_path / "paths.db"
            cfg = fast_config(pipeline.server, pipeline.database, state, max_attempts=3)
            run = await pipeline.start(config=cfg)
            lead = {}
            for list_id, name in (*lists.items(), (205, "refused")):
                lead[name] = await asyncio.to_thread(
                    pipeline.vicidial.add_lead, phone_number=f"312555{list_id}", list_id=list_id
                )
            await wait_count(statuses["r429"], "/r429", 2)
            await wait_count(statuses["r500"], "/r500", 3)
            await pipeline.fence("paths")
            r429 = statuses["r429"].requests
            assert r429[1].received_at - r429[0].received_at >= 0.9  # Retry-After honoured
            assert run.service.store is not None
            async with asyncio.timeout(30):
                while True:
                    dead = {c.endpoint_id: c.dead for c in await run.service.store.counts()}
                    if sum(dead.values()) >= 3:
                        break
                    await asyncio.sleep(0.2)
            await run.stop()
        finally:
            for r in statuses.values():
                await r.stop()
        store = SqliteStore(state)
        store.open()
        try:
            rows = {r.delivery.lead_id: r for r in store.list_dead(limit=100)}
            assert set(rows) == {lead["r404"], lead["slow"], lead["refused"]}
            assert (rows[lead["r404"]].last_status, rows[lead["r404"]].attempts) == (404, 1)
            assert rows[lead["slow"]].last_error == "timeout" and rows[lead["slow"]].attempts == 3
            assert rows[lead["refused"]].last_error == "connect"
            delivered = {c.endpoint_id: c.delivered for c in store.counts()}
            assert delivered[f"127.0.0.1:{statuses['r429'].port}"] == 1
            assert delivered[f"127.0.0.1:{statuses['r500'].port}"] == 1
            # An operator fixes the 404 receiver and retries its dead letter.
            assert store.retry_dead(time.time(), ids=[rows[lead["r404"]].id]) == 1
        finally:
            store.close()
        fixed = Receiver(port=statuses["r404"].port)
        await fixed.start()
        try:
            await pipeline.start(config=cfg)
            await wait_count(fixed, "/r404", 1)
            assert targets(fixed, "/r404") == [f"/r404?id={lead['r404']}"]
        finally:
            await fixed.stop()


class TestIsolation:
    """Two endpoints, one down: the healthy one keeps delivering while the other waits."""

    async def test_one_down(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """100 leads each to a healthy and a dead endpoint; the healthy gets all 100 promptly."""
        healthy = Receiver()
        await healthy.start()
        down = Receiver()
        await down.start()
        down_port = down.port
        await down.stop()
        try:
            pipeline.vicidial.add_list(301, "ok", "C", "")
            pipeline.vicidial.set_list_url(301, f"{healthy.url}/ok?id=--A--lead_id--B--")
            pipeline.vicidial.add_list(302, "down", "C", "")
            pipeline.vicidial.set_list_url(302, f"http://127.0.0.1:{down_port}/down?id=--A--lead_id--B--")
            cfg = fast_config(pipeline.server, pipeline.database, tmp_path / "iso.db", max_attempts=1000)
            run = await pipeline.start(config=cfg)
            for i in range(100):
                await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255{i:05d}", list_id=302)
                await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31256{i:05d}", list_id=301)
            await wait_count(healthy, "/ok", 100)
            assert run.service.store is not None
            pending = {c.endpoint_id: c.pending + c.in_flight for c in await run.service.store.counts()}
            assert pending.get(f"127.0.0.1:{down_port}", 0) == 100
            states = (
                {e.endpoint_id: e.circuit for e in run.service.sender.statistics()}
                if run.service.sender
                else {}
            )
            assert int(states[f"127.0.0.1:{down_port}"]) in (1, 2)  # half-open or open
        finally:
            await healthy.stop()


async def _purge_to(server: PrivateMariaDB, newest: str, gone: str) -> None:
    """PURGE BINARY LOGS TO ``newest`` until ``gone`` is really gone.

    MariaDB silently keeps a file a dump thread still reads; the server notices our
    stopped reader's closed connection only at its next heartbeat, so retry (bounded).
    """
    deadline = time.monotonic() + 20.0
    while True:
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"PURGE BINARY LOGS TO '{newest}'")
            cur.execute("SHOW BINARY LOGS")
            names = {str(row[0]) for row in cur.fetchall()}
        if gone not in names:
            return
        assert time.monotonic() < deadline, f"{gone} still not purged"
        await asyncio.sleep(0.25)


class TestPurgedBinlog:
    """The checkpoint's binlog was purged: a clear error, exit code 3, never a silent jump."""

    async def test_purge_past_checkpoint(
        self,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """Stop, rotate and purge past the checkpoint, start again: exit 3 naming file and fix."""
        server = mariadb_factory()
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        with Vicidial.connect(server, database="asterisk", seed=8) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/p?id=--A--lead_id--B--")
            state = tmp_path / "purge.db"
            run = await start_pipeline(server, "asterisk", state=state)
            await asyncio.to_thread(vici.add_lead, phone_number="3125550001", list_id=101)
            await wait_count(receiver, "/p", 1)
            await run.stop()
            checkpoint_file = run.service.stats.checkpoint.file if run.service.stats.checkpoint else ""
            missed = vici.add_lead(phone_number="3125550002", list_id=101)
            newest = server.flush_binary_logs()
            await _purge_to(server, newest, checkpoint_file)
        config = _write_config(tmp_path / "p.toml", server, "asterisk", state)
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cdc.cli", "run", "--config", str(config)],
            capture_output=True,
            timeout=60,
            env={**os.environ, "VICIDIAL_CDC_MYSQL_PASSWORD": ""},
        )
        assert result.returncode == 3
        stderr = result.stderr.decode()
        assert checkpoint_file and checkpoint_file in stderr
        assert "replay --since" in stderr and "--start current" in stderr
        # The documented recovery: replay the gap, then start at the current position.
        env = {**os.environ, "VICIDIAL_CDC_MYSQL_PASSWORD": ""}
        replayed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cdc.cli", "replay", "--config", str(config), "--since", "1h"],
            capture_output=True,
            timeout=60,
            env=env,
        )
        assert replayed.returncode == 0, replayed.stderr.decode()
        log = tmp_path / "recovery.log"
        proc = _spawn(config, log, "--start", "current")
        try:
            await wait_count(receiver, "/p", 2)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, log.read_text()[-2000:]
        assert Counter(targets(receiver, "/p"))[f"/p?id={missed}"] == 1


class TestShutdown:
    """SIGTERM drains requests in flight, records them, flushes the checkpoint, exits 0."""

    async def test_sigterm_drains(
        self, mariadb: PrivateMariaDB, vicidial_db: str, vicidial: Vicidial, tmp_path: Path
    ) -> None:
        """A slow receiver holds requests; SIGTERM waits for them; a restart resends nothing."""
        slow = Receiver(latency_s=1.5)
        await slow.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            vicidial.add_list(101, "L", "C", "")
            vicidial.set_system_url(f"{slow.url}/t?id=--A--lead_id--B--")
            config = _write_config(tmp_path / "t.toml", mariadb, vicidial_db, tmp_path / "t.db")
            log = tmp_path / "t.log"
            proc = _spawn(config, log)
            procs.append(proc)
            await asyncio.to_thread(_wait_ready, config, proc, log)
            ids = [
                await asyncio.to_thread(vicidial.add_lead, phone_number=f"31255{i:05d}", list_id=101)
                for i in range(5)
            ]
            async with asyncio.timeout(30):
                while len(slow.requests) < 5:
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)  # all 5 are in flight (the receiver sleeps 1.5 s)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, log.read_text()[-2000:]
            store = SqliteStore(tmp_path / "t.db")
            store.open()
            try:
                counts = store.counts()
                assert sum(c.delivered for c in counts) == 5
                assert sum(c.pending + c.in_flight for c in counts) == 0
            finally:
                store.close()
            proc = _spawn(config, log)
            procs.append(proc)
            ids.append(await asyncio.to_thread(vicidial.add_lead, phone_number="3125599999", list_id=101))
            async with asyncio.timeout(30):  # the new lead is the fence: everything before it is done
                while len(slow.requests) < 6:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.6)  # let its response come back before stopping
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
            assert Counter(targets(slow, "/t")) == Counter(f"/t?id={i}" for i in ids)
        finally:
            _reap(procs)
            await slow.stop()

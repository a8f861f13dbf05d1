"""Reader health on a private MariaDB: faults told apart, server changes, state safety.

Each scenario is one an operator meets: a grant missing, MariaDB restarted with
another ``character_set_server``, another server answering on the same address, two
streamers on one state file, a start without state. Expected URLs are computed from
the request VICIdial's PHP sends (``urlencode`` of the UTF-8 bytes the API received).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pymysql
import pytest
from support.fence import targets, wait_count
from support.harness import Pipeline, StartPipeline, make_config
from support.mariadb import MariaDBFactory
from support.waiting import wait_until_async

from cdc.config import Secret
from cdc.errors import ReaderFault, ReaderFaultError, StateLockedError
from cdc.metrics import Metrics
from cdc.ops import check
from cdc.service import Service
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

FENCE_LIST = 999
WAIT_S = 60.0


def php_urlencode(text: str, charset: str = "utf-8") -> str:
    """PHP ``urlencode``: RFC 1738 with ``+`` for space; ``~`` encoded too."""
    return urllib.parse.quote_plus(text.encode(charset), safe="").replace("~", "%7E")


async def _get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if path != "/metrics" else body.decode()


def _metric(text: str, name: str, label: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{label}}} not exported")


class TestFaults:
    """A fault reconnecting cannot heal is reported (log, /readyz, /status, metric) and heals by its fix."""

    async def test_missing_replication_grant(
        self, pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No REPLICATION SLAVE: access_denied with the GRANT in every report; the GRANT heals it."""
        user = f"cdc_norepl_{os.getpid()}"
        with contextlib.closing(pipeline.server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
            cur.execute(f"GRANT SELECT ON `{pipeline.database}`.* TO '{user}'@'127.0.0.1'")
            cur.execute(f"GRANT BINLOG MONITOR ON *.* TO '{user}'@'127.0.0.1'")
        try:
            pipeline.vicidial.add_list(101, "L", "C", "")
            pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/g?id=--A--lead_id--B--")
            cfg = make_config(pipeline.server, pipeline.database, tmp_path / "g.db", fault_recheck_s=0.5)
            cfg = dataclasses.replace(
                cfg, mysql=dataclasses.replace(cfg.mysql, user=user, password=Secret("pw"))
            )
            caplog.set_level(logging.ERROR, logger="cdc.reader.follower")
            run = await pipeline.start(config=cfg)
            reader = run.service.reader
            assert reader is not None
            await wait_until_async(lambda: reader.statistics().fault is not None, WAIT_S)
            fault = reader.statistics().fault
            assert fault is not None and fault.kind is ReaderFault.ACCESS_DENIED
            fix = "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*"
            assert fix in fault.message
            status, ready = await _get(run.service.http_port, "/readyz")
            assert status == 503 and ready["checks"]["reader_no_fault"] is False
            assert any("access_denied" in r and fix in r for r in ready["reasons"])
            _, body = await _get(run.service.http_port, "/status")
            assert body["reader_fault"]["kind"] == "access_denied" and body["reader_fault"]["since"]
            _, metrics = await _get(run.service.http_port, "/metrics")
            assert _metric(metrics, "vicidial_cdc_reader_errors_total", 'kind="access_denied"') >= 1
            assert _metric(metrics, "vicidial_cdc_reader_fault", 'kind="access_denied"') == 1
            assert _metric(metrics, "vicidial_cdc_reader_errors_total", 'kind="compressed_events"') == 0
            assert any("binlog.fault kind=access_denied" in r.getMessage() and fix in r.getMessage()
                       for r in caplog.records)  # fmt: skip
            lead = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101)
            with contextlib.closing(pipeline.server.connect()) as conn, conn.cursor() as cur:
                cur.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'127.0.0.1'")
            assert await wait_count(pipeline.receiver, "/g", 1, timeout_s=WAIT_S) == [f"/g?id={lead}"]
            await wait_until_async(lambda: reader.statistics().fault is None, WAIT_S)
            status, ready = await _get(run.service.http_port, "/readyz")
            assert status == 200 and ready["reasons"] == []
            _, metrics = await _get(run.service.http_port, "/metrics")
            assert _metric(metrics, "vicidial_cdc_reader_fault", 'kind="access_denied"') == 0
        finally:
            with contextlib.closing(pipeline.server.connect()) as conn, conn.cursor() as cur:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")

    async def test_transient_disconnect_names_its_cause(
        self,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A server restart is retried, logged with the server's message, counted by cause; no fault."""
        server = mariadb_factory()
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        caplog.set_level(logging.WARNING, logger="cdc.reader.follower")
        run = await start_pipeline(server, "asterisk")
        reader = run.service.reader
        assert reader is not None
        await wait_until_async(lambda: reader.statistics().connected, WAIT_S)
        await asyncio.to_thread(server.restart)
        stats = reader.statistics()
        await wait_until_async(lambda: stats.connected and stats.transient, WAIT_S)
        lines = [r.getMessage() for r in caplog.records if "binlog.disconnected" in r.getMessage()]
        assert lines and all("message=" in line and "cause=" in line for line in lines)
        assert reader.statistics().fault is None
        _, body = await _get(run.service.http_port, "/status")
        assert sum(body["reader_disconnects"].values()) >= 1


class TestServerRestart:
    """What a restart can change is re-read at every reconnect."""

    async def test_character_set_server_changed(
        self, mariadb_factory: MariaDBFactory, receiver: Receiver, start_pipeline: StartPipeline
    ) -> None:
        """utf8mb4 → latin1 across a restart: José is sent as VICIdial sends it, before and after.

        VICIdial's tables are latin1 (its installer's default). Before: PHP talks utf8mb4,
        José is stored as latin1 ``é``. After: PHP talks latin1 and stores its UTF-8 bytes
        as ``JosÃ©``; rendered in the old charset that was ``Jos%C3%83%C2%A9``.
        """
        server = mariadb_factory(charset="utf8mb4")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk", charset="latin1")
        expected = f"/c?fn={php_urlencode('José')}"  # what the API got, urlencoded by PHP
        with Vicidial.connect(server, database="asterisk", seed=11) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/c?fn=--A--first_name--B--")
            run = await start_pipeline(server, "asterisk")
            await asyncio.to_thread(vici.add_lead, phone_number="3125550001", list_id=101, first_name="José")
            assert await wait_count(receiver, "/c", 1, timeout_s=WAIT_S) == [expected]
        server.charset = "latin1"
        await asyncio.to_thread(server.restart)
        # VICIdial's PHP (use_non_latin=0) now talks latin1: the UTF-8 bytes it received
        # are stored as two latin1 characters each (JosÃ©).
        with Vicidial.connect(server, database="asterisk", connection_charset="latin1", seed=12) as vici:
            await asyncio.to_thread(vici.add_lead, phone_number="3125550002", list_id=101, first_name="José")
            assert await wait_count(receiver, "/c", 2, timeout_s=WAIT_S) == [expected, expected]
        assert expected == "/c?fn=Jos%C3%A9"
        _, body = await _get(run.service.http_port, "/status")
        assert body["connection_charset"] == "latin1"
        assert body["server"]["character_set_server"] == "latin1"

    async def test_different_server_on_the_same_port(
        self,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """Server A stops, server B (another datadir, same port and server_id) answers: detected,
        reported, nothing read from B; a restart on that state is refused with the recovery steps."""
        a = mariadb_factory()
        with contextlib.closing(a.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        state = tmp_path / "a.db"
        with Vicidial.connect(a, database="asterisk", seed=13) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/s?id=--A--lead_id--B--")
            run = await start_pipeline(a, "asterisk", state=state, fault_recheck_s=0.5)
            await asyncio.to_thread(vici.noise, 300)
            await asyncio.to_thread(vici.add_lead, phone_number="3125550001", list_id=101)
            await wait_count(receiver, "/s", 1, timeout_s=WAIT_S)
        port = a.port
        await asyncio.to_thread(a.stop)
        b = mariadb_factory(port=port)
        with contextlib.closing(b.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        with Vicidial.connect(b, database="asterisk", seed=14) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/s?id=--A--lead_id--B--")
            await asyncio.to_thread(vici.add_lead, phone_number="3125550002", list_id=101)
        reader = run.service.reader
        assert reader is not None
        await wait_until_async(lambda: reader.statistics().fault is not None, WAIT_S)
        fault = reader.statistics().fault
        assert fault is not None and fault.kind is ReaderFault.SERVER_CHANGED
        assert "replay --since" in fault.message and "--start current" in fault.message
        status, ready = await _get(run.service.http_port, "/readyz")
        assert status == 503 and any("server_changed" in r for r in ready["reasons"])
        await run.stop()
        assert len(targets(receiver, "/s")) == 1  # nothing of B's was sent
        with pytest.raises(ReaderFaultError) as refused:
            await start_pipeline(b, "asterisk", state=state)
        assert refused.value.kind is ReaderFault.SERVER_CHANGED
        assert str(state) in str(refused.value)
        # `vicidial-cdc check` sees the same up front.
        results = {r.name: r for r in await asyncio.to_thread(check.run_checks, run.config)}
        assert results["state_server"].status is check.Status.FAIL
        assert "replay --since" in results["state_server"].fix


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env)


class TestStateSafety:
    """One streamer per state file; a start without state is loud."""

    async def test_fresh_start_is_loud(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        start_pipeline: StartPipeline,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """No state: warning with the position, /status and the gauge say so; with state: they do not."""
        caplog.set_level(logging.WARNING, logger="cdc.service")
        state = tmp_path / "fresh.db"
        first = await start_pipeline(mariadb, vicidial_db, state=state)
        _, body = await _get(first.service.http_port, "/status")
        assert body["started_without_state"] is True and body["start_position"]
        _, metrics = await _get(first.service.http_port, "/metrics")
        assert "vicidial_cdc_state_fresh_start 1.0" in metrics
        assert any("state.fresh_start" in r.getMessage() and body["start_position"] in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        with pytest.raises(StateLockedError, match=f"pid {os.getpid()}"):
            await Service(first.config, Metrics()).run(asyncio.Event())
        results = {r.name: r for r in await asyncio.to_thread(check.run_checks, first.config)}
        assert f"pid {os.getpid()}" in results["state_lock"].message
        assert results["state_server"].status is check.Status.OK
        await first.stop()
        second = await start_pipeline(mariadb, vicidial_db, state=state)
        _, body = await _get(second.service.http_port, "/status")
        assert body["started_without_state"] is False and body["start_position"] is None
        _, metrics = await _get(second.service.http_port, "/metrics")
        assert "vicidial_cdc_state_fresh_start 0.0" in metrics

    async def test_second_process_on_the_same_state_is_refused(
        self, mariadb: PrivateMariaDB, vicidial_db: str, tmp_path: Path
    ) -> None:
        """Two real `vicidial-cdc run` on one state file: the second exits 4 naming the first's pid."""
        state = tmp_path / "two.db"
        config = tmp_path / "two.toml"
        config.write_text(
            "\n".join(
                [
                    "[mysql]",
                    f'host = "{mariadb.host}"',
                    f"port = {mariadb.port}",
                    'user = "root"',
                    f'database = "{vicidial_db}"',
                    "heartbeat_s = 1",
                    "[state]",
                    f'path = "{state}"',
                    "[http]",
                    'listen = "127.0.0.1:0"',
                    "[delivery]",
                    'mode = "send"',
                ]
            )
            + "\n"
        )
        env = {**os.environ, "VICIDIAL_CDC_MYSQL_PASSWORD": ""}
        argv = [sys.executable, "-m", "cdc.cli", "run", "--config", str(config)]
        log = tmp_path / "first.log"
        first = _spawn(argv, log, env)
        try:
            lock = Path(f"{state}.lock")
            await wait_until_async(
                lambda: lock.exists() and f'"pid": {first.pid}' in lock.read_text(), WAIT_S
            )
            second = await asyncio.to_thread(subprocess.run, argv, capture_output=True, timeout=60, env=env)
            assert second.returncode == 4, second.stderr.decode()[-2000:]
            assert f"pid {first.pid}" in second.stderr.decode()
            assert first.poll() is None  # the first one runs on
        finally:
            first.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.wait, 60)
        assert code == 0, log.read_text()[-2000:]


BIG = 64 * 1024 * 1024  # 64 MiB


class TestLargeEvents:
    """Events of 64 MiB (split over several 16 MB protocol packets) are read and the stream goes on."""

    async def test_64_mib_rows_skipped_and_decoded(
        self, mariadb_factory: MariaDBFactory, receiver: Receiver, start_pipeline: StartPipeline
    ) -> None:
        """A 64 MiB row of an unwatched table (skipped) and of a watched one (decoded), then a lead."""
        server = mariadb_factory(options={"max_allowed_packet": "512M"})
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
            with conn.cursor() as cur:
                cur.execute(
                    "CREATE TABLE asterisk.big_noise (id INT PRIMARY KEY, data LONGBLOB) ENGINE=MyISAM"
                )
                cur.execute(
                    "CREATE TABLE asterisk.custom_777 (lead_id INT UNSIGNED PRIMARY KEY, notes LONGTEXT)"
                    " ENGINE=MyISAM"
                )
        with Vicidial.connect(server, database="asterisk", seed=21) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/big?id=--A--lead_id--B--")
            run = await start_pipeline(server, "asterisk")
            reader = run.service.reader
            assert reader is not None
            big = pymysql.connect(
                host=server.host, port=server.port, user="root", password="", database="asterisk",
                autocommit=True, max_allowed_packet=4 * BIG,
            )  # fmt: skip
            with contextlib.closing(big), big.cursor() as cur:
                await asyncio.to_thread(cur.execute, "INSERT INTO big_noise VALUES (1, %s)", (b"\x01" * BIG,))
                await asyncio.to_thread(cur.execute, "INSERT INTO custom_777 VALUES (1, %s)", ("n" * BIG,))
            lead = await asyncio.to_thread(vici.add_lead, phone_number="3125550001", list_id=101)
            assert await wait_count(receiver, "/big", 1, timeout_s=WAIT_S) == [f"/big?id={lead}"]
        stats = reader.statistics()
        assert stats.rows.get(("custom_777", "insert")) == 1  # decoded
        assert ("big_noise", "insert") not in stats.rows  # skipped undecoded
        assert stats.fault is None and stats.reconnects == 0


class TestCompressedAndMalformed:
    """Events the reader cannot read are faults with their fix, never a silent skip or a traceback loop."""

    @pytest.mark.both_readers
    async def test_compressed_binlog_is_a_fault(
        self, mariadb_factory: MariaDBFactory, receiver: Receiver, start_pipeline: StartPipeline, decoder: str
    ) -> None:
        """log_bin_compress=ON: the fast reader stops at the first compressed rows event of a watched
        table; the library reader, which would skip them silently, as soon as it sees the setting."""
        server = mariadb_factory(options={"log_bin_compress": "ON", "log_bin_compress_min_len": 10})
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        with Vicidial.connect(server, database="asterisk", seed=31) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/z?id=--A--lead_id--B--")
            run = await start_pipeline(server, "asterisk", fault_recheck_s=0.5)
            await asyncio.to_thread(vici.add_lead, phone_number="3125550001", list_id=101)
        reader = run.service.reader
        assert reader is not None
        await wait_until_async(lambda: reader.statistics().fault is not None, WAIT_S)
        fault = reader.statistics().fault
        assert fault is not None and fault.kind is ReaderFault.COMPRESSED_EVENTS
        assert "log_bin_compress = OFF" in fault.message
        results = {r.name: r for r in await asyncio.to_thread(check.run_checks, run.config)}
        assert results["binlog_compression"].status is check.Status.FAIL
        assert targets(receiver, "/z") == []

    async def test_corrupted_event_is_reported_and_re_read(
        self, pipeline: Pipeline, tmp_path: Path
    ) -> None:  # fmt: skip
        """A byte flipped in transit (a loopback proxy): checksum mismatch → malformed_event with the
        position, no traceback; the re-check reads the event intact and the lead goes out once."""
        marker = b"3125557777"
        proxy = _CorruptingProxy(pipeline.server.port, marker)
        await proxy.start()
        try:
            pipeline.vicidial.add_list(101, "L", "C", "")
            pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/k?id=--A--lead_id--B--")
            cfg = make_config(pipeline.server, pipeline.database, tmp_path / "k.db", fault_recheck_s=0.5)
            cfg = dataclasses.replace(cfg, mysql=dataclasses.replace(cfg.mysql, port=proxy.port))
            run = await pipeline.start(config=cfg)
            reader = run.service.reader
            assert reader is not None
            lead = await asyncio.to_thread(
                pipeline.vicidial.add_lead, phone_number=marker.decode(), list_id=101
            )
            await wait_until_async(lambda: proxy.corrupted, WAIT_S)
            assert await wait_count(pipeline.receiver, "/k", 1, timeout_s=WAIT_S) == [f"/k?id={lead}"]
            _, metrics = await _get(run.service.http_port, "/metrics")
            assert _metric(metrics, "vicidial_cdc_reader_errors_total", 'kind="malformed_event"') >= 1
            await wait_until_async(lambda: reader.statistics().fault is None, WAIT_S)
        finally:
            await proxy.stop()


class _CorruptingProxy:
    """A loopback TCP proxy that flips the last byte of ``marker`` once, server → client."""

    def __init__(self, upstream_port: int, marker: bytes) -> None:
        self._upstream = upstream_port
        self._marker = marker
        self.corrupted = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, corrupt=False)),
            asyncio.create_task(self._pipe(up_reader, writer, corrupt=True)),
        ):
            self._tasks.add(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, corrupt: bool) -> None:
        tail = b""
        try:
            while data := await src.read(65536):
                if corrupt and not self.corrupted:
                    window = tail + data
                    at = window.find(self._marker)
                    if at >= 0:
                        flip = at + len(self._marker) - 1 - len(tail)
                        if flip >= 0:
                            data = data[:flip] + bytes([data[flip] ^ 0x01]) + data[flip + 1 :]
                            self.corrupted = True
                    tail = window[-len(self._marker) :]
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

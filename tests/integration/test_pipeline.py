"""End to end: VICIdial-shaped writes on a private MariaDB → the streamer → a real receiver.

Expected request targets are written by hand from the rules in vicidial.md, never
produced by the code under test. "Nothing was sent" is proven with a fence: a later
API lead on a fence list whose request must arrive; binlog order guarantees that
everything before it was processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from support.binlog import position as binlog_position
from support.expected import EXACT_TEMPLATE, exact_expected
from support.fence import WAIT_S, fence, setup_fence, targets, wait_count
from support.harness import Pipeline, StartPipeline, make_config
from support.mariadb import MariaDBFactory

from cdc.config import UrlsConfig
from cdc.reader.library import LibrarySource
from cdc.reader.raw import RawSource
from cdc.records import Position
from cdc.service import CHECKPOINT_EVERY_S, Service
from cdc.store import SqliteStore
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import StepRunner, Vicidial, run_interleaved

pytestmark = pytest.mark.mariadb

#: ``reader.decoder`` -> the reader the service must build for it.
READER_SOURCES = {"fast": RawSource, "library": LibrarySource}


async def _exact_url_case(
    server: PrivateMariaDB, database: str, receiver: Receiver, start: StartPipeline, decoder: str
) -> None:
    with Vicidial.connect(server, database=database, seed=1) as vici:
        vici.add_list(101, "Web leads", "CAMP1", "From the web")
        vici.set_system_url(EXACT_TEMPLATE.format(base=receiver.url))
        setup_fence(vici, receiver)
        run = await start(server, database)
        assert type(getattr(run.service.reader, "source", None)) is READER_SOURCES[decoder]
        lead_id = await asyncio.to_thread(
            vici.add_lead,
            phone_number="3125551234",
            list_id=101,
            first_name="  Jo Ann ",
            last_name="O'Neil&Co",
            vendor_lead_code="V/1",
            comments="a~b c",
        )
        got = await wait_count(receiver, "/new", 1)
        await fence(vici, receiver, "exact")
    assert targets(receiver, "/new") == [exact_expected(lead_id)]
    request = next(r for r in receiver.requests if r.target.startswith("/new"))
    assert request.method == "GET"
    sent_headers = {k.lower() for k, _ in request.headers}
    assert "user-agent" not in sent_headers and "accept-encoding" not in sent_headers
    assert got


@pytest.mark.both_readers
class TestExactRequest:
    """An add_lead produces one GET whose target is byte-identical to VICIdial's, with either reader."""

    async def test_exact_url(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        decoder: str,
    ) -> None:
        """Tokens, aliases, trim, urlencode, ENUM label, zero date, decimal, unknown token."""
        await _exact_url_case(mariadb, vicidial_db, receiver, start_pipeline, decoder)

    async def test_exact_url_without_row_metadata(
        self, mariadb_factory: MariaDBFactory, receiver: Receiver, start_pipeline: StartPipeline, decoder: str
    ) -> None:
        """Without binlog_row_metadata=FULL, names/ENUMs/charsets come from information_schema."""
        server = mariadb_factory(row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        await _exact_url_case(server, "asterisk", receiver, start_pipeline, decoder)


class TestNotApiInserts:
    """Inserts that add_lead did not make send nothing."""

    async def test_loader_update_lead_agent_and_failed_calls(self, pipeline: Pipeline) -> None:
        """Lead loader, update_lead insert_if_not_found, agent inserts and failed add_leads."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/sys?id=--A--lead_id--B--")
        pipeline.setup_fence()
        run = await pipeline.start(match_window_s=1.0)
        await asyncio.to_thread(pipeline.vicidial.loader_insert, phone_number="3000000001", list_id=101)
        await asyncio.to_thread(pipeline.vicidial.update_lead_insert, phone_number="3000000002", list_id=101)
        await asyncio.to_thread(pipeline.vicidial.agent_insert, phone_number="3000000003", list_id=101)
        await asyncio.to_thread(pipeline.vicidial.failed_add_lead, phone_number="3000000004", list_id=101)
        await asyncio.to_thread(pipeline.vicidial.noise, 200)
        await pipeline.fence("notapi")
        assert pipeline.targets("/sys") == []
        async with asyncio.timeout(WAIT_S):  # unmatched inserts expire, on binlog time, counted
            while run.service.stats.skipped.get("not_api", 0) < 2:
                await asyncio.to_thread(pipeline.vicidial.noise, 5)  # the dialer's writes advance binlog time
                await asyncio.sleep(0.1)
        assert run.service.stats.skipped.get("update_lead_insert") == 1


class TestHandOff:
    """At low rates each lead's row goes from the commit straight to the sender."""

    async def test_low_rate_leads_need_no_claim(self, pipeline: Pipeline) -> None:
        """Five leads written one at a time are delivered and recorded with zero claim transactions."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/ho?id=--A--lead_id--B--")
        run = await pipeline.start()
        for i in range(5):
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"312555{i:04d}", list_id=101)
            await pipeline.wait_count("/ho", i + 1)
            await asyncio.to_thread(pipeline.vicidial.noise, 20)
        store, sender, registry = run.service.store, run.service.sender, run.service.metrics.registry
        assert store is not None and sender is not None
        async with asyncio.timeout(WAIT_S):  # the last attempts are recorded by a later commit or the flusher
            while sum(c.delivered for c in await store.counts()) < 5:
                await asyncio.sleep(0.05)
        assert sender.claims == 0
        started = "vicidial_cdc_deliveries_started_total"
        assert registry.get_sample_value(started, {"path": "handoff"}) == 5.0
        assert registry.get_sample_value(started, {"path": "claim"}) == 0.0


def _read_to(service: Service) -> Position | None:
    """Where the service's reader has handed batches over up to."""
    return service.reader.statistics().position if service.reader is not None else None


class TestCheckpointCommits:
    """Dialer noise moves the stored checkpoint now and then, not with a transaction per step."""

    async def test_noise_is_committed_now_and_then(self, pipeline: Pipeline) -> None:
        """Steps of noise share few commits; an idle second, then the stop, store the newest checkpoint."""
        run = await pipeline.start()
        store, service = run.service.store, run.service
        assert store is not None
        writes, batches, started = (
            service.status()["store"]["writes"],
            service.stats.batches,
            time.monotonic(),
        )
        for _ in range(30):
            await asyncio.to_thread(pipeline.vicidial.noise, 30)
            await asyncio.sleep(0.05)
        last = await asyncio.to_thread(binlog_position, pipeline.server)
        async with asyncio.timeout(WAIT_S):  # read up to the last noise
            while service.stats.batches == batches or (_read_to(service) or last) < last:
                await asyncio.sleep(0.05)
        steps = service.stats.batches - batches
        commits = service.status()["store"]["writes"] - writes
        elapsed = time.monotonic() - started
        assert steps >= 10
        assert commits <= elapsed / CHECKPOINT_EVERY_S + 2 and commits < steps, (commits, steps, elapsed)
        async with asyncio.timeout(WAIT_S):  # idle: the newest checkpoint is stored
            while (
                await store.load_checkpoint()
            ) != service.stats.checkpoint or service.stats.checkpoint < last:
                await asyncio.sleep(0.1)
        await asyncio.to_thread(pipeline.vicidial.noise, 30)
        moved = await asyncio.to_thread(binlog_position, pipeline.server)
        async with asyncio.timeout(WAIT_S):
            while (_read_to(service) or moved) < moved:
                await asyncio.sleep(0.05)
        await run.stop()
        stored = SqliteStore(Path(run.config.state.path))
        stored.open()
        try:
            checkpoint = stored.load_checkpoint()
        finally:
            stored.close()
        assert checkpoint is not None and checkpoint >= moved  # the stop stored the newest one


class TestPrecedence:
    """List value, blank → system, ---DISABLED--- → none, short and relative URLs are not sent."""

    async def test_levels(self, pipeline: Pipeline) -> None:
        """One lead per list, each case of VICIdial's precedence."""
        base = pipeline.receiver.url
        for list_id in (201, 202, 203, 204, 205, 206, 207):
            pipeline.vicidial.add_list(list_id, f"L{list_id}", "C", "")
        pipeline.vicidial.set_system_url(f"{base}/sys?list=--A--list_id--B--")
        pipeline.vicidial.set_list_url(202, f"{base}/own?list=--A--list_id--B--")
        pipeline.vicidial.set_list_url(203, "")
        pipeline.vicidial.set_list_url(204, "---DISABLED---")
        pipeline.vicidial.set_list_url(205, "http://a.b")
        pipeline.vicidial.set_list_url(206, "/relative/path?list=--A--list_id--B--")
        pipeline.vicidial.set_list_url(207, "ftp://example.invalid/x?list=--A--list_id--B--")
        pipeline.setup_fence()
        run = await pipeline.start()
        for list_id in (201, 202, 203, 204, 205, 206, 207):
            await asyncio.to_thread(
                pipeline.vicidial.add_lead, phone_number=f"31255{list_id}00", list_id=list_id
            )
        await pipeline.fence("levels")
        assert sorted(pipeline.targets("/sys")) == ["/sys?list=201", "/sys?list=203"]
        assert pipeline.targets("/own") == ["/own?list=202"]
        skipped = run.service.stats.skipped
        assert skipped.get("list_disabled") == 1
        assert skipped.get("url_too_short") == 1
        assert skipped.get("url_relative") == 1
        assert skipped.get("url_scheme") == 1

    async def test_config_file_urls_win(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """URLs in the config file override VICIdial's rows level by level."""

        base = pipeline.receiver.url
        for list_id in (301, 302, 303):
            pipeline.vicidial.add_list(list_id, f"L{list_id}", "C", "")
        pipeline.vicidial.set_system_url(f"{base}/vsys?list=--A--list_id--B--")
        pipeline.vicidial.set_list_url(302, f"{base}/vlist?list=--A--list_id--B--")
        pipeline.setup_fence()
        cfg = dataclasses.replace(
            make_config(pipeline.server, pipeline.database, tmp_path / "config-urls.db"),
            urls=UrlsConfig(system=f"{base}/csys?list=--A--list_id--B--", lists={303: "---DISABLED---"}),
        )
        await pipeline.start(config=cfg)
        for list_id in (301, 302, 303):
            await asyncio.to_thread(
                pipeline.vicidial.add_lead, phone_number=f"31255{list_id}00", list_id=list_id
            )
        await pipeline.fence("config")
        assert pipeline.targets("/csys") == ["/csys?list=301"]
        assert pipeline.targets("/vlist") == ["/vlist?list=302"]
        assert pipeline.targets("/vsys") == []


class TestLiveSettings:
    """Settings changed through SQL apply to the next lead, without restart or polling."""

    async def test_url_and_list_changes(self, pipeline: Pipeline) -> None:
        """New list URL, changed list name, new system URL, then a disabled list."""
        base = pipeline.receiver.url
        pipeline.vicidial.add_list(101, "Before", "C", "")
        pipeline.vicidial.set_system_url(f"{base}/one?n=--A--list_name--B--")
        pipeline.setup_fence()
        await pipeline.start()
        await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101)
        await pipeline.wait_count("/one", 1)
        pipeline.vicidial.update_list(101, name="After")
        pipeline.vicidial.set_system_url(f"{base}/two?n=--A--list_name--B--")
        await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550002", list_id=101)
        await pipeline.wait_count("/two", 1)
        pipeline.vicidial.set_list_url(101, "---DISABLED---")
        await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550003", list_id=101)
        await pipeline.fence("live")
        assert pipeline.targets("/one") == ["/one?n=Before"]
        assert pipeline.targets("/two") == ["/two?n=After"]


class TestConcurrency:
    """Interleaved add_lead calls on many connections are each matched to their own lead."""

    async def test_fifty_interleaved(self, pipeline: Pipeline) -> None:
        """50 add_lead sequences, statement by statement in random order, plus loader inserts."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(
            f"{pipeline.receiver.url}/i?id=--A--lead_id--B--&ph=--A--phone_number--B--"
        )
        pipeline.setup_fence()
        await pipeline.start()

        def interleave() -> list[int]:
            with contextlib.ExitStack() as stack:
                sims = [
                    stack.enter_context(Vicidial.connect(pipeline.server, database=pipeline.database, seed=i))
                    for i in range(50)
                ]
                runners: list[StepRunner] = []
                for i, sim in enumerate(sims):
                    if i % 5 == 4:
                        runners.append(
                            sim.runner(sim.loader_insert_steps(phone_number=f"4{i:09d}", list_id=101))
                        )
                    runners.append(sim.runner(sim.add_lead_steps(phone_number=f"3{i:09d}", list_id=101)))
                return run_interleaved(runners, rng=random.Random(7))

        results = await asyncio.to_thread(interleave)
        await pipeline.fence("fifty")
        got = pipeline.targets("/i")
        with contextlib.closing(pipeline.server.connect(db=pipeline.database)) as conn, conn.cursor() as cur:
            cur.execute("SELECT lead_id, phone_number FROM vicidial_list WHERE phone_number LIKE '3%'")
            expected = sorted(f"/i?id={lead_id}&ph={phone}" for lead_id, phone in cur.fetchall())
        assert len(expected) == 50
        assert sorted(got) == expected
        assert len(results) >= 50


class TestCharsets:
    """Non-ASCII names arrive as VICIdial's PHP would encode them, on latin1 and utf8 databases."""

    async def test_utf8_database(self, pipeline: Pipeline) -> None:
        """use_non_latin=1 on utf8mb4: UTF-8 bytes urlencoded."""
        pipeline.vicidial.set_system(use_non_latin=True)
        pipeline.vicidial.add_list(101, "Lista Año", "C", "")
        pipeline.vicidial.set_system_url(
            f"{pipeline.receiver.url}/u?fn=--A--first_name--B--&ln=--A--last_name--B--&l=--A--list_name--B--"
        )
        pipeline.setup_fence()
        await pipeline.start()
        await asyncio.to_thread(
            pipeline.vicidial.add_lead,
            phone_number="3125550001",
            list_id=101,
            first_name="José",
            last_name="Nguyễn",
        )
        await pipeline.fence("utf8")
        assert pipeline.targets("/u") == ["/u?fn=Jos%C3%A9&ln=Nguy%E1%BB%85n&l=Lista+A%C3%B1o"]

    @pytest.mark.both_readers
    async def test_latin1_database(
        self, mariadb_factory: MariaDBFactory, receiver: Receiver, start_pipeline: StartPipeline, decoder: str
    ) -> None:
        """use_non_latin=0 on a latin1 server: double-encoded storage, same bytes on the wire."""
        server = mariadb_factory(charset="latin1", row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk", charset="latin1")
        with Vicidial.connect(server, database="asterisk", connection_charset="latin1", seed=3) as vici:
            vici.add_list(101, "Lista", "C", "")
            vici.set_system_url(f"{receiver.url}/l?fn=--A--first_name--B--&ln=--A--last_name--B--")
            setup_fence(vici, receiver)
            await start_pipeline(server, "asterisk")
            await asyncio.to_thread(
                vici.add_lead, phone_number="3125550001", list_id=101, first_name="José", last_name="Müller€"
            )
            await fence(vici, receiver, "latin1")
        assert targets(receiver, "/l") == ["/l?fn=Jos%C3%A9&ln=M%C3%BCller%E2%82%AC"]


class TestRestarts:
    """The reader resumes from its stored position and survives a MariaDB restart."""

    async def test_resume_after_streamer_restart(self, pipeline: Pipeline) -> None:
        """Leads written while the streamer was down are sent after it restarts, once each."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/r?id=--A--lead_id--B--")
        pipeline.setup_fence()
        first = await pipeline.start()
        ids = [
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255500{i}", list_id=101)
            for i in range(3)
        ]
        await pipeline.wait_count("/r", 3)
        await first.stop()
        ids += [
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255501{i}", list_id=101)
            for i in range(3)
        ]
        await asyncio.to_thread(pipeline.vicidial.noise, 100)
        await pipeline.start(start="earliest")  # the stored checkpoint wins
        await pipeline.wait_count("/r", 6)
        await pipeline.fence("resume")
        assert Counter(pipeline.targets("/r")) == Counter(f"/r?id={i}" for i in ids)

    @pytest.mark.both_readers
    async def test_mariadb_restart_under_reader(
        self, mariadb_factory: MariaDBFactory, receiver: Receiver, start_pipeline: StartPipeline, decoder: str
    ) -> None:
        """A server restart mid-stream: the reader reconnects from the last group end."""
        server = mariadb_factory()
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        vici = Vicidial.connect(server, database="asterisk", seed=5)
        vici.add_list(101, "L", "C", "")
        vici.set_system_url(f"{receiver.url}/m?id=--A--lead_id--B--")
        setup_fence(vici, receiver)
        run = await start_pipeline(server, "asterisk")
        assert type(getattr(run.service.reader, "source", None)) is READER_SOURCES[decoder]
        ids = [
            await asyncio.to_thread(vici.add_lead, phone_number=f"31255500{i}", list_id=101) for i in range(3)
        ]
        await wait_count(receiver, "/m", 3)
        vici.close()
        await asyncio.to_thread(server.restart)
        vici = Vicidial.connect(server, database="asterisk", seed=6)
        try:
            ids += [
                await asyncio.to_thread(vici.add_lead, phone_number=f"31255501{i}", list_id=101)
                for i in range(3)
            ]
            await wait_count(receiver, "/m", 6)
            await fence(vici, receiver, "restart")
        finally:
            vici.close()
        assert Counter(targets(receiver, "/m")) == Counter(f"/m?id={i}" for i in ids)
        assert run.service.reader is not None and run.service.reader.statistics().reconnects >= 1


@pytest.mark.both_readers
class TestNoise:
    """Busy-dialer tables are not decoded and send nothing."""

    async def test_noise_ignored(self, pipeline: Pipeline) -> None:
        """Thousands of noise rows around one lead: one request, no noise table decoded."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/n?id=--A--lead_id--B--")
        pipeline.setup_fence()
        run = await pipeline.start()
        await asyncio.to_thread(pipeline.vicidial.noise, 1000)
        lead_id = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101)
        await asyncio.to_thread(pipeline.vicidial.noise, 1000)
        await pipeline.fence("noise")
        assert pipeline.targets("/n") == [f"/n?id={lead_id}"]
        assert run.service.reader is not None
        decoded = {table for table, _op in run.service.reader.statistics().rows}
        assert decoded <= {"vicidial_list", "vicidial_api_log", "vicidial_url_multi", "vicidial_lists"}
        assert "vicidial_users" not in decoded

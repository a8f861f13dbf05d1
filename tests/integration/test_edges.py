"""Edge cases of the core pipeline: custom fields, DDL, rotation, start modes, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from pathlib import Path

import pytest
from support.fence import fence, setup_fence, targets, wait_count
from support.harness import Pipeline, StartPipeline
from support.mariadb import MariaDBFactory

from cdc.errors import SchemaError
from cdc.store.sqlite import SqliteStore
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb


class TestCustomFields:
    """Custom tokens come from the custom_<list_id> row the same add_lead inserted."""

    async def test_custom_tokens_and_entry_list_id(self, pipeline: Pipeline) -> None:
        """Plain and encrypted fields, entry_list_id after its UPDATE, literal tokens without a row."""
        pipeline.vicidial.add_list(101, "Custom", "C", "")
        pipeline.vicidial.add_custom_fields(101, [("color", False), ("ssn", True)])
        pipeline.vicidial.set_list_url(
            101,
            f"{pipeline.receiver.url}/c?id=--A--lead_id--B--&color=--A--color--B--&ssn=--A--ssn--B--"
            "&e=--A--entry_list_id--B--",
        )
        pipeline.setup_fence()
        await pipeline.start()
        with_row = await asyncio.to_thread(
            pipeline.vicidial.add_lead,
            phone_number="3125550001",
            list_id=101,
            custom={"color": "dark red", "ssn": "123"},
        )
        without_row = await asyncio.to_thread(
            pipeline.vicidial.add_lead, phone_number="3125550002", list_id=101
        )
        await pipeline.wait_count("/c", 2, busy=pipeline.vicidial)  # held custom_wait_s of binlog time
        await pipeline.fence("custom")
        assert sorted(pipeline.targets("/c")) == sorted(
            [
                f"/c?id={with_row}&color=dark+red&ssn=&e=101",
                f"/c?id={without_row}&color=--A--color--B--&ssn=--A--ssn--B--&e=0",
            ]
        )

    @pytest.mark.both_readers
    async def test_custom_fields_added_while_running(self, pipeline: Pipeline, decoder: str) -> None:
        """A list gets custom fields after start: its new table's rows are read at once.

        The reader runs ahead of the pipeline (with the fast reader's 20 ms linger the
        CREATE, the field rows and the lead arrive in one read), so custom tables are
        watched by name, never only after the pipeline has seen the new fields.
        """
        pipeline.vicidial.add_list(102, "Later", "C", "")
        pipeline.vicidial.set_list_url(
            102, f"{pipeline.receiver.url}/late?id=--A--lead_id--B--&size=--A--size--B--"
        )
        pipeline.setup_fence()
        await pipeline.start()
        await pipeline.fence("before")
        pipeline.vicidial.add_custom_fields(102, [("size", False)])
        lead = await asyncio.to_thread(
            pipeline.vicidial.add_lead, phone_number="3125550003", list_id=102, custom={"size": "XL"}
        )
        await pipeline.wait_count("/late", 1)
        assert pipeline.targets("/late") == [f"/late?id={lead}&size=XL"]


@pytest.mark.both_readers
class TestSchemaChanges:
    """DDL on a watched table is followed, with and without binlog column metadata."""

    @pytest.mark.parametrize("metadata", ["FULL", "NO_LOG"])
    async def test_alter_vicidial_list(
        self,
        metadata: str,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
    ) -> None:
        """A column added to vicidial_list mid-stream (as VICIdial upgrades do) keeps names right."""
        server = mariadb_factory(row_metadata=metadata)
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        with Vicidial.connect(server, database="asterisk", seed=2) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(
                f"{receiver.url}/d?id=--A--lead_id--B--&ph=--A--phone_number--B--&o=--A--owner--B--"
            )
            setup_fence(vici, receiver)
            await start_pipeline(server, "asterisk")
            first = await asyncio.to_thread(
                vici.add_lead, phone_number="3125550001", list_id=101, owner="ann"
            )
            await wait_count(receiver, "/d", 1)
            vici.execute("ALTER TABLE vicidial_list ADD COLUMN new_flag VARCHAR(5) DEFAULT 'x' AFTER lead_id")
            second = await asyncio.to_thread(
                vici.add_lead, phone_number="3125550002", list_id=101, owner="bob"
            )
            await wait_count(receiver, "/d", 2)
            await fence(vici, receiver, "ddl")
        assert targets(receiver, "/d") == [
            f"/d?id={first}&ph=3125550001&o=ann",
            f"/d?id={second}&ph=3125550002&o=bob",
        ]


@pytest.mark.both_readers
class TestRotationAndStart:
    """Binlog rotation, and the configurable start positions."""

    async def test_rotation_mid_stream(self, pipeline: Pipeline) -> None:
        """FLUSH BINARY LOGS between leads loses and repeats nothing."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/rot?id=--A--lead_id--B--")
        pipeline.setup_fence()
        await pipeline.start()
        ids = []
        for i in range(4):
            ids.append(
                await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255500{i}", list_id=101)
            )
            await asyncio.to_thread(pipeline.server.flush_binary_logs)
        await pipeline.wait_count("/rot", 4)
        await pipeline.fence("rot")
        assert Counter(pipeline.targets("/rot")) == Counter(f"/rot?id={i}" for i in ids)

    async def test_start_at_file_pos_and_gtid(
        self,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """start=FILE:POS and start=GTID begin after that point; a restart resumes by file:pos."""
        server = mariadb_factory()
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk")
        with Vicidial.connect(server, database="asterisk", seed=4) as vici:
            vici.add_list(101, "L", "C", "")
            vici.set_system_url(f"{receiver.url}/s?id=--A--lead_id--B--")
            setup_fence(vici, receiver)
            before = vici.add_lead(phone_number="3125550001", list_id=101)
            with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
                cur.execute("SHOW MASTER STATUS")
                file, pos = cur.fetchone()[:2]
                cur.execute("SELECT @@gtid_binlog_pos")
                gtid = cur.fetchone()[0]
            after = vici.add_lead(phone_number="3125550002", list_id=101)

            run = await start_pipeline(server, "asterisk", state=tmp_path / "a.db", start=f"{file}:{pos}")
            await fence(vici, receiver, "filepos")
            assert targets(receiver, "/s") == [f"/s?id={after}"]
            await run.stop()

            receiver.requests.clear()
            run = await start_pipeline(server, "asterisk", state=tmp_path / "b.db", start=gtid)
            await fence(vici, receiver, "gtid")
            assert targets(receiver, "/s") == [f"/s?id={after}"]
            await run.stop()
            assert run.service.stats.checkpoint is not None  # file:pos recorded after a GTID start

            later = vici.add_lead(phone_number="3125550003", list_id=101)
            await start_pipeline(server, "asterisk", state=tmp_path / "b.db", start=gtid)
            await fence(vici, receiver, "gtid-resume")
            assert Counter(targets(receiver, "/s")) == Counter([f"/s?id={after}", f"/s?id={later}"])
        assert before not in (after, later)


class TestBadInput:
    """Bad input gets a clear error and loses nothing."""

    async def test_missing_table(
        self, mariadb: PrivateMariaDB, vicidial_db: str, start_pipeline: StartPipeline
    ) -> None:
        """A VICIdial table missing at start: SchemaError naming the table."""
        with contextlib.closing(mariadb.connect(db=vicidial_db)) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE vicidial_lists_fields")
        with pytest.raises(SchemaError, match="vicidial_lists_fields"):
            await start_pipeline(mariadb, vicidial_db)

    async def test_malformed_url_is_skipped_with_reason(self, pipeline: Pipeline) -> None:
        """A URL that cannot be parsed is counted as url_invalid and the stream goes on."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_list_url(101, "http://bad host.example:99999/x?id=--A--lead_id--B--")
        pipeline.setup_fence()
        run = await pipeline.start()
        await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101)
        await pipeline.fence("malformed")
        assert run.service.stats.skipped.get("url_invalid") == 1

    async def test_dead_endpoint_keeps_delivery(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """Connection refused: the delivery stays in the outbox for a retry, with the error recorded."""
        dead = Receiver()
        await dead.start()
        dead_url = dead.url
        await dead.stop()  # nothing listens on that port now
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_list_url(101, f"{dead_url}/gone?id=--A--lead_id--B--")
        pipeline.setup_fence()
        run = await pipeline.start(state=tmp_path / "dead.db")
        lead = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101)
        await pipeline.fence("dead")
        host_port = dead_url.split("//", 1)[1]
        labels = {"endpoint": host_port, "outcome": "retry", "sender": "cdc"}
        async with asyncio.timeout(30):
            while not run.service.metrics.registry.get_sample_value("vicidial_cdc_deliveries_total", labels):
                await asyncio.sleep(0.1)
        await run.stop()
        store = SqliteStore(tmp_path / "dead.db")
        store.open()
        try:
            assert store.list_dead(limit=100) == []  # not dead: waiting for its retry
            pending = store.counts()
        finally:
            store.close()
        total = {c.endpoint_id: c.pending + c.in_flight for c in pending}
        assert total[host_port] >= 1
        assert lead > 0


class TestPrivacy:
    """Personal data never reaches the logs."""

    async def test_sentinel_phone_not_logged(
        self, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
    ) -> None:
        """At DEBUG level, no record carries the phone, the name or the URL's query."""
        caplog.set_level(logging.DEBUG)
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(
            f"{pipeline.receiver.url}/p?ph=--A--phone_number--B--&n=--A--last_name--B--"
        )
        pipeline.vicidial.add_list(102, "Off", "C", "")
        pipeline.vicidial.set_list_url(102, "---DISABLED---")
        pipeline.setup_fence()
        await pipeline.start()
        await asyncio.to_thread(
            pipeline.vicidial.add_lead, phone_number="8675309123", list_id=101, last_name="Sentinelson"
        )
        await asyncio.to_thread(
            pipeline.vicidial.add_lead, phone_number="8675309124", list_id=102, last_name="Sentinelson"
        )
        await pipeline.wait_count("/p", 1)
        await pipeline.fence("privacy")
        text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
        assert caplog.records, "the pipeline logged nothing at all: the check would be empty"
        for secret in ("8675309", "Sentinelson", "ph=", "s3cret-api-pass"):
            assert secret not in text

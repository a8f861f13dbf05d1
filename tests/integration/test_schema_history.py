"""Schema changes of watched tables never stop the stream (issue 11, "a VICIdial upgrade").

A burst shaped like VICIdial's upgrade script (``ALTER TABLE system_settings ADD …``
then ``UPDATE system_settings``, again and again, plus ``ALTER TABLE`` on
``vicidial_list``, ``vicidial_lists`` and ``vicidial_lists_fields``) runs while add_lead
leads arrive: with the streamer following live, and with the streamer stopped during
the burst and restarted after. Both readers, with ``binlog_row_metadata`` FULL and at
the server default (NO_LOG). Every lead goes out with its exact URL and the settings
end as the burst left them. Rows that no known definition can decode stop the reader
with a clear ``schema_ambiguous`` fault instead of a silent retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from support.binlog import position
from support.fence import fence, setup_fence, targets, wait_count
from support.harness import StartPipeline
from support.mariadb import MariaDBFactory, mysql_config

from cdc.errors import ReaderFault
from cdc.reader import Reader, ReaderFactory
from cdc.records import Position, RowChange, SourceItem
from cdc.service import LEAD_TABLES
from cdc.settings import SETTINGS_TABLES
from cdc.store.sqlite import SqliteStore
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

DATABASE = "asterisk"
ROUNDS = 6
BASE_VERSION = 1600
#: Column types VICIdial's upgrades add to system_settings, one per round.
ADDED_TYPES = (
    "VARCHAR(20) DEFAULT '0'",
    "ENUM('0','1','2') DEFAULT '0'",
    "INT(9) UNSIGNED DEFAULT '0'",
    "DATETIME",
    "TEXT",
    "SMALLINT(5) DEFAULT '-1'",
)


def _setup(server: PrivateMariaDB, vici: Vicidial, receiver_url: str) -> None:
    vici.add_list(101, "Web", "C", "")
    vici.add_list(102, "Second", "C", "")
    vici.set_system(db_schema_version=BASE_VERSION)
    vici.set_system_url(
        f"{receiver_url}/up?id=--A--lead_id--B--&ph=--A--phone_number--B--&o=--A--owner--B--"
        "&l=--A--list_name--B--&e=--A--entry_list_id--B--"
    )
    vici.set_list_url(102, f"{receiver_url}/up2?id=--A--lead_id--B--&l=--A--list_name--B--&c=--A--color--B--")


def upgrade_burst(vici: Vicidial) -> list[str]:
    """VICIdial's upgrade script, shortened, with add_lead calls between its statements.

    Returns the request target each lead must produce.
    """
    expected: list[str] = []
    n = 0

    def lead_101() -> None:
        nonlocal n
        n += 1
        phone, owner = f"31255510{n:02d}", f"o{n}"
        lead_id = vici.add_lead(phone_number=phone, list_id=101, owner=owner)
        expected.append(f"/up?id={lead_id}&ph={phone}&o={owner}&l=Web&e=0")

    def lead_102(color: str) -> None:
        nonlocal n
        n += 1
        lead_id = vici.add_lead(phone_number=f"31255520{n:02d}", list_id=102, custom={"color": color})
        expected.append(f"/up2?id={lead_id}&l=Upgraded+list&c={color}")

    for k in range(1, ROUNDS + 1):
        lead_101()
        vici.execute(f"ALTER TABLE system_settings ADD upgrade_{k} {ADDED_TYPES[k - 1]}")
        vici.execute(f"UPDATE system_settings SET db_schema_version='{BASE_VERSION + k}'")
        if k == 2:
            vici.execute("ALTER TABLE vicidial_list ADD COLUMN upgrade_lead_a VARCHAR(10) DEFAULT 'x'")
            lead_101()
        if k == 3:
            vici.execute("ALTER TABLE vicidial_lists ADD upgrade_list ENUM('Y','N') DEFAULT 'N'")
            vici.execute(
                "UPDATE vicidial_lists SET list_name='Upgraded list', upgrade_list='Y' WHERE list_id=102"
            )
            vici.execute("ALTER TABLE vicidial_lists_fields ADD upgrade_field VARCHAR(5) DEFAULT ''")
            vici.add_custom_fields(102, [("color", False)])
            lead_102("red")
        if k == 4:
            vici.execute("ALTER TABLE vicidial_list ADD COLUMN upgrade_lead_b INT(9) UNSIGNED DEFAULT '0'")
            lead_101()
            lead_102("blue")
        lead_101()
    return expected


@pytest.mark.both_readers
@pytest.mark.parametrize("metadata", ["FULL", "NO_LOG"])
class TestUpgradeBurst:
    """An upgrade-shaped burst of DDL and settings updates while leads arrive."""

    async def test_live(
        self,
        metadata: str,
        decoder: str,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
    ) -> None:
        """Streamer following live: every lead delivered exactly, settings as the burst left them."""
        server = mariadb_factory(row_metadata=metadata)
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, DATABASE)
        with Vicidial.connect(server, database=DATABASE, seed=11) as vici:
            _setup(server, vici, receiver.url)
            setup_fence(vici, receiver)
            run = await start_pipeline(server, DATABASE)
            await fence(vici, receiver, "before")
            expected = await asyncio.to_thread(upgrade_burst, vici)
            await wait_count(receiver, "/up", len(expected))
            await fence(vici, receiver, "after")
        assert sorted(targets(receiver, "/up")) == sorted(expected)
        assert run.service.settings.snapshot().system.db_schema_version == BASE_VERSION + ROUNDS

    async def test_stopped_during_the_burst(
        self,
        metadata: str,
        decoder: str,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """Streamer stopped before the burst, restarted after: old rows read as they were written."""
        server = mariadb_factory(row_metadata=metadata)
        state = tmp_path / "state.db"
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, DATABASE)
        with Vicidial.connect(server, database=DATABASE, seed=12) as vici:
            _setup(server, vici, receiver.url)
            setup_fence(vici, receiver)
            run = await start_pipeline(server, DATABASE, state=state)
            await fence(vici, receiver, "before")
            await run.stop()
            expected = await asyncio.to_thread(upgrade_burst, vici)
            run = await start_pipeline(server, DATABASE, state=state)
            await wait_count(receiver, "/up", len(expected))
            await fence(vici, receiver, "after")
            await run.stop()
        assert sorted(targets(receiver, "/up")) == sorted(expected)
        assert run.service.settings.snapshot().system.db_schema_version == BASE_VERSION + ROUNDS
        store = SqliteStore(state)
        store.open()
        try:
            history = store.schema_history(DATABASE)
        finally:
            store.close()
        # Learned at the first start, at the restart and at the DDL events it read.
        assert len([t for t, _, _ in history if t == "vicidial_list"]) >= 2
        assert len([t for t, _, _ in history if t == "system_settings"]) >= 2


WATCHED = frozenset({*LEAD_TABLES, *SETTINGS_TABLES})


@pytest.mark.both_readers
class TestAmbiguousRows:
    """Row images that no known definition decodes with certainty."""

    def _write(self, server: PrivateMariaDB) -> tuple[Position, int]:
        """A column added in the middle, a lead written with it, the column dropped again."""
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, DATABASE)
        start = position(server)
        with Vicidial.connect(server, database=DATABASE, seed=13) as vici:
            vici.add_list(101, "Web", "C", "")
            vici.execute("ALTER TABLE vicidial_list ADD COLUMN mid_flag VARCHAR(5) DEFAULT 'm' AFTER lead_id")
            lead_id = vici.add_lead(phone_number="3125550042", list_id=101)
            vici.execute("ALTER TABLE vicidial_list DROP COLUMN mid_flag")
        return start, lead_id

    def _reader(self, reader_class: ReaderFactory, server: PrivateMariaDB, start: Position) -> Reader:
        return reader_class(
            mysql_config(server), WATCHED, start, reconnect_initial_s=0.05, reconnect_max_s=0.1
        )

    async def test_without_metadata_the_reader_stops_with_the_fix(
        self, reader_class: ReaderFactory, mariadb_factory: MariaDBFactory
    ) -> None:
        """NO_LOG: a schema_ambiguous fault naming FULL metadata and where to resume; no retry loop."""
        server = mariadb_factory(row_metadata="NO_LOG")
        start, _ = self._write(server)
        resume = position(server)
        reader = self._reader(reader_class, server, start)
        reader.start()
        try:
            # The reader reports the fault and waits (re-checking every reader.fault_recheck_s).
            async with asyncio.timeout(60):
                while reader.statistics().fault is None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await reader.get_batch()
        finally:
            await reader.stop()
        fault = reader.statistics().fault
        assert fault is not None and fault.kind is ReaderFault.SCHEMA_AMBIGUOUS
        message = fault.message
        assert f"{DATABASE}.vicidial_list" in message
        assert "binlog_row_metadata=FULL" in message and "MariaDB >= 10.5" in message
        assert f"vicidial-cdc run --start {resume}" in message
        assert "vicidial-cdc replay --since" in message
        assert reader.statistics().reconnects == 0

    async def test_with_metadata_the_rows_decode(
        self, reader_class: ReaderFactory, mariadb_factory: MariaDBFactory
    ) -> None:
        """FULL: the binlog names the columns, so the same rows decode (middle column included)."""
        server = mariadb_factory(row_metadata="FULL")
        start, lead_id = self._write(server)
        reader = self._reader(reader_class, server, start)
        reader.start()
        rows: list[SourceItem] = []
        try:
            async with asyncio.timeout(60):
                while not any(isinstance(r, RowChange) and r.table == "vicidial_list" for r in rows):
                    rows.extend(await reader.get_batch())
        finally:
            await reader.stop()
        lead = next(r for r in rows if isinstance(r, RowChange) and r.table == "vicidial_list")
        values = dict(lead.values)
        assert (values["lead_id"], values["mid_flag"], values["phone_number"]) == (lead_id, "m", "3125550042")

"""No lead lost: late api_log rows, unreadable custom tables, leads whose processing raises.

A real ``LOCK TABLES vicidial_api_log WRITE`` held on one connection while add_lead runs
on another (its api_log INSERT blocks on the lock, as on a real VICIdial), and binlog
time advanced past the match window by the dialer's other writes; then UNLOCK.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.cli import run_cli, write_config
from support.expected import EXACT_TEMPLATE, exact_expected
from support.fence import WAIT_S, fence, setup_fence, targets, wait_count
from support.harness import Pipeline, StartPipeline, make_config
from support.state import dead_letters
from support.waiting import wait_until_async

from cdc import endpoints
from cdc.config import Config, Secret
from cdc.ops.check import READ_TABLES
from cdc.pipeline import FAILED_ENDPOINT
from cdc.records import ApiLead
from cdc.settings import SettingsSnapshot
from cdc.store import DeliveryState
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb


def _metric(run_service: object, name: str, labels: Mapping[str, str] | None = None) -> float:
    registry = run_service.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(name, dict(labels or {}))
    return float(value or 0.0)


@pytest.mark.both_readers
class TestLateApiLogRow:
    """An add_lead whose api_log row is held back by a MyISAM table lock is still delivered."""

    async def test_locked_api_log_past_the_window(self, pipeline: Pipeline, decoder: str) -> None:
        """The insert expires as not_api, the late SUCCESS fetches it: VICIdial's exact request."""
        pipeline.vicidial.add_list(101, "Web leads", "CAMP1", "From the web")
        pipeline.vicidial.set_system_url(EXACT_TEMPLATE.format(base=pipeline.receiver.url))
        pipeline.setup_fence()
        run = await pipeline.start(match_window_s=1.0)
        with (
            Vicidial.connect(pipeline.server, database=pipeline.database, seed=11) as locker,
            Vicidial.connect(pipeline.server, database=pipeline.database, seed=12) as api,
        ):
            locker.execute("LOCK TABLES vicidial_api_log WRITE")
            adding = asyncio.ensure_future(
                asyncio.to_thread(
                    api.add_lead,
                    phone_number="3125551234",
                    list_id=101,
                    first_name="  Jo Ann ",
                    last_name="O'Neil&Co",
                    vendor_lead_code="V/1",
                    comments="a~b c",
                )
            )
            try:
                async with asyncio.timeout(WAIT_S):  # the dialer writes on; binlog time passes
                    while run.service.stats.skipped.get("not_api", 0) < 1:
                        await asyncio.to_thread(pipeline.vicidial.noise, 5, api_log=False)
                        await asyncio.sleep(0.2)
                assert not adding.done()  # add_lead is still blocked on the api_log lock
            finally:
                locker.execute("UNLOCK TABLES")
            lead_id = await adding
        await pipeline.wait_count("/new", 1)
        await pipeline.fence("late")
        assert pipeline.targets("/new") == [exact_expected(lead_id)]
        assert _metric(run.service, "vicidial_cdc_leads_late_total", {"outcome": "fetched"}) == 1


def _boom_fan_out(real: object) -> object:
    """fan_out that raises for the lead named Boom (a stand-in for a bug or bad data)."""

    def fan_out(lead: ApiLead, snapshot: SettingsSnapshot, *args: object, **kwargs: object) -> object:
        if lead.lead.get("first_name") == "Boom":
            raise ZeroDivisionError("injected")
        return real(lead, snapshot, *args, **kwargs)  # type: ignore[operator]

    return fan_out


@pytest.fixture
def boom_router(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(endpoints, "fan_out", _boom_fan_out(endpoints.fan_out))
    yield


class TestBadLead:
    """A lead whose processing raises becomes a dead letter; the stream goes on."""

    async def test_processing_error_dead_letters_the_lead(
        self, pipeline: Pipeline, boom_router: None
    ) -> None:
        """Boom is dead-lettered with its reason, Fine (after it) and the fence are delivered."""
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/ok?fn=--A--first_name--B--")
        pipeline.setup_fence()
        run = await pipeline.start()
        boom = await asyncio.to_thread(
            pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101, first_name="Boom"
        )
        await asyncio.to_thread(
            pipeline.vicidial.add_lead, phone_number="3125550002", list_id=101, first_name="Fine"
        )
        await pipeline.fence("bad")
        assert pipeline.targets("/ok") == ["/ok?fn=Fine"]
        assert not run.task.done()
        [dead] = dead_letters(Path(run.config.state.path), lead_id=boom)
        assert dead.delivery.endpoint_id == FAILED_ENDPOINT
        assert dead.state is DeliveryState.DEAD
        assert dead.last_error.startswith("processing_error: ZeroDivisionError")
        assert _metric(run.service, "vicidial_cdc_leads_failed_total") == 1


UNREAD_USER, UNREAD_PASSWORD = "cdc_unread", "unread-Password-1"


@contextlib.contextmanager
def _per_table_user(server: PrivateMariaDB) -> Iterator[None]:
    """An account with per-table SELECT grants (the old advice, still met on real sites):
    a custom table created later is not readable to it."""
    account = f"'{UNREAD_USER}'@'127.0.0.1'"
    grants = [f"GRANT SELECT ON `asterisk`.`{table}` TO {account}" for table in READ_TABLES]
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER {account} IDENTIFIED BY '{UNREAD_PASSWORD}'")
        cur.execute(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}")
        for grant in grants:
            cur.execute(grant)
    try:
        yield
    finally:
        with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS {account}")


@contextlib.contextmanager
def _restricted_vicidial(
    mariadb_factory: Any, receiver: Receiver, seed: int
) -> Iterator[tuple[PrivateMariaDB, Vicidial]]:
    """A NO_LOG server with VICIdial's schema, an account with per-table grants, list 105
    (URL with its custom field ``size``, which it has not yet) and the fence list."""
    server = mariadb_factory(row_metadata="NO_LOG")
    with contextlib.closing(server.connect()) as conn:
        create_vicidial_schema(conn, "asterisk")
    with (
        Vicidial.connect(server, database="asterisk", seed=seed) as vici,
        _per_table_user(server),
    ):
        vici.add_list(105, "New list", "C", "")
        vici.set_list_url(105, f"{receiver.url}/n?id=--A--lead_id--B--&size=--A--size--B--")
        setup_fence(vici, receiver)
        yield server, vici


def _restricted_config(server: PrivateMariaDB, state: Path, **reader: Any) -> Config:
    """make_config as the per-table account."""
    base = make_config(server, "asterisk", state, **reader)
    mysql = dataclasses.replace(base.mysql, user=UNREAD_USER, password=Secret(UNREAD_PASSWORD))
    return dataclasses.replace(base, mysql=mysql)


@pytest.mark.both_readers
class TestUnreadableCustomTable:
    """A new custom_<list_id> the account cannot read holds that list's leads, never the others."""

    async def test_new_list_waits_for_its_grant(
        self,
        mariadb_factory: Any,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
        decoder: str,
    ) -> None:
        """NO_LOG metadata, per-table grants: list 105's leads wait, 101's flow; after the
        GRANT they go out with their custom values, and so do the list's new leads."""
        with _restricted_vicidial(mariadb_factory, receiver, seed=5) as (server, vici):
            vici.add_list(101, "Other", "C", "")
            vici.set_system_url(f"{receiver.url}/o?id=--A--lead_id--B--")
            cfg = _restricted_config(server, tmp_path / "state.db", unreadable_retry_s=1.0, decoder=decoder)
            run = await start_pipeline(server, "asterisk", config=cfg)
            await fence(vici, receiver, "before")
            vici.add_custom_fields(105, [("size", False)])  # as VICIdial's admin page: not granted
            first = await asyncio.to_thread(
                vici.add_lead, phone_number="3125550001", list_id=105, custom={"size": "XL"}
            )
            other = await asyncio.to_thread(vici.add_lead, phone_number="3125550002", list_id=101)
            second = await asyncio.to_thread(
                vici.add_lead, phone_number="3125550003", list_id=105, custom={"size": "S"}
            )
            await wait_count(receiver, "/o", 1)
            await fence(vici, receiver, "unreadable")
            await wait_until_async(lambda: len(run.service.waiting) == 2, WAIT_S)
            assert targets(receiver, "/o") == [f"/o?id={other}"]
            assert targets(receiver, "/n") == []
            waiting = run.service.status()["waiting_data"]["table_unreadable"]
            assert (waiting["leads"], waiting["tables"]) == (2, ["custom_105"])
            gauge = _metric(run.service, "vicidial_cdc_leads_waiting_data", {"reason": "table_unreadable"})
            assert gauge == 2
            errors = _metric(run.service, "vicidial_cdc_reader_errors_total", {"kind": "table_unreadable"})
            assert errors >= 2  # one per rows event of custom_105 it could not decode
            assert run.service.reader is not None
            assert run.service.reader.unreadable_tables() == {"custom_105"}
            vici.execute(f"GRANT SELECT ON `asterisk`.`custom_105` TO '{UNREAD_USER}'@'127.0.0.1'")
            await wait_count(receiver, "/n", 2)
            later: list[int] = []  # new leads of the list until the reader has read the table again
            for attempt in range(10):
                phone, size = f"31255500{attempt:02d}", {"size": "M"}
                lead = await asyncio.to_thread(vici.add_lead, phone_number=phone, list_id=105, custom=size)
                later.append(lead)
                await wait_count(receiver, "/n", 2 + len(later))
                if not run.service.reader.unreadable_tables():
                    break
            assert run.service.reader.unreadable_tables() == frozenset()
        assert sorted(targets(receiver, "/n")) == sorted(
            [f"/n?id={first}&size=XL", f"/n?id={second}&size=S"] + [f"/n?id={i}&size=M" for i in later]
        )
        assert len(run.service.waiting) == 0
        assert run.service.store is not None
        assert await run.service.store.meta_get("waiting_data") == "[]"


class TestUnreadableBound:
    """Past reader.unreadable_max_wait_s a waiting lead is a dead letter naming the GRANT;
    after the GRANT, ``replay --lead-id`` delivers it."""

    async def test_dead_letter_then_replay(
        self,
        mariadb_factory: Any,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Past unreadable_max_wait_s a lead is a dead letter naming the GRANT; after the GRANT, replay
        --lead-id delivers it."""
        with _restricted_vicidial(mariadb_factory, receiver, seed=6) as (server, vici):
            state = tmp_path / "state.db"
            cfg = _restricted_config(server, state, unreadable_retry_s=0.5, unreadable_max_wait_s=0.5)
            run = await start_pipeline(server, "asterisk", config=cfg)
            vici.add_custom_fields(105, [("size", False)])
            lead = await asyncio.to_thread(
                vici.add_lead, phone_number="3125550001", list_id=105, custom={"size": "XL"}
            )
            await fence(vici, receiver, "bound")
            [dead] = await wait_until_async(lambda: dead_letters(state, lead_id=lead), WAIT_S)
            assert dead.delivery.endpoint_id == FAILED_ENDPOINT
            assert "GRANT SELECT ON `asterisk`.`custom_105`" in dead.last_error
            assert len(run.service.waiting) == 0
            assert targets(receiver, "/n") == []
            vici.execute(f"GRANT SELECT ON `asterisk`.`custom_105` TO '{UNREAD_USER}'@'127.0.0.1'")
            cfg_file = write_config(tmp_path / "replay.toml", server, "asterisk", state)
            code, _, err = await run_cli(capsys, "replay", "-c", str(cfg_file), "--lead-id", str(lead))
            assert (code, err.partition(" state_file=")[0]) == (0, f"vicidial-cdc: config={cfg_file}")
            assert err.count("\n") == 1  # stderr: only the files the command used
            await wait_count(receiver, "/n", 1)
        assert targets(receiver, "/n") == [f"/n?id={lead}&size=XL"]

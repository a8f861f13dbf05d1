"""``vicidial-cdc replay``: deliveries rebuilt by SELECT are byte-identical to the live path's.

The live streamer runs first and its request targets are captured; replay then
rebuilds the same leads from the tables into a fresh state file, a streamer on that
file sends them, and the two sets of targets are compared byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support.cli import run_cli, write_config
from support.fence import FENCE_LIST, WAIT_S, fence, targets, wait_count
from support.harness import Pipeline, StartPipeline, make_config

from cdc import config, leadfetch
from cdc.endpoints import Router
from cdc.modes import VicidialSender
from cdc.ops import replay
from cdc.reader.connection import connect
from cdc.records import Delivery, Position
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "lead.created.v1.json").read_text("utf-8"))

#: Every kind of value: ids, ENUM, zero and real DATE, DECIMAL, DATETIME, SQLdate and
#: epoch, list tokens, custom fields (plain and encrypted), an unknown token.
TEMPLATE = (
    "VAR{base}/rp?id=--A--lead_id--B--&l=--A--list_id--B--&el=--A--entry_list_id--B--"
    "&ph=--A--phone--B--&fn=--A--first_name--B--&ln=--A--last_name--B--&g=--A--gender--B--"
    "&dob=--A--date_of_birth--B--&gmt=--A--gmt_offset_now--B--&ed=--A--entry_date--B--"
    "&sd=--A--SQLdate--B--&ep=--A--epoch--B--&lname=--A--list_name--B--&camp=--A--campaign--B--"
    "&u=--A--user--B--&st=--A--status--B--&v=--A--vendor_id--B--&cc=--A--called_count--B--"
    "&r=--A--rank--B--&crm=--A--crm_ref--B--&sec=--A--secret_note--B--&unk=--A--nosuch--B--"
)


def _target_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


class _Collect:
    """A :class:`cdc.store.Outbox` stand-in for replay that keeps what it is given (no dedup)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    def commit_batch(
        self, deliveries: Sequence[Delivery], checkpoint: Position | None, now: float
    ) -> list[int]:
        start = len(self.deliveries)
        self.deliveries.extend(deliveries)
        return list(range(start + 1, len(self.deliveries) + 1))


async def _live_leads(vici: Vicidial, receiver: Receiver) -> tuple[list[int], list[str]]:
    """Add API and non-API leads; return (every lead id in order, the live /rp targets)."""
    ids = [
        await asyncio.to_thread(
            vici.add_lead,
            phone_number="3125550001",
            list_id=101,
            first_name=" José ",
            last_name="Nguyễn 😀",
            gender="F",
            date_of_birth="1980-02-29",
            gmt_offset_now="-6.00",
            vendor_lead_code="V/1",
        ),
        await asyncio.to_thread(vici.loader_insert, phone_number="3125550002", list_id=101),
        await asyncio.to_thread(vici.add_lead, phone_number="3125550003", list_id=101, last_name="O'Neil&Co"),
        await asyncio.to_thread(vici.update_lead_insert, phone_number="3125550004", list_id=101),
        await asyncio.to_thread(
            vici.add_lead,
            phone_number="3125550005",
            list_id=102,
            first_name="Zoë",
            custom={"crm_ref": "R-1 ü", "secret_note": "do not send"},
        ),
        await asyncio.to_thread(vici.agent_insert, phone_number="3125550006", list_id=102),
        await asyncio.to_thread(vici.add_lead, phone_number="3125550007", list_id=102),
    ]
    live = await wait_count(receiver, "/rp", 4, busy=vici)  # the last lead is held custom_wait_s
    await fence(vici, receiver, "live")
    return ids, sorted(live)


def _setup(vici: Vicidial, receiver: Receiver) -> None:
    vici.set_system(use_non_latin=True)
    vici.add_list(101, "Année 2025", "CAMPÉ", "")
    vici.add_list(102, "Custom", "C2", "")
    vici.add_custom_fields(102, [("crm_ref", False), ("secret_note", True)])
    vici.set_system_url(TEMPLATE.format(base=receiver.url))
    vici.add_list(FENCE_LIST, "Fence", "FENCE", "")
    vici.set_list_url(FENCE_LIST, f"{receiver.url}/fence?fence=--A--first_name--B--")


class TestReplaySameUrl:
    """Replay of a lead-id range sends exactly what the live path sent, once."""

    async def test_range_matches_live_then_dedup_then_force(
        self, pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Live targets == replayed targets; a second replay adds nothing; --force resends."""
        _setup(pipeline.vicidial, pipeline.receiver)
        live_run = await pipeline.start(state=tmp_path / "live.db")
        ids, live = await _live_leads(pipeline.vicidial, pipeline.receiver)
        await live_run.stop()
        assert len(live) == 4
        assert "&g=F&dob=1980-02-29&gmt=-6.00&" in live[0]  # ENUM label, DATE, DECIMAL scale
        assert "&dob=0000-00-00&" in live[1] and "&crm=R-1+%C3%BC&sec=&" in live[2]

        fresh = tmp_path / "replayed.db"
        cfg_file = write_config(tmp_path / "replay.toml", pipeline.server, pipeline.database, fresh)
        code, out, err = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", f"{ids[0]}-{ids[-1]}", "--create-state"
        )
        assert (code, err) == (0, f"vicidial-cdc: config={cfg_file} state_file={fresh} env_overrides=-\n")
        assert "found:            4 API leads" in out
        assert "enqueued:         4" in out
        assert "already present:  0" in out
        assert "not_api=2" in out and "update_lead_insert=1" in out

        before = len(pipeline.receiver.requests)
        await pipeline.start(state=fresh)
        replayed = await pipeline.wait_count("/rp", 8)
        assert sorted(replayed[4:]) == live  # byte for byte
        assert len(pipeline.receiver.requests) - before == 4

        # Deduplicated: the same replay again stores nothing new and sends nothing.
        code, out, _ = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", f"{ids[0]}-{ids[-1]}", "--json"
        )
        report = json.loads(out)
        assert code == 0
        assert (report["found"], report["enqueued"], report["already_present"]) == (4, 0, 4)
        await pipeline.fence("dedup")
        await asyncio.sleep(1.5)  # more than one sender poll
        assert len(pipeline.targets("/rp")) == 8

        # --force: every stored row of those keys is sent again, same bytes.
        code, out, _ = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", f"{ids[0]}-{ids[-1]}", "--force"
        )
        assert code == 0
        assert "sent again: 4" in out
        resent = await pipeline.wait_count("/rp", 12)
        assert sorted(resent[8:]) == live


class TestReplaySelection:
    """--since/--until/--list select add_lead calls by api_date; ids report what is missing."""

    async def test_since_list_and_missing(
        self,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        receiver: Receiver,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """--since 1h --list 101 102 (dry run), an --until in the past, an unknown lead id."""
        _setup(vicidial, receiver)
        for phone, list_id in (("3125550011", 101), ("3125550012", 102), ("3125550013", FENCE_LIST)):
            await asyncio.to_thread(vicidial.add_lead, phone_number=phone, list_id=list_id)
        loader = await asyncio.to_thread(vicidial.loader_insert, phone_number="3125550014", list_id=101)
        state = tmp_path / "never.db"
        cfg_file = write_config(tmp_path / "c.toml", mariadb, vicidial_db, state)

        code, out, err = await run_cli(
            capsys,
            "replay",
            "-c",
            str(cfg_file),
            "--since",
            "1h",
            "--list",
            "101",
            "102",
            "--dry-run",
            "--json",
        )
        assert (code, err) == (0, f"vicidial-cdc: config={cfg_file} state_file={state} env_overrides=-\n")
        report = json.loads(out)
        assert report["dry_run"] is True
        assert (report["found"], report["deliveries"], report["other_list"]) == (2, 2, 1)
        assert not state.exists()  # a dry run writes nothing

        code, out, _ = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--since", "2000-01-01", "--until", "2000-01-02 00:00",
            "--dry-run", "--json",
        )  # fmt: skip
        assert json.loads(out)["found"] == 0

        code, out, _ = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", str(loader), "99999999", "--dry-run", "--json"
        )
        assert json.loads(out)["skipped"] == {"lead_missing": 1, "not_api": 1}

        code, _, err = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--since", "yesterday", "--dry-run"
        )
        assert code == 2 and "not a time" in err


class TestReplayCharsets:
    """A latin1 server with use_non_latin=0: SELECT gives the binlog path's text, same URL."""

    async def test_latin1_double_encoded(
        self,
        mariadb_factory: Any,
        receiver: Receiver,
        start_pipeline: StartPipeline,
    ) -> None:
        """Double-encoded UTF-8 (incl. bytes cp1252 leaves undefined) replays byte-identically."""
        server = mariadb_factory(charset="latin1", row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk", charset="latin1")
        with Vicidial.connect(server, database="asterisk", connection_charset="latin1", seed=3) as vici:
            vici.add_list(101, "Lista", "C", "")
            vici.set_system_url(
                f"{receiver.url}/l?fn=--A--first_name--B--&ln=--A--last_name--B--&id=--A--lead_id--B--"
            )
            vici.add_list(FENCE_LIST, "Fence", "FENCE", "")
            vici.set_list_url(FENCE_LIST, f"{receiver.url}/fence?fence=--A--first_name--B--")
            run = await start_pipeline(server, "asterisk")
            lead_id = await asyncio.to_thread(
                vici.add_lead,
                phone_number="3125550001",
                list_id=101,
                first_name="Álvaro",
                last_name="Müller€Ő",
            )
            await fence(vici, receiver, "latin1")
            await run.stop()
        live = targets(receiver, "/l")
        assert live == [f"/l?fn=%C3%81lvaro&ln=M%C3%BCller%E2%82%AC%C5%90&id={lead_id}"]

        cfg = write_config_obj(server, "asterisk")
        collect = _Collect()

        def run_replay() -> replay.ReplayReport:
            with contextlib.closing(connect(cfg.mysql, **leadfetch.connection_options())) as conn:
                return replay.replay(
                    conn,
                    collect,
                    replay.Selection(lead_ids=(lead_id,)),
                    replay.load_snapshot(conn, cfg),
                    database="asterisk",
                    router=Router(cfg.delivery, "test", "latin1", VicidialSender(False, False)),
                    clock=time.time,
                )

        report = await asyncio.to_thread(run_replay)
        assert report.found == 1
        assert [_target_of(d.url) for d in collect.deliveries] == live


FORMATS_TOML = """
[endpoints.json]
url = "{json}/ev?list=--A--list_id--B--"
format = "post-json"
[endpoints.form]
url = "{form}/fm?id=--A--lead_id--B--&fn=--A--first_name--B--&dob=--A--date_of_birth--B--\
&crm=--A--crm_ref--B--"
format = "post-form"
[endpoints.get]
url = "{get}/gt?id=--A--lead_id--B--&ln=--A--last_name--B--&ed=--A--entry_date--B--\
&gmt=--A--gmt_offset_now--B--"
format = "get"
[fanout]
system = ["json", "form", "get"]
[fanout.lists]
"{fence}" = ["vicidial"]
"""


class TestReplayFormats:
    """Replay --force builds exactly the live path's request in every format (post-json included)."""

    async def test_force_resends_the_live_bodies(
        self, pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Live first, then replay --force of the same leads: same targets and bodies; JSON valid."""
        sinks = [Receiver(), Receiver(), Receiver()]
        for r in sinks:
            await r.start()
        try:
            await self._run(pipeline, sinks, tmp_path, capsys)
        finally:
            for r in sinks:
                await r.stop()

    async def _run(
        self,
        pipeline: Pipeline,
        sinks: list[Receiver],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        mariadb, vicidial_db, vicidial, receiver = (
            pipeline.server,
            pipeline.database,
            pipeline.vicidial,
            pipeline.receiver,
        )
        json_r, form_r, get_r = sinks
        _setup(vicidial, receiver)
        state = tmp_path / "state.db"
        cfg_file = write_config(tmp_path / "c.toml", mariadb, vicidial_db, state)
        with cfg_file.open("a", encoding="utf-8") as fh:
            fh.write(FORMATS_TOML.format(json=json_r.url, form=form_r.url, get=get_r.url, fence=FENCE_LIST))
        loaded = config.load(cfg_file, env={})
        cfg = dataclasses.replace(make_config(mariadb, vicidial_db, state), delivery=loaded.delivery)
        await pipeline.start(config=cfg)
        ids = [
            await asyncio.to_thread(
                vicidial.add_lead,
                phone_number="3125550021",
                list_id=101,
                first_name=" José ",
                last_name="Nguyễn 😀",
                date_of_birth="1980-02-29",
                gmt_offset_now="-6.00",
            ),
            await asyncio.to_thread(
                vicidial.add_lead,
                phone_number="3125550022",
                list_id=102,
                first_name="Zoë",
                custom={"crm_ref": "R-1 ü", "secret_note": "do not send"},
            ),
        ]
        live = [list(await r.wait_for(2, WAIT_S)) for r in sinks]  # a copy: requests keeps growing
        await fence(vicidial, receiver, "formats")

        code, out, err = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", *map(str, ids), "--force"
        )
        assert (code, err.partition(" state_file=")[0]) == (0, f"vicidial-cdc: config={cfg_file}")
        assert err.count("\n") == 1 and "sent again: 6" in out  # stderr: only the files used
        again = [list(await r.wait_for(4, WAIT_S))[2:] for r in sinks]

        def by_lead(requests: list[Any]) -> dict[str, tuple[str, str, bytes]]:
            return {
                dict((k.lower(), v) for k, v in r.headers)["idempotency-key"]: (r.method, r.target, r.body)
                for r in requests
            }

        for live_requests, replayed in zip(live, again, strict=True):
            assert by_lead(replayed) == by_lead(live_requests)  # byte for byte, per format
        validator = jsonschema.Draft202012Validator(SCHEMA)
        for request in again[0]:
            event = json.loads(request.body)
            validator.validate(event)
            lead = event["data"]["lead"]
            assert lead["modify_date"] is not None and lead["modify_date"].endswith("Z")
            assert lead["called_since_last_reset"] == "N"
            assert "last_local_call_time" in lead
        bodies = {json.loads(r.body)["lead_id"]: json.loads(r.body) for r in again[0]}
        assert bodies[ids[1]]["data"]["custom_fields"] == {"crm_ref": "R-1 ü"}
        assert {r.body for r in again[1]} == {
            f"id={ids[0]}&fn=Jos%C3%A9&dob=1980-02-29&crm=--A--crm_ref--B--".encode(),
            f"id={ids[1]}&fn=Zo%C3%AB&dob=0000-00-00&crm=R-1+%C3%BC".encode(),
        }


def write_config_obj(server: PrivateMariaDB, database: str) -> config.Config:
    return config.Config(
        mysql=config.MysqlConfig(
            host=server.host, port=server.port, user="root", database=database, source="test"
        )
    )

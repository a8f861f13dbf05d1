"""The recommended account (deploy/sql/grants.sql) keeps working when an admin adds lists.

Without ``binlog_row_metadata`` the reader learns a new ``custom_<list_id>`` table's
column names from ``information_schema``, which shows them only to an account that may
read the table. Per-table grants (the old advice) stop there; SELECT on the database
does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest
from support.fence import wait_for
from support.harness import StartPipeline, make_config
from support.mariadb import MariaDBFactory, grants_user

from cdc.config import Secret
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

DATABASE = "asterisk"
USER = "cdc_grants_flow"
PASSWORD = "pw-grants-flow-3"


class TestGrantsSqlAccount:
    """The streamer as the grants.sql account, on a server that logs no row metadata."""

    @pytest.mark.both_readers
    async def test_a_list_given_custom_fields_while_running_flows(
        self,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
        decoder: str,
    ) -> None:
        """A custom table created after start is read (custom token filled); other lists keep flowing."""
        server = mariadb_factory(row_metadata="NO_LOG")
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, DATABASE)
        with (
            grants_user(server, DATABASE, USER, PASSWORD),
            Vicidial.connect(server, database=DATABASE, seed=5) as vici,
        ):
            vici.add_list(101, "Before", "CAMP1", "")
            vici.set_list_url(101, f"{receiver.url}/before?id=--A--lead_id--B--")
            base = make_config(server, DATABASE, tmp_path / "state.db", decoder=decoder)
            cfg = dataclasses.replace(
                base, mysql=dataclasses.replace(base.mysql, user=USER, password=Secret(PASSWORD))
            )
            run = await start_pipeline(server, DATABASE, config=cfg)
            first = await asyncio.to_thread(vici.add_lead, phone_number="3125550101", list_id=101)
            await wait_for(receiver, lambda r: r.target == f"/before?id={first}", 1)

            await asyncio.to_thread(vici.add_list, 202, "Added later", "CAMP1", "")
            await asyncio.to_thread(vici.add_custom_fields, 202, [("color", False)])
            await asyncio.to_thread(
                vici.set_list_url, 202, f"{receiver.url}/later?id=--A--lead_id--B--&color=--A--color--B--"
            )
            later = await asyncio.to_thread(
                vici.add_lead, phone_number="3125550202", list_id=202, custom={"color": "teal"}
            )
            after = await asyncio.to_thread(vici.add_lead, phone_number="3125550103", list_id=101)
            await wait_for(receiver, lambda r: r.target == f"/later?id={later}&color=teal", 1)
            await wait_for(receiver, lambda r: r.target == f"/before?id={after}", 1)
            await run.stop()

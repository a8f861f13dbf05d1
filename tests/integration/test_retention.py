"""A delivered row keeps no lead data: after delivery, the state file, its -wal and -shm
hold no trace of the lead (raw bytes read), and the operator commands still work.

A real streamer on a private MariaDB delivers a lead with a sentinel phone number to a
``get`` endpoint (the phone in the URL) and a ``post-json`` one (the phone in the body),
on real receivers; the state file is then read byte by byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import pytest
from support.cli import run_cli, write_config
from support.fence import fence_toml, wait_for
from support.harness import Pipeline, configure

from cdc.store import DeliveryState, SqliteStore
from cdc.testing.receiver import Receiver

pytestmark = pytest.mark.mariadb

WAIT_S = 30.0
SENTINEL = "3125558642"


def traces(state: Path) -> list[str]:
    """The state files (database, -wal, -shm) whose raw bytes hold the sentinel phone."""
    found = []
    for path in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        if path.exists() and SENTINEL.encode() in path.read_bytes():
            found.append(path.name)
    return found


async def wait_erased(state: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while found := await asyncio.to_thread(traces, state):
        assert time.monotonic() < deadline, f"the sentinel phone is still in {found}"
        await asyncio.sleep(0.2)


class TestDeliveredRowsKeepNoLeadData:
    """Delivered: URL down to its origin, body gone, erased from every state file; commands work."""

    async def test_sentinel_erased_after_delivery_and_after_force(
        self,
        pipeline: Pipeline,
        receivers: list[Receiver],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Sentinel in URL and body; after delivery it is nowhere on disk; replay --force sends it again."""
        get_r, json_r = receivers[0], receivers[1]
        pipeline.vicidial.add_list(101, "Web", "CAMP1", "")
        pipeline.vicidial.set_list_url(101, f"{get_r.url}/in?id=--A--lead_id--B--&ph=--A--phone_number--B--")
        pipeline.setup_fence()
        toml = (
            f'[endpoints.json]\nurl = "{json_r.url}/ev"\nformat = "post-json"\n'
            '[fanout]\nsystem = ["vicidial", "json"]\n' + fence_toml()
        )
        cfg = configure(pipeline.server, pipeline.database, tmp_path, toml)
        cfg = dataclasses.replace(cfg, state=dataclasses.replace(cfg.state, erase_interval_s=0.5))
        state = Path(cfg.state.path)
        await pipeline.start(config=cfg)
        lead_id = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=SENTINEL, list_id=101)
        [got] = await wait_for(get_r, lambda r: True, 1)
        [event] = await wait_for(json_r, lambda r: True, 1)
        assert SENTINEL in got.target and SENTINEL.encode() in event.body
        await pipeline.fence("erase")
        await wait_erased(state)

        store = SqliteStore(state)
        store.open()
        try:
            rows = [
                r for c in range(1, 10) if (r := store.get(c)) is not None and r.delivery.lead_id == lead_id
            ]
        finally:
            store.close()
        port_of = {f"127.0.0.1:{get_r.port}": get_r.port, "json": json_r.port}
        assert sorted(r.delivery.endpoint_id for r in rows) == sorted(port_of)
        for r in rows:  # ids, host, status and times stay; the lead's data does not
            assert r.state is DeliveryState.DELIVERED and r.delivered_at is not None
            assert r.delivery.url == f"http://127.0.0.1:{port_of[r.delivery.endpoint_id]}"
            assert (r.delivery.body, r.last_status) == (b"", 200)

        cfg_file = write_config(tmp_path / "c.toml", pipeline.server, pipeline.database, state)
        with cfg_file.open("a", encoding="utf-8") as fh:
            fh.write(toml)
        for r in rows:
            code, out, _ = await run_cli(
                capsys, "dlq", "show", "-c", str(cfg_file), "--id", str(r.id), "--json"
            )
            shown = json.loads(out)
            assert (code, shown["state"], shown["lead_id"]) == (0, "delivered", lead_id)
            assert shown["url_host"] == f"127.0.0.1:{port_of[r.delivery.endpoint_id]}"
        code, out, _ = await run_cli(capsys, "status", "-c", str(cfg_file), "--json")
        assert code == 0 and json.loads(out)["totals"]["delivered"] >= 2

        # replay --force rebuilds the request: the lead is sent again, whole, then erased again.
        code, out, err = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", str(lead_id), "--force"
        )
        assert (code, err.partition(" state_file=")[0]) == (0, f"vicidial-cdc: config={cfg_file}")
        assert err.count("\n") == 1 and "sent again: 2" in out  # stderr: only the files used
        again = await wait_for(get_r, lambda r: True, 2)
        resent = await wait_for(json_r, lambda r: True, 2)
        assert again[1].target == got.target and resent[1].body == event.body
        await pipeline.fence("erase-again")
        await wait_erased(state)

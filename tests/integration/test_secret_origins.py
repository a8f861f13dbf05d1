"""Secrets go only where the operator said: a named endpoint's allowed_origins, end to end.

A named endpoint without its own ``url`` takes the URL VICIdial's settings rows give the
lead's list, and its headers and signatures are attached by endpoint name. Two real
receivers on loopback (different ports, so different origins): the allowed one gets the
token; the other, named by a list's URL in VICIdial, gets nothing, and the delivery is a
dead letter naming its origin. Checked where the delivery is routed, and again by the
sender right before the secrets are attached (a row stored before the origins narrowed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from support.cli import run_cli, write_config
from support.fence import fence_toml, headers_of, wait_for
from support.harness import Pipeline, configure
from support.state import dead_letters

from cdc.records import Delivery, UrlSource
from cdc.store import DeliveryRecord, SqliteStore
from cdc.testing.receiver import Receiver

pytestmark = pytest.mark.mariadb

WAIT_S = 30.0
TOKEN = "tok-origin-7f3a"
SECRET = "whsec_" + base64.b64encode(bytes(range(40, 72))).decode()
ENV = {"CRM_TOKEN": TOKEN, "CRM_SECRET": SECRET}
REFUSED_METRIC = "vicidial_cdc_secret_origin_refused_total"


def endpoint_toml(allowed: Receiver) -> str:
    return (
        "[endpoints.crm]\n"
        'format = "post-json"\n'
        'headers = { Authorization = "Bearer ${ENV:CRM_TOKEN}" }\n'
        'signing_secrets = ["${ENV:CRM_SECRET}"]\n'
        f'allowed_origins = ["{allowed.url}"]\n'
        "[fanout]\n"
        'system = ["crm"]\n' + fence_toml()
    )



async def wait_dead(state: Path, endpoint_id: str, count: int) -> list[DeliveryRecord]:
    deadline = time.monotonic() + WAIT_S
    while len(dead := await asyncio.to_thread(dead_letters, state, endpoint_id=endpoint_id)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} dead letters for {endpoint_id}"
        await asyncio.sleep(0.1)
    return dead


class TestSecretOrigins:
    """A URL from VICIdial's rows outside allowed_origins never carries the endpoint's secrets."""

    async def test_routing_refuses_the_other_origin(
        self,
        pipeline: Pipeline,
        receivers: list[Receiver],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """List 101 → the allowed receiver, with token; list 102 → the other: nothing, a dead letter."""
        allowed, other = receivers[0], receivers[1]
        pipeline.vicidial.add_list(101, "Ours", "CAMP1", "")
        pipeline.vicidial.add_list(102, "Edited", "CAMP1", "")
        pipeline.vicidial.set_list_url(101, f"{allowed.url}/in?id=--A--lead_id--B--")
        pipeline.vicidial.set_list_url(
            102, f"{other.url}/steal?id=--A--lead_id--B--&ph=--A--phone_number--B--"
        )
        pipeline.setup_fence()
        cfg = configure(pipeline.server, pipeline.database, tmp_path, endpoint_toml(allowed), env=ENV)
        running = await pipeline.start(config=cfg)
        ours = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550101", list_id=101)
        theirs = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550102", list_id=102)
        [got] = await wait_for(allowed, lambda r: True, 1)
        await pipeline.fence("origins")

        sent = headers_of(got)
        assert got.target == f"/in?id={ours}"
        assert sent["authorization"] == f"Bearer {TOKEN}" and sent["webhook-signature"].startswith("v1,")
        assert other.requests == []  # not the token, not the lead: nothing at all
        assert not any(TOKEN in str(r.headers) for r in pipeline.receiver.requests)
        [dead] = await wait_dead(Path(cfg.state.path), "crm", 1)
        assert dead.delivery.lead_id == theirs and dead.delivery.list_id == 102
        assert dead.last_error == f"origin_refused http://127.0.0.1:{other.port}"  # the origin, no path
        assert dead.attempts == 0
        registry = running.service.metrics.registry
        assert registry.get_sample_value(REFUSED_METRIC, {"endpoint": "crm"}) == 1.0

        # Replay routes the same way: the lead of list 102 is refused again, not sent.
        for name, value in ENV.items():
            monkeypatch.setenv(name, value)
        cfg_file = write_config(tmp_path / "c.toml", pipeline.server, pipeline.database, Path(cfg.state.path))
        with cfg_file.open("a", encoding="utf-8") as fh:
            fh.write(endpoint_toml(allowed))
        code, out, err = await run_cli(
            capsys, "replay", "-c", str(cfg_file), "--lead-id", str(ours), str(theirs), "--dry-run", "--json"
        )
        report = json.loads(out)
        assert (code, report["deliveries"], report["refused"]) == (0, 2, 1)
        assert err.startswith(f"vicidial-cdc: config={cfg_file} ") and err.count("\n") == 1

    async def test_sender_refuses_a_stored_row_for_another_origin(
        self, pipeline: Pipeline, receivers: list[Receiver], tmp_path: Path
    ) -> None:
        """Rows stored before the origins narrowed: the allowed one is sent, the other dead, unsent."""
        allowed, other = receivers[0], receivers[1]
        pipeline.setup_fence()
        cfg = configure(pipeline.server, pipeline.database, tmp_path, endpoint_toml(allowed), env=ENV)
        state = Path(cfg.state.path)
        store = SqliteStore(state)
        store.open()
        try:
            stored = [
                Delivery(
                    source="test",
                    lead_id=lead_id,
                    list_id=101,
                    endpoint_id="crm",
                    method="POST",
                    url=f"{target.url}/old?id={lead_id}",
                    url_source=UrlSource.VICIDIAL_LIST,
                    inserted_at=int(time.time()),
                    body=b"{}",
                    content_type="application/json",
                )
                for lead_id, target in ((901, allowed), (902, other))
            ]
            store.commit_batch(stored, None, time.time())
        finally:
            store.close()

        running = await pipeline.start(config=cfg)
        [got] = await wait_for(allowed, lambda r: True, 1)
        [dead] = await wait_dead(state, "crm", 1)
        await pipeline.fence("stored")

        assert got.target == "/old?id=901" and headers_of(got)["authorization"] == f"Bearer {TOKEN}"
        assert other.requests == []
        assert dead.delivery.lead_id == 902
        assert (dead.attempts, dead.last_status) == (1, 0)
        assert dead.last_error == f"origin_refused http://127.0.0.1:{other.port}"
        registry = running.service.metrics.registry
        assert registry.get_sample_value(REFUSED_METRIC, {"endpoint": "crm"}) == 1.0

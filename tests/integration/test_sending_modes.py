"""Coexistence with VICIdial's own sender: watch and auto modes, end to end.

The test plays VICIdial's PHP: for a build that sends, it makes the GET itself (no
Idempotency-Key header, so the receiver tells its requests from the streamer's) and
writes the vicidial_url_log INSERT and UPDATE exactly as VICIdial does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from support.fence import fence, ours, theirs
from support.harness import Pipeline, StartPipeline, make_config
from support.mariadb import MariaDBFactory

from cdc.config import Config, RetryPolicy, UrlsConfig
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb


def php_get(url: str) -> str:
    """What VICIdial's PHP stores in url_response: the body, or a PHP ERROR line."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode() or "OK"
    except urllib.error.HTTPError as exc:
        return f"PHP ERROR: failed to open stream: HTTP request failed! HTTP/1.1 {exc.code} X"
    except OSError as exc:
        return f"PHP ERROR: file_get_contents(): failed to open stream: {exc}"


def vicidial_sends(vici: Vicidial, lead_id: int, url: str, *, update: bool = True) -> None:
    """VICIdial's own sender for one lead: url_log INSERT, the fetch, the UPDATE."""
    url_log_id = vici.log_url_request(lead_id, url)
    if update:
        vici.log_url_response(url_log_id, php_get(url), 0)


def mode_config(server: PrivateMariaDB, database: str, state: Path, mode: str, **urls: object) -> Config:
    cfg = make_config(server, database, state)
    return dataclasses.replace(
        cfg,
        delivery=dataclasses.replace(
            cfg.delivery,
            mode=mode,
            vicidial_attempt_timeout_s=2.0,
            retry=RetryPolicy(base_s=0.2, cap_s=1.0),
        ),
        urls=UrlsConfig(**urls),  # type: ignore[arg-type]
    )


class TestWatch:
    """watch: nothing sent first; VICIdial's failures re-sent once with the URL it logged."""

    async def test_successes_failures_and_missing_update(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """OK → nothing; refused, HTTP 500 and a missing UPDATE → one request each from us."""
        refused = Receiver()
        await refused.start()
        refused_url = refused.url
        await refused.stop()
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/w?id=--A--lead_id--B--")
        cfg = mode_config(pipeline.server, pipeline.database, tmp_path / "w.db", "watch")
        run = await pipeline.start(config=cfg)
        ok = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550001", list_id=101)
        await asyncio.to_thread(vicidial_sends, pipeline.vicidial, ok, f"{pipeline.receiver.url}/w?id={ok}")
        down = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550002", list_id=101)
        await asyncio.to_thread(vicidial_sends, pipeline.vicidial, down, f"{refused_url}/w?id={down}")
        err = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550003", list_id=101)
        pipeline.receiver.respond_with([500])
        await asyncio.to_thread(vicidial_sends, pipeline.vicidial, err, f"{pipeline.receiver.url}/w?id={err}")
        lost = await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125550004", list_id=101)
        await asyncio.to_thread(
            vicidial_sends, pipeline.vicidial, lost, f"{pipeline.receiver.url}/w?id={lost}&x=1", update=False
        )
        back = Receiver(port=int(refused_url.rsplit(":", 1)[1]))
        await back.start()
        try:
            assert run.service.store is not None
            async with asyncio.timeout(30):  # until the outbox has nothing left to send
                while True:
                    counts = await run.service.store.counts()
                    if sum(c.delivered for c in counts) >= 3 and not any(
                        c.pending + c.in_flight for c in counts
                    ):
                        break
                    # The dialer writes on: binlog time passes the missing UPDATE's timeout.
                    await asyncio.to_thread(pipeline.vicidial.noise, 3, api_log=False)
                    await asyncio.sleep(0.1)
        finally:
            await back.stop()
        assert ours(pipeline.receiver, "/w") == Counter({f"/w?id={err}": 1, f"/w?id={lost}&x=1": 1})
        assert ours(back, "/w") == Counter({f"/w?id={down}": 1})
        assert theirs(pipeline.receiver, "/w") == Counter({f"/w?id={ok}": 1, f"/w?id={err}": 1})
        registry = run.service.metrics.registry
        endpoint = pipeline.receiver.url.split("//")[1]
        assert (
            registry.get_sample_value(
                "vicidial_cdc_deliveries_total",
                {"endpoint": endpoint, "outcome": "delivered", "sender": "vicidial"},
            )
            == 1.0
        )
        assert (
            registry.get_sample_value(
                "vicidial_cdc_requests_total",
                {"endpoint": endpoint, "status_class": "5xx", "sender": "vicidial"},
            )
            == 1.0
        )


class TestAuto:
    """auto: exactly one request per lead, whoever sends it, in every combination."""

    @pytest.mark.parametrize("new_build", [True, False])
    async def test_every_combination(
        self,
        new_build: bool,
        mariadb_factory: MariaDBFactory,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        tmp_path: Path,
    ) -> None:
        """VICIdial row only, config only, both, neither; on a build with and without the feature."""
        server = mariadb_factory()
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, "asterisk", with_apinewlead=new_build)
        base = receiver.url
        with Vicidial.connect(server, database="asterisk", seed=9) as vici:
            for list_id in (401, 402, 403, 404):
                vici.add_list(list_id, f"L{list_id}", "C", "")
            vici.set_list_url(401, f"{base}/a?src=vici&id=--A--lead_id--B--")  # VICIdial row only
            vici.set_list_url(403, f"{base}/a?src=vici&id=--A--lead_id--B--")  # both
            vici.add_list(999, "Fence", "FENCE", "")  # sent from the config file: we send it
            config_urls = {
                999: f"{base}/fence?fence=--A--first_name--B--&id=--A--lead_id--B--",
                402: f"{base}/a?src=cfg&id=--A--lead_id--B--",
                403: f"{base}/a?src=cfg&id=--A--lead_id--B--",
            }
            cfg = mode_config(server, "asterisk", tmp_path / "a.db", "auto", lists=config_urls)
            await start_pipeline(server, "asterisk", config=cfg)
            ids: dict[int, int] = {}
            for list_id in (401, 402, 403, 404):
                lead = await asyncio.to_thread(vici.add_lead, phone_number=f"31255{list_id}", list_id=list_id)
                ids[list_id] = lead
                if new_build and list_id in (401, 403):  # VICIdial's rows resolve: its PHP sends
                    await asyncio.to_thread(vicidial_sends, vici, lead, f"{base}/a?src=vici&id={lead}")
            await fence(vici, receiver, "auto")
        per_lead = Counter(
            r.target.rsplit("id=", 1)[1] for r in receiver.requests if r.target.startswith("/a")
        )
        if new_build:
            expected = {ids[401]: 1, ids[402]: 1, ids[403]: 1}  # 403: VICIdial's own, not ours too
            assert theirs(receiver, "/a") == Counter(
                {f"/a?src=vici&id={ids[401]}": 1, f"/a?src=vici&id={ids[403]}": 1}
            )
        else:
            expected = {ids[402]: 1, ids[403]: 1}  # old build: its rows never send; the config does
        assert per_lead == Counter({str(k): v for k, v in expected.items()})

"""VICIdial's URL hooks end to end: each sender's vicidial_url_log rows on a private MariaDB.

The test plays VICIdial's senders (cdc.testing.simulate.hooks): the Dispo Call URL INSERTed
at dispo time and sent by the agent's browser through RUNurls (or never), PHP's
synchronous file() for the Start Call URL, and AST_send_URL.pl's wget for the No-Agent
and settings-container URLs. Their requests carry no Idempotency-Key; the streamer's do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support.cli import run_cli, write_config
from support.fence import ours, theirs
from support.harness import Pipeline, make_config

from cdc.config import Config, DeliveryMode, RetryPolicy
from cdc.hooks.config import HooksConfig
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial
from cdc.testing.simulate.hooks import HookSenders

pytestmark = pytest.mark.mariadb

WAIT_S = 45


def hooks_config(pipeline: Pipeline, state: Path, rescue: set[str], timeouts_s: dict[str, float]) -> Config:
    """The harness config in watch mode with short retries and these [hooks] settings."""
    cfg = make_config(pipeline.server, pipeline.database, state)
    return dataclasses.replace(
        cfg,
        delivery=dataclasses.replace(
            cfg.delivery, mode=DeliveryMode.WATCH, retry=RetryPolicy(base_s=0.2, cap_s=0.5)
        ),
        hooks=HooksConfig(rescue=frozenset(rescue), timeouts_s=timeouts_s),
    )


async def until(condition: Callable[[], Awaitable[bool]], busy: Vicidial) -> None:
    """Wait (bounded) for ``condition``; the dialer writes on meanwhile, so binlog time passes."""
    async with asyncio.timeout(WAIT_S):
        while not await condition():
            await asyncio.to_thread(busy.noise, 3, api_log=False)
            await asyncio.sleep(0.1)


class TestHooks:
    """Every type watched; dispo, no-agent and settings-container URLs rescued; start only watched."""

    async def test_watch_and_rescue(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """Completed → never re-sent; failed or never completed → re-sent once; rescue off → nothing."""
        vicidial, receiver = pipeline.vicidial, pipeline.receiver
        down = Receiver()
        await down.start()
        down_url = down.url
        await down.stop()
        rescue = {"dispo", "na_callurl", "sc_callurl"}
        timeouts = {"dispo": 2.0, "start": 2.0, "na_callurl": 2.0, "sc_callurl": 2.0}
        run = await pipeline.start(config=hooks_config(pipeline, tmp_path / "h.db", rescue, timeouts))
        registry = run.service.metrics.registry
        base = receiver.url
        senders = HookSenders(vicidial)

        def sample(name: str, **labels: str) -> float:
            return registry.get_sample_value(name, labels) or 0.0

        # VICIdial's own failures first: the receiver answers them 500, the streamer 200 later.
        receiver.respond_with([500])
        await asyncio.to_thread(senders.php_send, "start", "1733450000.5", f"{base}/start?call=err")
        receiver.respond_with([500])
        await asyncio.to_thread(senders.perl_send, "na_callurl", "1733450000.7", f"{base}/na?call=err")
        receiver.respond_with([500])
        await asyncio.to_thread(
            senders.perl_send, "sc_callurl", "1733450000.8", f"{base}/sc?a=1&b=x+y", post=True
        )
        await asyncio.to_thread(senders.perl_send, "na_callurl", "1733450000.6", f"{base}/na?call=ok")
        ok = await asyncio.to_thread(senders.dispo_insert, "1733450000.1", f"{base}/dispo?call=ok")
        await asyncio.to_thread(senders.run_urls, [ok])
        lost = await asyncio.to_thread(senders.dispo_insert, "1733450000.2", f"{base}/dispo?call=lost")
        failed = await asyncio.to_thread(senders.dispo_insert, "1733450000.3", f"{down_url}/dispo?call=down")
        await asyncio.to_thread(senders.run_urls, [failed])  # the endpoint is down: PHP ERROR
        await asyncio.to_thread(
            senders.php_send, "start", "1733450000.4", f"{base}/start?call=lost", update=False
        )
        down_endpoint = down_url.split("//")[1]

        async def retried() -> bool:
            labels = {"endpoint": down_endpoint, "outcome": "retry", "sender": "cdc"}
            return sample("vicidial_cdc_deliveries_total", **labels) >= 1

        await until(retried, vicidial)  # our re-send of the failed dispo URL failed too
        back = Receiver(port=int(down_url.rsplit(":", 1)[1]))
        await back.start()
        try:
            assert run.service.store is not None
            store = run.service.store

            async def drained() -> bool:
                counts = await store.counts()
                pending = sum(c.pending + c.in_flight for c in counts)
                return sum(c.delivered for c in counts) >= 4 and not pending

            await until(drained, vicidial)
        finally:
            await back.stop()
        # The agent's browser comes back and sends the lost dispo URL after all: a duplicate.
        await asyncio.to_thread(senders.run_urls, [lost])
        endpoint = base.split("//")[1]

        async def duplicate_seen_and_start_expired() -> bool:
            duplicate = sample("vicidial_cdc_hook_duplicates_total", url_type="dispo", endpoint=endpoint)
            labels = {"url_type": "start", "endpoint": endpoint, "outcome": "never_completed"}
            return duplicate == 1 and sample("vicidial_cdc_hook_outcomes_total", **labels) == 1

        # Binlog time must also pass the lost start URL's timeout (its INSERT came last).
        await until(duplicate_seen_and_start_expired, vicidial)

        assert ours(receiver, "/dispo") == Counter({"/dispo?call=lost": 1})
        assert ours(back, "/dispo") == Counter({"/dispo?call=down": 1})
        assert theirs(receiver, "/dispo") == Counter({"/dispo?call=ok": 1, "/dispo?call=lost": 1})
        assert ours(receiver, "/start") == Counter()  # rescue off for start: watched only
        assert theirs(receiver, "/start") == Counter({"/start?call=err": 1})
        assert ours(receiver, "/na") == Counter({"/na?call=err": 1})
        assert theirs(receiver, "/na") == Counter({"/na?call=err": 1, "/na?call=ok": 1})
        [post] = [r for r in receiver.requests if r.target.startswith("/sc") and r.header("Idempotency-Key")]
        assert (post.method, post.target, post.body) == ("POST", "/sc", b"a=1&b=x+y")

        def outcome(url_type: str, result: str, at: str = endpoint) -> float:
            return sample("vicidial_cdc_hook_outcomes_total", url_type=url_type, endpoint=at, outcome=result)

        assert sample("vicidial_cdc_hook_attempts_total", url_type="dispo", endpoint=endpoint) == 2
        assert sample("vicidial_cdc_hook_attempts_total", url_type="start", endpoint=endpoint) == 2
        assert sample("vicidial_cdc_hook_attempts_total", url_type="na_callurl", endpoint=endpoint) == 2
        assert (outcome("dispo", "ok"), outcome("dispo", "never_completed"), outcome("dispo", "late")) == (
            1,
            1,
            1,
        )
        assert outcome("dispo", "error", down_endpoint) == 1
        assert (outcome("start", "error"), outcome("start", "never_completed")) == (1, 1)
        assert (outcome("na_callurl", "ok"), outcome("na_callurl", "error")) == (1, 1)
        assert outcome("sc_callurl", "error") == 1
        rescues = {
            (url_type, cause): sample(
                "vicidial_cdc_hook_rescues_total", url_type=url_type, endpoint=at, cause=cause
            )
            for url_type, at, cause in (
                ("dispo", endpoint, "never_completed"),
                ("dispo", down_endpoint, "error"),
                ("na_callurl", endpoint, "error"),
                ("sc_callurl", endpoint, "error"),
                ("start", endpoint, "error"),
                ("start", endpoint, "never_completed"),
            )
        }
        assert rescues == {
            ("dispo", "never_completed"): 1,
            ("dispo", "error"): 1,
            ("na_callurl", "error"): 1,
            ("sc_callurl", "error"): 1,
            ("start", "error"): 0,
            ("start", "never_completed"): 0,
        }
        histogram = "vicidial_cdc_hook_response_seconds_count"
        assert sample(histogram, url_type="na_callurl", endpoint=endpoint) == 2

    async def test_pending_rescued_type_survives_a_restart(self, pipeline: Pipeline, tmp_path: Path) -> None:
        """A dispo INSERT still pending at shutdown holds the checkpoint: re-read and rescued once."""
        vicidial, receiver = pipeline.vicidial, pipeline.receiver
        cfg = hooks_config(pipeline, tmp_path / "r.db", {"dispo"}, {"dispo": 3.0})
        run = await pipeline.start(config=cfg)
        senders = HookSenders(vicidial)
        await asyncio.to_thread(senders.dispo_insert, "1733450000.9", f"{receiver.url}/dispo?call=restart")

        async def pending() -> bool:
            tracker = run.service.url_log
            return tracker is not None and tracker.statistics().pending.get("dispo") == 1

        await until(pending, vicidial)
        await run.stop()
        assert ours(receiver, "/dispo") == Counter()
        again = await pipeline.start(config=cfg)

        async def rescued() -> bool:
            assert again.service.store is not None
            counts = await again.service.store.counts()
            return sum(c.delivered for c in counts) >= 1

        await until(rescued, vicidial)
        assert ours(receiver, "/dispo") == Counter({"/dispo?call=restart": 1})


class TestCheckReport:
    """vicidial-cdc check lists the hook types this VICIdial fires and whether rescue covers them."""

    async def test_campaigns_ingroups_lists_and_alt_rows(
        self, pipeline: Pipeline, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Active settings and ALT rows count; an inactive campaign does not; an idle rescue is named."""
        vicidial = pipeline.vicidial
        vicidial.execute(
            "INSERT INTO vicidial_campaigns (campaign_id, active, dispo_call_url, start_call_url) VALUES"
            " ('C1', 'Y', 'https://crm.example.com/d?x=--A--lead_id--B--', ''),"
            " ('C2', 'Y', 'ALT', ''), ('C3', 'N', '', 'https://crm.example.com/s')"
        )
        vicidial.execute(
            "INSERT INTO vicidial_url_multi (campaign_id, entry_type, active, url_type, url_address)"
            " VALUES ('C2', 'campaign', 'Y', 'dispo', 'https://crm.example.com/alt')"
        )
        vicidial.execute(
            "INSERT INTO vicidial_inbound_groups (group_id, active, add_lead_url)"
            " VALUES ('IN1', 'Y', 'https://crm.example.com/a')"
        )
        vicidial.add_list(101, "L", "C1", "")
        vicidial.execute(
            "UPDATE vicidial_lists SET na_call_url='https://crm.example.com/na' WHERE list_id=101"
        )
        path = write_config(tmp_path / "check.toml", pipeline.server, pipeline.database, tmp_path / "c.db")
        with path.open("a", encoding="utf-8") as config:
            config.write('[hooks]\nrescue = ["dispo", "wcu_on"]\n')
        _, out, _ = await run_cli(capsys, "check", "--json", "--config", str(path))
        hooks = {r["name"]: r for r in json.loads(out) if r["name"].startswith("hooks")}
        assert set(hooks) == {"hooks.dispo", "hooks.na_callurl", "hooks.add_lead", "hooks.rescue"}
        assert {r["status"] for r in hooks.values()} == {"INFO"}
        assert "campaigns: C1, C2" in hooks["hooks.dispo"]["message"]
        assert "rescue on" in hooks["hooks.dispo"]["message"]
        assert "lists: 101" in hooks["hooks.na_callurl"]["message"]
        assert hooks["hooks.add_lead"]["fix"] == 'to re-send them, add "add_lead" to [hooks] rescue'
        assert "wcu_on" in hooks["hooks.rescue"]["message"]
        assert "crm.example.com" not in json.dumps(hooks)  # URLs may hold keys: never printed

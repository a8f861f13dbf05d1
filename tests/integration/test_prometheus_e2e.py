"""End to end with a real Prometheus: the dashboard and the alert rules against a
running streamer.

A real Service follows a private MariaDB as the least-privilege account of
deploy/sql/grants.sql and delivers to a real receiver; Debian's ``prometheus`` (own
data directory, a free loopback port) scrapes it every second and evaluates
deploy/prometheus/alerts.yml every second. Then:

1. every alert expression and every dashboard query parses and evaluates in that
   Prometheus, and every rule evaluates without error;
2. with the receiver stopped, VicidialCdcDeliveryFailureRatioHigh becomes pending or
   firing;
3. every dashboard query returned data during the run, except the ones listed in
   ``NO_DATA_EXPECTED`` (and those must not: the list stays exact).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import pytest
from support.harness import Pipeline, make_config
from support.mariadb import grants_user
from support.opstools import (
    ALERTS,
    PanelQuery,
    PrivatePrometheus,
    alert_rules,
    dashboard_queries,
    ensure_ops_tools,
    has_data,
    substitute,
)
from support.waiting import wait_until_async

from cdc.config import Config, DeliveryConfig, EndpointConfig, EndpointLimits, Secret
from cdc.hooks.config import HooksConfig
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial
from cdc.testing.simulate.hooks import HookSenders

pytestmark = pytest.mark.mariadb


WAIT_S = 60.0
#: Grafana's $__rate_interval for a 1 s scrape interval and 1 s steps is 4 s; 5 s keeps
#: at least four samples in every window.
RATE_INTERVAL = "5s"
CDC_USER, CDC_PASSWORD = "cdc_e2e", "e2e-Password-1"
FAILURE_ALERT = "VicidialCdcDeliveryFailureRatioHigh"

#: Dashboard queries that cannot return data in this run, with the metric the lead must
#: still add or change. The test fails if one of them returns data (remove it here) and
#: if any query not listed returns none.
NO_DATA_EXPECTED: dict[str, str] = {}


def _config(server: PrivateMariaDB, database: str, state: Path) -> Config:
    """make_config, as the grants.sql account, with a low rate limit (so waits happen) and
    a named endpoint stating its allowed origins (its refusal counter is then exported)."""
    base = make_config(server, database, state)
    crm = EndpointConfig(name="crm", allowed_origins=("https://crm.example.com:443",))
    delivery = DeliveryConfig(
        mode="send",
        defaults=EndpointLimits(rate_per_s=4.0, burst=2, timeout_s=5.0, connect_timeout_s=2.0),
        named_endpoints={"crm": crm},
    )
    mysql = dataclasses.replace(base.mysql, user=CDC_USER, password=Secret(CDC_PASSWORD))
    hooks = HooksConfig(rescue=frozenset({"dispo"}), timeouts_s={"dispo": 2.0})
    return dataclasses.replace(base, mysql=mysql, delivery=delivery, hooks=hooks)


async def _ask(prom: PrivatePrometheus, method: str, *args: Any) -> Any:
    return await asyncio.to_thread(getattr(prom, method), *args)


async def _failure_alert_state(prom: PrivatePrometheus) -> str:
    alerts = await _ask(prom, "alerts")
    states = {a["state"] for a in alerts if a["labels"].get("alertname") == FAILURE_ALERT}
    return "firing" if "firing" in states else "pending" if "pending" in states else ""


async def _target_up(prom: PrivatePrometheus) -> bool:
    health: list[str] = await _ask(prom, "target_health")
    return health == ["up"]


async def _rules_evaluated(prom: PrivatePrometheus) -> dict[str, str]:
    health: dict[str, str] = await _ask(prom, "rule_health")
    return health if health and "unknown" not in health.values() else {}


def _query_text(q: PanelQuery, instance: str) -> str:
    """The query as Grafana sends it: the instance regex-escaped inside a PromQL string."""
    regex = re.escape(instance).replace("\\", "\\\\")
    return substitute(q.expr, instance=regex, rate_interval=RATE_INTERVAL)


async def _hook_traffic(vicidial: Vicidial, receiver: Receiver) -> None:
    """VICIdial's own hooks: a Start Call URL, a Dispo Call URL sent, one failed (HTTP 500)
    and one the browser never sent (both re-sent by the streamer), whose RUNurls then
    comes after all (a duplicate)."""
    senders = HookSenders(vicidial)
    base = f"{receiver.url}/hook"
    await asyncio.to_thread(senders.php_send, "start", "1733450000.1", f"{base}?t=start")
    ok = await asyncio.to_thread(senders.dispo_insert, "1733450000.2", f"{base}?t=ok")
    await asyncio.to_thread(senders.run_urls, [ok])
    receiver.respond_with([500])
    failed = await asyncio.to_thread(senders.dispo_insert, "1733450000.3", f"{base}?t=err")
    await asyncio.to_thread(senders.run_urls, [failed])
    lost = await asyncio.to_thread(senders.dispo_insert, "1733450000.4", f"{base}?t=lost")
    async with asyncio.timeout(WAIT_S):  # binlog time passes the 2 s timeout; we re-send it
        while not any(r.target == "/hook?t=lost" and r.header("Idempotency-Key") for r in receiver.requests):
            await asyncio.to_thread(vicidial.noise, 3, api_log=False)
            await asyncio.sleep(0.2)
    await asyncio.to_thread(senders.run_urls, [lost])


class TestPrometheusEndToEnd:
    """A real Prometheus scraping a running streamer runs our dashboard and alerts."""

    async def test_dashboard_and_alerts_against_a_running_streamer(
        self, pipeline: Pipeline, tmp_path: Path
    ) -> None:
        """Queries parse and return data; the delivery-failure alert goes pending once deliveries fail."""
        tools = await asyncio.to_thread(ensure_ops_tools)
        pipeline.vicidial.add_list(101, "Web leads", "CAMP1", "")
        pipeline.vicidial.add_list(102, "Disabled", "CAMP1", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/e2e?id=--A--lead_id--B--")
        pipeline.vicidial.set_list_url(102, "---DISABLED---")
        with grants_user(pipeline.server, pipeline.database, CDC_USER, CDC_PASSWORD):
            run = await pipeline.start_pipeline(
                pipeline.server,
                pipeline.database,
                config=_config(pipeline.server, pipeline.database, tmp_path / "s.db"),
            )
            instance = f"127.0.0.1:{run.service.http_port}"
            prom = PrivatePrometheus(tools.prometheus, tmp_path / "prometheus", [instance], [ALERTS])
            await asyncio.to_thread(prom.start)
            try:
                await self._run(prom, instance, pipeline.vicidial, pipeline.receiver)
            except BaseException:
                print(f"prometheus log:\n{prom.log_tail()}")
                raise
            finally:
                await asyncio.to_thread(prom.stop)
                await run.stop()

    async def _run(
        self, prom: PrivatePrometheus, instance: str, vicidial: Vicidial, receiver: Receiver
    ) -> None:
        started = time.time()
        await wait_until_async(
            lambda: _target_up(prom), WAIT_S, 0.2, message="prometheus scraped the streamer"
        )

        # Traffic: API leads (some wait for the rate limit), one on a disabled list
        # (skipped), and a settings change read from the binlog.
        for i in range(12):
            await asyncio.to_thread(vicidial.add_lead, phone_number=f"31255500{i:02d}", list_id=101)
        await asyncio.to_thread(vicidial.add_lead, phone_number="3125559999", list_id=102)
        vicidial.set_list_url(101, f"{receiver.url}/e2e?list=101&id=--A--lead_id--B--")
        await asyncio.to_thread(vicidial.add_lead, phone_number="3125558888", list_id=101)
        await receiver.wait_for(13, WAIT_S)
        await _hook_traffic(vicidial, receiver)

        # 1. Every alert and dashboard expression parses and evaluates; rules are healthy.
        for rule in alert_rules():
            await _ask(prom, "query", rule.expr)
        for q in dashboard_queries():
            await _ask(prom, "query", _query_text(q, instance))
        health = await wait_until_async(
            lambda: _rules_evaluated(prom), WAIT_S, 0.5, message="every rule evaluated"
        )
        assert set(health.values()) == {"ok"}, health
        assert await _ask(prom, "query", "count by (instance) (vicidial_cdc_build_info)")

        # 2. The receiver goes away: deliveries fail and the failure-ratio alert trips.
        # Failing leads keep coming for at least 6 s, so that the dashboard's 5 s rate
        # windows see the failures too (the breaker opens after a few of them).
        await receiver.stop()
        failing_since = time.monotonic()
        n = 0
        while not await _failure_alert_state(prom) or time.monotonic() - failing_since < 6:
            waited = time.monotonic() - failing_since
            assert waited < 90, f"{FAILURE_ALERT} neither pending nor firing after 90 s"
            await asyncio.to_thread(vicidial.add_lead, phone_number=f"3126660{n:03d}", list_id=101)
            n += 1
            await asyncio.sleep(0.5)
        assert await _failure_alert_state(prom) in ("pending", "firing")

        # 3. Every dashboard query returned data over the run (range queries, like Grafana).
        end = time.time()
        results: dict[str, bool] = {}
        for q in dashboard_queries():
            result = await _ask(prom, "query_range", _query_text(q, instance), started, end, 1.0)
            results[q.key] = has_data(result)
        no_data = {key for key, ok in results.items() if not ok}
        assert set(NO_DATA_EXPECTED) <= set(results), "NO_DATA_EXPECTED names a query that no longer exists"
        unexpected = no_data - set(NO_DATA_EXPECTED)
        assert not unexpected, f"dashboard queries without data: {sorted(unexpected)}"
        now_with_data = set(NO_DATA_EXPECTED) - no_data
        assert not now_with_data, f"these return data now, remove them from NO_DATA_EXPECTED: {now_with_data}"

"""The bare client ceiling: aiohttp alone sending the requests the e2e run sends.

The end-to-end target is a ratio to this (issue 16): machines differ 2 to 3 times in speed,
so "leads/s durable" means little alone, while the share of what the HTTP client
alone can send on the same machine, in the same run, says how much the streamer
costs on top of it.

:func:`client_ceiling` runs in a fresh process (see ``bench.run``). Before the clock
starts it reads the last ``requests`` API leads of the bench list from MariaDB and
renders the e2e template for each as the resolver does (``cdc.template``), with the
headers the sender adds (``Idempotency-Key``, ``webhook-id``), and builds the encoded
``yarl.URL`` objects. It then sends them with ``concurrency`` in flight, on the event
loop the service picks (``cdc.runtime``), through the sender's own session
(``cdc.delivery.client_session``: connector limit, ``skip_auto_headers``, no cookie
jar, no decompression) with the endpoint's ``ClientTimeout``, reading each
response body up to the sender's cap. ``bench.run`` takes the rate from the receiver's
first to last request, as it does for the e2e runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import pymysql
import pymysql.cursors
import yarl

from bench import phases
from cdc import charset, resolve, template
from cdc.config import EndpointLimits
from cdc.delivery import client_session

__all__ = ["CeilingParams", "Request", "client_ceiling", "render_requests"]


@dataclass(frozen=True, slots=True)
class CeilingParams:
    port: int
    database: str
    #: The receiver's base URL followed by the bench's URL template.
    url_template: str
    list_id: int
    requests: int
    concurrency: int
    #: The ``mysql.source`` of the e2e runs (the idempotency key's first part).
    source: str = "bench"


@dataclass(frozen=True, slots=True)
class Request:
    """One pre-rendered request: its encoded URL and its headers."""

    url: yarl.URL
    headers: dict[str, str]


def _lead_rows(p: CeilingParams) -> list[dict[str, Any]]:
    """The last ``p.requests`` API leads of the bench list (loader rows carry no email)."""
    conn = pymysql.connect(
        host="127.0.0.1",
        port=p.port,
        user="root",
        database=p.database,
        cursorclass=pymysql.cursors.DictCursor,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT * FROM vicidial_list WHERE list_id=%s AND email<>'' ORDER BY lead_id DESC LIMIT %s",
                (p.list_id, p.requests),
            )
            rows: list[dict[str, Any]] = list(cur.fetchall())
    finally:
        conn.close()
    if len(rows) < p.requests:
        raise RuntimeError(f"the bench list holds {len(rows)} API leads; the ceiling needs {p.requests}")
    rows.reverse()  # oldest first, as the e2e run sends them
    return rows


def _list_facts(p: CeilingParams) -> tuple[str, str, str, str]:
    """(list name, description, campaign, PHP connection codec) as the resolver sees them."""
    conn = pymysql.connect(host="127.0.0.1", port=p.port, user="root", database=p.database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT list_name, list_description, campaign_id FROM vicidial_lists WHERE list_id=%s",
                (p.list_id,),
            )
            found = cur.fetchone()
            cur.execute("SELECT use_non_latin FROM system_settings LIMIT 1")
            system = cur.fetchone()
            cur.execute("SELECT @@global.character_set_server")
            server = cur.fetchone()
    finally:
        conn.close()
    if found is None:
        raise RuntimeError(f"the bench list {p.list_id} is missing")
    use_non_latin = system is not None and str(system[0]) == "1"
    codec = charset.connection_codec(use_non_latin, str(server[0]) if server else "latin1")
    return str(found[0]), str(found[1] or ""), str(found[2] or ""), codec


def render_requests(p: CeilingParams) -> list[Request]:
    """The e2e run's requests for the last ``p.requests`` API leads, rendered as the
    resolver and the sender render them."""
    list_name, description, campaign, codec = _list_facts(p)
    only = template.token_names(p.url_template)
    out: list[Request] = []
    for lead in _lead_rows(p):
        tokens = template.lead_tokens(
            lead,
            list_name=list_name,
            list_description=description,
            campaign=campaign,
            custom=None,
            encrypted_fields=frozenset(),
            sql_date="",
            epoch=0,
            only=only,
        )
        url = template.render(p.url_template, tokens, codec).strip()
        key = f"{p.source}:{lead['lead_id']}:{resolve.endpoint_id_of(p.url_template, url)}"
        out.append(Request(yarl.URL(url, encoded=True), {"Idempotency-Key": key, "webhook-id": key}))
    return out


def client_ceiling(p: CeilingParams) -> dict[str, Any]:
    """Send the rendered requests with ``p.concurrency`` in flight; the client's figures."""
    from cdc import runtime

    return runtime.run(_client_ceiling(p))


async def _client_ceiling(p: CeilingParams) -> dict[str, Any]:
    render_started = time.perf_counter()
    requests = render_requests(p)
    render_s = time.perf_counter() - render_started
    limits = EndpointLimits(concurrency=p.concurrency, rate_per_s=1e9, burst=1_000_000, timeout_s=60.0)
    delivery = phases.delivery_config(p.concurrency, limits)
    timeout = aiohttp.ClientTimeout(total=limits.timeout_s, sock_connect=limits.connect_timeout_s)
    loop_name = await phases.running_loop_name()
    pending = iter(requests)
    statuses: dict[int, int] = {}

    async def worker(session: aiohttp.ClientSession) -> None:
        # One worker per in-flight slot: the cheapest way to hold ``concurrency`` in flight.
        for request in pending:
            async with session.request(
                "GET",
                request.url,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
                ssl=delivery.verify_tls,
            ) as response:
                await response.content.read(delivery.max_response_bytes)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    async with client_session(delivery.max_in_flight) as session:
        before = phases.Usage.sample(None)
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(p.concurrency, len(requests))):
                tg.create_task(worker(session))
        elapsed = time.perf_counter() - started
        after = phases.Usage.sample(None)
    if set(statuses) != {200}:
        raise RuntimeError(f"the receiver answered {statuses}; the ceiling needs every request to succeed")
    figures = after.figures(before)
    return {
        "event_loop": loop_name,
        "requests": len(requests),
        "concurrency": p.concurrency,
        "connector_limit": delivery.max_in_flight,
        "render_s": round(render_s, 3),
        "client_elapsed_s": round(elapsed, 3),
        "cpu_s": figures["cpu_s"],
        "cpu_s_per_1000_requests": round(figures["cpu_s"] / max(1, len(requests)) * 1000, 3),
        "peak_rss_mb": figures["peak_rss_mb"],
        "mean_url_bytes": round(sum(len(str(r.url)) for r in requests) / max(1, len(requests)), 1),
    }

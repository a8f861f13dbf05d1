"""``vicidial-cdc status`` and ``vicidial-cdc dlq``: run through ``cli.main`` on real state.

Dead letters are made the way production makes them (a receiver answering 404, which
the sender dead-letters at once) or, where timestamps must be controlled, through the
store's own API. The CLI runs in a worker thread while a streamer runs in the loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from support.cli import run_cli, write_config
from support.harness import Pipeline
from support.host import free_port

from cdc.records import Attempt, Delivery, Outcome, UrlSource
from cdc.store.sqlite import SqliteStore

WAIT_S = 30.0
PHONE = "3125557777"  # must never appear in list/show output without --show-url


def _delivery(lead_id: int, endpoint_id: str = "apinewlead", host: str = "crm.example") -> Delivery:
    return Delivery(
        source="test",
        lead_id=lead_id,
        list_id=101,
        endpoint_id=endpoint_id,
        method="GET",
        url=f"http://user:pw@{host}:8080/hook/new?id={lead_id}&ph={PHONE}",
        url_source=UrlSource.VICIDIAL_SYSTEM,
        inserted_at=1_700_000_000,
    )


def _make_dead(path: Path, deliveries: list[Delivery], dead_at: float) -> list[int]:
    """Store ``deliveries`` and dead-letter them (HTTP 404) at ``dead_at``, via the store API."""
    store = SqliteStore(path)
    store.open()
    try:
        ids = store.commit_batch(deliveries, None, dead_at - 1)
        claimed = store.claim_due(dead_at, len(ids))
        store.record_attempts(
            [(Attempt(c.id, Outcome.DEAD, 404, "http_404", 0.01), None) for c in claimed], dead_at
        )
    finally:
        store.close()
    return ids


def _dead_count(path: Path) -> int:
    store = SqliteStore(path)
    store.open()
    try:
        return sum(c.dead for c in store.counts())
    finally:
        store.close()


class TestDlqSelectors:
    """dlq list/retry/purge select by id, endpoint, lead id and age (store-made dead rows)."""

    async def test_selectors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--older-than, --endpoint, --lead-id, --id, --all; purge needs --yes."""
        state = tmp_path / "state.db"
        now = time.time()
        old = _make_dead(state, [_delivery(1), _delivery(2, "crm2", "other.example")], now - 3 * 3600)
        new = _make_dead(state, [_delivery(3), _delivery(4)], now - 600)
        cfg = str(write_config(tmp_path / "c.toml", None, "asterisk", state))

        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--json")
        doc = json.loads(out)
        assert code == 0 and doc["total_dead"] == 4
        assert [r["id"] for r in doc["dead"]] == [*old, *new]
        first = doc["dead"][0]
        assert (first["url_host"], first["lead_id"], first["last_status"]) == ("crm.example:8080", 1, 404)
        # The path may hold the receiver's secret: only on request.
        assert "url" not in first and "url_path" not in first and "/hook" not in out
        assert PHONE not in out and "pw" not in out
        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--json", "--show-path")
        first = json.loads(out)["dead"][0]
        assert (first["url_host"], first["url_path"]) == ("crm.example:8080", "/hook/new")
        assert "url" not in first and PHONE not in out and "pw" not in out

        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--older-than", "2h", "--json")
        assert [r["lead_id"] for r in json.loads(out)["dead"]] == [1, 2]
        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--endpoint", "crm2", "--json")
        assert [r["lead_id"] for r in json.loads(out)["dead"]] == [2]
        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--lead-id", "3", "4", "--json")
        assert [r["lead_id"] for r in json.loads(out)["dead"]] == [3, 4]
        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--id", str(new[0]), "--json")
        assert [r["lead_id"] for r in json.loads(out)["dead"]] == [3]

        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg)
        assert code == 0
        assert "ENDPOINT" in out and "HOST" in out and "crm.example:8080" in out and "http_404" in out
        assert "/hook" not in out and "?" not in out and PHONE not in out
        assert "4 shown; 4 dead in total" in out
        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--show-path")
        assert code == 0 and "crm.example:8080/hook/new" in out
        assert "?" not in out and PHONE not in out

        code, out, _ = await run_cli(capsys, "dlq", "retry", "-c", cfg, "--older-than", "2h")
        assert (code, out.split()[0]) == (0, "2")
        assert _dead_count(state) == 2

        code, _, err = await run_cli(capsys, "dlq", "retry", "-c", cfg)
        assert code == 2 and "needs a selector" in err
        code, _, err = await run_cli(capsys, "dlq", "purge", "-c", cfg, "--all")
        assert code == 2 and "would delete 2" in err and "--yes" in err
        assert _dead_count(state) == 2
        code, out, _ = await run_cli(capsys, "dlq", "purge", "-c", cfg, "--all", "--yes")
        assert (code, out) == (0, "2 dead deliveries deleted\n")
        assert _dead_count(state) == 0

        code, _, err = await run_cli(capsys, "dlq", "list", "-c", cfg, "--older-than", "soon")
        assert code == 2 and "duration" in err
        missing = str(write_config(tmp_path / "m.toml", None, "asterisk", tmp_path / "missing.db"))
        code, _, err = await run_cli(capsys, "dlq", "list", "-c", missing)
        assert code == 2 and f"no state file at {tmp_path / 'missing.db'}" in err
        assert not (tmp_path / "missing.db").exists()


class TestDlqWithStreamer:
    """Real dead letters (404) are listed, shown, purged and retried; a running streamer sends them."""

    @pytest.mark.mariadb
    async def test_dead_by_404_then_retry_delivers(
        self, pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """404 → dead; show hides the query; purge one; retry one and all; delivered within ~1 s."""
        state = tmp_path / "state.db"
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(
            f"{pipeline.receiver.url}/dead?id=--A--lead_id--B--&ph=--A--phone--B--"
        )
        pipeline.receiver.respond_with([404, 404, 404])
        await pipeline.start(state=state)
        leads = [
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"31255577{i:02d}", list_id=101)
            for i in range(3)
        ]
        await pipeline.receiver.wait_for(3, WAIT_S)
        cfg = str(write_config(tmp_path / "c.toml", pipeline.server, pipeline.database, state))
        deadline = time.monotonic() + WAIT_S
        while _dead_count(state) < 3:
            assert time.monotonic() < deadline, "the three 404s were not dead-lettered"
            await asyncio.sleep(0.1)

        code, out, _ = await run_cli(capsys, "dlq", "list", "-c", cfg, "--json", "--show-path")
        rows = json.loads(out)["dead"]
        assert sorted(r["lead_id"] for r in rows) == leads
        assert {(r["url_path"], r["last_status"], r["last_error"], r["attempts"]) for r in rows} == {
            ("/dead", 404, "http_404", 1)
        }
        by_lead = {r["lead_id"]: r["id"] for r in rows}

        code, out, _ = await run_cli(capsys, "dlq", "show", "-c", cfg, "--id", str(by_lead[leads[0]]))
        assert code == 0 and "/dead" not in out and "3125557700" not in out and "?" not in out
        code, out, _ = await run_cli(
            capsys, "dlq", "show", "-c", cfg, "--id", str(by_lead[leads[0]]), "--show-path"
        )
        assert code == 0 and "/dead" in out and "3125557700" not in out and "?" not in out
        code, out, _ = await run_cli(
            capsys, "dlq", "show", "-c", cfg, "--id", str(by_lead[leads[0]]), "--show-url", "--json"
        )
        assert json.loads(out)["url"] == f"{pipeline.receiver.url}/dead?id={leads[0]}&ph=3125557700"
        code, _, err = await run_cli(capsys, "dlq", "show", "-c", cfg, "--id", "999999")
        assert code == 1 and "no delivery" in err

        code, out, _ = await run_cli(
            capsys, "dlq", "purge", "-c", cfg, "--id", str(by_lead[leads[0]]), "--yes"
        )
        assert out == "1 dead deliveries deleted\n"

        # retry by lead id: the running streamer finds it by itself (no notify), within ~1 s.
        sent_before = len(pipeline.receiver.requests)
        started = time.monotonic()
        code, out, _ = await run_cli(capsys, "dlq", "retry", "-c", cfg, "--lead-id", str(leads[1]))
        assert (code, out.split()[0]) == (0, "1")
        await pipeline.receiver.wait_for(sent_before + 1, WAIT_S)
        assert time.monotonic() - started < 3.0
        assert pipeline.receiver.requests[-1].target == f"/dead?id={leads[1]}&ph=3125557701"

        code, out, _ = await run_cli(capsys, "dlq", "retry", "-c", cfg, "--all")
        assert out.split()[0] == "1"
        await pipeline.receiver.wait_for(sent_before + 2, WAIT_S)
        assert pipeline.receiver.requests[-1].target == f"/dead?id={leads[2]}&ph=3125557702"
        assert _dead_count(state) == 0


class TestStatus:
    """status prints the checkpoint, the server's position and lag, and the outbox."""

    @pytest.mark.mariadb
    async def test_with_server_and_streamer(
        self, pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Running: streamer /status shown. Stopped, then a binlog rotation: lag in files and bytes."""
        state = tmp_path / "state.db"
        pipeline.vicidial.add_list(101, "L", "C", "")
        pipeline.vicidial.set_system_url(f"{pipeline.receiver.url}/s?id=--A--lead_id--B--")
        pipeline.receiver.respond_with([404])
        run = await pipeline.start(state=state)
        for i in range(2):
            await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number=f"312555880{i}", list_id=101)
        await pipeline.receiver.wait_for(2, WAIT_S)
        listen = f"127.0.0.1:{run.service.http_port}"
        cfg = str(write_config(tmp_path / "c.toml", pipeline.server, pipeline.database, state, listen=listen))
        deadline = time.monotonic() + WAIT_S
        while True:
            code, out, _ = await run_cli(capsys, "status", "-c", cfg, "--json")
            doc = json.loads(out)
            if doc["totals"]["delivered"] == 1 and doc["totals"]["dead"] == 1:
                break
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.2)
        assert code == 0
        assert doc["source"] == "test" and doc["checkpoint"]["pos"] > 0
        assert doc["server"]["reachable"] is True
        assert doc["lag"]["purged"] is False and doc["lag"]["files"] == 0 and doc["lag"]["bytes"] >= 0
        assert doc["endpoints"] == [
            {
                "endpoint_id": f"127.0.0.1:{pipeline.receiver.port}",  # resolve's default: host:port
                "pending": 0,
                "in_flight": 0,
                "dead": 1,
                "delivered": 1,
                "oldest_pending_age_s": None,
            }
        ]
        assert doc["streamer"] is not None and doc["streamer"]["reader_connected"] is True

        await run.stop()
        await asyncio.to_thread(pipeline.server.flush_binary_logs)
        await asyncio.to_thread(pipeline.vicidial.add_lead, phone_number="3125558803", list_id=101)
        code, out, _ = await run_cli(capsys, "status", "-c", cfg)
        assert code == 0
        assert "checkpoint:  " in out and "server:      " in out
        assert "binlog file(s) behind" in out
        lag_line = next(line for line in out.splitlines() if line.startswith("lag:"))
        files_behind = int(lag_line.split(",")[1].split()[0])
        assert files_behind >= 1 and int(lag_line.split()[1]) > 0
        assert f"127.0.0.1:{pipeline.receiver.port}" in out and "HTTP /status not reachable" in out

    async def test_server_unreachable_still_shows_local_state(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No server: exit 0, 'not reachable', pending counts and the oldest pending age."""
        state = tmp_path / "state.db"
        _make_dead(state, [_delivery(3)], time.time())
        store = SqliteStore(state)
        store.open()
        store.commit_batch([_delivery(1), _delivery(2)], None, time.time() - 600)
        store.close()
        cfg = str(write_config(tmp_path / "c.toml", None, "asterisk", state, port=free_port()))

        code, out, _ = await run_cli(capsys, "status", "-c", cfg, "--json")
        doc = json.loads(out)
        assert code == 0
        assert doc["server"]["reachable"] is False and doc["server"]["error"]
        assert doc["checkpoint"] is None and doc["lag"] is None
        (endpoint,) = doc["endpoints"]
        assert (endpoint["pending"], endpoint["dead"]) == (2, 1)
        assert 590 < endpoint["oldest_pending_age_s"] < 700

        code, out, _ = await run_cli(capsys, "status", "-c", cfg)
        assert code == 0
        assert "not reachable" in out and "showing local state only" in out
        assert "none yet" in out

        missing = str(write_config(tmp_path / "m.toml", None, "asterisk", tmp_path / "nope.db"))
        code, _, err = await run_cli(capsys, "status", "-c", missing)
        assert code == 2 and "no state file" in err

"""The benchmark runs end to end and writes the JSON the README documents.

Tiny sizes, so it stays fast; no timing is asserted (CI machines vary), only that
every section ran and produced its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.mariadb

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--quick",
    "--noise-events", "2000",
    "--leads", "150",
    "--e2e-latency-leads", "40",
    "--live-s", "1.5",
    "--live-leads-per-s", "40",
    "--live-noise-per-s", "400",
    "--cpu-leads-per-s", "20",
    "--cpu-noise-per-s", "200",
    "--live-lead-rate-noise-per-s", "100",
    "--sequential-requests", "20",
    "--sequential-latency-requests", "3",
    "--latency-ms", "20",
    "--backlog-deliveries", "3000",
    "--backlog-s", "1.5",
    "--readers", "library,fast,process",
    "--scanners", "stock,library,fast,mariadb_binlog",
]  # fmt: skip
READERS = ("library", "fast", "process")
SCANNERS = ("stock", "library", "fast", "mariadb_binlog")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *TINY, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert printed == saved
    return saved


class TestBenchSmoke:
    """``python -m bench.run --quick`` emits valid JSON with every section and figure."""

    def test_top_level(self, result: dict[str, Any]) -> None:
        """The sections, the machine and the parameters are recorded."""
        assert {
            "machine",
            "params",
            "binlog",
            "scan",
            "e2e",
            "sequential",
            "live",
            "backlog",
            "ratios",
            "targets",
        } <= set(result)
        assert result["machine"]["cores"] and result["machine"]["mariadb"]
        assert result["params"]["quick"] is True

    def test_binlog_segments(self, result: dict[str, Any]) -> None:
        """Both segments were written, with leads and row events counted."""
        for name in ("mixed", "leads"):
            segment = result["binlog"][name]
            assert segment["row_events"] > 0 and segment["leads"] > 0

    def test_scans(self, result: dict[str, Any]) -> None:
        """Every scanner measured both segments; the readers decoded the same rows."""
        for name in ("mixed", "leads"):
            scans = result["scan"][name]
            assert set(SCANNERS) <= set(scans)
            for scanner in SCANNERS:
                assert scans[scanner]["elapsed_s"] > 0 and scans[scanner]["row_events_per_s"] > 0
            assert (
                scans["stock"]["rows_decoded"]
                == scans["library"]["rows_decoded"]
                == scans["fast"]["rows_decoded"]
            )

    def test_end_to_end(self, result: dict[str, Any]) -> None:
        """Each reader delivered every lead of the backlog, with rates, CPU and memory figures."""
        e2e = result["e2e"]
        leads = result["binlog"]["leads"]["leads"]
        for reader in READERS:
            run = e2e["backlog_0ms"][reader]
            assert run["requests"] >= leads and run["leads_per_s"] > 0
            assert run["cpu_s_per_1000_leads"] > 0 and run["peak_rss_mb"] > 0
            assert e2e["backlog_latency"][reader]["leads_per_s"] > 0
            assert e2e["mixed"][reader]["cpu_s_per_100k_noise_events"] >= 0

    def test_live_and_sequential(self, result: dict[str, Any]) -> None:
        """Latency percentiles and the CPU share under offered load; the sequential sender's rate."""
        for name in ("latency", "cpu"):
            live = result["live"][name]
            assert live["requests"] == live["leads"] > 0
            assert live["p50_ms"] <= live["p95_ms"] <= live["p99_ms"]
            assert live["window_cpu_share_of_one_core"] > 0
        assert result["sequential"]["0ms"]["requests_per_s"] > 0
        assert result["sequential"]["latency"]["requests_per_s"] > 0

    def test_backlog(self, result: dict[str, Any]) -> None:
        """The service started on a pre-filled outbox, drained part of it, and its RSS was read."""
        backlog = result["backlog"]
        assert backlog["pending_at_start"] == backlog["deliveries"] == 3000
        assert backlog["delivered"] > 0 and backlog["peak_rss_mb"] > 0
        assert backlog["state_mb_at_start"] > 0

    def test_ratios_and_targets(self, result: dict[str, Any]) -> None:
        """Ratios against stock iteration and every target of the issue are reported."""
        assert result["ratios"]["scan_mixed_fast_vs_stock"] > 0
        assert set(result["targets"]) == {
            "scan_ratio_vs_stock",
            "lead_decode_ratio_vs_stock",
            "e2e_leads_per_s_0ms",
            "live_p99_ms",
            "live_cpu_share_of_one_core",
            "peak_rss_mb",
        }
        for target in result["targets"].values():
            assert {"target", "measured", "met"} <= set(target)

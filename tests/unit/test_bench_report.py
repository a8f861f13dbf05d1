"""``bench.report``: the README's performance section rendered from a results JSON.

Small hand-written results stand in for a run: the figures, the met/not-met wording,
the rows of sections an older JSON lacks, and the README round trip. The last class
checks the committed README against the committed full run.
"""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
X = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"

#: A run with every section: figures chosen so that each target's wording is known.
FULL: dict[str, Any] = {
    "preset": "full",
    "provenance": {
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
        "python": "3.11.7",
        "libraries": {"mysql-replication": "1.0.17", "aiohttp": "3.14.5", "uvloop": "0.21.0"},
        "event_loop": "uvloop",
    },
    "params": {"repeat": 3, "e2e_repeat": 3, "concurrency": 100},
    "machine": {"cpu": "AMD EPYC", "cores": 2, "python": "3.11.7", "mariadb": "10.11.19-MariaDB-log"},
    "binlog": {
        "mixed": {"row_events": 1_000_000, "noise_statements": 980, "statements": 1000},
        "leads": {"leads": 200_000},
    },
    "scan": {
        "mixed": {
            "stock": {"row_events_per_s": 16_000.0},
            "fast": {"row_events_per_s": 128_000.0},
            "mariadb_binlog_remote": {"row_events_per_s": 40_000.0},
            "mariadb_binlog_remote_decoded": {"row_events_per_s": 25_600.0},
        },
        "leads": {
            "stock": {"row_events_per_s": 8_000.0, "lead_rows_per_s": 1_800.0},
            "fast": {"row_events_per_s": 64_000.0, "lead_rows_per_s": 14_400.0},
            "mariadb_binlog_remote_decoded": {"row_events_per_s": 32_000.0},
        },
    },
    "e2e": {
        "backlog_0ms": {
            "fast": {"leads_per_s": 2_500.0, "runs_leads_per_s": [2_400.0, 2_500.0, 2_550.0]},
            "process": {"leads_per_s": 2_300.0, "runs_leads_per_s": [2_300.0]},
        },
        "mixed": {"fast": {"cpu_s_per_100k_noise_events": 0.5}},
    },
    "client_ceiling": {
        "requests_per_s": 4_000.0,
        "runs_requests_per_s": [3_900.0, 4_000.0, 4_100.0],
        "cpu_s_per_1000_requests": 0.21,
        "concurrency": 100,
    },
    "live": {
        "latency": {
            "offered_leads_per_s": 500.0,
            "offered_noise_per_s": 20_000.0,
            "achieved_leads_per_s": 499.0,
            "achieved_noise_per_s": 19_800.0,
            "achieved_share": 0.99,
            "p50_ms": 20.0,
            "p99_ms": 60.0,
        },
        "steady": {
            "noise_per_s": 5_000.0,
            "cpu_leads_per_s": 200.0,
            "net_cpu_s_per_1000_leads": {"20": 0.9, "200": 0.5, "2000": 0.45},
            "cpu_share_of_one_core": 0.123,
            "achieved_share": 0.99,
            "vs_backlog": {"ratio": 1.5},
        },
        "catch_up": {
            "offered_leads_per_s": 50.0,
            "offered_noise_per_s": 5_000.0,
            "outage_s": 120.0,
            "catch_up_s_per_outage_s": 0.125,
            "one_hour_outage_catch_up_s": 450.0,
        },
    },
    "ratios": {
        "scan_mixed_fast_vs_stock": 8.0,
        "scan_mixed_fast_vs_mariadb_binlog_remote": 3.2,
        "scan_mixed_fast_vs_mariadb_binlog_remote_cpu": 2.5,
        "scan_mixed_fast_vs_mariadb_binlog_remote_decoded": 5.0,
        "e2e_vs_client_ceiling": 0.62,
        "e2e_cpu_per_lead_vs_client_ceiling": 2.4,
    },
    "targets": {
        "scan_ratio_vs_stock": {"target": 6.0, "measured": 8.0, "met": True},
        "scan_ratio_vs_mariadb_binlog": {"target": 4.0, "measured": 3.2, "met": False},
        "lead_decode_ratio_vs_stock": {"target": 6.0, "measured": 8.0, "met": True},
        "e2e_vs_client_ceiling": {"target": 0.6, "measured": 0.62, "met": True},
        "live_p99_ms": {"target": 100.0, "measured": 60.0, "met": True, "achieved_share": 0.99},
        "peak_rss_mb": {"target": 200.0, "measured": 80.0, "met": True},
        "steady_cpu_per_lead_vs_backlog": {"target": 1.2, "measured": 1.5, "met": False},
    },
    "total_s": 1800.0,
}

#: The shape of the runs before issue 16: no provenance, ceiling, steady or catch-up,
#: an absolute e2e target, and a live target marked met at a third of its offered load.
OLD: dict[str, Any] = {
    "preset": "full",
    "params": {"repeat": 3, "e2e_repeat": 3},
    "machine": {"cpu": "AMD EPYC", "cores": 2, "python": "3.11.7", "mariadb": "10.11.19-MariaDB"},
    "scan": {"mixed": {"stock": {"row_events_per_s": 16_311.2}, "fast": {"row_events_per_s": 134_354.2}}},
    "e2e": {"backlog_0ms": {"fast": {"leads_per_s": 2_225.9}}},
    "live": {
        "latency": {
            "offered_leads_per_s": 500.0,
            "offered_noise_per_s": 20_000.0,
            "achieved_leads_per_s": 177.4,
            "achieved_noise_per_s": 7_094.8,
            "p50_ms": 20.1,
            "p99_ms": 39.94,
        }
    },
    "ratios": {"scan_mixed_fast_vs_stock": 8.24},
    "targets": {
        "scan_ratio_vs_stock": {"target": 6.0, "measured": 8.24, "met": True},
        "e2e_leads_per_s_0ms": {"target": 2500.0, "measured": 2225.9, "met": False},
        "live_p99_ms": {"target": 100.0, "measured": 39.94, "met": True},
    },
}


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``bench.report``, imported from the checkout (``bench`` is not an installed package)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench.report")


def rows(section: str) -> dict[str, tuple[str, str]]:
    """The table's rows: first cell -> (figure, target)."""
    out = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| measured"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = (cells[1], cells[2])
    return out


def row(section: str, start: str) -> tuple[str, str]:
    """The one row whose first cell starts with ``start``."""
    found = [cells for name, cells in rows(section).items() if name.startswith(start)]
    assert len(found) == 1, (start, list(rows(section)))
    return found[0]


class TestFigures:
    """Every figure of the table comes from the JSON, with its target's wording."""

    def test_header_names_the_run(self, report: ModuleType) -> None:
        """Machine, versions, event loop and commit are the JSON's."""
        section = report.render(FULL, "bench/results/x.json")
        header = section.splitlines()[2]
        assert header.startswith("Results: `bench/results/x.json` (full preset; 30 minutes), 2 vCPU AMD EPYC")
        assert "MariaDB 10.11.19," in header and "aiohttp 3.14.5" in header and "uvloop 0.21.0" in header
        assert "uvloop event loop; commit `0123456789`." in header
        assert "with uncommitted changes" not in header

    def test_scan_against_stock_and_mariadb_binlog(self, report: ModuleType) -> None:
        """The like-for-like ratio is the undecoded one, and 3.2 misses 4."""
        section = report.render(FULL, "r.json")
        assert row(section, "scan, 1,000,000 row events with 98 % noise") == (
            f"128,000 vs 16,000 ev/s, **8.0{X}**",
            f"≥ 6{X}: met",
        )
        assert row(
            section, "the same segment: fast reader vs `mariadb-binlog --read-from-remote-server`"
        ) == (
            f"128,000 vs 40,000 ev/s, **3.2{X}** (2.5{X} in CPU seconds)",
            f"≥ 4{X}: not met",
        )
        assert row(section, "the same from the server with `--verbose`") == (
            f"25,600 / 32,000 ev/s (fast: 5.0{X} / 2.0{X})",
            "(reference)",
        )
        assert row(section, "lead rows decoded, 200,000 add_lead calls")[1] == f"≥ 6{X}: met"

    def test_end_to_end_against_the_ceiling(self, report: ModuleType) -> None:
        """The absolute rate is a figure with its range; the share of the ceiling is the target."""
        section = report.render(FULL, "r.json")
        figure, target = row(section, "end to end, 200,000-lead backlog")
        assert figure == f"**2,500 leads/s** (2,400{DASH}2,550)" and target.startswith("(figure")
        assert (
            row(section, "client ceiling")[0]
            == f"4,000 requests/s (3,900{DASH}4,100), 0.21 CPU s per 1,000 requests"
            f" (the service: 2.4{X} that per lead)"
        )
        assert row(section, "end to end / client ceiling") == ("**0.62**", "≥ 0.6 of the ceiling: met")
        assert row(section, "the same with the reader in its own process") == ("2,300 leads/s", "")
        assert "0.62 of the 4,000 requests/s aiohttp alone sends" in section

    def test_steady_and_catch_up(self, report: ModuleType) -> None:
        """The steady-state CPU per lead, its ratio target and the catch-up figure render when present."""
        section = report.render(FULL, "r.json")
        assert row(section, "steady state: CPU per lead at 20, 200 and 2,000 leads/s, each + 5,000")[0] == (
            "20 leads/s: 0.90; 200 leads/s: 0.50; 2,000 leads/s: 0.45 (CPU s per 1,000 leads, net of a"
            " noise-only run)"
        )
        assert row(section, "steady state (200 leads/s") == (f"**1.50{X}**", f"≤ 1.2{X}: not met")
        assert row(section, "live: streamer CPU at 200 leads/s + 5,000 noise/s") == (
            "**12 % of one core**",
            "",
        )
        assert row(section, "catch-up after an outage at 50 leads/s + 5,000 noise/s")[0] == (
            "**0.125 s** of catch-up per second of outage (one hour: 450 s, extrapolated from a 120 s outage)"
        )

    def test_load_share_recorded_in_the_target(self, report: ModuleType) -> None:
        """A figure under the target counts as not met when its entry records too little load."""
        results = copy.deepcopy(FULL)
        results["targets"]["steady_cpu_per_lead_vs_backlog"] = {
            "target": 1.2,
            "measured": 1.02,
            "met": False,
            "run": "live.steady",
            "achieved_share": 0.191,
            "min_achieved_share": 0.95,
        }
        section = report.render(results, "r.json")
        assert row(section, "steady state (200 leads/s") == (
            f"**1.02{X}**",
            f"≤ 1.2{X}: not met (0.19 of the offered load achieved; needs 0.95)",
        )

    def test_reading_lists_the_targets_by_state(self, report: ModuleType) -> None:
        """The reading text sorts the targets into met, not met and not measured."""
        section = report.render(FULL, "r.json")
        assert "not met: `scan_ratio_vs_mariadb_binlog`, `steady_cpu_per_lead_vs_backlog`;" in section
        assert f"3.2{X} faster than `mariadb-binlog` reading the same segment from the server" in section

    def test_dirty_commit_is_said(self, report: ModuleType) -> None:
        """Figures from a checkout with uncommitted changes say so."""
        results = copy.deepcopy(FULL)
        results["provenance"]["dirty"] = True
        assert "commit `0123456789` with uncommitted changes." in report.render(results, "r.json")


class TestOlderFiles:
    """A JSON from before issue 16 renders, with its missing figures said to be missing."""

    def test_missing_sections_are_not_measured(self, report: ModuleType) -> None:
        """No ceiling, no remote mariadb-binlog, no steady runs: those rows say so."""
        section = report.render(OLD, "old.json")
        assert row(section, "client ceiling")[0] == report.NOT_MEASURED
        assert row(section, "end to end / client ceiling") == (
            report.NOT_MEASURED,
            "≥ 0.6 of the ceiling: not measured",
        )
        assert row(section, "the same segment: fast reader vs `mariadb-binlog")[1] == f"≥ 4{X}: not measured"
        assert row(section, "catch-up")[0] == report.NOT_MEASURED
        assert row(section, "steady state (200 leads/s")[1] == f"≤ 1.2{X}: not measured"
        assert "commit not recorded (the file predates provenance)" in section
        assert "event loop not recorded" in section

    def test_live_target_needs_the_offered_load(self, report: ModuleType) -> None:
        """Marked met in the file at 0.35 of its offered load, the p99 target is not met."""
        section = report.render(OLD, "old.json")
        assert row(section, "live: p99 insert→request, offered 500 leads/s + 20,000 noise/s") == (
            "p50 20 ms, **p99 40 ms**",
            "≤ 100 ms: not met (0.35 of the offered load achieved; needs 0.95)",
        )

    def test_retired_target_is_a_figure(self, report: ModuleType) -> None:
        """The absolute e2e rate and CPU share of earlier runs are figures, never targets."""
        results = copy.deepcopy(OLD)
        results["live"]["cpu"] = {"offered_leads_per_s": 200.0, "window_cpu_share_of_one_core": 0.2336}
        results["targets"]["live_cpu_share_of_one_core"] = {"target": 0.1, "measured": 0.2336, "met": False}
        section = report.render(results, "old.json")
        assert "e2e_leads_per_s_0ms" not in section and "live_cpu_share_of_one_core" not in section
        assert row(section, "live: streamer CPU, offered 200 leads/s") == ("**23 % of one core**", "")
        assert row(section, "end to end, backlog to a 0 ms receiver")[0] == "**2,226 leads/s**"

    def test_empty_file(self, report: ModuleType) -> None:
        """Even a JSON with nothing in it renders, every target not measured."""
        section = report.render({}, "empty.json")
        assert ": met" not in section and ": not met" not in section
        assert "targets met: none; not met: none;" in section


class TestReadme:
    """``--write`` and ``--check`` keep the README's section equal to the JSON's rendering."""

    def test_write_then_check(self, report: ModuleType, tmp_path: Path) -> None:
        """--check fails on a stale section, --write fixes it, the text around it is kept."""
        results = tmp_path / "r.json"
        results.write_text(json.dumps(FULL), encoding="utf-8")
        readme = tmp_path / "README.md"
        readme.write_text(
            f"# Title\n\nbefore\n\n{report.BEGIN}\nold\n{report.END}\n\nafter\n", encoding="utf-8"
        )
        assert report.main([str(results), "--check", str(readme)]) == 1
        assert report.main([str(results), "--write", str(readme)]) == 0
        assert report.main([str(results), "--check", str(readme)]) == 0
        text = readme.read_text(encoding="utf-8")
        assert text.startswith("# Title\n\nbefore\n\n<!-- bench:begin -->\n")
        assert text.endswith("<!-- bench:end -->\n\nafter\n")
        assert "| ≥ 0.6 of the ceiling: met |" in text

    def test_markers_are_required(self, report: ModuleType) -> None:
        """A README without the markers (or with two sections) is refused, not appended to."""
        with pytest.raises(ValueError, match="bench:begin"):
            report.replace_section("no markers\n", "x")
        twice = f"{report.BEGIN}\n{report.END}\n{report.BEGIN}\n{report.END}\n"
        with pytest.raises(ValueError, match="exactly one"):
            report.replace_section(twice, "x")


class TestCommittedReadme:
    """The committed README cites the committed full run."""

    def test_readme_matches_full_run(self, report: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
        """``python -m bench.report bench/results/full-2core.json --check README.md`` passes."""
        monkeypatch.chdir(ROOT)
        assert report.main(["bench/results/full-2core.json", "--check", "README.md"]) == 0

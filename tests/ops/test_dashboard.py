"""The Grafana dashboard: valid for Grafana's schema, complete, and its PromQL parses.

Schema: Grafana's own dashboard types from the npm package ``@grafana/schema``
(published by Grafana Labs with every Grafana release, generated from the CUE kinds
Grafana validates dashboards with). The dashboard JSON is written into a TypeScript
file as a literal typed ``Dashboard``, and each panel's ``options`` and
``fieldConfig.defaults.custom`` as literals of that panel plugin's ``Options`` and
``FieldConfig`` types; ``tsc --strict`` then rejects unknown keys, missing required
keys and wrong value types. String enums are compared by value (JSON has no enums).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.opstools import (
    OpsTools,
    dashboard_queries,
    ensure_ops_tools,
    exported_metric_names,
    iter_panels,
    load_dashboard,
    metric_names,
    substitute,
)

#: Panel type → (module under @grafana/schema/dist/esm/raw/composable, has FieldConfig).
_PANEL_TYPES: dict[str, tuple[str, bool]] = {
    "timeseries": ("timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen", True),
    "stat": ("stat/panelcfg/x/StatPanelCfg_types.gen", False),
    "state-timeline": ("statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen", True),
    "table": ("table/panelcfg/x/TablePanelCfg_types.gen", True),
}

# JSON has no TypeScript enums: compare string enums by their values.
_TS_PRELUDE = """\
type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;
"""

_SELECTOR = re.compile(r"\b((?:vicidial_cdc|process)_[a-z0-9_]+|up|scrape_duration_seconds)(\{[^}]*\})?")


@pytest.fixture(scope="module")
def tools() -> OpsTools:
    return ensure_ops_tools()


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def typescript_check_source(dashboard: dict[str, Any]) -> str:
    """A TypeScript module that type-checks only if the dashboard fits Grafana's schema."""
    lines = ['import type { Dashboard } from "@grafana/schema";']
    for panel_type, (module, _) in sorted(_PANEL_TYPES.items()):
        lines.append(
            f'import type * as {_ident(panel_type)} from "@grafana/schema/dist/esm/raw/composable/{module}";'
        )
    lines.append(_TS_PRELUDE)
    lines.append(f"export const dashboard: Json<Dashboard> = {json.dumps(dashboard, indent=2)};")
    for panel in iter_panels(dashboard):
        if panel["type"] == "row":
            continue
        ns = _ident(panel["type"])
        _, has_field_config = _PANEL_TYPES[panel["type"]]
        pid = int(panel["id"])
        lines.append(f"export const panel{pid}Options: Json<{ns}.Options> = {json.dumps(panel['options'])};")
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if custom is not None:
            assert has_field_config, f"panel {pid}: {panel['type']} has no custom field config"
            lines.append(f"export const panel{pid}Custom: Json<{ns}.FieldConfig> = {json.dumps(custom)};")
    return "\n".join(lines) + "\n"


def run_tsc(tools: OpsTools, dashboard: dict[str, Any], work: Path) -> subprocess.CompletedProcess[str]:
    """Type-check the dashboard against @grafana/schema with ``tsc --strict``."""
    (work / "dashboard.ts").write_text(typescript_check_source(dashboard), "utf-8")
    options = {
        "strict": True,
        "noEmit": True,
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "skipLibCheck": True,
        "types": [],
    }
    (work / "tsconfig.json").write_text(
        json.dumps({"compilerOptions": options, "files": ["dashboard.ts"]}), "utf-8"
    )
    (work / "node_modules").symlink_to(tools.node_modules)
    return subprocess.run(
        [tools.node, str(tools.tsc), "-p", str(work / "tsconfig.json"), "--pretty", "false"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


class TestGrafanaSchema:
    """The dashboard JSON is valid for Grafana's dashboard schema (@grafana/schema)."""

    def test_typescript_check_against_grafana_schema(
        self, tools: OpsTools, dashboard: dict[str, Any], tmp_path: Path
    ) -> None:
        """tsc --strict accepts the dashboard, each panel's options and custom field config."""
        unknown = {p["type"] for p in iter_panels(dashboard)} - set(_PANEL_TYPES) - {"row"}
        assert not unknown, f"no schema mapping for panel types {unknown}"
        done = run_tsc(tools, dashboard, tmp_path)
        assert done.returncode == 0, f"dashboard does not fit Grafana's schema:\n{done.stdout}{done.stderr}"

    def test_schema_check_rejects_a_broken_dashboard(
        self, tools: OpsTools, dashboard: dict[str, Any], tmp_path: Path
    ) -> None:
        """The check is not vacuous: unknown keys and wrong values are reported."""
        broken = json.loads(json.dumps(dashboard))
        broken["panels"][1]["gridPosition"] = {"x": 0}
        broken["templating"]["list"][0]["type"] = "no-such-variable-type"
        broken["panels"][2]["options"]["colorMode"] = "plaid"
        done = run_tsc(tools, broken, tmp_path)
        assert done.returncode != 0
        for needle in ("gridPosition", "no-such-variable-type", "plaid"):
            assert needle in done.stdout, done.stdout


class TestDashboardShape:
    """Variables, rows and panels an operator relies on."""

    def test_datasource_and_instance_variables(self, dashboard: dict[str, Any]) -> None:
        """A Prometheus data source variable and a multi-value instance variable."""
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        ds = variables["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
        inst = variables["instance"]
        assert inst["type"] == "query"
        assert inst["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert "label_values(vicidial_cdc_build_info, instance)" in json.dumps(inst["query"])
        assert inst["multi"] and inst["includeAll"]

    def test_rows_hold_the_panels_the_issue_lists(self, dashboard: dict[str, Any]) -> None:
        """Overview, per endpoint, binlog, process and sending-mode rows read the right metrics."""
        rows: dict[str, set[str]] = {}
        current = ""
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                current = panel["title"]
                rows[current] = set()
                continue
            for target in panel.get("targets", []):
                rows[current] |= metric_names(target["expr"]) | {panel["title"]}
        assert list(rows) == [
            "Overview", "Per endpoint", "Binlog", "Process", "Sending mode", "Reader health",
            "Late rows, waiting and failed leads", "State store", "Secrets", "VICIdial hooks",
        ]  # fmt: skip
        expected = {
            "Overview": {
                "vicidial_cdc_leads_detected_total",
                "vicidial_cdc_deliveries_total",
                "Delivery success ratio",
                "vicidial_cdc_binlog_lag_seconds",
                "vicidial_cdc_deliveries_pending",
                "vicidial_cdc_deliveries_dead",
            },
            "Per endpoint": {
                "vicidial_cdc_request_duration_seconds_bucket",
                "vicidial_cdc_requests_total",
                "vicidial_cdc_circuit_state",
                "vicidial_cdc_rate_limited_waits_total",
            },
            "Binlog": {
                "vicidial_cdc_binlog_rows_total",
                "vicidial_cdc_checkpoint_binlog_file_number",
                "vicidial_cdc_checkpoint_binlog_position_bytes",
                "vicidial_cdc_reader_reconnects_total",
                "vicidial_cdc_binlog_retention_headroom_seconds",
            },
            "Process": {"process_cpu_seconds_total", "process_resident_memory_bytes"},
            "Sending mode": {
                "vicidial_cdc_mode",
                "vicidial_cdc_vicidial_sender_active",
                "vicidial_cdc_requests_total",
            },
            "Reader health": {
                "vicidial_cdc_reader_fault",
                "vicidial_cdc_reader_errors_total",
                "vicidial_cdc_reader_disconnects_total",
                "vicidial_cdc_state_fresh_start",
            },
            "State store": {"vicidial_cdc_store_lock_wait_seconds_bucket", "vicidial_cdc_store_busy_total"},
            "Secrets": {"vicidial_cdc_secret_origin_refused_total"},
            "VICIdial hooks": {
                "vicidial_cdc_hook_attempts_total",
                "vicidial_cdc_hook_outcomes_total",
                "vicidial_cdc_hook_response_seconds_bucket",
                "vicidial_cdc_hook_pending",
                "vicidial_cdc_hook_rescues_total",
                "vicidial_cdc_hook_duplicates_total",
            },
        }
        for row, needed in expected.items():
            assert needed <= rows[row], f"row {row} lacks {needed - rows[row]}"
        latency = [
            q.expr for q in dashboard_queries(dashboard) if "request_duration_seconds_bucket" in q.expr
        ]
        quantiles = {m.group(1) for e in latency if (m := re.search(r"histogram_quantile\(([0-9.]+)", e))}
        assert quantiles == {"0.5", "0.95", "0.99"}

    def test_layout(self, dashboard: dict[str, Any]) -> None:
        """Unique ids, inside the 24-column grid, no two panels overlapping."""
        panels = list(iter_panels(dashboard))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids))
        cells: dict[tuple[int, int], str] = {}
        for p in panels:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]

    def test_every_query_is_per_instance_on_the_chosen_datasource(self, dashboard: dict[str, Any]) -> None:
        """Every series selector filters on $instance; every panel queries ${datasource}."""
        for panel in iter_panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel.get("description"), f"{panel['title']} has no description"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                selectors = _SELECTOR.findall(target["expr"])
                assert selectors, target["expr"]
                for name, matchers in selectors:
                    assert 'instance=~"$instance"' in matchers, f"{panel['title']}: {name} not per instance"


class TestDashboardPromQL:
    """Every panel query parses and reads only metrics the streamer exports."""

    def test_every_query_parses(self, tools: OpsTools, dashboard: dict[str, Any], tmp_path: Path) -> None:
        """promtool parses each query (as a recording rule) after Grafana's substitution."""
        queries = dashboard_queries(dashboard)
        rules = [
            {"record": f"dashboard:panel_{q.panel_id}_{q.ref_id.lower()}", "expr": substitute(q.expr)}
            for q in queries
        ]
        path = tmp_path / "dashboard_rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), "utf-8")
        done = subprocess.run(
            [tools.promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"SUCCESS: {len(rules)} rules found" in done.stdout

    def test_every_metric_is_exported(self, dashboard: dict[str, Any]) -> None:
        """Each vicidial_cdc_/process_ name in a query exists in the streamer's registry."""
        exported = exported_metric_names()
        for q in dashboard_queries(dashboard):
            missing = metric_names(q.expr) - exported
            assert not missing, f"{q.key} reads {missing}, which cdc.metrics does not export"

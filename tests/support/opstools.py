"""Helpers for the operations tests: the tools, the PromQL of the dashboard and the
alert rules, the metric names the code exports, and a private Prometheus.

- :func:`ensure_ops_tools` finds promtool/prometheus/amtool and the pinned npm packages,
  running ``scripts/ops-tools`` (apt-get + npm ci) when something is missing.
- :func:`dashboard_queries` and :func:`alert_rules` read the shipped files;
  :func:`substitute` fills Grafana's variables so Prometheus can run a panel's query.
- :class:`PrivatePrometheus` runs Debian's ``prometheus`` on a free loopback port with
  its own data directory, and stops it on exit.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from cdc.testing.mariadb.install import find_binary
from support.host import REPO, free_port

DASHBOARD = REPO / "grafana" / "dashboards" / "vicidial-cdc.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
OPS_NODE = REPO / ".venv" / "ops-node"
OPS_TOOLS_SCRIPT = REPO / "scripts" / "ops-tools"

_METRIC_NAME = re.compile(r"\b((?:vicidial_cdc|process|python)_[a-z0-9_]+)\b")


# ---------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class OpsTools:
    """Paths of the tools the operations tests run."""

    promtool: str
    prometheus: str
    amtool: str
    node: str
    #: ``node_modules`` holding ``@grafana/schema`` and ``typescript``.
    node_modules: Path

    @property
    def tsc(self) -> Path:
        return self.node_modules / "typescript" / "bin" / "tsc"


def _find_tools() -> OpsTools | None:
    names = ("promtool", "prometheus", "amtool", "node")
    paths = {name: find_binary(name) for name in names}
    node_modules = OPS_NODE / "node_modules"
    stamps = list(OPS_NODE.glob(".installed-*"))
    if any(p is None for p in paths.values()) or not stamps or not (node_modules / "typescript").is_dir():
        return None
    return OpsTools(
        promtool=str(paths["promtool"]),
        prometheus=str(paths["prometheus"]),
        amtool=str(paths["amtool"]),
        node=str(paths["node"]),
        node_modules=node_modules,
    )


def ensure_ops_tools(*, allow_install: bool = True) -> OpsTools:
    """The tools, installed by ``scripts/ops-tools`` first when one is missing."""
    tools = _find_tools()
    if tools is None and allow_install:
        done = subprocess.run(
            [str(OPS_TOOLS_SCRIPT)], capture_output=True, text=True, check=False, timeout=900
        )
        if done.returncode != 0:
            raise AssertionError(
                f"scripts/ops-tools failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        tools = _find_tools()
    if tools is None:
        raise AssertionError(
            "promtool, prometheus, amtool, node or the npm packages are missing: run scripts/ops-tools"
        )
    return tools


# --------------------------------------------------------------------- the dashboard


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One query of one dashboard panel."""

    panel_id: int
    panel_title: str
    ref_id: str
    expr: str

    @property
    def key(self) -> str:
        return f"{self.panel_title} [{self.ref_id}]"


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with collapsed rows' nested panels."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: Mapping[str, Any] | None = None) -> list[PanelQuery]:
    dashboard = dashboard if dashboard is not None else load_dashboard()
    out: list[PanelQuery] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            out.append(
                PanelQuery(int(panel["id"]), str(panel["title"]), str(target["refId"]), target["expr"])
            )
    return out


def substitute(expr: str, *, instance: str = ".+", rate_interval: str = "1m") -> str:
    """Fill Grafana's variables the way Grafana does before it sends the query."""
    for name in ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}"):
        expr = expr.replace(name, rate_interval)
    for name in ("${instance}", "$instance"):
        expr = expr.replace(name, instance)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable left in {expr!r}")
    return expr


def metric_names(expr: str) -> set[str]:
    """The vicidial_cdc_/process_/python_ metric names an expression reads."""
    return set(_METRIC_NAME.findall(expr))


# ------------------------------------------------------------------------ alert rules


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    expr: str
    severity: str
    for_: str
    annotations: dict[str, str]


def alert_rules() -> list[AlertRule]:
    doc = yaml.safe_load(ALERTS.read_text("utf-8"))
    out: list[AlertRule] = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            out.append(
                AlertRule(
                    name=rule["alert"],
                    expr=rule["expr"],
                    severity=rule.get("labels", {}).get("severity", ""),
                    for_=rule.get("for", "0s"),
                    annotations=dict(rule.get("annotations", {})),
                )
            )
    return out


# ---------------------------------------------------------------- exported metrics


def exported_metric_names() -> set[str]:
    """Sample names the streamer's registry can export (process_* included).

    Read from the families ``cdc.metrics`` declares, so labelled counters that have
    not been incremented yet still count: a counter ``x`` exports ``x_total``, a
    histogram ``x_bucket``/``x_sum``/``x_count``, an info ``x_info``.
    """
    from cdc.metrics import Metrics, StateCollector, StateSample

    metrics = Metrics()
    metrics.add_collector(StateCollector(StateSample))
    names: set[str] = set()
    for family in metrics.registry.collect():
        base = family.name
        if family.type == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif family.type == "histogram":
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
        elif family.type == "info":
            names.add(f"{base}_info")
        else:
            names.add(base)
        names |= {sample.name for sample in family.samples}
    return names


# ---------------------------------------------------------------- a private Prometheus


class PrometheusError(AssertionError):
    """Prometheus answered a query with an error (bad_data: it did not parse)."""

    def __init__(self, expr: str, error_type: str, error: str) -> None:
        super().__init__(f"{error_type}: {error} in {expr!r}")
        self.expr = expr
        self.error_type = error_type
        self.error = error


class PrivatePrometheus:
    """Debian's ``prometheus`` on 127.0.0.1:<free port>, own data dir, stopped on exit.

    ``targets`` are scraped as job ``vicidial-cdc`` every ``scrape_interval``; rules are
    evaluated at the same interval. Use as a context manager.
    """

    def __init__(
        self,
        binary: str,
        base_dir: Path,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        *,
        scrape_interval: str = "1s",
        job: str = "vicidial-cdc",
    ) -> None:
        self._binary = binary
        self._base = base_dir
        self._targets = list(targets)
        self._rule_files = [str(p) for p in rule_files]
        self._interval = scrape_interval
        self._job = job
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self._base / "prometheus.log"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> None:
        if self._proc is not None:
            raise RuntimeError("prometheus already started")
        self._base.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": self._interval,
                "scrape_timeout": self._interval,
                "evaluation_interval": self._interval,
            },
            "rule_files": self._rule_files,
            "scrape_configs": [
                {"job_name": self._job, "static_configs": [{"targets": self._targets}]},
            ],
        }
        config_file = self._base / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), "utf-8")
        self.port = free_port()
        argv = [
            self._binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self._base / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with open(self.log_file, "wb") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self._proc.returncode}:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"prometheus not ready within {timeout_s:g} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- HTTP API (blocking; call through asyncio.to_thread from async tests) --------

    def _get(self, path: str, params: Mapping[str, str], expr: str = "") -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}" if params else f"{self.url}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the JSON error
            with contextlib.closing(exc):
                body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(expr, str(body.get("errorType")), str(body.get("error")))
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params, expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] in ("vector", "matrix") else []
        return result

    def query_range(self, expr: str, start: float, end: float, step_s: float = 1.0) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
        data = self._get("/api/v1/query_range", params, expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts", {})["alerts"]
        return alerts

    def rule_health(self) -> dict[str, str]:
        """``{rule name: health}`` ("ok", "err", "unknown") of every loaded rule."""
        groups = self._get("/api/v1/rules", {})["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return {f"{r['name']}/{r.get('labels', {}).get('severity', '')}": str(r["health"]) for r in rules}

    def target_health(self) -> list[str]:
        active = self._get("/api/v1/targets", {})["activeTargets"]
        return [str(t["health"]) for t in active]


def has_data(result: Sequence[Mapping[str, Any]]) -> bool:
    """True when a query result holds at least one sample that is not NaN."""
    for series in result:
        values = series.get("values") or ([series["value"]] if "value" in series else [])
        if any(v[1] != "NaN" for v in values):  # +Inf is data (headroom with no expiry)
            return True
    return False

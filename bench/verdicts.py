"""The issue's targets as the README states them, read from a ``bench.run`` results JSON.

A target is met as the JSON says, except one measured under an offered load: that one
counts as met only when the run achieved ``bench.run.MIN_ACHIEVED_SHARE`` of the load,
also in files written before the bench applied the rule itself. Targets are those of
``bench.run.TARGETS`` plus any other the JSON carries, except ``RETIRED_TARGETS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import run as bench_run

__all__ = [
    "NOT_MEASURED",
    "RETIRED_TARGETS",
    "TIMES",
    "Verdict",
    "get",
    "live_share",
    "num",
    "times",
    "verdict_text",
    "verdicts",
]

Results = dict[str, Any]
NOT_MEASURED = "not measured in this run"
TIMES = "\N{MULTIPLICATION SIGN}"

#: Targets of earlier issues that are figures now, and why.
RETIRED_TARGETS = {
    "e2e_leads_per_s_0ms": "an absolute rate; machines differ 2 to 3 times (now e2e_vs_client_ceiling)",
    "live_cpu_share_of_one_core": "a share of one core (now steady_cpu_per_lead_vs_backlog)",
}
#: Targets the issue sets whose figures other parts of the bench add (issue 16): their
#: thresholds, for JSON files that do not carry them yet. ``bench.run.TARGETS`` wins.
ISSUE_TARGETS = {"steady_cpu_per_lead_vs_backlog": 1.2}
LOWER_IS_BETTER = bench_run.LOWER_IS_BETTER | {"steady_cpu_per_lead_vs_backlog"}


def get(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where a level is missing or not a mapping."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def num(value: float | None, digits: int = 0) -> str:
    """``134,354`` / ``0.45``; :data:`NOT_MEASURED` for None."""
    if value is None:
        return NOT_MEASURED
    return f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.1f}{TIMES}"


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` unrounded (``bench.run.ratio`` rounds to 2 places); None without both."""
    return a / b if a and b else None


# -- targets --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One target as the README states it."""

    key: str
    target: float
    measured: float | None
    #: True met, False not met, None not measured.
    met: bool | None
    #: Why a good figure does not count (the offered load was not achieved), or "".
    caveat: str = ""


def _target_text(key: str, target: float) -> str:
    sign = "≤" if key in LOWER_IS_BETTER else "≥"
    if key == "live_p99_ms":
        return f"{sign} {num(target)} ms"
    if key == "peak_rss_mb":
        return f"{sign} {num(target)} MB"
    if key == "e2e_vs_client_ceiling":
        return f"{sign} {target:g} of the ceiling"
    return f"{sign} {target:g}{TIMES}"


def verdict_text(v: Verdict) -> str:
    """``≥ 6x: met`` / ``≤ 100 ms: not met (why)`` / ``≥ 4x: not measured`` (x: the sign)."""
    state = {True: "met", False: "not met", None: "not measured"}[v.met]
    text = f"{_target_text(v.key, v.target)}: {state}"
    return f"{text} ({v.caveat})" if v.caveat else text


def live_share(results: Results, run: str) -> float | None:
    """The share of the offered load a live run achieved (computed for older JSON files)."""
    live = get(results, f"live.{run}")
    if not isinstance(live, dict):
        return None
    if "achieved_share" in live:
        share: float | None = live["achieved_share"]
        return share
    leads = bench_run.achieved_share(live.get("offered_leads_per_s") or 0.0, live.get("achieved_leads_per_s"))
    noise = bench_run.achieved_share(live.get("offered_noise_per_s") or 0.0, live.get("achieved_noise_per_s"))
    return bench_run.load_share(leads, noise)


def verdicts(results: Results) -> dict[str, Verdict]:
    """Every target shown: ``bench.run.TARGETS`` and the JSON's own, minus the retired."""
    recorded: dict[str, Any] = results.get("targets") or {}
    thresholds = {**ISSUE_TARGETS, **bench_run.TARGETS}
    keys = [k for k in bench_run.TARGETS if k not in RETIRED_TARGETS]
    keys += [k for k in recorded if k not in keys and k not in RETIRED_TARGETS]
    keys += [k for k in ISSUE_TARGETS if k not in keys]
    out: dict[str, Verdict] = {}
    for key in keys:
        entry = recorded.get(key) or {}
        target = float(entry.get("target", thresholds.get(key, 0.0)))
        measured = entry.get("measured")
        met: bool | None = entry.get("met") if measured is not None else None
        caveat = ""
        # A load target by the bench's list, or by the load share its entry records.
        run = bench_run.LOAD_TARGETS.get(key)
        if (run is not None or "min_achieved_share" in entry) and measured is not None:
            share = entry["achieved_share"] if "achieved_share" in entry else live_share(results, run or "")
            met = bench_run.target_met(
                measured, target, lower_is_better=key in LOWER_IS_BETTER, under_load=True, achieved=share
            )
            if share is None or share < bench_run.MIN_ACHIEVED_SHARE:
                achieved = "an unknown share" if share is None else f"{share:.2f}"
                caveat = f"{achieved} of the offered load achieved; needs {bench_run.MIN_ACHIEVED_SHARE:g}"
        out[key] = Verdict(key, target, measured, met, caveat)
    return out

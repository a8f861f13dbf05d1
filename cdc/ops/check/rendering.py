"""The check report as text or JSON, and its exit code (0 good, 1 warnings, 2 blockers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..output import json_text
from .results import CheckResult, Status

__all__ = ["exit_code", "render_json", "render_text"]


def exit_code(results: Iterable[CheckResult]) -> int:
    """2 when anything FAILed (a blocker), 1 when anything WARNed, else 0."""
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return 2
    if Status.WARN in statuses:
        return 1
    return 0


def render_text(results: Sequence[CheckResult]) -> str:
    """One line per check (status, name, message), the fix indented below it."""
    width = min(max((len(r.name) for r in results), default=0), 26)
    lines: list[str] = []
    pad = " " * (4 + 2 + width + 2)
    for r in results:
        lines.append(f"{r.status.value:<4}  {r.name:<{width}}  {r.message}")
        for i, fix_line in enumerate(r.fix.splitlines()):
            lines.append(f"{pad}{'fix: ' if i == 0 else '     '}{fix_line}")
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    code = exit_code(results)
    if code == 0:
        summary = "all good"
    else:
        parts = [f"{counts[Status.FAIL]} blocker(s)"] if counts[Status.FAIL] else []
        if counts[Status.WARN]:
            parts.append(f"{counts[Status.WARN]} warning(s)")
        summary = ", ".join(parts)
    lines.append(f"{summary} (exit {code})")
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[CheckResult]) -> str:
    """A JSON list of ``{name, status, message, fix}``, in report order."""
    return json_text([_as_dict(r) for r in results])


def _as_dict(result: CheckResult) -> dict[str, str]:
    return {
        "name": result.name,
        "status": result.status.value,
        "message": result.message,
        "fix": result.fix,
    }

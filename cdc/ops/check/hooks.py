"""``check``: the URL hooks this VICIdial fires, and whether ``[hooks] rescue`` covers them.

Facts (read by :mod:`.facts`): the active campaigns', in-groups' and lists' hook URL
columns and the active ALT rows (:func:`cdc.vicidb.hook_setting_rows`,
:func:`cdc.vicidb.hook_alt_rows`).
Rule: one INFO line per ``url_type`` set somewhere (where, and what the streamer does
about it), and one for a rescued type nothing fires. Never a WARN: a hook that is not
rescued is the operator's choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ... import vicidb
from ...hooks.config import HooksConfig
from ...hooks.configured import AltRow, configured_hooks
from ...hooks.types import HOOK_TYPES
from .results import CheckResult, Status

__all__ = ["HookFacts", "check_hooks"]

_MAX_OWNERS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class HookFacts:
    """The rows :func:`check_hooks` reads, and the tables it could not."""

    settings: Mapping[str, tuple[vicidb.Row, ...]] = field(default_factory=dict)
    alt_rows: tuple[AltRow, ...] = ()
    #: Table → why it could not be read.
    unreadable: Mapping[str, str] = field(default_factory=dict)


def check_hooks(facts: HookFacts, hooks: HooksConfig) -> list[CheckResult]:
    """Which hook types are set, where, and whether the streamer re-sends their failures."""
    out: list[CheckResult] = []
    if facts.unreadable:
        tables = ", ".join(sorted(facts.unreadable))
        out.append(
            CheckResult(
                "hooks",
                Status.INFO,
                f"cannot read {tables} ({next(iter(facts.unreadable.values()))}): the hook types set"
                " there are not listed (every url_type VICIdial logs is watched anyway)",
            )
        )
    found = configured_hooks(facts.settings, facts.alt_rows, hooks)
    for hook in found:
        facts_of = HOOK_TYPES[hook.url_type]
        where = "; ".join(
            f"{table.removeprefix('vicidial_')}: {_ids(ids)}" for table, ids in sorted(hook.owners.items())
        )
        if hook.rescue:
            doing, fix = "watched; failed or never-completed requests are re-sent (rescue on)", ""
        elif hook.rescuable:
            doing = "watched only (rescue off): VICIdial's failures are counted, not re-sent"
            fix = f'to re-send them, add "{hook.url_type}" to [hooks] rescue'
        else:
            doing, fix = f"watched only ({facts_of.kind.value}: a re-send later has no use)", ""
        out.append(
            CheckResult(
                f"hooks.{hook.url_type}", Status.INFO, f"{facts_of.description}, set in {where}; {doing}", fix
            )
        )
    fired = {hook.url_type for hook in found}
    idle = sorted(hooks.rescue - fired)
    if idle and not facts.unreadable:
        out.append(
            CheckResult(
                "hooks.rescue",
                Status.INFO,
                f"[hooks] rescue names {', '.join(idle)}, which no active campaign, in-group or list"
                " sets here (nothing to re-send until one does)",
            )
        )
    if not found and not facts.unreadable:
        out.append(CheckResult("hooks", Status.INFO, "no campaign, in-group or list sets a hook URL"))
    return out


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_MAX_OWNERS_SHOWN])
    return shown + (f" and {len(ids) - _MAX_OWNERS_SHOWN} more" if len(ids) > _MAX_OWNERS_SHOWN else "")

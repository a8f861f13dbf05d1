"""Running ``vicidial-cdc check``: gather the facts, evaluate every rule, in report order."""

from __future__ import annotations

from ...config import Config
from ...duration import parse_duration
from ...errors import SourceError
from ...settings import UrlOverrides
from ...vicidb import quote_name
from .connection import check_tls, connect_failure
from .facts import gather_facts, gather_state
from .hooks import check_hooks
from .results import CheckResult, Status
from .rules import check_state, evaluate

__all__ = ["parse_duration_s", "run_checks", "start_check"]


def run_checks(cfg: Config, *, max_downtime_s: float | None = None) -> list[CheckResult]:
    """Gather the facts with ``cfg``'s credentials and evaluate every check.

    ``max_downtime_s`` defaults to ``reader.max_downtime_s`` (``check --max-downtime`` overrides it).
    """
    mysql = cfg.mysql
    try:
        facts = gather_facts(mysql)
    except SourceError as exc:
        return [connect_failure(mysql, exc)]
    connected = CheckResult(
        "connect",
        Status.OK,
        f"connected to {mysql.host}:{mysql.port} as {facts.account} ({facts.version or 'unknown version'}), "
        f"database {quote_name(mysql.database)}",
    )
    overrides = UrlOverrides.of(cfg.urls)
    downtime_s = cfg.reader.max_downtime_s if max_downtime_s is None else max_downtime_s
    return [
        connected,
        *check_tls(facts, mysql),
        *evaluate(facts, server_id=mysql.server_id, overrides=overrides, max_downtime_s=downtime_s),
        *check_hooks(facts.hooks, cfg.hooks),
        *check_state(gather_state(cfg), cfg.reader.start),
    ]


def start_check(cfg: Config) -> list[CheckResult]:
    """The check the service runs at start-up (``reader.check_at_start``): what is not right."""
    return [r for r in run_checks(cfg) if r.status in (Status.WARN, Status.FAIL)]


def parse_duration_s(text: str) -> float:
    """``--max-downtime``: seconds (``86400``) or any duration (``90m``, ``12h``, ``3d``, ``1w``), > 0."""
    return parse_duration(text, what="--max-downtime", bare_seconds=True, positive=True)

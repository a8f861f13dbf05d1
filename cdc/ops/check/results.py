"""The report's lines: a :class:`Status` and a :class:`CheckResult` per check."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MY_CNF", "CheckResult", "Status", "shown_ids"]

#: Where a fix's server settings go.
MY_CNF = "in my.cnf, section [mariadb] (e.g. /etc/mysql/mariadb.conf.d/60-vicidial-cdc.cnf):"
_MAX_IDS_SHOWN = 20


class Status(enum.StrEnum):
    """The outcome of one check. Only WARN and FAIL change the exit code."""

    OK = "OK"
    INFO = "INFO"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report: ``fix`` is the exact remedy, empty when none is needed."""

    name: str
    status: Status
    message: str
    fix: str = ""


def shown_ids(items: Sequence[object]) -> str:
    """The first ids, comma-separated, and how many more: a line stays readable."""
    shown = ", ".join(str(i) for i in items[:_MAX_IDS_SHOWN])
    more = len(items) - _MAX_IDS_SHOWN
    return f"{shown}, … ({more} more)" if more > 0 else shown

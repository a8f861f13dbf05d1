"""The one duration grammar of the CLI: ``90s``, ``30m``, ``2h``, ``3d``, ``1w``, sums such
as ``1h30m``, and, where a flag documents it, a bare number of seconds (``86400``)."""

from __future__ import annotations

import re
from typing import Final

from .errors import ConfigError

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_BARE = re.compile(r"\d+(?:\.\d+)?")
_UNIT_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str, *, what: str = "", bare_seconds: bool = False, positive: bool = False) -> float:
    """Seconds of ``text``; a :class:`ConfigError` naming ``what`` (the flag) otherwise.

    ``bare_seconds``: a number without a unit is seconds (else it is refused: ``2`` is
    ambiguous for an age). ``positive``: zero is refused too.
    """
    cleaned = text.strip().lower().replace(" ", "")
    total: float | None = None
    if bare_seconds and _BARE.fullmatch(cleaned):
        total = float(cleaned)
    elif cleaned:
        pos, total = 0, 0.0
        for match in _PART.finditer(cleaned):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_S[match.group(2)]
            pos = match.end()
        if pos != len(cleaned):
            total = None
    if total is None or (positive and total <= 0):
        examples = "86400, 90m, 12h, 3d, 1w or 1h30m" if bare_seconds else "90s, 30m, 2h, 3d, 1w or 1h30m"
        kind = "a positive duration" if positive else "a duration"
        raise ConfigError(f"{what or 'duration'} must be {kind} such as {examples}, got {text!r}")
    return total

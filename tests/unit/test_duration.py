"""The one duration grammar every CLI flag uses."""

from __future__ import annotations

import pytest

from cdc.duration import parse_duration
from cdc.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("3d", 259200), ("1w", 604800), ("1h30m", 5400),
     (" 2H ", 7200)],
)  # fmt: skip
def test_units_and_sums(text: str, seconds: float) -> None:
    """Every unit, upper or lower case, and a sum of parts."""
    assert parse_duration(text) == seconds


def test_bare_number_only_where_allowed() -> None:
    """``2`` is refused for an age, and is seconds where the flag says so."""
    with pytest.raises(ConfigError, match=r"--older-than must be a duration"):
        parse_duration("2", what="--older-than")
    assert parse_duration("86400", bare_seconds=True) == 86400


def test_positive_refuses_zero() -> None:
    """Zero is a duration, but not a positive one."""
    assert parse_duration("0h") == 0
    with pytest.raises(ConfigError, match=r"--max-downtime must be a positive duration"):
        parse_duration("0h", what="--max-downtime", positive=True)
